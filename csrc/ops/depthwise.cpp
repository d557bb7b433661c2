// depthwise_conv2d and separable_conv2d: tiling, packing and the parallel loops around the
// depthwise microkernels (and, for separable, the GEMM microkernel).
//
//  - NCHW: per (image, channel, band of output rows), the input rows the band reads are copied
//    once into a zero-padded plane split by column stride phase (so every tap is a contiguous
//    vector load), and the microkernel sweeps MR-row x NR-column output tiles for each of the
//    channel's M multipliers. Vectors run along the output width.
//  - NHWC: per (image, output row[, channel chunk]), the microkernel reads the input rows in
//    place (vectors run along channels; padding taps are skipped, not copied). With M > 1 the
//    rows are first expanded so that input channel c sits at c*M + m, like the output. NCHW
//    planes of a few columns are reordered to NHWC and run here (kNhwcMaxWidth).
//  - separable: per (image, band of output rows), the depthwise result of the band goes into
//    per-thread scratch and is multiplied by the pre-packed pointwise weights at once, with bias
//    and activation in the store: NCHW feeds the band to the GEMM microkernel as its B operand
//    in place; NHWC runs the direct NHWC microkernel as a 1x1 convolution on the band in place.
//    The band is written once and read once, from cache.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/common.h"
#include "ops/pack.h"
#include "ops/tiles.h"
#include "pycnn/depthwise.h"

namespace pycnn {
namespace {

// Depthwise work loops use a static partition: each thread reads and writes the same rows
// (planes in NCHW) on every call, so they stay in its L2 between calls, which measured 6-22%
// faster than dynamic scheduling. The separable loops, heavier per item, stay dynamic: on a
// shared machine a thread that loses its core hands its remaining items to the others.

// Weights are padded per tap to a multiple of the widest vector (16 floats) so masked channel
// tails can load full weight vectors.
constexpr int64_t kWeightPad = 16;

void check(const DepthwiseConv2dParams& p) {
  const int64_t dims[] = {p.n, p.c, p.h, p.w, p.multiplier, p.kh, p.kw, p.oh, p.ow,
                          p.stride_h, p.stride_w, p.dilation_h, p.dilation_w};
  for (int64_t d : dims)
    if (d < 1) throw std::invalid_argument("depthwise_conv2d: sizes, strides and dilations must be >= 1");
  if (p.pad_top < 0 || p.pad_left < 0) throw std::invalid_argument("depthwise_conv2d: negative padding");
}

// ---------------------------------------------------------------------------------------------
// NCHW: the zero-padded, stride-phase-split plane of one channel's band of input rows.

// src[0, n) -> padded columns left, left + 1, ...: even padded columns to even[col / 2], odd to
// odd[col / 2], by the ISA's deinterleave microkernel (stride 2 is the common strided depthwise
// layer: two vectors in, an even and an odd vector out). The row is read from its first element,
// so with an odd `left` its even columns go to the odd phase: starting one element in instead
// (to reach an even padded column) split every vector load across two cache lines, 8-17%
// slower over the whole layer (3x3/2 96 @112, 32 @224, 144 @56; 2 threads, alternating runs).
template <class T>
void split_even_odd(const DepthwiseKernels<T>& kd, const T* src, int64_t n, int64_t left, T* even, T* odd) {
  if (n <= 0) return;
  if (left % 2 == 0) kd.deinterleave2(src, (size_t)n, even + left / 2, odd + left / 2);
  else kd.deinterleave2(src, (size_t)n, odd + left / 2, even + left / 2 + 1);
}

struct NchwPlane {
  int64_t phase_width = 0;  // columns per stride phase
  int64_t plane_row = 0;    // elements per padded row (stride_w phases)
  int64_t rows = 0;         // padded rows for a band of `band` output rows (rounded up to MR)
  std::vector<int64_t> tap;

  NchwPlane(const DepthwiseConv2dParams& p, int64_t band, int64_t mr, int64_t nr) {
    const int64_t s = p.stride_w, d = p.dilation_w;
    phase_width = round_up(p.ow, nr) + (p.kw - 1) * d / s + 1;
    plane_row = checked_product({s, phase_width});
    rows = checked_product({round_up(band, mr) - 1, p.stride_h}) + (p.kh - 1) * p.dilation_h + 1;
    checked_product({rows, plane_row});
    tap.resize((size_t)p.kw);
    for (int64_t kw = 0; kw < p.kw; ++kw) tap[(size_t)kw] = (kw * d % s) * phase_width + kw * d / s;
  }
  int64_t size() const { return rows * plane_row; }

  // Rows for output rows [oh0, ...) of channel plane `src` (H x W) into `dst`, which must hold
  // zeros wherever no input column lands (zero_padding once per buffer): every input row lands
  // on the same positions of its plane row, so only those are written, plus whole padding rows.
  // A 56-wide row is 224 bytes, so per-row calls, not bytes, are the cost of the copy.
  template <class T>
  void fill(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd, const T* src, int64_t oh0, T* dst) const {
    const int64_t s = p.stride_w;
    const int64_t left = std::min(p.pad_left, plane_row), n = std::min(p.w, plane_row - left);
    const int64_t end = std::min(p.w, s * phase_width - p.pad_left);  // stride > 1: columns that land
    for (int64_t r = 0; r < rows; ++r) {
      T* row = dst + r * plane_row;
      const int64_t ih = oh0 * p.stride_h - p.pad_top + r;
      if (ih < 0 || ih >= p.h) {
        std::fill(row, row + plane_row, T(0));
        continue;
      }
      const T* in = src + ih * p.w;
      if (s == 1) {
        std::memcpy(row + left, in, (size_t)n * sizeof(T));
      } else if (s == 2) {
        split_even_odd(kd, in, end, p.pad_left, row, row + phase_width);
      } else {  // column iw is padded column iw + left = q*s + phase
        int64_t phase = p.pad_left % s, q = p.pad_left / s;
        for (int64_t iw = 0; iw < end; ++iw) {
          row[phase * phase_width + q] = in[iw];
          if (++phase == s) phase = 0, ++q;
        }
      }
    }
  }

  // What fill expects of a new buffer.
  template <class T>
  void zero_padding(T* dst) const { std::fill(dst, dst + size(), T(0)); }
};

// 3x3 layers at dilation 1 read the input rows in place (the nchw_3x3_in_place kernel: no plane
// copy) at column stride 2, where the plane's column split was a pass over the input of its own.
// At stride 1:
//  - with 8-row tiles (AVX-512), at every width: the plane's copy is a pass over the input, and
//    the 8 rows share each input vector. AMD Zen 4 VM, alternating, 2 threads / 1 thread, us,
//    plane -> in place: 144 @56 164 -> 109 / 159 -> 158 (p10 150 -> 132), 32 @112 103 -> 83 /
//    180 -> 105, 288 @28 77 -> 67 / 130 -> 112; separable 3x3 128 @56 + 1x1 128 820 -> 769.
//    (On an AMD Zen 5 VM the plane's 8x32 tiles had led at 56 columns on one thread, 108 vs 127.)
//  - with AVX2's 4-row tiles too, now that its vectors inside the row load without masks
//    (vmaskmovps): one thread, plane -> in place, us: 144 @56 243 -> 195, 32 @112 198 -> 170,
//    64 @40 61 -> 49, 288 @28 152 -> 144, 576 @14 level, 960 @7 75 -> 76.
//  - with the scalar kernels' 4-row tiles only where the plane kernel's column tiles would cover
//    at least 1.5x the columns (narrow rows): at 56, 40 and 14 columns in place measured 0.7-0.8x.
//  Stride 1 narrow rows, AVX-512, plane -> in place: 576 @14 44 -> 31 / 78 -> 50, 960 @7 82 -> 49
//  (1 thread); stride 2: 3x3/2 96 @112 124 -> 84 / 177 -> 145, 144 @56/2 57 -> 40 / 81 -> 69,
//  576 @14/2 40 -> 27 / 63 -> 41.
template <class T>
bool nchw_in_place(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd) {
  if (p.kh != 3 || p.kw != 3 || p.dilation_h != 1 || p.dilation_w != 1 || p.stride_h > 2 || p.stride_w > 2) return false;
  if (p.stride_w == 2 || kd.nchw_in_place_nr > 1) return true;  // vector ISAs: AVX-512, AVX2
  return 2 * round_up(p.ow, (int64_t)kd.nchw_nr) >= 3 * round_up(p.ow, (int64_t)kd.nchw_in_place_nr);
}

// The arguments every NCHW tile of the call shares.
template <class T>
DepthwiseNchwArgs<T> nchw_args(const DepthwiseConv2dParams& p) {
  DepthwiseNchwArgs<T> a{};  // pointers the caller does not set stay null
  a.kh = p.kh;
  a.kw = p.kw;
  a.stride_h = p.stride_h;
  a.dilation_h = p.dilation_h;
  a.ldy = p.ow;
  a.activation = (int)p.activation;
  a.activation_param = (T)p.activation_param;
  a.in_w = p.w;
  a.stride_w = p.stride_w;
  a.shift_taps = zmm_shuffles_cheap();
  return a;
}

// The depthwise result of output rows [oh0, oh0 + band) for the M output channels of input
// channel c (the plane holds their input rows), written to y_channels[m*ldc + (oh - oh0)*ow + ow]
// (ldc: elements per channel).
template <class T>
void depthwise_nchw_band(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd,
                         const NchwPlane& plane, const T* plane_data, const T* w, const T* bias,
                         int64_t c, int64_t band, T* y_channels, int64_t ldc) {
  const int64_t MR = (int64_t)kd.nchw_mr, NR = (int64_t)kd.nchw_nr, M = p.multiplier;
  DepthwiseNchwArgs<T> a = nchw_args<T>(p);
  a.plane_row = plane.plane_row;
  a.tap = plane.tap.data();
  for (int64_t m = 0; m < M; ++m) {
    const int64_t oc = c * M + m;
    a.w = w + oc * p.kh * p.kw;
    a.bias = bias ? bias + oc : nullptr;
    for (int64_t i0 = 0; i0 < band; i0 += MR) {
      a.rows = (size_t)std::min(MR, band - i0);
      for (int64_t j0 = 0; j0 < p.ow; j0 += NR) {
        a.plane = plane_data + i0 * p.stride_h * plane.plane_row + j0;
        a.y = y_channels + m * ldc + i0 * p.ow + j0;
        a.cols = (size_t)std::min(NR, p.ow - j0);
        kd.nchw(a);
      }
    }
  }
}

// Input rows a tile of MR output rows reads with the in-place kernel, at most.
constexpr int64_t kMaxTileInputRows = 2 * 15 + 3;

// How many tall tiles (tall rows; the rest of the rows in tiles of mr) cover `rows` output rows
// at the least cost, a tall tile's row costing 0.87 of a short tile's: its input rows' loads
// are shared by more output rows (3x3 stride 1: 16 input rows for 14 outputs, 10 for 8). Each
// tile computes all its rows, used or not. AVX-512, alternating, p10 us, 8-row tiles -> these,
// 1 thread / 2 threads: 144 @56 120 -> 113 / 65 -> 60, 32 @112 98 -> 94 / 54 -> 49, 576 @14 69
// -> 46 / 36 -> 25, 3x3/2 144 @56 66 -> 58 / 36 -> 33, 96 @112 152 -> 153 / 82 -> 79. (960 @7
// keeps one 8-row tile: a 14-row one for its 7 rows measured 59 -> 69.)
inline int64_t in_place_tall_tiles(int64_t rows, int64_t tall, int64_t mr) {
  if (tall <= mr) return 0;
  int64_t best = 0;
  double best_cost = (double)round_up(rows, mr);
  for (int64_t t = 1; (t - 1) * tall < rows; ++t) {
    const double cost = 0.87 * (double)(t * tall) + (double)round_up(std::max<int64_t>(0, rows - t * tall), mr);
    if (cost < best_cost) best = t, best_cost = cost;
  }
  return best;
}

// The in-place kernel's column order (ColumnOrder) for the plane at x and its output at y.
// A load that overlaps an older store in its address's low 12 bits (4 KiB aliasing) waits for
// that store. Left to right, a vector's stores land just ahead of the next vectors' loads when y
// is 0-160 bytes past x modulo 4 KiB; with rows a multiple of 4 KiB apart (float32 rows of 1024
// or 2048 columns, float64 of 512) that holds for every input and output row of the tile at
// once, and numpy's large arrays all start 16 bytes into a page, so it is the default there.
// Right to left the stores alias the next loads for y 32 (AVX2: 160) bytes before x to 32 past
// it, interleaved for 64-224 (AVX2: 96-288) past; elsewhere both measured up to 8% (AVX2 38%)
// slower than left to right. So: interleaved for y 32 bytes before x to 64 past, right to left
// for 64-192 past, else left to right, as everywhere at stride 2 (whose stores trail its loads
// at half their pace: 3x3/2 16 @1024 measured level) and where rows are not such a multiple
// (there their pairs alias one at a time). Zen 4, 2 threads, 3x3 16 x 64 x 1024, ns per output,
// fastest of 5, two alternating rounds, left to right -> this, y at x: 0.37 -> 0.25-0.26, 64
// past 0.38-0.40 -> 0.24-0.28; float64 (512 columns) 0.74-0.81 -> 0.47-0.48; AVX2 0.46-0.51 ->
// 0.34; elsewhere the same code.
inline int in_place_column_order(const DepthwiseConv2dParams& p, size_t element_size, const void* x, const void* y) {
  if (p.stride_w != 1 || p.w * (int64_t)element_size % 4096 != 0) return kLeftToRight;
  const uintptr_t past = ((uintptr_t)y - (uintptr_t)x + 32) % 4096;  // y's bytes past x, + 32
  return past < 96 ? kInterleaved : past < 224 ? kRightToLeft : kLeftToRight;
}

// Whether nchw_3x3_rows streams the input rows (strides 1 x 1 and 2 x 2, where the ISA has the
// kernel): where an output row is at most two of its blocks of four vectors (float32: 128
// columns) or one (float64: 32), else the in-place tiles, which the many passes of narrow
// blocks down the plane did not beat. Zen 4, 2 threads, two builds alternated, min us, in-place
// -> streamed, float32: 3x3/2 96 @112 (one block) 69 -> 56, 144 @56 29.2 -> 23.2, 32 @224 (two)
// 83 -> 80; 3x3 144 @56 (one) 60.4 -> 56.5, 288 @28 38 -> 30, 64 @80 (two) 50.5 -> 45.6, 32
// @112 (two) level at 46 (one thread 95 -> 86); 64 @160 (three) level at 196, 16 @224 (four) 90
// -> 100, 3x3/2 16 @448 (four) level. float64: 3x3 144 @56 (two) 114 -> 107, 32 @112 (four)
// 87.5 -> 102, 64 @80 (three) level; 3x3/2 96 @112 (two) 126 -> 131-135.
template <class T>
bool nchw_streams_rows(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd) {
  const int64_t vectors = sizeof(T) == 4 ? 8 : 4;  // two or one of the kernel's blocks of four
  return kd.nchw_3x3_rows && p.stride_h == p.stride_w && p.ow <= vectors * (int64_t)kd.nchw_in_place_nr;
}

// The same from the channel's plane x_c (H x W) in place (nchw_in_place), with zero_row (W
// zeros) for padding rows: output rows [oh0, oh0 + band).
template <class T>
void depthwise_nchw_band_in_place(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd, const T* x_c,
                                  const T* zero_row, const T* w, const T* bias, int64_t c, int64_t oh0,
                                  int64_t band, T* y_channels, int64_t ldc) {
  const int64_t MR = (int64_t)kd.nchw_mr, TALL = (int64_t)kd.nchw_in_place_tall_mr, M = p.multiplier;
  DepthwiseNchwArgs<T> a = nchw_args<T>(p);
  if (nchw_streams_rows(p, kd)) {
    a.plane = x_c;
    a.in_h = p.h;
    a.ih0 = oh0 * p.stride_h - p.pad_top;
    a.zero_row = zero_row;
    a.rows = (size_t)band;
    a.col0 = -p.pad_left;
    a.cols = (size_t)p.ow;
    for (int64_t m = 0; m < M; ++m) {
      const int64_t oc = c * M + m;
      a.w = w + oc * p.kh * p.kw;
      a.bias = bias ? bias + oc : nullptr;
      a.y = y_channels + m * ldc;
      kd.nchw_3x3_rows(a);
    }
    return;
  }
  if ((TALL - 1) * p.stride_h + 3 > kMaxTileInputRows)
    throw std::logic_error("depthwise_conv2d: NCHW tile taller than kMaxTileInputRows");
  const int64_t tall_rows = in_place_tall_tiles(band, TALL, MR) * TALL;  // the band's first rows
  const T* rows[2][kMaxTileInputRows];
  auto tile_input_rows = [&](int64_t i0) { return ((i0 < tall_rows ? TALL : MR) - 1) * p.stride_h + 3; };
  // The input rows of the tile whose first output row is band row i0, and zero_row up to
  // `count`; past the band, the same rows of the next channel of the image (what comes next
  // when bands are whole planes; only prefetched), or zero_row after its last channel.
  auto fill_rows = [&](int64_t i0, const T** tile_rows, int64_t count) {
    const T* x = x_c;
    const bool next_channel = i0 >= band, none = next_channel && c + 1 == p.c;
    if (next_channel) i0 = 0, x += none ? 0 : p.h * p.w;
    const int64_t IR = none ? 0 : tile_input_rows(i0);
    // Rows [lo, hi) lie in the plane, the others are padding: three runs without a test per row.
    const int64_t ih0 = (oh0 + i0) * p.stride_h - p.pad_top;
    const int64_t lo = std::clamp<int64_t>(-ih0, 0, count);
    const int64_t hi = std::clamp<int64_t>(std::min(IR, p.h - ih0), lo, count);
    int64_t r = 0;
    for (; r < lo; ++r) tile_rows[r] = zero_row;
    for (const T* row = r < hi ? x + (ih0 + r) * p.w : nullptr; r < hi; ++r, row += p.w) tile_rows[r] = row;
    for (; r < count; ++r) tile_rows[r] = zero_row;
  };
  // The kernel prefetches the next tile's rows at stride 2 with rows of 256 bytes or more. Zen 1
  // (AVX2), alternating, min of p10 us over 5 rounds, one thread: 3x3/2 96 @112 1210 -> 855,
  // 64 @112 735 -> 472, 32 @224 1623 -> 1138; two threads, medians, 96 @112 1013 -> 735. Its
  // samples sat on each new row's first load: a tile's 9 rows of 448 bytes are a new page
  // walked a line of each row at a time, which the hardware prefetchers did not follow. With
  // rows of 224 bytes (144 @56) it measured 1.02 -> 1.07x A's time, and the stride-1 kernel
  // with it 1.06 -> 1.20x (144 @56): those stay without. Zen 4's hardware prefetchers follow the
  // rows (hardware_follows_rows): one build, the hints off / on alternated in one process, min
  // us, 2 threads: 3x3/2 96 @112 140 / 152, 32 @224 94 / 109, 64 @112 52.5 / 54.9; one thread:
  // 96 @112 148.5 / 155.6, 32 @224 175.9 / 207.0, 8 @448 176.6 / 205.8, float64 96 @112 (9.6 MB)
  // 297.7 / 330.2, 16 @224 164.5 / 199.2; 64 @224 (12.8 MB, 2 threads) 226 / 245; 128 @224
  // (26 MB) 1903 / 1991, medians 2521 / 2120.
  const bool prefetch = !hardware_follows_rows() && p.stride_w == 2 && p.w * (int64_t)sizeof(T) >= 256;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t oc = c * M + m;
    a.w = w + oc * p.kh * p.kw;
    a.bias = bias ? bias + oc : nullptr;
    a.column_order = in_place_column_order(p, sizeof(T), x_c, y_channels + m * ldc);
    int current = 0;
    fill_rows(0, rows[current], tile_input_rows(0));
    for (int64_t i0 = 0; i0 < band;) {
      const bool tall = i0 < tall_rows;
      const int64_t tile = tall ? TALL : MR;
      a.rows = (size_t)std::min(tile, band - i0);
      // The next tile's rows, as many as this tile reads (the kernel prefetches that many).
      const int64_t count = std::max(tile_input_rows(i0), tile_input_rows(i0 + tile));
      fill_rows(i0 + tile, rows[1 - current], count);
      a.in_rows = rows[current];
      a.next_rows = prefetch ? rows[1 - current] : nullptr;
      // The whole row in one call: its 9 weights broadcast once, where calls of NR columns
      // measured 2-6% slower (alternating, p10 us, 1 thread: 144 @56 164 -> 160, 32 @112 123
      // -> 116, 3x3/2 96 @112 186 -> 180; 2 threads 144 @56 87 -> 83, 32 @112 65 -> 61).
      a.col0 = -p.pad_left;
      a.y = y_channels + m * ldc + i0 * p.ow;
      a.cols = (size_t)p.ow;
      (tall ? kd.nchw_3x3_in_place_tall : kd.nchw_3x3_in_place)(a);
      i0 += tile;
      current = 1 - current;
    }
  }
}

// Bands of output rows: whole planes when there are enough (image, channel) items, else
// bands of MR-multiples so every thread gets work; and never a plane beyond ~L2/2, or, with a
// column stride, beyond ~L1: alternating A/B, 2 threads, 3x3/2 96 @112 (a 60 KiB plane) in
// 32 KiB bands 143-170 -> 101-130 us, while stride 1 at 112 wide measured 0-30% slower so.
int64_t nchw_band_rows(const DepthwiseConv2dParams& p, int64_t mr, int64_t nr, int64_t items_per_band,
                       size_t element_size, bool in_place) {
  const int want = num_threads() * 4;
  int64_t band = p.oh;
  if (items_per_band < want) band = std::max<int64_t>(mr, round_up(ceil_div(p.oh, ceil_div(want, items_per_band)), mr));
  const int64_t budget = (int64_t)((p.stride_w > 1 ? 32 : 256) * 1024 / element_size);
  while (!in_place && band > mr && NchwPlane(p, band, mr, nr).size() > budget)
    band = std::max(mr, round_up(band / 2, mr));
  return std::min(band, p.oh);
}

template <class T>
void depthwise_nchw(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd, const T* x,
                    const T* w, const T* bias, T* y) {
  const int64_t MR = (int64_t)kd.nchw_mr, NR = (int64_t)kd.nchw_nr;
  const int64_t CM = p.c * p.multiplier, HW = p.h * p.w, P = p.oh * p.ow;
  const bool in_place = nchw_in_place(p, kd);
  const int64_t band = nchw_band_rows(p, MR, NR, p.n * p.c, sizeof(T), in_place);
  const int64_t bands = ceil_div(p.oh, band);
  const NchwPlane plane(p, band, MR, NR);
  const int64_t items = p.n * p.c * bands;
  const int threads = threads_for(2.0 * p.n * CM * P * p.kh * p.kw, items);
  Workspace<T> planes(in_place ? 0 : (size_t)plane.size(), threads);
  std::vector<T> zero_row(in_place ? (size_t)p.w : 0, T(0));

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    T* buf = planes.slice(omp_get_thread_num());
    if (!in_place) plane.zero_padding(buf);
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) {
      const int64_t b = item % bands, c = (item / bands) % p.c, n = item / bands / p.c;
      const int64_t oh0 = b * band, rows = std::min(band, p.oh - oh0);
      const T* x_c = x + (n * p.c + c) * HW;
      T* y_c = y + (n * CM + c * p.multiplier) * P + oh0 * p.ow;
      if (in_place) {
        depthwise_nchw_band_in_place(p, kd, x_c, zero_row.data(), w, bias, c, oh0, rows, y_c, P);
      } else {
        plane.fill(p, kd, x_c, oh0, buf);
        depthwise_nchw_band(p, kd, plane, buf, w, bias, c, rows, y_c, P);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// NHWC

// The packed NHWC weights' row length: C*M and one vector more, a multiple of kWeightPad.
int64_t nhwc_w_stride(int64_t cm) { return round_up(cm, kWeightPad) + kWeightPad; }

// v[0, n) -> dst[0, n + pad) with dst[n + j] = v[j % n]: the cyclic extension the NHWC kernels'
// rotated strips read (DepthwiseNhwcArgs::cyclic).
template <class T>
void extend_cyclically(const T* v, int64_t n, int64_t pad, T* dst) {
  std::memcpy(dst, v, (size_t)n * sizeof(T));
  for (int64_t j = 0; j < pad; ++j) dst[n + j] = v[j % n];
}

// (KH, KW, C, M) weights -> [tap][c*M + m] rows of w_stride elements, each extended
// cyclically.
template <class T>
void pack_depthwise_nhwc_weights(const DepthwiseConv2dParams& p, const T* w, int64_t w_stride, T* dst) {
  const int64_t CM = p.c * p.multiplier;
  for (int64_t t = 0; t < p.kh * p.kw; ++t) extend_cyclically(w + t * CM, CM, w_stride - CM, dst + t * w_stride);
}

// Points rows[kh] at the input rows output row oh reads (null for padding rows). With M > 1
// each row is expanded into `expanded` ([KH][W][C*M]) so channel c*M + m holds input channel c.
template <class T>
void nhwc_rows(const DepthwiseConv2dParams& p, const T* x_image, int64_t oh, T* expanded, const T** rows) {
  const int64_t M = p.multiplier, CM = p.c * M;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
    if (ih < 0 || ih >= p.h) {
      rows[kh] = nullptr;
      continue;
    }
    const T* src = x_image + ih * p.w * p.c;
    if (M == 1) {
      rows[kh] = src;
      continue;
    }
    T* dst = expanded + kh * p.w * CM;
    for (int64_t iw = 0; iw < p.w; ++iw)
      for (int64_t c = 0; c < p.c; ++c)
        for (int64_t m = 0; m < M; ++m) dst[iw * CM + c * M + m] = src[iw * p.c + c];
    rows[kh] = dst;
  }
}

template <class T>
DepthwiseNhwcArgs<T> nhwc_args(const DepthwiseConv2dParams& p, const T* packed_w, int64_t w_stride) {
  DepthwiseNhwcArgs<T> a;
  a.pixel_stride = p.multiplier == 1 ? p.c : p.c * p.multiplier;
  a.in_w = p.w;
  a.pad_left = p.pad_left;
  a.stride = p.stride_w;
  a.dilation = p.dilation_w;
  a.kh = p.kh;
  a.kw = p.kw;
  a.ow_begin = 0;
  a.ow_end = p.ow;
  a.channels = p.c * p.multiplier;
  a.w = packed_w;
  a.w_stride = w_stride;
  a.y_pixel_stride = p.c * p.multiplier;
  a.epilogue = nullptr;
  a.cyclic = false;
  return a;
}

template <class T>
void depthwise_nhwc(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd, const T* x,
                    const T* w, const T* bias, T* y) {
  const int64_t CM = p.c * p.multiplier, w_stride = nhwc_w_stride(CM);
  // Channel chunks (multiples of 64 channels) only when rows alone cannot feed the team.
  const int want = num_threads() * 4;
  int64_t chunk = w_stride;
  if (p.n * p.oh < want) chunk = std::max<int64_t>(64, round_up(ceil_div(CM, ceil_div(want, p.n * p.oh)), 64));
  const int64_t chunks = ceil_div(CM, chunk);
  const int64_t items = p.n * p.oh * chunks;
  const int threads = threads_for(2.0 * p.n * CM * p.oh * p.ow * p.kh * p.kw, items);
  // The packed taps and, for a single chunk (all channels), the bias as one more row: both
  // extended cyclically, in the call's (cached) workspace.
  const bool bias_row = bias && chunks == 1;
  Workspace<T> packed_w((size_t)((p.kh * p.kw + bias_row) * w_stride), 1);
  pack_depthwise_nhwc_weights(p, w, w_stride, packed_w.data());
  if (bias_row) {
    T* packed_bias = packed_w.data() + p.kh * p.kw * w_stride;
    extend_cyclically(bias, CM, w_stride - CM, packed_bias);
    bias = packed_bias;
  }
  Workspace<T> expanded(p.multiplier > 1 ? (size_t)(p.kh * p.w * CM) : 0, threads);
  Workspace<const T*> row_ptrs((size_t)(2 * p.kh), threads);
  Epilogue<T> e = make_epilogue<T>(p);
  e.bias_col = bias;
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num();
    const T** rows = row_ptrs.slice(tid);
    DepthwiseNhwcArgs<T> a = nhwc_args(p, packed_w.data(), w_stride);
    a.cyclic = chunks == 1;
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) {
      const int64_t ch = item % chunks, oh = (item / chunks) % p.oh, n = item / chunks / p.oh;
      const int64_t c0 = ch * chunk;
      nhwc_rows(p, x + n * p.h * p.w * p.c, oh, expanded.slice(tid), rows);
      // The second half of the thread's row pointers: the same rows at the chunk's first channel.
      const T** chunk_rows = rows + p.kh;
      for (int64_t kh = 0; kh < p.kh; ++kh) chunk_rows[kh] = rows[kh] ? rows[kh] + c0 : nullptr;
      Epilogue<T> ec = e;
      if (bias) ec.bias_col = bias + c0;
      a.rows = chunk_rows;
      a.w = packed_w.data() + c0;
      a.channels = std::min(chunk, CM - c0);
      a.y = y + ((n * p.oh + oh) * p.ow) * CM + c0;
      a.epilogue = epilogue_needed ? &ec : nullptr;
      kd.nhwc(a);
    }
  });
}

// NCHW planes at most this wide run on the NHWC kernels (vector ISAs): a row of 7 or 14 columns
// is too little work for the NCHW kernels' per-plane, per-row and edge costs, where the NHWC
// vectors run along the channels. AVX2 on Zen 1, 2 threads, us, NCHW kernels -> reordered: 3x3
// 960 @7 145 -> 101 (89 once transpose_matrices split its rows), 576 @14 182 -> 154, 3x3/2 960
// @14 256 -> 153, 64 @7 19.7 -> 11.4; at 28 columns the reorders cost more than they save (192
// @28 170 -> 182, 3x3/2 576 @28 262 -> 271).
constexpr int64_t kNhwcMaxWidth = 14;

// NCHW depthwise on the NHWC kernels: the input to NHWC, the (C*M, 1, KH, KW) weights to
// (KH, KW, C, M), the result back to NCHW.
template <class T>
void depthwise_nchw_via_nhwc(const DepthwiseConv2dParams& p, const DepthwiseKernels<T>& kd, const T* x,
                             const T* w, const T* bias, T* y) {
  const ConvKernels<T>& kn = kernels_for<T>(active_kernels());
  const int64_t CM = p.c * p.multiplier, taps = p.kh * p.kw, HW = p.h * p.w, P = p.oh * p.ow;
  Workspace<T> x_nhwc((size_t)(p.n * HW * p.c), 1), y_nhwc((size_t)(p.n * P * CM), 1), w_nhwc((size_t)(taps * CM), 1);
  transpose_blocks(kn, w, taps, CM, taps, w_nhwc.data(), CM);  // (C*M, taps) -> (taps, C*M)
  const int threads = threads_for(2.0 * p.n * CM * P * taps, p.n * p.c);
  parallel_region(threads, [&] { transpose_matrices(kn, x, p.n, p.c, HW, x_nhwc.data()); });
  DepthwiseConv2dParams q = p;
  q.layout = Layout::NHWC;
  depthwise_nhwc(q, kd, x_nhwc.data(), w_nhwc.data(), bias, y_nhwc.data());
  parallel_region(threads, [&] { transpose_matrices(kn, y_nhwc.data(), p.n, P, CM, y); });
}

template <class T>
void run_depthwise(const DepthwiseConv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  check(p);
  const DepthwiseKernels<T>& kd = depthwise_kernels_for<T>(active_kernels());
  if (p.layout == Layout::NCHW && p.w <= kNhwcMaxWidth && kd.nchw_in_place_nr > 1)
    depthwise_nchw_via_nhwc(p, kd, x, w, bias, y);
  else if (p.layout == Layout::NCHW) depthwise_nchw(p, kd, x, w, bias, y);
  else depthwise_nhwc(p, kd, x, w, bias, y);
}

// ---------------------------------------------------------------------------------------------
// Separable: depthwise band -> per-thread scratch -> pointwise microkernel.

template <class T>
struct SeparableBlocking {
  static constexpr int64_t band_bytes = 256 * 1024;  // depthwise band scratch, about L2/8
};

// Output rows per band, a multiple of row_multiple: the band's depthwise result (C*M x band
// pixels) within band_bytes unless one row group alone is larger, and, among those, the band
// that gives the busiest thread the least work (rows, plus the halo of input rows each band
// re-reads: about a quarter of a row's cost each).
int64_t separable_band_rows(const SeparableConv2dParams& sp, int64_t row_multiple, size_t element_size,
                            int64_t band_bytes) {
  const DepthwiseConv2dParams& p = sp.depthwise;
  const int64_t CM = p.c * p.multiplier, threads = num_threads();
  const int64_t halo = (p.kh - 1) * p.dilation_h;
  const int64_t most = std::max(row_multiple, band_bytes / (int64_t)element_size / (CM * p.ow) / row_multiple * row_multiple);
  int64_t best = row_multiple;
  double best_cost = 0;
  for (int64_t band = row_multiple; band <= round_up(std::min(most, p.oh), row_multiple); band += row_multiple) {
    const int64_t items = p.n * ceil_div(p.oh, band);
    const double cost = (double)ceil_div(items, threads) * ((double)std::min(band, p.oh) + 0.25 * (double)halo);
    if (band == row_multiple || cost < best_cost * 0.999) best = band, best_cost = cost;
  }
  return std::min(best, p.oh);
}

template <class T>
struct SeparablePlan {
  int64_t mr, nr;  // the pointwise tile: output channels x pixels (NCHW), pixels x channels (NHWC)
  int64_t band, bands, items, band_pixels_max, CM, P;
  std::vector<int64_t> band_start;  // bands + 1 entries: band b is output rows [start[b], start[b + 1])
  int64_t mid_size;  // elements of the per-thread band scratch
  int threads;
};

// Bands of `band` output rows; when one image's bands do not divide among the threads, the
// last, partial round of bands is cut into one piece per thread, so that every thread ends
// with the same number of rows: 56 rows in bands of 8 on 2 threads run as 3 x 8 + 4 each, not
// 4 x 8 on one thread while the other waits after 3 x 8 (3x3 128 @56 + 1x1 128 NCHW, 2 threads,
// alternating runs: 359 -> 333 us).
inline std::vector<int64_t> band_starts(int64_t rows, int64_t band, int64_t images, int threads) {
  const int64_t bands = ceil_div(rows, band), left = bands % threads;
  std::vector<int64_t> start;
  for (int64_t b = 0; b <= bands; ++b) start.push_back(std::min(rows, b * band));
  if (images == 1 && bands > threads && left > 0) {
    const int64_t first = (bands - left) * band, piece = ceil_div(rows - first, (int64_t)threads);
    start.resize((size_t)(bands - left));
    for (int64_t r = first; r < rows; r += piece) start.push_back(r);
    start.push_back(rows);
  }
  return start;
}

template <class T>
SeparablePlan<T> separable_plan(const SeparableConv2dParams& sp, const ConvKernels<T>& kn,
                                const DepthwiseKernels<T>& kd) {
  const DepthwiseConv2dParams& p = sp.depthwise;
  SeparablePlan<T> plan;
  plan.CM = p.c * p.multiplier;
  plan.P = p.oh * p.ow;
  const bool nchw = p.layout == Layout::NCHW;
  if (nchw) {
    const auto& t = pick_tile(kn.gemm, sp.o, plan.P);
    plan.mr = (int64_t)t.mr;
    plan.nr = (int64_t)t.nr;
  } else {
    const auto& t = pick_tile(kn.direct_nhwc, plan.P, sp.o);
    plan.mr = (int64_t)t.mr;
    plan.nr = (int64_t)t.nr;
  }
  plan.band = separable_band_rows(sp, nchw ? (int64_t)kd.nchw_mr : 1, sizeof(T), SeparableBlocking<T>::band_bytes);
  const double flops = 2.0 * p.n * plan.P * plan.CM * (p.kh * p.kw + sp.o);
  plan.threads = threads_for(flops, p.n * ceil_div(p.oh, plan.band));
  plan.band_start = band_starts(p.oh, plan.band, p.n, plan.threads);
  plan.bands = (int64_t)plan.band_start.size() - 1;
  plan.items = p.n * plan.bands;
  plan.band_pixels_max = plan.band * p.ow;
  // NCHW: the band [C*M][pixels] plus the NR columns the last tile's full-width loads may read.
  // NHWC: [pixel][C*M] plus MR pixels that the last tile's full-height loads may read.
  plan.mid_size = nchw ? plan.CM * plan.band_pixels_max + plan.nr : (plan.band_pixels_max + plan.mr) * plan.CM;
  return plan;
}

// The direct NHWC tile shape the plan chose.
template <class T>
const TiledRows<DirectNhwcUkernel<T>>& tile_with(const TiledRows<DirectNhwcUkernel<T>> (&shapes)[kTileShapes],
                                                 int64_t mr, int64_t nr) {
  for (const auto& t : shapes)
    if ((int64_t)t.mr == mr && (int64_t)t.nr == nr) return t;
  return shapes[0];
}

// NCHW: Y[O x pixels] = Wp * Mid over the band's pixels (whole output rows, so a GEMM tile may
// span rows and narrow images waste no columns). The GEMM microkernel reads both operands in
// place: the pointwise weight as A, the band as B (row stride = band pixels).
template <class T>
void separable_nchw(const SeparableConv2dParams& sp, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                    const T* x, const T* dw, const T* pw, const T* bias, T* y) {
  const DepthwiseConv2dParams& p = sp.depthwise;
  const SeparablePlan<T> plan = separable_plan(sp, kn, kd);
  const auto gemm = pick_tile(kn.gemm, sp.o, plan.P).run;
  const int64_t MR = plan.mr, NR = plan.nr, O = sp.o;
  const int64_t CM = plan.CM, P = plan.P, HW = p.h * p.w, mpanels = ceil_div(O, MR);
  const int64_t KC = reduction_block<T>(CM);
  const bool in_place = nchw_in_place(p, kd);
  const NchwPlane plane(p, plan.band, (int64_t)kd.nchw_mr, (int64_t)kd.nchw_nr);

  Workspace<T> planes(in_place ? 0 : (size_t)plane.size(), plan.threads);
  std::vector<T> zero_row(in_place ? (size_t)p.w : 0, T(0));
  Workspace<T> mids((size_t)plan.mid_size, plan.threads);
  // The depthwise step runs without bias or activation: those follow the pointwise step.
  DepthwiseConv2dParams dp = p;
  dp.activation = Activation::None;
  Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(plan.threads, [&] {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num();
    T* plane_buf = planes.slice(tid);
    if (!in_place) plane.zero_padding(plane_buf);
    T* mid = mids.slice(tid);
    for_dynamic(plan.items, [&](int64_t item) {
      const int64_t b = item % plan.bands, n = item / plan.bands;
      const int64_t oh0 = plan.band_start[(size_t)b], rows = plan.band_start[(size_t)b + 1] - oh0, bp = rows * p.ow;
      for (int64_t c = 0; c < p.c; ++c) {
        const T* x_c = x + (n * p.c + c) * HW;
        T* mid_c = mid + c * p.multiplier * bp;
        if (in_place) {
          depthwise_nchw_band_in_place(dp, kd, x_c, zero_row.data(), dw, (const T*)nullptr, c, oh0, rows, mid_c, bp);
        } else {
          plane.fill(dp, kd, x_c, oh0, plane_buf);
          depthwise_nchw_band(dp, kd, plane, plane_buf, dw, (const T*)nullptr, c, rows, mid_c, bp);
        }
      }
      for (int64_t k0 = 0; k0 < CM; k0 += KC) {
        const int64_t kc = std::min(KC, CM - k0);
        const bool last = k0 + kc == CM;
        for (int64_t j0 = 0; j0 < bp; j0 += NR) {
          const T* bpanel = mid + k0 * bp + j0;  // the band in place: row stride bp
          for (int64_t mp = 0; mp < mpanels; ++mp) {
            Epilogue<T> e = base;
            e.bias_row = bias ? bias + mp * MR : nullptr;
            // The pointwise weight (O, CM) is the A operand in place.
            gemm((size_t)kc, pw + mp * MR * CM + k0, (size_t)CM, bpanel, (size_t)bp,
                 y + (n * O + mp * MR) * P + oh0 * p.ow + j0, (size_t)P, (size_t)std::min(MR, O - mp * MR),
                 (size_t)std::min(NR, bp - j0), k0 > 0, last && epilogue_needed ? &e : nullptr);
          }
        }
      }
    });
  });
}

template <class T>
void separable_nhwc(const SeparableConv2dParams& sp, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                    const T* x, const T* dw, const T* pw, const T* bias, T* y) {
  const DepthwiseConv2dParams& p = sp.depthwise;
  const SeparablePlan<T> plan = separable_plan(sp, kn, kd);
  const auto pointwise = tile_with(kn.direct_nhwc, plan.mr, plan.nr).run;
  const int64_t MR = plan.mr, NR = plan.nr, O = sp.o;
  const int64_t CM = plan.CM, npanels = ceil_div(O, NR);
  const int64_t w_stride = nhwc_w_stride(CM);

  Workspace<T> packed_dw((size_t)(p.kh * p.kw * w_stride), 1);
  pack_depthwise_nhwc_weights(p, dw, w_stride, packed_dw.data());
  Workspace<T> packed_pw((size_t)(npanels * NR * CM), 1);
  Workspace<T> mids((size_t)plan.mid_size, plan.threads);
  Workspace<T> expanded(p.multiplier > 1 ? (size_t)(p.kh * p.w * CM) : 0, plan.threads);
  Workspace<const T*> row_ptrs((size_t)p.kh, plan.threads);
  Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(plan.threads, [&] {
    FlushDenormals ftz;
#pragma omp single
    pack_column_panels(pw, CM, O, O, NR, packed_pw.data());
    const int tid = omp_get_thread_num();
    T* mid = mids.slice(tid);
    const T** rows = row_ptrs.slice(tid);
    DepthwiseNhwcArgs<T> a = nhwc_args(p, packed_dw.data(), w_stride);
    a.rows = rows;
    a.y_pixel_stride = CM;
    a.cyclic = true;  // no epilogue
    DirectNhwcArgs<T> g;
    g.panel_kh = 0;
    g.channels = CM;
    g.kh = 1;
    g.kw = 1;
    g.stride = 1;
    g.dilation = 1;
    g.ldw = NR;
    g.ldy = O;
    for_dynamic(plan.items, [&](int64_t item) {
      const int64_t b = item % plan.bands, n = item / plan.bands;
      const int64_t oh0 = plan.band_start[(size_t)b], nrows = plan.band_start[(size_t)b + 1] - oh0, bp = nrows * p.ow;
      for (int64_t r = 0; r < nrows; ++r) {
        nhwc_rows(p, x + n * p.h * p.w * p.c, oh0 + r, expanded.slice(tid), rows);
        a.y = mid + r * p.ow * CM;
        kd.nhwc(a);
      }
      // The last tile's full-height loads read up to MR - 1 pixels past the band: defined zeros.
      std::fill(mid + bp * CM, mid + (bp + MR) * CM, T(0));
      T* y_band = y + (n * plan.P + oh0 * p.ow) * O;
      for (int64_t i0 = 0; i0 < bp; i0 += MR) {
        g.panel = mid + i0 * CM;
        g.mr = (size_t)std::min(MR, bp - i0);
        for (int64_t np = 0; np < npanels; ++np) {
          Epilogue<T> e = base;
          e.bias_col = bias ? bias + np * NR : nullptr;
          g.epilogue = epilogue_needed ? &e : nullptr;
          g.w = packed_pw.data() + np * CM * NR;
          g.y = y_band + i0 * O + np * NR;
          g.nr = (size_t)std::min(NR, O - np * NR);
          pointwise(g);
        }
      }
    });
  });
}

template <class T>
void run_separable(const SeparableConv2dParams& sp, const T* x, const T* dw, const T* pw, const T* bias, T* y) {
  check(sp.depthwise);
  if (sp.o < 1) throw std::invalid_argument("separable_conv2d: pointwise output channels must be >= 1");
  const KernelTable& table = active_kernels();
  const ConvKernels<T>& kn = kernels_for<T>(table);
  const DepthwiseKernels<T>& kd = depthwise_kernels_for<T>(table);
  if (sp.depthwise.layout == Layout::NCHW) separable_nchw(sp, kn, kd, x, dw, pw, bias, y);
  else separable_nhwc(sp, kn, kd, x, dw, pw, bias, y);
}

template <class T>
int64_t scratch_bytes(const SeparableConv2dParams& sp) {
  const KernelTable& table = active_kernels();
  const SeparablePlan<T> plan = separable_plan(sp, kernels_for<T>(table), depthwise_kernels_for<T>(table));
  return (int64_t)sizeof(T) * plan.threads * plan.mid_size;  // each thread's depthwise band
}

}  // namespace

void depthwise_conv2d(const DepthwiseConv2dParams& p, const float* x, const float* w, const float* b, float* y) {
  run_depthwise(p, x, w, b, y);
}
void depthwise_conv2d(const DepthwiseConv2dParams& p, const double* x, const double* w, const double* b,
                      double* y) {
  run_depthwise(p, x, w, b, y);
}

void separable_conv2d(const SeparableConv2dParams& p, const float* x, const float* dw, const float* pw,
                      const float* b, float* y) {
  run_separable(p, x, dw, pw, b, y);
}
void separable_conv2d(const SeparableConv2dParams& p, const double* x, const double* dw, const double* pw,
                      const double* b, double* y) {
  run_separable(p, x, dw, pw, b, y);
}

int64_t separable_conv2d_scratch_bytes(const SeparableConv2dParams& p, int element_size) {
  check(p.depthwise);
  return element_size == 8 ? scratch_bytes<double>(p) : scratch_bytes<float>(p);
}

}  // namespace pycnn
