// Winograd convolutions on one engine (run_winograd): the transforms are microkernels
// (kernels/generic/winograd.h), the 16 products per tile summed over input channels run on the
// GEMM microkernel.
//  - conv2d, F(2x2, 3x3): tiles of 2x2 outputs from 4x4 input patches every 2 pixels; at stride
//    2, from 5x5 patches every 4 pixels, the even and odd inputs of each dimension apart (25
//    products a tile, whose weights take 16 planes; see generic/winograd.h).
//  - conv_transpose2d, F(3x3, 2x2) on every stride phase (kernel 2s x 2s, stride s): one 4x4
//    input patch every 3 pixels feeds 3x3 cells of each of the s*s phases (3s x 3s outputs),
//    through one input transform and one GEMM over all phases' output channels.
//
// Layout of the work (NHWC; NCHW data goes through NHWC buffers a group of rows at a time):
//  - U: the weights transformed, once per call or ahead of time (conv2d_winograd_weights /
//    conv_transpose2d_winograd_weights, kept by a packed weight): 16 planes of C x ldu, ldu =
//    the GEMM's columns (O, or phases x O) rounded up to 64 with zero columns, read in place as
//    the GEMM's B.
//  - Tiles, numbered image-major then row-major, go out in blocks of TB tiles (NCHW: R rows of
//    tiles of one image, their input rows transposed into the thread's buffer and their output
//    rows transposed out of another). A block's input transform fills V (16 slots of TB x C, 25
//    at stride 2), then per panel of NR columns the GEMMs fill M (as many of TB x NR) and the output
//    transform writes the block's pixels of those columns. V and M stay in the thread's L2; U
//    streams from L2 or L3, once per block (TB multiply-adds per element loaded).
#include "ops/winograd.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <type_traits>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/common.h"
#include "ops/pack.h"
#include "ops/tiles.h"

namespace pycnn {

namespace {

// The stride a Winograd call runs at: one over a single output row (column) does not matter, and
// counts as the other.
int64_t winograd_stride_of(const Conv2dParams& p) { return p.oh == 1 ? p.stride_w : p.stride_h; }

// Whether the rules below may count on the cache they were tuned with (a Zen 4's or Zen 5's 1 MiB
// L2 and 32 MiB L3): under a 1 MiB L2 (a Zen 1: 512 KiB, 8 MiB of shared L3) U streams from
// DRAM, so the stride-2 rule takes no U over 2 MiB and the transposed rule asks for more (see
// winograd_transpose_pays).
bool u_stays_in_cache() { return l2_cache_bytes() >= (int64_t(1) << 20); }

}  // namespace

int64_t conv2d_winograd_stride(const Conv2dParams& p) { return winograd_applies(p) ? winograd_stride_of(p) : 1; }

bool winograd_applies(const Conv2dParams& p, std::string* why) {
  auto reject = [&](const auto& reason) {
    if (why) *why = reason();
    return false;
  };
  if (p.kh != 3 || p.kw != 3)
    return reject([&] {
      return "a " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + " kernel (Winograd F(2x2, 3x3) is for 3x3)";
    });
  if (winograd_stride_of(p) > 2 || (p.stride_h != p.stride_w && p.oh > 1 && p.ow > 1))
    return reject([&] {
      return "stride (" + std::to_string(p.stride_h) + ", " + std::to_string(p.stride_w) +
             ") (1 or 2, the same both ways)";
    });
  if (p.dilation_h != 1 || p.dilation_w != 1) return reject([] { return "a dilation other than 1"; });
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
//
// Stride 2 (F(2x2, 3x3) at stride 2: 25 products per tile where direct does 36; U 16/9 of the
// weights, as at stride 1), Zen 1, one thread, CPU time (the machine's other tenants moved wall
// times by 2x), medians of 5 alternating processes, us, the faster of direct and im2col ->
// Winograd, NCHW / NHWC, each call transforming the weights: 3x3/2 128->256 @56 (196 tiles)
// 15386 -> 14187 / 14647 -> 12408; 64->128 @56 4279 -> 3618 / 3549 -> 3687 (fastest processes
// 3849 -> 3513 / 3461 -> 3142); 64->128 @112 (fastest) 14616 -> 13416 / 13329 -> 12357; 32->64
// @112 4129 -> 3888 / 3507 -> 3463; 64->64 @32 (64 tiles) 713 -> 652 / 611 -> 560; 128->128 @28
// (49) 2068 -> 2026 / 1944 -> 1631; 96->192 @28 2304 -> 2406 (fastest 2191 -> 1904) / 2091 ->
// 1759; 32->32 @56 1013 -> 478 / 489 -> 413; batch 8 of 64->128 @28 8320 -> 6736 / 7054 -> 5987.
// With the weights packed: 128->256 @56 15120 -> 13438 / 14134 -> 11994; 64->128 @56 3921 ->
// 3366 / 3840 -> 3053. Slower or level with a U of 4 MiB or more (256->256 @28 9195 -> 9294 /
// 7622 -> 8066, packed 7385 -> 8129 / 7228 -> 7191; 512->512 @14 10392 -> 23287) or 16 input
// channels (16->32 @64 342 -> 431 / 285 -> 324; 24->48 @56 level). Two threads, 128->256 @56:
// 13980 -> 12050 / 12262 -> 9662.
// A U of up to 8 MiB (131072 channel pairs) pays with packed weights where U stays in a 32 MiB L3
// (u_stays_in_cache) and 128 tiles or more share it: Zen 4 (1 MiB L2), 2 threads, min of 7
// (two runs where given), us, auto (direct or im2col) -> Winograd, NCHW / NHWC: 256->256 @28 (196
// tiles) 1093 -> 954 / 1055 -> 965 and 1195 -> 968 / 1064 -> 940; 256->512 @28 2415 -> 2011 /
// 2173 -> 1928 and 2423 -> 2304 / 2236 -> 1960; 192->384 @28 1228 -> 1059 / 1201 -> 1086;
// 256->256 @32 1565 -> 1194 / 1392 -> 1131; 256->256 @24 (144 tiles) 812 -> 579 / 761 -> 555;
// 256->512 @24 1625 -> 1370 / 1578 -> 1350; 256->512 @56 (784) 9592 -> 8132 / 9005 -> 7320; one
// thread 256->256 @28 2172 -> 1888 / 2092 -> 1790. Level at 100 tiles (256->256 @20 571 -> 556 /
// 546 -> 573), slower at 49 (256->256 @14 300 -> 391 / 296 -> 389) or with a U over 8 MiB
// (384->384 @56 11153 -> 11915 / 10076 -> 9468, 512->512 @28 5175 -> 5799 / 4590 -> 5827, 512->512
// @56 19111 -> 24521). Transforming the weights on each call, the transform does not repay a
// large U (256->256 @28 1865 -> 2289 / 1577 -> 2211).
// Groups (a GEMM per group, K = C/groups; the weights transformed on every call, as packed
// weights keep HWIO), Zen 1, 2 threads, medians of alternating processes, us, direct ->
// Winograd, NCHW / NHWC: 3x3 64->64 @56 in 2 groups 1903 -> 1214 / 1776 -> 1106; 128->128 @56
// in 4 groups 3812 -> 2737 / 3550 -> 2446; 128 @28 in 4 groups 996 -> 806 / 878 -> 643; 256 @28
// in 8 groups 1892 -> 1832 / 1714 -> 1301; 96 @28 in 2 groups 1065 -> 732 / 976 -> 693. Slower
// with 32 channels a group on few tiles (512 @14 in 16 groups, 49 tiles: 1016 -> 1139 / 878 ->
// 906; 256 @14 in 8 groups 519 -> 564 / 441 -> 461; 1024 @7 in 32 groups 738 -> 1511) or 16
// channels a group (512 @14 in 32 groups 670 -> 964 / 539 -> 681, 256 @28 in 16 groups 1154 ->
// 1295 / 980 -> 1278; 64 @56 in 4 groups level). From 64 channels a group, 49 tiles repay it as
// they do one group's: 384 @13 in 2 groups 3640 -> 3096 / 3748 -> 2597, 256 @14 in 4 groups 973
// -> 802 / 856 -> 625, 128 @14 in 2 groups 497 -> 384 / 430 -> 321.
bool winograd_pays(const Conv2dParams& p) {
  const int64_t tiles = p.n * ceil_div(p.oh, 2) * ceil_div(p.ow, 2);
  if (winograd_stride_of(p) == 2) {
    if (p.groups != 1 || p.c < 32 || p.o < 32 || tiles < 40) return false;
    if (p.c * p.o <= 32768) return true;
    return p.weight_winograd_given && u_stays_in_cache() && p.c * p.o <= 131072 && tiles >= 128;
  }
  if (p.c / p.groups < 16 || p.o / p.groups < 16) return false;
  if (p.groups > 1) return p.c / p.groups >= 64 ? tiles >= 40 : p.c / p.groups >= 32 && tiles >= 100;
  if (p.weight_winograd_given) return tiles >= 16 && p.c * p.o <= 8192 * tiles;
  return tiles >= 40 && p.c * tiles >= 3000;
}

namespace {

// Bytes of V and M a thread's block may take: three quarters of a 1 MiB L2, the rest for a
// panel of U and the input rows. Each block streams all of U once, so larger blocks read it
// fewer times; measured (2 threads, p10 us, packed weights, NCHW / NHWC), 512 KiB and 64 tiles
// -> 768 KiB and 96: 3x3 64->64 @56 338 -> 296 / 293 -> 277, 256->256 @14 335 -> 286 / 315 ->
// 266, convT 4x4/2 64->32 @64 470 -> 465 / 399 -> 383; 128->128 @112 level; 1 MiB and 128
// tiles no better, 256 KiB and 32 slower.
constexpr int64_t kBlockBytes = 768 * 1024;
constexpr int64_t kMaxBlockTiles = 96;
// Input channels per work item of a weight transform.
constexpr int64_t kWeightChannels = 16;

// Rows [c0, c1) of U (conv2d_winograd_weights' layout) from OIHW or HWIO weights, by `transform`
// (WinogradKernels' weight, or strided_weight at stride 2). With groups, input channel c's row
// holds the Og output channels of its group, g = c / Cg.
template <class T>
void winograd_weight_rows(decltype(WinogradKernels<T>::weight) transform, const T* w, bool oihw, int64_t C, int64_t O,
                          int64_t groups, int64_t c0, int64_t c1, T* u) {
  const int64_t Cg = C / groups, Og = O / groups, ld = winograd_weights_stride(Og);
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t g = c / Cg, ci = c % Cg;
    T* row = u + c * ld;
    if (oihw) {  // tap t of (o, c) at w[(o*Cg + ci)*9 + t]: gathered into a (9, Og) block first
      T taps[9 * 64];
      for (int64_t o0 = 0; o0 < Og; o0 += 64) {
        const int64_t n = std::min<int64_t>(64, Og - o0);
        for (int64_t o = 0; o < n; ++o)
          for (int64_t t = 0; t < 9; ++t) taps[t * 64 + o] = w[((g * Og + o0 + o) * Cg + ci) * 9 + t];
        transform(taps, 64, (size_t)n, row + o0, (size_t)(C * ld));
      }
    } else {  // HWIO: tap t of (c, o) at w[(t*Cg + ci)*O + o]
      transform(w + ci * O + g * Og, Cg * O, (size_t)Og, row, (size_t)(C * ld));
    }
    for (int64_t xi = 0; xi < 16; ++xi) std::fill(row + xi * C * ld + Og, row + xi * C * ld + ld, T(0));
  }
}

}  // namespace

int64_t winograd_weights_stride(int64_t o) { return round_up(o, 64); }

namespace {

// A Winograd problem as the engine sees it: tiles whose 4x4 (5x5 at stride 2) input patches start
// every `step` input rows and columns, the input transform over their channels, `cols` GEMM
// columns of U, and output rows grouped by rows of tiles (for NCHW's bands).
struct TileGrid {
  int64_t n, h, w, c;          // the input
  int64_t o, oh, ow;           // the output (channels, height, width)
  int64_t tiles_h, tiles_w;
  int64_t step;                // input rows (columns) between tiles' patches
  int64_t row0, col0;          // input row and column of tile (0, 0)'s patch (negative: padding)
  int64_t out_step, out_row0;  // output rows a row of tiles covers, and tile row 0's first (may be < 0)
  int64_t cols;                // GEMM columns (U's, before rounding up to ldu) of each group
  int64_t groups = 1;          // group k's GEMMs: K rows [k*C/groups, +C/groups), columns k*cols + j
};

// Runs the tiles of g: input transform, 16 GEMMs per panel of output columns (one per plane of
// U, over 1 to 4 slots of V at stride 2), and
// write_tile(n, th, tw, m, ldm, j0, nr, out_pixel) for each tile and panel, which writes the
// tile's outputs of GEMM columns [j0, j0 + nr) (its slots at m[q*ldm + j - j0]) through
// out_pixel(n, oy, ox) (the NHWC pixel's channel 0; oy within the tile row's out_step rows) and
// returns false if a value before its epilogue was not finite. U: given, or made by
// make_u(c0, c1, u) (the rows of input channels [c0, c1) in each plane) in the parallel region.
// Returns false if any tile did.
// S: 1 (F(2x2, 3x3) and the transposed F(3x3, 2x2): 4x4 patches, 16 slots of V and M a tile),
// or 2 for a 3x3 stride-2 conv2d (F(2x2, 3x3) at stride 2: 5x5 patches, 25 slots, slot q of U's
// plane xi among those from winograd_strided_first_slot(xi)).
template <int64_t S, class T, class MakeU, class WriteTile>
bool run_winograd(const TileGrid& g, bool nchw, const ConvKernels<T>& kn, const T* x, const T* given_u,
                  const MakeU& make_u, T* y, const WriteTile& write_tile) {
  static_assert(S == 1 || S == 2, "the stride is 1 or 2");
  const int64_t C = g.c, HW = g.h * g.w, P = g.oh * g.ow, Cg = C / g.groups;
  constexpr int64_t slots = S == 2 ? 25 : 16, span = S == 2 ? 5 : 4;  // a patch is span x span
  const int64_t tiles = g.n * g.tiles_h * g.tiles_w;
  // U: plane xi's row k at u[(xi*C + k)*ldu], columns [cols, ldu) zero, so that any tile whose
  // panels stay inside ldu reads U in place as the GEMM's B.
  const int64_t ldu = winograd_weights_stride(g.cols);
  // The GEMM's tile, for blocks of up to kMaxBlockTiles.
  const auto& gemm = *pick_tile_among(kn.gemm, std::min(tiles, kMaxBlockTiles), g.cols, [&](const auto& k) {
    return round_up(g.cols, (int64_t)k.nr) <= ldu;
  });
  const int64_t MR = (int64_t)gemm.mr, NR = (int64_t)gemm.nr, npanels = ceil_div(g.cols, NR);
  const int64_t fit = std::max<int64_t>(MR, kBlockBytes / (slots * (C + NR) * (int64_t)sizeof(T)));
  const int team = num_threads();
  // Blocks: whole rows of tiles of one image in NCHW (`groups` per image, balanced to a row),
  // any run of tiles in NHWC (balanced to a tile). The GEMMs take a block's tiles MR at a time, a
  // partial MR costing a whole one, so the count of blocks is the one with the fewest GEMM rows
  // on the busiest thread (static schedule), then blocks within the budget, then the fewest;
  // blocks may pass the budget by half to make whole MRs. Measured with the stride-2 form this
  // engine ran before (tiles of 3x3 outputs), 3x3/2 128->256 @56 (10 x 10 tiles of 32 KiB of V
  // each), NCHW: 3 rows of tiles a block, 54 GEMM rows a thread, where 1 or 2 rows made 60: 909
  // -> 810 us.
  const int64_t most = std::max<int64_t>(1, std::min(kMaxBlockTiles, fit * 3 / 2));
  int64_t TB = 0, blocks = 0, row_tiles = 1, groups = 1;
  {
    // k blocks of `units` (one image's rows of tiles in NCHW, all tiles in NHWC) of `per` tiles,
    // balanced: block b ends at unit (b + 1)*units/k, so it takes q or q + 1 of them.
    const int64_t units = nchw ? g.tiles_h : tiles, per = nchw ? g.tiles_w : 1, images = nchw ? g.n : 1;
    const int64_t lo = std::max(ceil_div(units, std::max<int64_t>(1, most / per)),
                                std::min(units, ceil_div(team, images)));
    std::array<int64_t, 3> best{};
    for (int64_t k = lo; k <= std::min(units, lo + 2 * team); ++k) {
      const int64_t q = units / k, r = units % k, small = round_up(q * per, MR), large = round_up((q + 1) * per, MR);
      const int64_t count = images * k, share = count / team, extra = count % team;
      // carry: (b*r) mod k for the next block b of an image, back to 0 after k blocks; no
      // divisions, as this runs on every call (they cost 0.2 us of a 9 us layer).
      int64_t busiest = 0, carry = 0;
      for (int64_t t = 0, b = 0; t < team && b < count; ++t) {
        int64_t work = 0;
        for (const int64_t end = b + share + (t < extra); b < end; ++b) {
          carry += r;
          if (carry >= k) carry -= k, work += large;
          else work += small;
        }
        busiest = std::max(busiest, work);
      }
      const std::array<int64_t, 3> cost{busiest, ceil_div(units, k) * per > fit, k};
      if (k == lo || cost < best) best = cost, groups = k;
    }
    row_tiles = ceil_div(units, groups);
    TB = row_tiles * per;
    blocks = images * groups;
  }
  const double flops = 2.0 * slots * (double)tiles * (double)C * (double)g.cols;
  const int threads = threads_for(flops, blocks);

  Workspace<T> u_made(given_u ? 0 : (size_t)(16 * C * ldu), 1);
  const T* u = given_u ? given_u : u_made.data();
  Workspace<T> v((size_t)(slots * TB * C), threads), m((size_t)(slots * TB * NR), threads);
  // NCHW: a group of R rows of tiles reads step*R + span - step input rows and writes out_step*R
  // output rows, through NHWC buffers.
  const int64_t band_rows = g.step * row_tiles + span - g.step;
  Workspace<T> band(nchw ? (size_t)(band_rows * g.w * C) : 0, threads),
      out_rows(nchw ? (size_t)(g.out_step * row_tiles * g.ow * g.o) : 0, threads);
  std::atomic<bool> finite{true};
  // Tiles are numbered image-major, then row-major: tile -> (image, tile row, tile column).
  auto tile_at = [&](int64_t tile) {
    return std::array<int64_t, 3>{tile / (g.tiles_h * g.tiles_w), tile / g.tiles_w % g.tiles_h, tile % g.tiles_w};
  };

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    if (!given_u) {
#pragma omp for schedule(static)
      for (int64_t c0 = 0; c0 < C; c0 += kWeightChannels) make_u(c0, std::min(C, c0 + kWeightChannels), u_made.data());
    }
    const int tid = omp_get_thread_num();
    T* vb = v.slice(tid);
    T* mb = m.slice(tid);
    bool all_finite = true;
    // Tiles [t0, t0 + bt): input_row(n, ih) is input row ih of image n as NHWC (null: padding),
    // output_pixel(n, oy, ox) the output pixel's NHWC channels.
    auto run_block = [&](int64_t t0, int64_t bt, const auto& input_row, const auto& output_pixel) {
      for (int64_t t = 0; t < bt; ++t) {
        const auto [n, th, tw] = tile_at(t0 + t);
        const T* rows[span];
        for (int64_t r = 0; r < span; ++r) rows[r] = input_row(n, g.row0 + g.step * th + r);
        (S == 2 ? kn.winograd.strided_input : kn.winograd.input)(rows, g.col0 + g.step * tw, g.w, C, C, vb + t * C,
                                                                  (size_t)(TB * C));
      }
      for (int64_t gp = 0; gp < g.groups * npanels; ++gp) {  // group gp / npanels, its panel np
        const int64_t np = gp % npanels, kg = gp / npanels * Cg, nr = std::min(NR, g.cols - np * NR);
        for (int xi = 0; xi < 16; ++xi) {
          const T* b = u + (xi * C + kg) * ldu + np * NR;
          // The slots that take plane xi: its own at stride 1.
          const int q0 = S == 2 ? winograd_strided_first_slot(xi) : xi;
          const int q1 = S == 2 ? winograd_strided_first_slot(xi + 1) : xi + 1;
          for (int q = q0; q < q1; ++q)
            for (int64_t i0 = 0; i0 < bt; i0 += MR)
              gemm.run((size_t)Cg, vb + (q * TB + i0) * C + kg, (size_t)C, b, (size_t)ldu, mb + (q * TB + i0) * NR,
                       (size_t)NR, (size_t)std::min(MR, bt - i0), (size_t)nr, false, nullptr);
        }
        const int64_t j0 = gp / npanels * g.cols + np * NR;
        for (int64_t t = 0; t < bt; ++t) {
          const auto [n, th, tw] = tile_at(t0 + t);
          all_finite &= write_tile(n, th, tw, mb + t * NR, (size_t)(TB * NR), j0, nr, output_pixel);
        }
      }
    };
    if (nchw) {
      T* in_band = band.slice(tid);
      T* out_band = out_rows.slice(tid);
#pragma omp for schedule(static) nowait
      for (int64_t block = 0; block < blocks; ++block) {  // image n, rows of tiles [th0, th1)
        const int64_t n = block / groups, k = block % groups;
        const int64_t th0 = k * g.tiles_h / groups, th1 = (k + 1) * g.tiles_h / groups;
        const int64_t ih0 = g.row0 + g.step * th0, oy0 = g.out_row0 + g.out_step * th0;
        const int64_t ih1 = std::min(g.h, ih0 + g.step * (th1 - th0) + span - g.step);
        for (int64_t ih = std::max<int64_t>(ih0, 0); ih < ih1; ++ih)
          transpose_blocks(kn, x + n * C * HW + ih * g.w, HW, C, g.w, in_band + (ih - ih0) * g.w * C, C);
        run_block(
            (n * g.tiles_h + th0) * g.tiles_w, (th1 - th0) * g.tiles_w,
            [&](int64_t, int64_t ih) { return ih >= 0 && ih < g.h ? in_band + (ih - ih0) * g.w * C : nullptr; },
            [&](int64_t, int64_t oy, int64_t ox) { return out_band + ((oy - oy0) * g.ow + ox) * g.o; });
        for (int64_t oy = std::max<int64_t>(oy0, 0); oy < std::min(g.oh, oy0 + g.out_step * (th1 - th0)); ++oy)
          transpose_blocks(kn, out_band + (oy - oy0) * g.ow * g.o, g.o, g.ow, g.o, y + n * g.o * P + oy * g.ow, P);
      }
    } else {
#pragma omp for schedule(static) nowait
      for (int64_t block = 0; block < blocks; ++block)
        run_block(
            block * tiles / blocks, (block + 1) * tiles / blocks - block * tiles / blocks,
            [&](int64_t n, int64_t ih) { return ih >= 0 && ih < g.h ? x + (n * g.h + ih) * g.w * C : nullptr; },
            [&](int64_t n, int64_t oy, int64_t ox) { return y + ((n * g.oh + oy) * g.ow + ox) * g.o; });
    }
    if (!all_finite) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

// F(3x3, 2x2)'s weight transform G g G^T, G = [1 0; .5 .5; .5 -.5; 0 -1], of the 2x2 taps of
// `phases` kernels per input channel c in [c0, c1): tap(c, ph, a, b, o) is phase ph's g[a][b] for
// output channel o < O, and plane xi's values for (c, ph) go to row(xi, c, ph)[o]. The taps of
// up to kWeightChannels channels x kChunk output channels are gathered first (the callers read
// along the weights' rows: NHWC's run over c), and each plane's row is built in a local block
// and copied out whole: the 16 planes lie many KiB apart, often a multiple of 4 KiB, where
// storing to all 16 per channel thrashed one L1 set.
template <class T, class Tap, class Row>
void winograd_2x2_weight_rows(int64_t O, int64_t phases, int64_t c0, int64_t c1, const Tap& tap, const Row& row) {
  constexpr int64_t kChunk = 256 / sizeof(T);  // 20 KiB of stack in all
  T taps[kWeightChannels][4][kChunk], planes[16][kChunk];
  const T half = T(0.5);
  for (int64_t cb = c0; cb < c1; cb += kWeightChannels) {
    const int64_t cn = std::min(kWeightChannels, c1 - cb);
    for (int64_t ph = 0; ph < phases; ++ph)
      for (int64_t o0 = 0; o0 < O; o0 += kChunk) {
        const int64_t n = std::min(kChunk, O - o0);
        for (int t = 0; t < 4; ++t)  // tap (a, b) = (t / 2, t % 2)
          for (int64_t o = 0; o < n; ++o)
            for (int64_t k = 0; k < cn; ++k) taps[k][t][o] = tap(cb + k, ph, t / 2, t % 2, o0 + o);
        for (int64_t k = 0; k < cn; ++k) {
          for (int64_t o = 0; o < n; ++o) {
            T col[4][2];  // G g
            for (int b = 0; b < 2; ++b) {
              const T g0 = taps[k][b][o], g1 = taps[k][2 + b][o];
              col[0][b] = g0;
              col[1][b] = (g0 + g1) * half;
              col[2][b] = (g0 - g1) * half;
              col[3][b] = -g1;
            }
            for (int i = 0; i < 4; ++i) {  // (G g) G^T
              planes[4 * i][o] = col[i][0];
              planes[4 * i + 1][o] = (col[i][0] + col[i][1]) * half;
              planes[4 * i + 2][o] = (col[i][0] - col[i][1]) * half;
              planes[4 * i + 3][o] = -col[i][1];
            }
          }
          for (int xi = 0; xi < 16; ++xi) std::copy(planes[xi], planes[xi] + n, row(xi, cb + k, ph) + o0);
        }
      }
  }
}

}  // namespace

// Tiles of 2x2 outputs: at stride 1 from 4x4 patches every 2 pixels (16 multiplies per tile and
// channel pair where direct does 36), at stride 2 from 5x5 patches every 4 (25 where direct does
// 36; generic/winograd.h).
template <class T>
bool conv_winograd(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w, const T* prepared,
                   const T* bias, T* y) {
  const bool nchw = p.layout == Layout::NCHW;
  const bool oihw = nchw && !prepared;  // NCHW weights come as HWIO when prepared (weight_hwio_given)
  const T* taps = nchw && prepared && !p.weight_winograd_given ? prepared : w;
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  auto run = [&](auto stride) {
    constexpr int64_t S = decltype(stride)::value, out = 2;  // outputs per tile row and column
    TileGrid g;
    g.n = p.n, g.h = p.h, g.w = p.w, g.c = p.c, g.o = p.o, g.oh = p.oh, g.ow = p.ow;
    g.tiles_h = ceil_div(p.oh, out), g.tiles_w = ceil_div(p.ow, out);
    g.step = S * out, g.row0 = -p.pad_top, g.col0 = -p.pad_left;
    g.out_step = out, g.out_row0 = 0;
    g.cols = p.o / p.groups;
    g.groups = p.groups;
    return run_winograd<S>(
        g, nchw, kn, x, p.weight_winograd_given ? prepared : nullptr,
        [&](int64_t c0, int64_t c1, T* u) {
          winograd_weight_rows(S == 2 ? kn.winograd.strided_weight : kn.winograd.weight, taps, oihw, p.c, p.o,
                               p.groups, c0, c1, u);
        },
        y,
        [&](int64_t n, int64_t th, int64_t tw, const T* m, size_t ldm, int64_t j0, int64_t nr, const auto& out_pixel) {
          Epilogue<T> e = base;
          e.bias_col = bias ? bias + j0 : nullptr;
          T* dst[out * out];
          for (int64_t i = 0; i < out; ++i)
            for (int64_t j = 0; j < out; ++j) {
              const int64_t oy = out * th + i, ox = out * tw + j;
              dst[out * i + j] = oy < p.oh && ox < p.ow ? out_pixel(n, oy, ox) + j0 : nullptr;
            }
          return (S == 2 ? kn.winograd.strided_output : kn.winograd.output)(m, ldm, dst, (size_t)nr,
                                                                             epilogue_needed ? &e : nullptr);
        });
  };
  if (winograd_stride_of(p) == 2) return run(std::integral_constant<int64_t, 2>{});
  return run(std::integral_constant<int64_t, 1>{});
}

namespace {

// Rows [c0, c1) of U for conv_transpose2d (kernel 2*sh x 2*sw, C input and O output channels):
// phase (rh, rw)'s taps g[a][b] = w[c][o][rh + sh*(1 - a)][rw + sw*(1 - b)] (NCHW (C, O, KH, KW);
// NHWC (KH, KW, O, C)) at columns phase*O + o; columns from sh*sw*O to ldu zero.
template <class T>
void conv_transpose_winograd_rows(const T* w, bool nchw, int64_t C, int64_t O, int64_t sh, int64_t sw, int64_t c0,
                                  int64_t c1, T* u) {
  const int64_t phases = sh * sw, cols = phases * O, ldu = winograd_weights_stride(cols), KH = 2 * sh, KW = 2 * sw;
  winograd_2x2_weight_rows<T>(
      O, phases, c0, c1,
      [&](int64_t c, int64_t ph, int64_t a, int64_t b, int64_t o) {
        const int64_t kh = ph / sw + sh * (1 - a), kw = ph % sw + sw * (1 - b);
        return nchw ? w[((c * O + o) * KH + kh) * KW + kw] : w[((kh * KW + kw) * O + o) * C + c];
      },
      [&](int64_t xi, int64_t c, int64_t ph) { return u + (xi * C + c) * ldu + ph * O; });
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t xi = 0; xi < 16; ++xi) std::fill(u + (xi * C + c) * ldu + cols, u + (xi * C + c + 1) * ldu, T(0));
}

}  // namespace

// conv_transpose2d, kernel 2s x 2s at stride s: along one dimension, output cell q + pad =
// s*Q + r (phase r < s) is x[Q - 1] * w[r + s] + x[Q] * w[r], a 2-tap correlation of the input
// with (w[r + s], w[r]) from Q - 1. So one 4-wide input patch from column t feeds, in every
// phase, the three outputs Q = t + 1, t + 2, t + 3: F(3, 2) per phase on a shared input
// transform, 3s contiguous outputs per patch. U's columns are phase-major (phase*O + o), one GEMM
// for all s*s phases; 16 multiplies per 9 outputs and channel pair where direct does 36.
bool winograd_transpose_applies(const ConvTranspose2dParams& p, std::string* why) {
  auto reject = [&](const auto& reason) {
    if (why) *why = reason();
    return false;
  };
  if (p.kh != 2 * p.stride_h || p.kw != 2 * p.stride_w)
    return reject([&] {
      return "a " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + " kernel at stride (" +
             std::to_string(p.stride_h) + ", " + std::to_string(p.stride_w) + ")" +
             (p.h == 1 || p.w == 1 ? " (a stride over one input row or column counts as 1)" : "");
    });
  if (p.dilation_h != 1 || p.dilation_w != 1) return reject([] { return "a dilation other than 1"; });
  if (p.groups != 1) return reject([] { return "groups other than 1"; });
  return true;
}

namespace {

// Rows (columns) of tiles: each covers 3 phase cells, 3*stride outputs, from pad % stride above.
int64_t transpose_tiles(int64_t out, int64_t pad, int64_t stride) { return ceil_div(out + pad % stride, 3 * stride); }

}  // namespace

// Measured, 2 threads, 4x4/2, p10 us, the faster of direct and the per-tap GEMMs -> Winograd,
// NCHW / NHWC, each call transforming the weights: 64->32 @64 (484 tiles) 633 -> 456 / 553 ->
// 413; 64->32 @32 (121) 210 -> 138 / 170 -> 127; 128->64 @32 570 -> 441 / 545 -> 449; 16->8 @64
// 100 -> 79 / 91 -> 83; few output columns, where the NHWC forms run poorly: 32->3 @64 92 -> 94 /
// 165 -> 94, 64->1 @64 139 -> 148 / 322 -> 121. Slower with few tiles or input channels: 128->64
// @16 (36 tiles) 163 -> 167 / 147 -> 184, 256->128 @14 (25) 487 -> 642 / 476 -> 554, 16->16 @32
// 31 -> 35 / 26 -> 30, 8->4 @64 52 -> 65 / 57 -> 69. With the weights transformed ahead of time
// (a PackedConvTranspose2dWeight): 256->128 @14 461 -> 341 / 450 -> 334; 256->128 @8 (9 tiles)
// 164 -> 122 / 163 -> 115; 64->64 @16 87 -> 70 / 72 -> 54; 32->32 @16 35 -> 22 / 29 -> 18; 128->3
// @32 80 -> 58 / 165 -> 46; level or slower: 16->3 @64 61 -> 68 (NCHW), 512->256 @7 (9 tiles,
// 32 MiB of U) 528 -> 1461.
bool winograd_transpose_pays(const ConvTranspose2dParams& p) {
  const int64_t tiles =
      p.n * transpose_tiles(p.oh, p.pad_top, p.stride_h) * transpose_tiles(p.ow, p.pad_left, p.stride_w);
  const int64_t cols = p.stride_h * p.stride_w * p.o;
  // U (16 x C x cols) past 64 MiB of float32: large strides make many phases, whose columns the
  // direct forms never materialise.
  if (p.c < 16 || p.c * cols > (int64_t(1) << 20)) return false;
  if (p.layout == Layout::NCHW && cols < 32 && (!p.weight_winograd_given || p.c < 32)) return false;
  // Each block streams all of U: enough tiles per element of it, with the transform made ahead
  // of time or per call. With an L2 under 1 MiB (and a small L3) U streams from DRAM, so it
  // needs 8x the tiles. Zen 1 (512 KiB L2, 8 MiB L3), 2 threads, packed weights, min of p10 us
  // over 4 alternating rounds, Winograd vs direct, NCHW / NHWC: 4x4/2 256->128 @14 (25 tiles,
  // U 8 MiB, 5243 per tile) 5593 vs 4532 / 5423 vs 4210; 256->128 @28 (100 tiles, 1311 per
  // tile) 14261 vs 17000 / 14588 vs 16111; 128->64 @14 (1311) 912 vs 1011 / 818 vs 967;
  // 128->64 @28 (328) 3297 vs 4035 / 2971 vs 3837.
  const int64_t per_tile = u_stays_in_cache() ? 16384 : 2048;
  if (p.weight_winograd_given) return tiles >= 9 && p.c * cols <= per_tile * tiles;
  return tiles >= 40 && p.c * tiles >= 3000 && p.c * cols <= per_tile * tiles;
}

template <class T>
bool conv_transpose_winograd(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                             const T* u, const T* bias, T* y) {
  const bool nchw = p.layout == Layout::NCHW;
  const int64_t sh = p.stride_h, sw = p.stride_w, C = p.c, O = p.o, phases = sh * sw;
  TileGrid g;
  g.n = p.n, g.h = p.h, g.w = p.w, g.c = C, g.o = O, g.oh = p.oh, g.ow = p.ow;
  // Tile row k's patches start at input row t = t0 + 3k, t0 = pad/s - 1, and give output rows
  // s*(t + 1 + a) + r - pad (a < 3, phase r < s): tile row 0 starts pad % s rows above the output.
  g.step = 3, g.row0 = p.pad_top / sh - 1, g.col0 = p.pad_left / sw - 1;
  g.out_step = 3 * sh, g.out_row0 = -(p.pad_top % sh);
  const int64_t out_col0 = -(p.pad_left % sw);
  g.tiles_h = transpose_tiles(p.oh, p.pad_top, sh), g.tiles_w = transpose_tiles(p.ow, p.pad_left, sw);
  g.cols = phases * O;
  auto make_u = [&](int64_t c0, int64_t c1, T* rows) {
    conv_transpose_winograd_rows(w, nchw, C, O, sh, sw, c0, c1, rows);
  };
  Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  return run_winograd<1>(
      g, nchw, kn, x, p.weight_winograd_given ? u : nullptr, make_u, y,
      [&](int64_t n, int64_t th, int64_t tw, const T* m, size_t ldm, int64_t j0, int64_t nr, const auto& out_pixel) {
        bool finite = true;
        for (int64_t ph = j0 / O; ph * O < j0 + nr; ++ph) {  // the phases among columns [j0, j0 + nr)
          const int64_t c0 = std::max(j0, ph * O), c1 = std::min(j0 + nr, (ph + 1) * O), o0 = c0 - ph * O;
          const int64_t rh = ph / sw, rw = ph % sw;
          T* out[9];
          for (int64_t a = 0; a < 3; ++a)
            for (int64_t b = 0; b < 3; ++b) {
              const int64_t oy = g.out_row0 + g.out_step * th + sh * a + rh;
              const int64_t ox = out_col0 + 3 * sw * tw + sw * b + rw;
              out[3 * a + b] = oy >= 0 && oy < p.oh && ox >= 0 && ox < p.ow ? out_pixel(n, oy, ox) + o0 : nullptr;
            }
          Epilogue<T> e = base;
          e.bias_col = bias ? bias + o0 : nullptr;
          finite &= kn.winograd.output_3x3(m + (c0 - j0), ldm, out, (size_t)(c1 - c0), epilogue_needed ? &e : nullptr);
        }
        return finite;
      });
}

template bool conv_transpose_winograd<float>(const ConvTranspose2dParams&, const ConvKernels<float>&, const float*,
                                             const float*, const float*, const float*, float*);
template bool conv_transpose_winograd<double>(const ConvTranspose2dParams&, const ConvKernels<double>&,
                                              const double*, const double*, const double*, const double*, double*);

namespace {

template <class T>
void conv2d_winograd_weights_of(Layout layout, int64_t c, int64_t o, int64_t stride, const T* w, T* u) {
  if (stride != 1 && stride != 2) throw std::invalid_argument("conv2d_winograd_weights: stride must be 1 or 2");
  FlushDenormals ftz;
  const WinogradKernels<T>& kn = kernels_for<T>(active_kernels()).winograd;
  winograd_weight_rows(stride == 2 ? kn.strided_weight : kn.weight, w, layout == Layout::NCHW, c, o, 1, 0, c, u);
}

}  // namespace

void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride, const float* w, float* u) {
  conv2d_winograd_weights_of(layout, c, o, stride, w, u);
}
void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride, const double* w, double* u) {
  conv2d_winograd_weights_of(layout, c, o, stride, w, u);
}

void conv_transpose2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride_h, int64_t stride_w,
                                       const float* w, float* u) {
  FlushDenormals ftz;
  conv_transpose_winograd_rows(w, layout == Layout::NCHW, c, o, stride_h, stride_w, 0, c, u);
}
void conv_transpose2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride_h, int64_t stride_w,
                                       const double* w, double* u) {
  FlushDenormals ftz;
  conv_transpose_winograd_rows(w, layout == Layout::NCHW, c, o, stride_h, stride_w, 0, c, u);
}

template bool conv_winograd<float>(const Conv2dParams&, const ConvKernels<float>&, const float*, const float*,
                                   const float*, const float*, float*);
template bool conv_winograd<double>(const Conv2dParams&, const ConvKernels<double>&, const double*, const double*,
                                    const double*, const double*, double*);

}  // namespace pycnn
