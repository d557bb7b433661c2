// conv2d: algorithm choice, tiling, packing and the parallel loops around the microkernels.
//
// Three algorithms, all on the register-blocked microkernels of the active ISA:
//  - im2col+GEMM: per image and group, Y = W * im2col(X) (NCHW) or Y = im2col(X) * W (NHWC).
//    The im2col matrix is never materialised: in NCHW the image operand is packed straight from
//    the input into cache-sized micropanel tiles (a 1x1 kernel's is read in place); in NHWC the
//    microkernel reads its rows in place through row pointers (igemm). Weights are read in place,
//    a partial last panel packed once per call.
//  - direct: per output row, the input rows it reads are copied once into a zero-padded panel
//    (split by stride phase in NCHW, so every tap is a contiguous vector load), and the
//    microkernel sweeps output-channel x output-column (NCHW) or pixel x channel (NHWC) tiles.
//  - winograd (3x3 kernels, stride 1 or 2): F(2x2, 3x3) in ops/winograd.cpp (at stride 2 from
//    5x5 patches, the even and odd inputs apart), its 16 (25) products per tile summed over the
//    input channels by the GEMM microkernel.
//
// Threads: one parallel region per call; its work items (output rows, or pixel tiles x channel
// chunks) are handed out dynamically. Every item is computed the same way whichever thread
// takes it, so results do not depend on the schedule; dynamic hand-out measured 5-15% faster
// than a static split on a 2-core VM, where the second thread starts late or runs slower. Loops
// over output rows hand them out guided (chunks that shrink from rows/threads): each grab is a
// `lock xadd` on a counter the cores share, 25% of a 3x3 1->32 @28 NCHW call's samples one row
// at a time, and a thread's rows stay contiguous, so the threads' NCHW output rows do not share
// cache lines (that call, 2 threads: 6.9-7.7 -> 5.5-5.8 us).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/common.h"
#include "ops/pack.h"
#include "ops/tiles.h"
#include "ops/winograd.h"
#include "pycnn/conv.h"

namespace pycnn {
namespace {

// Cache blocking: an image tile of KC x (up to image_tile pixels) -- packed in NCHW, the input
// pixels it reads in NHWC --, the K block's weight panels and the tile's outputs live in L2 (KC:
// reduction_block, ops/common.h); each microkernel call streams one KC-long panel past L1.
template <class T>
struct Blocking {
  static constexpr int64_t image_tile = 384;            // pixels per packed tile
  // With at most one register tile of pixels (a Dense layer on one image: a GEMV) the weights
  // are all the traffic: short K blocks let each block sweep the panels along whole weight rows,
  // instead of walking one panel down K at a stride of O.
  static constexpr int64_t kc_few_pixels = 128 / sizeof(T);
};

// ---------------------------------------------------------------------------------------------
// im2col + GEMM, NCHW: Y[Og x P] = W[Og x K] * B[K x P], k = (c, kh, kw), P = OH*OW.

// A 1x1 kernel, stride 1, no padding: output pixel q reads input pixel q.
inline bool is_pointwise(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         p.oh == p.h && p.ow == p.w;
}

// B tile: pixels [p0, p0 + cols) x k rows [k0, k0 + kc) in panels of NR pixel columns.
template <class T>
void pack_image_nchw(const Conv2dParams& p, const T* x_group, int64_t p0, int64_t cols, int64_t k0,
                     int64_t kc, int64_t nr, T* dst) {
  const int64_t taps = p.kh * p.kw;
  const bool pointwise = is_pointwise(p);
  for (int64_t j0 = 0; j0 < cols; j0 += nr) {
    const int64_t n = std::min(nr, cols - j0);
    const int64_t q0 = p0 + j0;
    for (int64_t kk = 0; kk < kc; ++kk) {
      const int64_t k = k0 + kk;
      const int64_t c = k / taps, kh = (k % taps) / p.kw, kw = k % p.kw;
      const T* plane = x_group + c * p.h * p.w;
      T* d = dst + kk * nr;
      if (pointwise) {
        std::memcpy(d, plane + q0, (size_t)n * sizeof(T));
      } else {
        int64_t oh = q0 / p.ow, ow = q0 % p.ow;
        for (int64_t j = 0; j < n;) {
          const int64_t run = std::min(n - j, p.ow - ow);
          const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
          if (ih < 0 || ih >= p.h) {
            std::fill(d + j, d + j + run, T(0));
          } else {
            copy_padded(plane + ih * p.w, p.w, ow * p.stride_w - p.pad_left + kw * p.dilation_w,
                        p.stride_w, run, d + j);
          }
          j += run;
          ow = 0;
          ++oh;
        }
      }
      std::fill(d + n, d + nr, T(0));
    }
    dst += kc * nr;
  }
}

template <class T>
void conv_gemm_nchw(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                    const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, K = Cg * p.kh * p.kw, P = p.oh * p.ow;
  const int64_t KC = reduction_block<T>(K);
  const auto& gemm = pick_channel_rows_tile(kn.gemm, Og, P, KC, sizeof(T));
  const int64_t MR = (int64_t)gemm.mr, NR = (int64_t)gemm.nr;
  const int64_t mpanels = ceil_div(Og, MR);
  const double flops = 2.0 * p.n * P * p.o * K;

  // Work items: (image, group, pixel tile, output-channel chunk). Aim for a few items per
  // thread; split channels only when pixels alone cannot feed the team.
  const int want = num_threads() * 3;
  int64_t tile = std::min(round_up(P, NR), round_up(Blocking<T>::image_tile, NR));
  int64_t ptiles = ceil_div(P, tile);
  if (p.n * G * ptiles < want) {
    ptiles = std::min(ceil_div(P, NR), ceil_div(want, p.n * G));
    tile = round_up(ceil_div(P, ptiles), NR);
    ptiles = ceil_div(P, tile);
  }
  int64_t mchunks = 1;
  if (p.n * G * ptiles < want) mchunks = std::min(mpanels, ceil_div(want, p.n * G * ptiles));
  const int64_t mper = ceil_div(mpanels, mchunks);
  const int64_t items = p.n * G * ptiles * mchunks;
  const int threads = threads_for(flops, items);

  Workspace<T> tiles((size_t)(KC * tile), threads);
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  // A pointwise kernel reads its B panels in place (below) except with many output channels on
  // planes more than a page apart: each panel is then re-read for every MR channels across as
  // many pages as it has rows. Measured, NCHW 1x1, 2 threads, in place vs packed: 256->64 @56
  // 267 vs 297 us, 512->128 @14 79 vs 93, 32->192 @28 40 vs 44, 128->256 @28 137 vs 149,
  // 64->192 @56 205 vs 209; but 64->256 @56 320 vs 275. Where vector loads that straddle cache
  // lines are costly (Intel), only from planes on 64-byte boundaries (NumPy aligns to 16).
  // 2 threads, us, median / p10, input 16 bytes off, in place vs packed: Intel 256->64 @56
  // 986 / 754 vs 798 / 751, 128->256 @28 464 / 357 vs 391 / 317 (aligned, in place: 847 / 586,
  // 403 / 310); AMD Zen 4 256->64 @56 571 / 521 vs 651 / 578, 128->256 @28 301 / 262 vs
  // 319 / 275, 512->128 @14 154 / 146 vs 178 / 160. Split loads are not cheap for a panel row
  // of one cache line (AVX2's 6x2: 16 floats), every row straddling two lines, over more than
  // ~128 planes: there off-line planes are packed. AVX2 on Zen 4, 2 threads, p10 us, in place vs
  // packed, input 16 bytes off: 256->64 @56 664 vs 605 (670 vs 607 in another run), 256->128
  // @56 1308 vs 1084; level at 128->256 @28 and 96->24 @56 (packing at 96 planes had lost: 110
  // vs 122); on 64-byte planes in place stays ahead, 537 vs 572. AVX-512's 6x4 rows are 256 bytes
  // (256->64 @56: 481 in place vs 533 packed); the scalar kernels' shorter rows are compute-bound
  // (packing: 3% slower).
  const bool planes_aligned = reinterpret_cast<uintptr_t>(x) % 64 == 0 && P * (int64_t)sizeof(T) % 64 == 0;
  const bool one_line_panel_rows = NR * (int64_t)sizeof(T) == 64 && KC > 128;
  const bool pointwise_in_place = is_pointwise(p) &&
                                  (planes_aligned || (split_line_loads_cheap() && !one_line_panel_rows)) &&
                                  (Og <= 192 || P * (int64_t)sizeof(T) <= 4096);

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    T* tile_buf = tiles.slice(omp_get_thread_num());
    for_dynamic(items, [&](int64_t item) {
      const int64_t mc = item % mchunks;
      const int64_t pt = (item / mchunks) % ptiles;
      const int64_t g = (item / mchunks / ptiles) % G;
      const int64_t n = item / mchunks / ptiles / G;
      const int64_t p0 = pt * tile, cols = std::min(tile, P - p0);
      const int64_t mp_end = std::min(mpanels, (mc + 1) * mper);
      const T* x_group = x + (n * p.c + g * Cg) * p.h * p.w;
      // A pointwise kernel's B operand is the input itself (row k is channel k's plane): whole
      // NR-pixel panels are read in place (ldb = P); only a partial last panel is packed.
      const int64_t in_place = pointwise_in_place ? cols / NR * NR : 0;
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        const bool last = k0 + kc == K;
        if (in_place < cols) pack_image_nchw(p, x_group, p0 + in_place, cols - in_place, k0, kc, NR, tile_buf);
        for (int64_t mp = mc * mper; mp < mp_end; ++mp) {
          const int64_t o0 = g * Og + mp * MR;
          const T* a = w + o0 * K + k0;  // OIHW rows are the A operand in place
          Epilogue<T> e = base;
          e.bias_row = bias ? bias + o0 : nullptr;
          const Epilogue<T>* ep = last && epilogue_needed ? &e : nullptr;
          const size_t mr = (size_t)std::min(MR, Og - mp * MR);
          T* yrow = y + (n * p.o + o0) * P + p0;
          for (int64_t j0 = 0; j0 < cols; j0 += NR) {
            const bool packed = j0 >= in_place;
            const T* b = packed ? tile_buf + (j0 - in_place) * kc : x_group + k0 * P + p0 + j0;
            gemm.run((size_t)kc, a, (size_t)K, b, (size_t)(packed ? NR : P), yrow + j0, (size_t)P, mr,
                     (size_t)std::min(NR, cols - j0), k0 > 0, ep);
          }
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// im2col + GEMM, NHWC: Y[P x Og] = A[P x K] * W[K x Og], k = (kh, kw, c).

// The im2col matrix A[P x K], k = (tap, c), is never formed: the igemm microkernel reads each
// register tile's rows through pointers, row i of tap t at its pixel's channel run in the input
// (or at a run of zeros where the tap falls in the padding). For pixels [p0, p0 + rows), in
// register tiles of MR (the last one repeating its last pixel), and taps [t0, t0 + nt):
// dst[(tile*nt + t - t0)*MR + i]. Packing A instead copied P x K elements per call: 3x3 256->256
// @14 1.8 MB, ~4% of its time.
template <class T>
void im2col_row_pointers(const Conv2dParams& p, const T* x_image, int64_t c_offset, const T* zeros, int64_t p0,
                         int64_t rows, int64_t MR, int64_t t0, int64_t nt, const T** dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += MR, dst += nt * MR) {
    for (int64_t i = 0; i < MR; ++i) {
      const int64_t q = p0 + std::min(r0 + i, rows - 1), oh = q / p.ow, ow = q % p.ow;
      for (int64_t t = 0; t < nt; ++t) {
        const int64_t ih = oh * p.stride_h - p.pad_top + ((t0 + t) / p.kw) * p.dilation_h;
        const int64_t iw = ow * p.stride_w - p.pad_left + ((t0 + t) % p.kw) * p.dilation_w;
        const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
        dst[t * MR + i] = inside ? x_image + (ih * p.w + iw) * p.c + c_offset : zeros;
      }
    }
  }
}

// The K blocks of the NHWC GEMM: whole taps, `taps_per_block` of them, when a tap's channels fit
// in kc_max; otherwise one tap at a time in pieces of at most kc_max channels.
struct TapBlocks {
  int64_t taps_per_block, piece;
  TapBlocks(int64_t taps, int64_t cg, int64_t kc_max) {
    if (cg <= kc_max) {
      taps_per_block = ceil_div(taps, ceil_div(taps, kc_max / cg));  // balanced: 9 taps by 4 -> 3, 3, 3
      piece = cg;
    } else {
      taps_per_block = 1;
      piece = ceil_div(cg, ceil_div(cg, kc_max));
    }
  }
};

// A pointwise GEMV-shaped call (a Dense layer on one image: at most one register tile of
// pixels, weights of megabytes) split along K: each thread streams its own run of whole weight
// rows -- the longest contiguous reads there are -- into a partial result, and the partials are
// summed before the epilogue. Splitting the output channels instead makes each thread read every
// row in pieces.
template <class T>
void conv_gemv_split_k(const Conv2dParams& p, const ConvKernels<T>& kn, const Tiled<GemmUkernel<T>>& gemm,
                       const T* x, const T* w, const T* bias, T* y, int threads) {
  const int64_t K = p.c, O = p.o, P = p.oh * p.ow, NR = (int64_t)gemm.nr, npanels = ceil_div(O, NR);
  const int64_t KC = Blocking<T>::kc_few_pixels;
  const int64_t per_thread = round_up(ceil_div(K, threads), KC);
  WeightPanels<T> weights(w, /*oihw=*/false, K, 1, O, 1, NR, /*large=*/false);
  Workspace<T> partials((size_t)(P * O), threads);
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  const EpilogueUkernel<T> finish = depthwise_kernels_for<T>(active_kernels()).epilogue;
  constexpr int64_t kColumns = 256;  // output columns per item of the sum
  parallel_region(threads, [&] {
    FlushDenormals ftz;
    weights.pack(kn);
    const int t = omp_get_thread_num();
    T* part = partials.slice(t);
    const int64_t k_begin = std::min(K, t * per_thread), k_end = std::min(K, k_begin + per_thread);
    if (k_begin == k_end) std::fill(part, part + P * O, T(0));
    for (int64_t k0 = k_begin; k0 < k_end; k0 += KC) {
      const int64_t kc = std::min(KC, k_end - k0);
      for (int64_t np = 0; np < npanels; ++np) {
        int64_t ldb;
        const T* b = weights.panel(0, np, k0, &ldb);
        gemm.run((size_t)kc, x + k0, (size_t)K, b, (size_t)ldb, part + np * NR, (size_t)O, (size_t)P,
                 (size_t)std::min(NR, O - np * NR), k0 > k_begin, nullptr);
      }
    }
#pragma omp barrier
#pragma omp for schedule(static) nowait
    for (int64_t j0 = 0; j0 < O; j0 += kColumns) {
      const int64_t cols = std::min(kColumns, O - j0);
      for (int64_t i = 0; i < P; ++i) {
        T* out = y + i * O + j0;
        std::copy(partials.slice(0) + i * O + j0, partials.slice(0) + i * O + j0 + cols, out);
        for (int u = 1; u < threads; ++u) {
          const T* src = partials.slice(u) + i * O + j0;
          for (int64_t j = 0; j < cols; ++j) out[j] += src[j];
        }
      }
      if (epilogue_needed) {
        Epilogue<T> e = base;
        e.bias_col = bias ? bias + j0 : nullptr;
        finish(y + j0, (size_t)O, (size_t)P, (size_t)cols, e);
      }
    }
  });
}

struct NoWork {
  void operator()(bool = true) const {}
};

// Whether a call is large enough to repay copying its HWIO weights into packed panels
// (WeightPanels, ops/pack.h, which packs only where the panels in place would be slow): ~50 us
// of multiply-adds, and `min_pixels` output pixels for every weight: kPackingPixels, or for the
// GEMM's tiles on 64-byte aligned weights kAlignedGemmPackingPixels. The direct kernels walk a
// panel down all of K per tile, its K rows O columns apart, which L1 and L2 sets hold few of
// at large O. Zen 1, 2 threads, medians of alternating processes (weights 64-byte aligned / 16
// bytes off, as NumPy's large arrays are), us, in place -> packed: direct NHWC 3x3 1024->1024
// @7 in 32 groups 722 -> 506 / 810 -> 582, 512->512 @28/2 in 32 groups 596 -> 554 / 665 -> 593;
// GEMM NHWC 1x1 512->2048 @7 2908 -> 2178 (16 off), 1024->256 @14 1663 -> 1447 (16 off), but
// aligned 3x3 512->512 @7 5005 -> 5673, 1x1 2048->512 @7 2062 -> 2210. Under 32 pixels the copy
// is not repaid (unaligned, direct 1024->1024 @4 in 32 groups 300 -> 332, 256->256 @5 548 -> 621).
constexpr int64_t kPackingPixels = 32, kAlignedGemmPackingPixels = 256;
inline bool repays_weight_packing(double flops, int64_t pixels, int64_t min_pixels = kPackingPixels) {
  return flops >= 1e7 && pixels >= min_pixels;
}

// `before` and `after` run inside the GEMM's parallel region, on its whole team, around the GEMM
// (orphaned `omp for` loops whose barriers order them): a caller's reorders share the region.
// before(wait) may skip its closing barrier when wait is false (the weights' packing, next,
// ends in one). w: HWIO, or OIHW when w_oihw (reordered into the packed panels).
template <class T, class Before = NoWork, class After = NoWork>
void conv_gemm_nhwc(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w, bool w_oihw,
                    const T* bias, T* y, const Before& before = {}, const After& after = {}) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, K = Cg * p.kh * p.kw, P = p.oh * p.ow;
  const auto& gemm = pick_tile(kn.gemm, P, Og);
  const int64_t MR = (int64_t)gemm.mr, NR = (int64_t)gemm.nr;
  const int64_t npanels = ceil_div(Og, NR);
  const bool few_pixels = P <= MR;
  const double flops = 2.0 * p.n * P * p.o * K;
  constexpr double kStreamedWeightBytes = 4 << 20;  // past L2: the weights come from L3 or DRAM
  if (!w_oihw && few_pixels && is_pointwise(p) && G == 1 && p.n == 1 &&
      (double)K * p.o * sizeof(T) > kStreamedWeightBytes) {
    const int split = threads_for(flops, num_threads());
    if (split > 1) return conv_gemv_split_k(p, kn, gemm, x, w, bias, y, split);
  }

  // Items: a few per thread; with few pixels (weight streaming), one per thread, so each
  // reads the longest contiguous runs of every weight row. Every pixel tile streams all the
  // group's weights, so once they are past L2 (and the pixels, not the channels, are split:
  // below) also one per thread: measured, 2 threads, 3x3 256->256 @14 (2.3 MiB of weights)
  // 605 -> 568 us, 3x3/2 256->512 @28 (4.5 MiB) 1225 -> 1131; at 1.1 MiB (3x3/2 128->256 @56)
  // three items per thread stayed 1-3% ahead.
  constexpr double kL2WeightBytes = 2 << 20;
  const bool channels_first = Og >= 2 * p.n * P;
  const bool weights_past_l2 = !channels_first && (double)K * Og * sizeof(T) > kL2WeightBytes;
  const int want = num_threads() * (few_pixels || weights_past_l2 ? 1 : 3);
  int64_t tile = std::min(round_up(P, MR), round_up(Blocking<T>::image_tile, MR));
  int64_t ptiles = ceil_div(P, tile);
  // About `count` equal pixel tiles, whole register tiles each.
  auto cut_pixels = [&](int64_t count) {
    tile = round_up(ceil_div(P, count), MR);
    ptiles = ceil_div(P, tile);
  };
  // With the weights past L2, a whole number per thread (400 pixels: 2x200, not 384 + 16).
  if (weights_past_l2 && p.n * G == 1) cut_pixels(round_up(ptiles, num_threads()));
  int64_t nchunks = 1;
  auto split_pixels = [&] {
    if (p.n * G * ptiles * nchunks < want) cut_pixels(std::min(ceil_div(P, MR), ceil_div(want, p.n * G * nchunks)));
  };
  auto split_channels = [&] {
    if (p.n * G * ptiles * nchunks < want) nchunks = std::min(npanels, ceil_div(want, p.n * G * ptiles));
  };
  // Every pixel tile streams all the weights (K x O/g); every channel chunk packs its pixels
  // again. When the weights outweigh the image patches (K x P) twice over -- late ResNet/VGG
  // stages, whose weights arrive from DRAM in a network -- split the channels first: measured
  // 75 -> 126 GFLOP/s on 3x3 512 @7 with weights out of cache, no change where P is larger.
  if (channels_first) {
    split_channels();
    split_pixels();
  } else {
    split_pixels();
    split_channels();
  }
  const int64_t nper = ceil_div(npanels, nchunks);
  nchunks = ceil_div(npanels, nper);  // no empty chunks
  const int64_t items = p.n * G * ptiles * nchunks;
  const int threads = threads_for(flops, items);

  const int64_t taps = p.kh * p.kw;
  const bool w_aligned = reinterpret_cast<uintptr_t>(w) % 64 == 0;
  WeightPanels<T> weights(w, w_oihw, Cg, taps, p.o, G, NR,
                          !few_pixels && repays_weight_packing(flops, p.n * P,
                                                               w_aligned ? kAlignedGemmPackingPixels : kPackingPixels));
  const TapBlocks blocks(taps, Cg, few_pixels ? Blocking<T>::kc_few_pixels : kMaxReductionBlock<T>);
  const auto& igemm = kn.igemm[&gemm - kn.gemm];
  Workspace<const T*> row_pointers((size_t)(tile * blocks.taps_per_block), threads);  // tile: whole MR tiles
  Workspace<T> zeros((size_t)Cg, 1);
  std::fill(zeros.data(), zeros.data() + Cg, T(0));
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    before(/*wait=*/!weights.waits());
    weights.pack(kn);
    const T** a_rows = row_pointers.slice(omp_get_thread_num());
    for_dynamic(items, [&](int64_t item) {
      const int64_t nc = item % nchunks;
      const int64_t pt = (item / nchunks) % ptiles;
      const int64_t g = (item / nchunks / ptiles) % G;
      const int64_t n = item / nchunks / ptiles / G;
      const int64_t p0 = pt * tile, rows = std::min(tile, P - p0);
      const int64_t np_end = std::min(npanels, (nc + 1) * nper);
      for (int64_t t0 = 0; t0 < taps; t0 += blocks.taps_per_block) {
        const int64_t segments = std::min(blocks.taps_per_block, taps - t0);
        im2col_row_pointers(p, x + n * p.h * p.w * p.c, g * Cg, zeros.data(), p0, rows, MR, t0, segments, a_rows);
        for (int64_t c0 = 0; c0 < Cg; c0 += blocks.piece) {
          const int64_t kc = std::min(blocks.piece, Cg - c0);
          const bool first = t0 == 0 && c0 == 0, last = t0 + segments == taps && c0 + kc == Cg;
          for (int64_t np = nc * nper; np < np_end; ++np) {
            int64_t ldb;
            const T* b = weights.panel(g, np, t0 * Cg + c0, &ldb);
            const int64_t o0 = g * Og + np * NR;
            Epilogue<T> e = base;
            e.bias_col = bias ? bias + o0 : nullptr;
            const Epilogue<T>* ep = last && epilogue_needed ? &e : nullptr;
            const size_t nr = (size_t)std::min(NR, Og - np * NR);
            T* ycol = y + (n * P + p0) * p.o + o0;
            for (int64_t i0 = 0; i0 < rows; i0 += MR)
              igemm.run((size_t)segments, (size_t)kc, a_rows + i0 * segments, (size_t)c0, b, (size_t)ldb,
                        ycol + i0 * p.o, (size_t)p.o, (size_t)std::min(MR, rows - i0), nr, !first, ep);
          }
        }
      }
    }, /*chunk=*/1, /*wait=*/true);
    after();
  });
}

// Input rows, from row -pad_top, that the output rows read (the padded image's height).
inline int64_t padded_rows_read(const Conv2dParams& p) {
  return (p.oh - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
}

// ---------------------------------------------------------------------------------------------
// Direct, NCHW: per output row, a zero-padded, stride-phase-split panel of the input rows it
// reads; tiles of MR output channels x NR output columns.
//
// Each thread instead pads a group's planes (with one group, the image's) once, up to this size,
// and every output row reads its KH rows there: per-row panels copy each input row about KH/SH
// times, in Cg*KH*SW calls per output row. One thread, pinned, p10 us, panels -> padded image:
// 3x3 1->32 @28 6.8 -> 6.5, 4->16 @28 12.8 -> 10.9, 16->8 @28 27.3 -> 20.7, 3->32 @64 49.9 ->
// 46.4; 2 threads (each pads the whole image) 3->64 @224 (615 KiB a thread) 730 -> 669, 3->32
// @112 98 -> 93. Groups, 2 threads, medians, whole image -> a group's planes where the whole
// image is past the bound: 3x3 128->128 @56 in 32 groups 1033 -> 691, 256->256 @28 in 32 groups
// 921 -> 695. Strided, every row of the padded image is split into its column
// phases (copy_padded: stride 2 by shuffles); one thread, row panels copied one element at a
// time -> padded planes: 3x3/2 512->512 @28 in 32 groups 2381 -> 1804, 64->64 @112 in 8
// groups 2692 -> 1800, 3->32 @224 981 -> 898, 16->32 @32 111 -> 94; 5x5/2 8->16 @128 level.
constexpr int64_t kPaddedImageBytes = 1 << 20;

template <class T>
void conv_direct_nchw(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                      const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, K = Cg * p.kh * p.kw;
  const auto& direct = pick_tile(kn.direct_nchw, Og, p.ow);
  const int64_t MR = (int64_t)direct.mr, NR = (int64_t)direct.nr;
  const int64_t mpanels = ceil_div(Og, MR);
  const int64_t s = p.stride_w, d = p.dilation_w;
  // Phase q of the panel holds padded column q*s + phase; loads reach q < OW_rounded + max tap.
  const int64_t phase_width = round_up(p.ow, NR) + (p.kw - 1) * d / s + 1;
  // A padded row: its s phases, one after the other.
  const int64_t row_size = s * phase_width;
  // The padded image: plane_rows padded rows per channel, from input row -pad_top. Strided, only
  // where every input row is read (at stride 1 the rows a vertical stride skips are few).
  const int64_t plane_rows = padded_rows_read(p);
  const int64_t plane_size = plane_rows * row_size;
  const bool padded_image = (s == 1 || (p.dilation_h == 1 && p.stride_h <= p.kh)) &&
                            (double)Cg * (double)plane_size * sizeof(T) <= kPaddedImageBytes;
  // Kernel row kh of an output row is panel_kh past row 0 in a row panel (its rows stacked),
  // dilation_h rows past it in the padded image.
  const int64_t panel_kh = padded_image ? p.dilation_h * row_size : row_size;
  const int64_t panel_c = padded_image ? plane_size : p.kh * panel_kh;
  const int64_t taps = p.kh * p.kw;
  // The taps' offsets, on the stack up to 8x8 (a tiny call's malloc and free otherwise).
  int64_t tap_on_stack[64];
  std::vector<int64_t> tap_on_heap(taps > 64 ? (size_t)taps : 0);
  int64_t* const tap = taps > 64 ? tap_on_heap.data() : tap_on_stack;
  for (int64_t kh = 0; kh < p.kh; ++kh)
    for (int64_t kw = 0; kw < p.kw; ++kw)
      tap[kh * p.kw + kw] = kh * panel_kh + (kw * d % s) * phase_width + kw * d / s;

  const int64_t items = p.n * G * p.oh;
  const int threads = threads_for(2.0 * p.n * p.oh * p.ow * p.o * K, items);
  Workspace<T> panels((size_t)(Cg * panel_c), threads);
  // A group's last block of fewer than MR channels runs the kernel of exactly its rows where there
  // is one (MR-4, MR-8: TiledBlocks), in place. One thread, pinned, p10 us: 3x3 4->16 @28 (12 + 4
  // channels) 10.5 -> 8.1, 3->32 @64 45.5 -> 43.7; 1->32 @28 level. Otherwise it is read from a
  // copy whose missing rows are zeros: the MR-row kernel reads all MR rows
  // (kernels/microkernels.h), and those past the weights' end would be outside them.
  const int64_t tail_mr = Og % MR;
  const auto tail_kernel = tail_mr ? direct.exact((size_t)tail_mr) : nullptr;  // reads its rows only
  const bool tail_copied = tail_mr && !tail_kernel;
  Workspace<T> tails(tail_copied ? (size_t)(MR * K) : 0, threads);
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    T* panel = panels.slice(omp_get_thread_num());
    int64_t padded_n = -1, padded_g = -1;  // whose padded group planes `panel` holds
    T* tail = tails.slice(omp_get_thread_num());
    int64_t tail_group = -1;  // whose last block `tail` holds
    if (tail_copied) std::fill(tail + tail_mr * K, tail + MR * K, T(0));
    // Input row ih of `plane` as its s zero-padded column phases (zeros outside the image).
    auto pad_row = [&](const T* plane, int64_t ih, T* dst) {
      if (ih < 0 || ih >= p.h) return std::fill(dst, dst + row_size, T(0));
      for (int64_t phase = 0; phase < s; ++phase)
        copy_padded(plane + ih * p.w, p.w, phase - p.pad_left, s, phase_width, dst + phase * phase_width);
    };
    DirectNchwArgs<T> args;
    args.panel_c = panel_c;
    args.tap = tap;
    args.taps = taps;
    args.channels = Cg;
    args.ldw = K;
    args.ldy = p.oh * p.ow;
    for_guided(items, [&](int64_t item) {
      const int64_t oh = item % p.oh, g = (item / p.oh) % G, n = item / p.oh / G;
      const T* rows = panel;  // the output row's kernel row 0 in channel 0 of group g
      if (padded_image) {
        if (padded_n != n || padded_g != g) {
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < plane_rows; ++r)
              pad_row(x + (n * p.c + g * Cg + c) * p.h * p.w, r - p.pad_top, panel + c * plane_size + r * row_size);
          padded_n = n, padded_g = g;
        }
        rows = panel + oh * p.stride_h * row_size;
      } else {
        for (int64_t c = 0; c < Cg; ++c) {
          const T* plane = x + ((n * p.c + g * Cg + c) * p.h) * p.w;
          for (int64_t kh = 0; kh < p.kh; ++kh)
            pad_row(plane, oh * p.stride_h - p.pad_top + kh * p.dilation_h, panel + c * panel_c + kh * panel_kh);
        }
      }
      for (int64_t mp = 0; mp < mpanels; ++mp) {
        const int64_t o0 = g * Og + mp * MR;
        Epilogue<T> e = base;
        e.bias_row = bias ? bias + o0 : nullptr;
        args.epilogue = epilogue_needed ? &e : nullptr;
        args.mr = (size_t)std::min(MR, Og - mp * MR);
        args.w = w + o0 * K;  // OIHW rows in place
        auto run = direct.run;
        if ((int64_t)args.mr < MR) {
          if (tail_kernel) {
            run = tail_kernel;
          } else {
            if (tail_group != g) std::copy(args.w, args.w + tail_mr * K, tail), tail_group = g;
            args.w = tail;
          }
        }
        for (int64_t j0 = 0; j0 < p.ow; j0 += NR) {
          args.panel = rows + j0;
          args.y = y + ((n * p.o + o0) * p.oh + oh) * p.ow + j0;
          args.nr = (size_t)std::min(NR, p.ow - j0);
          run(args);
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Direct, NHWC: per output row, a zero-padded panel [kh][column][c] of the input rows it reads;
// tiles of MR output pixels x NR output channels.
//
// NCHW data can take the same path ("direct" in NCHW when the reorders are cheap next to the
// arithmetic): the input is transposed to NHWC and the OIHW weights into packed HWIO panels
// (ops/pack.h) once per call, and each finished tile is written back transposed. That keeps
// every microkernel load aligned and contiguous, which the in-place NCHW kernel (unaligned tap
// shifts) cannot.

// With groups, each thread pads a group's input rows once, as one panel of all the rows its
// output rows read (a group image, up to this size), where per-row panels copy every input row
// KH times, a pixel's Cg channels per copy. One thread, 3x3 256->256 @28 in 32 groups (8
// channels each): 1881 -> 1650 us, the copies 17% -> 8% of the time.
constexpr int64_t kGroupImageBytes = 256 << 10;

template <class T>
void conv_direct_nhwc(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                      const T* bias, T* y, const T* w_hwio_given) {
  const bool nchw = p.layout == Layout::NCHW;
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, taps = p.kh * p.kw, K = Cg * taps;
  const int64_t HW = p.h * p.w, P = p.oh * p.ow;
  const auto& direct = pick_tile(kn.direct_nhwc, p.ow, Og);
  const int64_t MR = (int64_t)direct.mr, NR = (int64_t)direct.nr;
  const int64_t npanels = ceil_div(Og, NR);
  const RowTiles row_tiles(p.ow, MR);
  const int64_t columns = (round_up(p.ow, MR) - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
  const int64_t panel_kh = columns * Cg;
  // A group image (kGroupImageBytes): image_rows rows of panel_kh, from input row -pad_top.
  const int64_t image_rows = padded_rows_read(p);
  const bool group_image = G > 1 && (double)image_rows * (double)panel_kh * sizeof(T) <= kGroupImageBytes;

  const int64_t items = p.n * G * p.oh;
  const double flops = 2.0 * p.n * P * p.o * K;
  const int threads = threads_for(flops, items);
  // A row's work: a tile of pixels for each panel of NR output channels. With few rows per
  // thread, the last row can leave a thread idle for a row's time (3x3 32->64 @13: 13 rows on 2
  // threads, 7 + 6), so rows then go out in parts of their tiles (3 parts of 5, 4 and 4 pixels:
  // 39 items, 20 + 19).
  const int64_t row_tile_count = row_tiles.tiles, row_units = npanels * row_tile_count;
  const int64_t parts = items < 8 * threads ? std::min(row_units, ceil_div(8 * threads, items)) : 1;
  // NCHW: the input as NHWC (ops/pack.h), OIHW weights reordered (unless given as HWIO), and an
  // output row to transpose from.
  NhwcInput<T> input(x, nchw, p.n, p.c, HW, threads);
  Workspace<T> tiles(nchw ? (size_t)(round_up(p.ow, MR) * NR) : 0, threads);
  const bool w_oihw = nchw && !w_hwio_given;
  WeightPanels<T> weights(w_oihw || !nchw ? w : w_hwio_given, w_oihw, Cg, taps, p.o, G, NR,
                          repays_weight_packing(flops, p.n * P), input.shared_transpose() ? 1 : threads);
  Workspace<T> panels((size_t)((group_image ? image_rows : p.kh) * panel_kh), threads);
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    int64_t padded_n = -1, padded_g = -1;  // whose group image `panel` holds
    // One barrier after the reorders (the input's transpose runs into the weights'), and none
    // when neither is shared: each costs ~0.3 us on 2 threads, a tenth of a LeNet-size layer,
    // and more when a thread starts late.
    input.transpose_batch(kn, /*wait=*/!weights.waits());
    weights.pack(kn);
    T* panel = panels.slice(omp_get_thread_num());
    T* out_row = nchw ? tiles.slice(omp_get_thread_num()) : nullptr;  // NCHW: one panel's output row
    DirectNhwcArgs<T> args;
    args.panel_kh = panel_kh;
    args.channels = Cg;
    args.kh = p.kh;
    args.kw = p.kw;
    args.stride = p.stride_w;
    args.dilation = p.dilation_w;
    args.ldy = nchw ? NR : p.o;
    // Part `part` of output row oh of group g of image n, whose NHWC input is `image`: the
    // row's units (panel, tile) [u0, u1).
    auto output_row = [&](int64_t n, int64_t g, int64_t row_part, const T* image) {
      const int64_t oh = row_part / parts, part = row_part % parts;
      const int64_t u0 = part * row_units / parts, u1 = (part + 1) * row_units / parts;
      // With one group and all KH taps inside the image, the kernel reads the input rows in
      // place (row stride dilation_h*W*C) wherever a tile's columns are inside them too; the
      // padded panel is built only if some tile reaches into the padding.
      const int64_t ih0 = oh * p.stride_h - p.pad_top;
      const bool rows_inside = G == 1 && ih0 >= 0 && ih0 + (p.kh - 1) * p.dilation_h < p.h;
      // Panel column q holds input column q - pad_left, or zeros (padding).
      auto fill_panel = [&](int64_t qa, int64_t qb) {
        fill_nhwc_panel(image, p.h, p.w, p.c, g * Cg, Cg, p.kh, ih0, p.dilation_h, -p.pad_left, qa, qb, panel,
                        panel_kh);
      };
      const T* row_panel = panel;  // the row's kernel row 0, column 0
      int64_t row_panel_kh = panel_kh;
      if (group_image) {
        if (padded_n != n || padded_g != g) {
          fill_nhwc_panel(image, p.h, p.w, p.c, g * Cg, Cg, image_rows, -p.pad_top, 1, -p.pad_left, 0, columns,
                          panel, panel_kh);
          padded_n = n, padded_g = g;
        }
        row_panel = panel + oh * p.stride_h * panel_kh;
        row_panel_kh = p.dilation_h * panel_kh;
      } else if (!rows_inside) {
        fill_panel(0, columns);
      }
      for (int64_t np = u0 / row_tile_count; np * row_tile_count < u1; ++np) {
        const int64_t o0 = g * Og + np * NR;
        Epilogue<T> e = base;
        e.bias_col = bias ? bias + o0 : nullptr;
        args.epilogue = epilogue_needed ? &e : nullptr;
        args.w = weights.panel(g, np, 0, &args.ldw);
        args.nr = (size_t)std::min(NR, Og - np * NR);
        const int64_t t0 = std::max<int64_t>(0, u0 - np * row_tile_count);
        const int64_t t1 = std::min(row_tile_count, u1 - np * row_tile_count);
        const int64_t first = row_tiles.start(t0);
        int64_t i0 = first;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t mr = row_tiles.size(t, i0, p.ow);
          // Panel columns [q0, q_last] of the pixels the tile's kernel reads (all MR for `run`,
          // even past mr).
          const int64_t q0 = i0 * p.stride_w;
          const int64_t read = (int64_t)direct.rows_read((size_t)mr);
          const int64_t q_last = q0 + (read - 1) * p.stride_w + (p.kw - 1) * p.dilation_w;
          if (rows_inside && q0 >= p.pad_left && q_last < p.pad_left + p.w) {
            args.panel = image + (ih0 * p.w + q0 - p.pad_left) * p.c;
            args.panel_kh = p.dilation_h * p.w * p.c;
          } else {
            if (rows_inside) fill_panel(q0, q_last + 1);  // an edge tile of an in-place row
            args.panel = row_panel + q0 * Cg;
            args.panel_kh = row_panel_kh;
          }
          args.mr = (size_t)mr;
          args.y = nchw ? out_row + i0 * NR : y + ((n * p.oh + oh) * p.ow + i0) * p.o + o0;
          direct.for_rows((size_t)mr)(args);
          i0 += mr;
        }
        if (nchw)  // out_row (pixel, channel) -> y (channel, pixel)
          transpose_blocks(kn, out_row + first * NR, NR, i0 - first, (int64_t)args.nr,
                           y + (n * p.o + o0) * P + oh * p.ow + first, P);
      }
    };
    input.for_each_row(kn, G, p.oh * parts, output_row);
  });
}

// Whether an NCHW convolution should reorder to NHWC: the transposes (input, weights unless
// given as HWIO, and output; each element touched a few times) must stay small next to the
// multiply-adds.
struct NchwReorder {
  double elements, fmas;
  explicit NchwReorder(const Conv2dParams& p) {
    const double weights = p.weight_hwio_given ? 0.0 : (double)p.o * (p.c / p.groups) * p.kh * p.kw;
    elements = (double)p.n * p.c * p.h * p.w + weights + (double)p.n * p.o * p.oh * p.ow;
    fmas = (double)p.n * p.oh * p.ow * p.o * (p.c / p.groups) * p.kh * p.kw;
  }
  bool pays() const { return elements * 64.0 < fmas; }
};

bool nchw_reorders_pay(const Conv2dParams& p) { return NchwReorder(p).pays(); }

// The same for a direct convolution, which also reorders when the in-place NCHW tiles would do
// clearly more multiply-adds than the NHWC ones (they round a group's output channels up to MR
// and each output row up to NR columns, where the NHWC tiles round only the channels): by 2x
// when input, weights and output fit L1 together (the transposes are then a few L1 passes), by
// 1.25x when there are at least 40 multiply-adds per element reordered. 2 threads, us, in place
// vs reordered: LeNet's 5x5 6->16 @14 (12-channel tiles over 10 of 16 lanes) 7.3 vs 5.4; 3x3
// 32->16 @10 12.7 vs 6.8; 16->16 @14 9.8 vs 8.7; 8->32 @28 16.3 vs 14.0; 16->64 @8 11.7 vs 8.0;
// 6->32 @20 10.2 vs 9.4. In place stays ahead with few input channels (1->32 @28 5.2 vs 5.9,
// 3->32 @64 27.2 vs 45.9, 4->16 @28 8.2 vs 8.4: under 40 multiply-adds per element) and with
// 8 output channels, half of an AVX-512 NHWC tile (16->8 @28 15.2 vs 18.5). Below 16K
// multiply-adds (3x3 1->16 @7, 5x5 3->8 @7) in place stays ~0.4 us faster.
bool direct_nchw_reorders_pay(const Conv2dParams& p) {
  const NchwReorder reorder(p);
  if (reorder.pays()) return true;
  if (reorder.fmas < 16384.0) return false;  // tiny: fixed costs win
  const bool fits_l1 = reorder.elements * 4.0 <= 32.0 * 1024;
  if (!fits_l1 && reorder.fmas < 40.0 * reorder.elements) return false;
  const ConvKernels<float>& kn = kernels_for<float>(active_kernels());
  const int64_t og = p.o / p.groups;
  const auto& in_place = pick_tile(kn.direct_nchw, og, p.ow);
  const auto& nhwc = pick_tile(kn.direct_nhwc, p.ow, og);
  const double in_place_work = (double)round_up(og, (int64_t)in_place.mr) * (double)round_up(p.ow, (int64_t)in_place.nr);
  const double nhwc_work = (double)p.ow * (double)round_up(og, (int64_t)nhwc.nr);
  return in_place_work >= (fits_l1 ? 2.0 : 1.25) * nhwc_work;
}

// The reverse for NHWC data: the NHWC direct tiles cover a group's output channels in whole
// vectors, masked past its last channel, so groups of at most half a vector's channels leave
// most lanes idle and mask every store, where the in-place NCHW tiles run along output columns.
// Reordering to NCHW pays when, besides, the NHWC tiles would do 1.25x the in-place tiles' work
// (and the NCHW layer itself stays in place). Measured, AVX2, 2 threads, medians of alternating
// processes, us, NHWC direct vs reordered to NCHW in place: 3x3 64->64 @56 in 16 groups of 4
// 1664 vs 780, 128->128 @56 in 32 groups of 4 3157 vs 2057, 32->32 @28 in 16 groups of 2 456 vs
// 123; 5x5 64->64 @28 in 16 groups 877 vs 731; one group, 3x3 16->1 @224 1850 vs 1461, 64->4
// @56 595 vs 548.
bool direct_nhwc_reorders_pay(const Conv2dParams& p) {
  if (NchwReorder(p).fmas < 16384.0 || direct_nchw_reorders_pay(p)) return false;
  const ConvKernels<float>& kn = kernels_for<float>(active_kernels());
  const int64_t og = p.o / p.groups;
  const auto& in_place = pick_tile(kn.direct_nchw, og, p.ow);
  const auto& nhwc = pick_tile(kn.direct_nhwc, p.ow, og);
  const double in_place_work = (double)computed_rows(in_place, og) * (double)round_up(p.ow, (int64_t)in_place.nr);
  const double nhwc_work = (double)p.ow * (double)round_up(og, (int64_t)nhwc.nr);
  return 2 * og <= (int64_t)nhwc.nr && nhwc_work >= 1.25 * in_place_work;
}

// Direct convolution of NHWC data on the in-place NCHW kernel (direct_nhwc_reorders_pay): the
// input to NCHW, the HWIO weights to OIHW, and the result back to NHWC.
template <class T>
void conv_direct_nhwc_via_nchw(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w_hwio,
                               const T* bias, T* y) {
  const int64_t HW = p.h * p.w, P = p.oh * p.ow, Cg = p.c / p.groups, taps = p.kh * p.kw;
  Workspace<T> x_nchw((size_t)(p.n * HW * p.c), 1), y_nchw((size_t)(p.n * P * p.o), 1),
      w_oihw((size_t)(p.o * Cg * taps), 1);
  // HWIO: row t*Cg + c of O outputs; OIHW: row o of Cg*taps, k = c*taps + t. Read in order:
  // grouped weights are small next to the images (O*Cg*taps, Cg = C/groups).
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t o = 0; o < p.o; ++o) w_oihw.data()[(o * Cg + c) * taps + t] = w_hwio[(t * Cg + c) * p.o + o];
  const int threads = threads_for(2.0 * NchwReorder(p).fmas, p.n * p.c);
  parallel_region(threads, [&] { transpose_matrices(kn, x, p.n, HW, p.c, x_nchw.data()); });
  Conv2dParams q = p;
  q.layout = Layout::NCHW;
  conv_direct_nchw(q, kn, x_nchw.data(), w_oihw.data(), bias, y_nchw.data());
  parallel_region(threads, [&] { transpose_matrices(kn, y_nchw.data(), p.n, p.o, P, y); });
}

// Whether an NCHW im2col convolution should run on the NHWC GEMM (conv_gemm_nchw_via_nhwc): a
// 1x1 kernel's NCHW GEMM reads the input in place, anything else gathers it tap by tap.
bool gemm_nchw_via_nhwc(const Conv2dParams& p) {
  return p.kh * p.kw > 1 && nchw_reorders_pay(p);
}

// im2col + GEMM for NCHW data on the NHWC GEMM: the input goes to NHWC (and the OIHW weights to
// HWIO, unless given), the GEMM then packs contiguous channel runs instead of gathering one
// pixel run per (channel, tap) row, and the NHWC result comes back to NCHW. Used when the
// reorders are small next to the work (late ResNet/VGG stages: small images, long reductions),
// where the NCHW packing would cost about as much as the multiply-adds.
template <class T>
void conv_gemm_nchw_via_nhwc(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                             const T* bias, T* y, const T* w_hwio_given) {
  const int64_t HW = p.h * p.w, P = p.oh * p.ow;
  Workspace<T> x_nhwc((size_t)(p.n * HW * p.c), 1), y_nhwc((size_t)(p.n * P * p.o), 1);
  Conv2dParams q = p;
  q.layout = Layout::NHWC;
  conv_gemm_nhwc(
      q, kn, x_nhwc.data(), w_hwio_given ? w_hwio_given : w, /*w_oihw=*/!w_hwio_given, bias, y_nhwc.data(),
      [&](bool wait) { transpose_matrices(kn, x, p.n, p.c, HW, x_nhwc.data(), wait); },
      [&] { transpose_matrices(kn, y_nhwc.data(), p.n, P, p.o, y); });
}

// The MiB of the input panel one thread of a direct convolution fills (either layout, about) when
// its dilated kernel is wider than the image and the panel passes 64 MiB, else 0. The panel holds
// KH rows of the columns an output row's tiles read, which span the dilated kernel: a dilation
// far wider than the image ("same" padding, where only the centre tap lands) makes it gigabytes
// (MemoryError); im2col's packing does not grow with the dilation. Wide images keep their panels.
int64_t oversized_direct_panel_mib(const Conv2dParams& p) {
  if ((p.kw - 1) * p.dilation_w < p.w) return 0;
  const double columns = (double)(p.ow - 1) * p.stride_w + (double)(p.kw - 1) * p.dilation_w + 1;
  const double mib = (double)(p.c / p.groups) * p.kh * columns * sizeof(float) / (1 << 20);
  return mib > 64.0 ? (int64_t)mib : 0;
}

// "a dilated kernel N columns wide"
std::string dilated_kernel_width(const Conv2dParams& p) {
  return "a dilated kernel " + std::to_string((p.kw - 1) * p.dilation_w + 1) + " columns wide";
}

template <class T>
void run_conv2d(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y, const T* w_hwio) {
  check_conv_params(p, "conv2d");
  if (p.weight_hwio_given && !w_hwio) throw std::invalid_argument("conv2d: weight_hwio_given without HWIO weights");
  if (p.weight_winograd_given && !w_hwio)
    throw std::invalid_argument("conv2d: weight_winograd_given without Winograd weights");
  const T* winograd_weights = p.weight_winograd_given ? w_hwio : nullptr;
  if (p.layout != Layout::NCHW || !p.weight_hwio_given) w_hwio = nullptr;
  const ConvKernels<T>& kn = kernels_for<T>(active_kernels());
  ConvAlgorithm algo = p.algorithm == ConvAlgorithm::Auto ? choose_conv2d_algorithm(p) : p.algorithm;
  // "auto" never picks direct for such a panel (choose_conv2d_algorithm): only a forced one asks.
  if (const int64_t mib = p.algorithm == ConvAlgorithm::Direct ? oversized_direct_panel_mib(p) : 0)
    throw std::invalid_argument("conv2d: algorithm='direct' would fill a " + std::to_string(mib) +
                                " MiB input panel per thread for " + dilated_kernel_width(p) +
                                "; use algorithm='im2col' or 'auto'");
  if (p.weight_winograd_given && algo != ConvAlgorithm::Winograd)
    throw std::invalid_argument("conv2d: Winograd weights given to a call that does not run Winograd");
  if (p.weight_winograd_given && p.groups != 1)  // (pack_conv2d_weight transforms one group's only)
    throw std::invalid_argument("conv2d: Winograd weights are for one group");
  if (algo == ConvAlgorithm::Winograd) {
    std::string rejected;
    if (!winograd_applies(p, &rejected))
      throw std::invalid_argument("conv2d: algorithm='winograd' needs a 3x3 kernel, stride 1 or 2 and no "
                                  "dilation; got " + rejected);
    if (conv_winograd(p, kn, x, w, winograd_weights ? winograd_weights : w_hwio, bias, y)) return;
    algo = ConvAlgorithm::Direct;  // non-finite values: recomputed so that they propagate as in a direct sum
  }
  if (p.layout == Layout::NCHW) {
    if (algo == ConvAlgorithm::Direct && direct_nchw_reorders_pay(p)) conv_direct_nhwc(p, kn, x, w, bias, y, w_hwio);
    else if (algo == ConvAlgorithm::Direct) conv_direct_nchw(p, kn, x, w, bias, y);
    else if (gemm_nchw_via_nhwc(p)) conv_gemm_nchw_via_nhwc(p, kn, x, w, bias, y, w_hwio);
    else conv_gemm_nchw(p, kn, x, w, bias, y);
  } else {
    // A pointwise NHWC batch is one image of N*H rows (the same pixel and output matrices), so
    // its GEMM shares each weight panel among the images: a Dense layer on a batch is one GEMM,
    // not N GEMVs.
    Conv2dParams q = p;
    if (is_pointwise(p)) q.h = q.oh = p.n * p.h, q.n = 1;
    if (algo == ConvAlgorithm::Direct && direct_nhwc_reorders_pay(q)) conv_direct_nhwc_via_nchw(q, kn, x, w, bias, y);
    else if (algo == ConvAlgorithm::Direct) conv_direct_nhwc<T>(q, kn, x, w, bias, y, nullptr);
    else conv_gemm_nhwc(q, kn, x, w, /*w_oihw=*/false, bias, y);
  }
}

}  // namespace

ConvAlgorithm choose_conv2d_algorithm(const Conv2dParams& p, std::string* why) {
  // The reason is built only when asked for (explain): a plain call runs this on every call.
  auto pick = [&](ConvAlgorithm a, const auto& reason) {
    if (why) *why = reason();
    return a;
  };
  const int64_t K = p.c / p.groups * p.kh * p.kw;
  const bool nchw = p.layout == Layout::NCHW;
  // NCHW im2col with more than one tap runs on the NHWC GEMM when the reorders pay (said in the
  // reason).
  auto via = [&]() -> std::string {
    return nchw && gemm_nchw_via_nhwc(p) ? " (NCHW: input and result reordered, the GEMM runs on NHWC)" : "";
  };
  // The direct kernel streams a K x NR weight panel (NR = 64 float32 lanes on AVX-512) for each
  // tile of a few pixels, and every panel of the group for each output row: past these sizes
  // the panels no longer stay in L2 next to the input rows, while the GEMM blocks K. Measured on
  // ResNet/VGG layers, 2 threads: direct 53-76 GFLOP/s, im2col 157-223 at K >= 2304 (an earlier
  // machine); on a Zen 5 (1 MiB L2), NHWC 3x3 direct vs im2col: K = 864, 96 outputs 423 vs 396;
  // K = 1152, 128 outputs 432 vs 383, but 256 outputs (1.1 MiB of weights) 353 vs 397;
  // K = 1728 428 vs 421; K = 2304 340 vs 407.
  if (const int64_t mib = oversized_direct_panel_mib(p))
    return pick(ConvAlgorithm::Im2col, [&] {
      return "im2col: " + dilated_kernel_width(p) + "; its packing does not grow with the dilation" + via() +
             "; direct rejected: its input panel would take " + std::to_string(mib) + " MiB per thread";
    });
  if (winograd_applies(p) && winograd_pays(p))
    return pick(ConvAlgorithm::Winograd, [&] {
      const bool stride1 = conv2d_winograd_stride(p) == 1;
      return std::string(stride1 ? "winograd: F(2x2, 3x3), 16 multiplies per 2x2 outputs and channel pair where "
                                   "direct does 36, summed over the input channels by the GEMM microkernel" +
                                   std::string(p.groups > 1 ? " (a GEMM per group)" : "")
                                 : "winograd: F(2x2, 3x3) at stride 2, the even and odd inputs apart, 25 "
                                   "multiplies per 2x2 outputs and channel pair where direct does 36, summed over "
                                   "the input channels by the GEMM microkernel") +
             (nchw ? " (NCHW: rows of tiles go through NHWC buffers)" : "") + "; direct and im2col rejected: " +
             (stride1 ? "2.25x" : "1.44x") + " the multiply-adds";
    });
  const int64_t weights = K * (p.o / p.groups);
  const bool direct_fits = K <= 768 || (K <= 1536 && weights <= 160 * 1024);  // <= 640 KiB float32
  if (nchw && p.kh == 1 && p.kw == 1)
    return pick(ConvAlgorithm::Im2col,
                [] { return "im2col: a 1x1 kernel in NCHW is a plain GEMM on the input in place; direct rejected: "
                  "it would reorder the input for no tap reuse"; });
  // Measured, NHWC 1x1, 2 threads, us, direct vs im2col: 256->1024 @14 281 vs 256, batch 8 of
  // 256->64 @14 120 vs 116, a Dense layer 512->1000 on a batch of 32 531 vs 88; at 28 columns and
  // more, direct is ahead or level (64->64 @56 64 vs 69, 128->512 @28 246 vs 236).
  if (!nchw && is_pointwise(p) && p.ow < 24)
    return pick(ConvAlgorithm::Im2col,
                [] { return "im2col: a 1x1 kernel on narrow rows is one GEMM over the pixels of the whole batch, read "
                  "in place; direct rejected: each output row of a few pixels would stream every weight panel"; });
  if (p.ow < 24 && K > 512)
    return pick(ConvAlgorithm::Im2col,
                [&] { return "im2col: narrow output rows and a long reduction; GEMM tiles span rows and keep the "
                  "weight block in cache" + via() + "; direct rejected: its weight panel would stream from L2 for a "
                  "few pixels per pass"; });
  if (!direct_fits && (!nchw || gemm_nchw_via_nhwc(p)))
    return pick(ConvAlgorithm::Im2col,
                [&] { return "im2col: a long reduction (C/groups*KH*KW = " + std::to_string(K) + ", " +
                  std::to_string(weights / 256) + " KiB of float32 weights per group); the GEMM blocks it" + via() +
                  "; direct rejected: its weight panels would stream from L2 or L3 for every few pixels"; });
  // Strided windows that overlap (a 3x3/2 kernel) too: im2col copies each input element about
  // (KW/SW)*(KH/SH) times, the in-place kernel reads it from cache. Measured, NCHW, 2 threads,
  // us, im2col vs in place: 3x3/2 3->32 @224 857 vs 521, 16->32 @32 128 vs 73, 1->16 @28 15.9
  // vs 10.2; grouped 3x3/2 256->256 @28 (32 groups) 783 vs 622, 64->64 @112 (8 groups) 2994 vs
  // 2370; 5x5/2 8->16 @128 1273 vs 604; 3x3/3 32->32 @112 1180 vs 1075. Windows that do not
  // overlap copy each element at most once, and im2col stays level or ahead: 1x1/2 64->128 @56
  // 331 vs 341, 4x4/4 3->96 @224 943 vs 1006.
  const bool windows_overlap = p.stride_w == 1 || (p.kw - 1) * p.dilation_w + 1 > p.stride_w;
  if (nchw && !direct_nchw_reorders_pay(p) && windows_overlap)
    return pick(ConvAlgorithm::Direct, [&] {
      return std::string("direct (NCHW in place): little work next to the data, so nothing is reordered; output "
                         "rows are vectors over columns, weights read in place; im2col rejected: packing the "
                         "image costs more than it saves ") +
             (p.stride_w == 1 ? "at stride 1" : "where strided windows overlap (it copies their shared columns)");
    });
  if (nchw && p.stride_w > 1 && !nchw_reorders_pay(p))
    return pick(ConvAlgorithm::Im2col,
                [] { return "im2col: the data is large next to the work, so the GEMM reads it in place; direct "
                  "rejected: reordering input, output (and weights, unless packed) to NHWC would cost "
                  "too much"; });
  if (nchw && !nchw_reorders_pay(p))
    return pick(ConvAlgorithm::Direct,
                [] { return "direct: input reordered to NHWC once (weights too, unless packed): a small layer, all in "
                  "L1, whose in-place NCHW tiles would do at least twice the multiply-adds of the NHWC "
                  "pixel x channel tiles; im2col rejected: its image packing costs more than the reorder"; });
  if (nchw)
    return pick(ConvAlgorithm::Direct,
                [] { return "direct: input reordered to NHWC once (weights too, unless packed), then row panels feed "
                  "pixel x channel tiles with aligned loads; im2col rejected: its image packing costs more "
                  "than the reorder"; });
  if (direct_nhwc_reorders_pay(p))
    return pick(ConvAlgorithm::Direct, [&] {
      return "direct (NCHW in place, input and result reordered): " + std::string(p.groups > 1 ? "groups of " : "") +
             std::to_string(p.o / p.groups) + " output channels would leave most lanes of the NHWC tiles idle, the "
             "NCHW tiles run along output columns; im2col rejected: packing the image would cost more than it saves";
    });
  return pick(ConvAlgorithm::Direct,
              [] { return "direct: row panels feed pixel x channel tiles with no im2col packing; im2col "
                "rejected: packing the image would cost more than it saves"; });
}

void conv2d(const Conv2dParams& p, const float* x, const float* w, const float* b, float* y,
            const float* w_hwio) {
  run_conv2d(p, x, w, b, y, w_hwio);
}
void conv2d(const Conv2dParams& p, const double* x, const double* w, const double* b, double* y,
            const double* w_hwio) {
  run_conv2d(p, x, w, b, y, w_hwio);
}

}  // namespace pycnn
