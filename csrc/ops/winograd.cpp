// conv2d by Winograd F(2x2, 3x3): the transforms are microkernels (kernels/generic/winograd.h),
// the 16 products per tile summed over input channels run on the GEMM microkernel.
//
// Layout of the work (NHWC; NCHW data goes through NHWC buffers a group of rows at a time):
//  - U: the weights transformed, once per call or ahead of time (conv2d_winograd_weights, kept
//    by a PackedConv2dWeight): 16 planes of C x ldu, ldu = O rounded up to 64 with zero columns,
//    read in place as the GEMM's B.
//  - Output tiles of 2x2 pixels, numbered image-major then row-major, go out in blocks of TB
//    tiles (NCHW: R rows of tiles of one image, their 2R + 2 input rows transposed into the
//    thread's buffer and their 2R output rows transposed out of another). A block's input
//    transform fills V (16 planes of TB x C), then per panel of NR output channels the 16 GEMMs
//    fill M (16 planes of TB x NR) and the output transform writes the block's pixels of those
//    channels. V and M stay in the thread's L2; U streams from L2 or L3, once per block (TB
//    multiply-adds per element loaded).
#include "ops/winograd.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/common.h"
#include "ops/pack.h"
#include "ops/tiles.h"

namespace pycnn {

bool winograd_applies(const Conv2dParams& p, std::string* why) {
  auto reject = [&](const auto& reason) {
    if (why) *why = reason();
    return false;
  };
  if (p.kh != 3 || p.kw != 3)
    return reject([&] {
      return "a " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + " kernel (Winograd F(2x2, 3x3) is for 3x3)";
    });
  if (p.stride_h != 1 || p.stride_w != 1) return reject([] { return "a stride other than 1"; });
  if (p.dilation_h != 1 || p.dilation_w != 1) return reject([] { return "a dilation other than 1"; });
  if (p.groups != 1) return reject([] { return "groups other than 1"; });
  return true;
}

// Measured, 2 threads, p10 us, the faster of direct and im2col -> Winograd, NHWC / NCHW, each
// call transforming the weights: 3x3 64->64 @56 (784 tiles) 461 -> 276 / 492 -> 297; 64 @14
// (49) 32.1 -> 27.6 / 37.7 -> 30.9; 16->32 @28 18.3 -> 18.0 / 20.3 -> 19.3; 16 @56 level (37.7
// -> 38.1 / 43.1 -> 42.9). Slower with few tiles or channels, where the weight transform (U,
// 16/9 of the weights) and the GEMMs' short rows do not pay: 32 @14 (49 tiles) 10.0 -> 11.2 /
// 11.8 -> 12.7, 32->64 @13 (36) 11.4 -> 11.9, 128 @7 (16) 35.5 -> 65.4 / 57.0 -> 69.3; 8->16
// @64 28 -> 37, 3->32 @64 24 -> 44 (NHWC).
// With the weights transformed ahead of time (a PackedConv2dWeight) only the tiles' transforms
// and U's streaming remain to repay: 32->64 @13 11.3 -> 8.6 / 13.0 -> 9.3; 256 @14 482 -> 323 /
// 489 -> 329; 32 @14 13.3 -> 10.5 / 15.0 -> 14.3; 64 @7 (16 tiles) 13.7 -> 12.0 / 17.4 -> 13.3;
// 256 @7 155 -> 115 / 166 -> 147; 64->128 @5 (9 tiles) 13.2 -> 12.0 / 14.6 -> 13.7. Slower: 512
// @7 (16 MiB of U streamed for 16 tiles) 537 -> 621 / 535 -> 806.
bool winograd_pays(const Conv2dParams& p) {
  const int64_t tiles = p.n * ceil_div(p.oh, 2) * ceil_div(p.ow, 2);
  if (p.c < 16 || p.o < 16) return false;
  if (p.weight_winograd_given) return tiles >= 16 && p.c * p.o <= 8192 * tiles;
  return tiles >= 40 && p.c * tiles >= 3000;
}

namespace {

// Bytes of V and M a thread's block may take: half of a 1 MiB L2, the rest for U's panels and
// the input rows.
constexpr int64_t kBlockBytes = 512 * 1024;
constexpr int64_t kMaxBlockTiles = 64;

// Rows [c0, c1) of U (conv2d_winograd_weights' layout) from OIHW or HWIO weights.
template <class T>
void winograd_weight_rows(const ConvKernels<T>& kn, const T* w, bool oihw, int64_t C, int64_t O, int64_t c0,
                          int64_t c1, T* u) {
  const int64_t ld = winograd_weights_stride(O);
  for (int64_t c = c0; c < c1; ++c) {
    T* row = u + c * ld;
    if (oihw) {  // tap t of (o, c) at w[(o*C + c)*9 + t]: gathered into a (9, O) block first
      T taps[9 * 64];
      for (int64_t o0 = 0; o0 < O; o0 += 64) {
        const int64_t n = std::min<int64_t>(64, O - o0);
        for (int64_t o = 0; o < n; ++o)
          for (int64_t t = 0; t < 9; ++t) taps[t * 64 + o] = w[((o0 + o) * C + c) * 9 + t];
        kn.winograd.weight(taps, 64, (size_t)n, row + o0, (size_t)(C * ld));
      }
    } else {  // HWIO: tap t of (c, o) at w[(t*C + c)*O + o]
      kn.winograd.weight(w + c * O, C * O, (size_t)O, row, (size_t)(C * ld));
    }
    for (int64_t xi = 0; xi < 16; ++xi) std::fill(row + xi * C * ld + O, row + xi * C * ld + ld, T(0));
  }
}

}  // namespace

int64_t winograd_weights_stride(int64_t o) { return round_up(o, 64); }

void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, const float* w, float* u) {
  FlushDenormals ftz;
  winograd_weight_rows(kernels_for<float>(active_kernels()), w, layout == Layout::NCHW, c, o, 0, c, u);
}
void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, const double* w, double* u) {
  FlushDenormals ftz;
  winograd_weight_rows(kernels_for<double>(active_kernels()), w, layout == Layout::NCHW, c, o, 0, c, u);
}

template <class T>
bool conv_winograd(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w, const T* prepared,
                   const T* bias, T* y) {
  const bool nchw = p.layout == Layout::NCHW;
  const int64_t C = p.c, O = p.o, HW = p.h * p.w, P = p.oh * p.ow;
  const int64_t tiles_h = ceil_div(p.oh, 2), tiles_w = ceil_div(p.ow, 2), tiles = p.n * tiles_h * tiles_w;
  // U: plane xi's row c at u[(xi*C + c)*ldu], columns [O, ldu) zero, so that any tile whose
  // panels stay inside ldu reads U in place as the GEMM's B.
  const int64_t ldu = winograd_weights_stride(O);
  // The GEMM's tile, for blocks of up to kMaxBlockTiles; then TB: blocks as large as the cache
  // allows, at least one per thread, all the same size (NCHW: whole rows of tiles of one image).
  const auto& gemm = *pick_tile_among(kn.gemm, std::min(tiles, kMaxBlockTiles), O, [&](const auto& k) {
    return round_up(O, (int64_t)k.nr) <= ldu;
  });
  const int64_t MR = (int64_t)gemm.mr, NR = (int64_t)gemm.nr, npanels = ceil_div(O, NR);
  const int64_t fit = std::max<int64_t>(MR, kBlockBytes / (16 * (C + NR) * (int64_t)sizeof(T)));
  const int64_t cap = std::max<int64_t>(MR, std::min(kMaxBlockTiles, fit) / MR * MR);
  const int team = num_threads();
  // NCHW: each image's rows of tiles in `groups` groups of at most row_tiles rows (balanced to a
  // row), a count of blocks that the threads share evenly where a few more groups make one.
  int64_t TB, blocks, row_tiles = 1, groups = 1;
  if (nchw) {
    groups = std::min(tiles_h, std::max(ceil_div(tiles_h, std::max<int64_t>(1, cap / tiles_w)), ceil_div(team, p.n)));
    for (int64_t g = groups; p.n * groups < 4 * team && g <= std::min(tiles_h, groups + team); ++g)
      if (p.n * g % team == 0) {
        groups = g;
        break;
      }
    row_tiles = ceil_div(tiles_h, groups);
    TB = row_tiles * tiles_w;
    blocks = p.n * groups;
  } else {
    blocks = ceil_div(tiles, cap);
    if (blocks < 4 * team) blocks = std::min(round_up(blocks, team), ceil_div(tiles, std::min(MR, tiles)));
    TB = ceil_div(tiles, blocks);
    blocks = ceil_div(tiles, TB);
  }
  const double flops = 2.0 * 16.0 * (double)tiles * (double)C * (double)O;
  const int threads = threads_for(flops, blocks);

  const bool transform = !p.weight_winograd_given;
  Workspace<T> u_made(transform ? (size_t)(16 * C * ldu) : 0, 1);
  const T* u = transform ? u_made.data() : prepared;
  const bool oihw = nchw && !prepared;  // NCHW weights come as HWIO when prepared (weight_hwio_given)
  const T* g = nchw && prepared && transform ? prepared : w;
  Workspace<T> v((size_t)(16 * TB * C), threads), m((size_t)(16 * TB * NR), threads);
  // NCHW: a group of R rows of tiles reads 2R + 2 input rows and writes 2R output rows, through
  // NHWC buffers.
  Workspace<T> band(nchw ? (size_t)((2 * row_tiles + 2) * p.w * C) : 0, threads),
      out_rows(nchw ? (size_t)(2 * row_tiles * p.ow * O) : 0, threads);
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  std::atomic<bool> finite{true};

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    if (transform) {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < C; ++c) winograd_weight_rows(kn, g, oihw, C, O, c, c + 1, u_made.data());
    }
    const int tid = omp_get_thread_num();
    T* vb = v.slice(tid);
    T* mb = m.slice(tid);
    bool all_finite = true;
    // Tiles [t0, t0 + bt): input_row(n, ih) is input row ih of image n as NHWC (null: padding),
    // output_pixel(n, oy, ox) the output pixel's NHWC channels.
    auto run_block = [&](int64_t t0, int64_t bt, const auto& input_row, const auto& output_pixel) {
      for (int64_t t = 0; t < bt; ++t) {
        const int64_t tile = t0 + t, n = tile / (tiles_h * tiles_w), th = tile / tiles_w % tiles_h,
                      tw = tile % tiles_w;
        const T* rows[4];
        for (int64_t r = 0; r < 4; ++r) rows[r] = input_row(n, 2 * th - p.pad_top + r);
        kn.winograd.input(rows, 2 * tw - p.pad_left, p.w, C, C, vb + t * C, (size_t)(TB * C));
      }
      for (int64_t np = 0; np < npanels; ++np) {
        const int64_t nr = std::min(NR, O - np * NR);
        for (int64_t xi = 0; xi < 16; ++xi) {
          const T* b = u + xi * C * ldu + np * NR;
          for (int64_t i0 = 0; i0 < bt; i0 += MR)
            gemm.run((size_t)C, vb + (xi * TB + i0) * C, (size_t)C, b, (size_t)ldu, mb + (xi * TB + i0) * NR,
                     (size_t)NR, (size_t)std::min(MR, bt - i0), (size_t)nr, false, nullptr);
        }
        Epilogue<T> e = base;
        e.bias_col = bias ? bias + np * NR : nullptr;
        for (int64_t t = 0; t < bt; ++t) {
          const int64_t tile = t0 + t, n = tile / (tiles_h * tiles_w), th = tile / tiles_w % tiles_h,
                        tw = tile % tiles_w;
          T* out[4];
          for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 2; ++j) {
              const int64_t oy = 2 * th + i, ox = 2 * tw + j;
              out[2 * i + j] = oy < p.oh && ox < p.ow ? output_pixel(n, oy, ox) + np * NR : nullptr;
            }
          all_finite &= kn.winograd.output(mb + t * NR, (size_t)(TB * NR), out, (size_t)nr,
                                           epilogue_needed ? &e : nullptr);
        }
      }
    };
    if (nchw) {
      T* in_band = band.slice(tid);
      T* out_band = out_rows.slice(tid);
#pragma omp for schedule(static) nowait
      for (int64_t block = 0; block < blocks; ++block) {  // image n, rows of tiles [th0, th1)
        const int64_t n = block / groups, g = block % groups;
        const int64_t th0 = g * tiles_h / groups, th1 = (g + 1) * tiles_h / groups, ih0 = 2 * th0 - p.pad_top;
        for (int64_t ih = std::max<int64_t>(ih0, 0); ih < std::min(p.h, ih0 + 2 * (th1 - th0) + 2); ++ih)
          transpose_blocks(kn, x + n * C * HW + ih * p.w, HW, C, p.w, in_band + (ih - ih0) * p.w * C, C);
        run_block(
            (n * tiles_h + th0) * tiles_w, (th1 - th0) * tiles_w,
            [&](int64_t, int64_t ih) { return ih >= 0 && ih < p.h ? in_band + (ih - ih0) * p.w * C : nullptr; },
            [&](int64_t, int64_t oy, int64_t ox) { return out_band + ((oy - 2 * th0) * p.ow + ox) * O; });
        for (int64_t oy = 2 * th0; oy < std::min(p.oh, 2 * th1); ++oy)
          transpose_blocks(kn, out_band + (oy - 2 * th0) * p.ow * O, O, p.ow, O, y + n * O * P + oy * p.ow, P);
      }
    } else {
#pragma omp for schedule(static) nowait
      for (int64_t block = 0; block < blocks; ++block)
        run_block(
            block * TB, std::min(TB, tiles - block * TB),
            [&](int64_t n, int64_t ih) { return ih >= 0 && ih < p.h ? x + (n * p.h + ih) * p.w * C : nullptr; },
            [&](int64_t n, int64_t oy, int64_t ox) { return y + ((n * p.oh + oy) * p.ow + ox) * O; });
    }
    if (!all_finite) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

template bool conv_winograd<float>(const Conv2dParams&, const ConvKernels<float>&, const float*, const float*,
                                   const float*, const float*, float*);
template bool conv_winograd<double>(const Conv2dParams&, const ConvKernels<double>&, const double*, const double*,
                                    const double*, const double*, double*);

}  // namespace pycnn
