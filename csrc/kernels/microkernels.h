// Microkernel contracts and the dispatch table that holds them.
//
// Microkernels do arithmetic only: no allocation, no threads, no Python. Each ISA directory
// (scalar/, avx2/, avx512/) compiles the same generic templates (generic/*.h) with its own
// flags inside its own namespace and exports one `KernelTable`; core/dispatch.cpp picks the
// table at run time. Ops never call an ISA's symbols directly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pycnn {

// What happens to a finished output tile: y = act(y + bias). Exactly one of bias_row (one value
// per tile row) and bias_col (one per tile column) may be set, or neither.
template <class T>
struct Epilogue {
  const T* bias_row = nullptr;
  const T* bias_col = nullptr;
  int activation = 0;  // pycnn::Activation
  T param = 0;         // leaky_relu slope / elu alpha
};

// GEMM microkernel: C[mr x nr] (+)= A * B over k.
//   a: row-major with row stride lda: a[i*lda + kk] for i < mr (mr >= 1). Rows >= mr are never read, so
//      A can be a weight matrix in place (no packing) or a packed tile.
//   b: k x NR panel with row stride ldb (b[kk*ldb + j], j < NR): a packed micropanel
//      (ldb = NR), a weight matrix in place, or NCHW input planes in place (a 1x1 kernel: ldb =
//      H*W). All NR columns must be readable; columns >= nr only feed accumulators that are
//      never stored.
//   c: row-major with row stride ldc; only the mr x nr corner is read or written.
//   accumulate: add to C instead of overwriting it. epilogue (may be null): applied after the
//   sum, only on the last k block. k may be 0 (then C = 0 or C unchanged, then the epilogue).
//   No alignment is required of any pointer.
template <class T>
using GemmUkernel = void (*)(size_t k, const T* a, size_t lda, const T* b, size_t ldb, T* c, size_t ldc,
                             size_t mr, size_t nr, bool accumulate, const Epilogue<T>* epilogue);

// Indirect GEMM microkernel (im2col read in place): C[mr x nr] (+)= sum over s < segments of
// A_s * B_s, each segment k long.
//   a: segments*MR row pointers: A_s's row i is a[s*MR + i] + a_offset, k elements from there
//      (an input pixel's channel run for one tap, or a zero run where the tap is padding). All MR
//      pointers of a segment must be readable; rows >= mr (repeating a real row) feed
//      accumulators that are never stored.
//   b: the segments' B blocks one after another, k rows each, row stride ldb (as GemmUkernel).
//   c, mr, nr, accumulate, epilogue: as GemmUkernel.
template <class T>
using IgemmUkernel = void (*)(size_t segments, size_t k, const T* const* a, size_t a_offset, const T* b, size_t ldb,
                              T* c, size_t ldc, size_t mr, size_t nr, bool accumulate, const Epilogue<T>* epilogue);

// Direct convolution, NCHW: one output row segment, MR output channels x NR output columns.
//   panel: the zero-padded input rows this output row reads, split by stride phase: for output
//          column j, tap t (of KH*KW) and channel c the input is panel[tap[t] + c*panel_c + j].
//          Readable for every j < NR (the op pads the panel so full vector loads stay inside).
//   tap: KH*KW offsets (kh*panel_kh + phase*phase_width + (kw*dilation)/stride).
//   w: OIHW rows of this channel block, row stride ldw: w[i*ldw + c*KH*KW + t]. All MR rows
//      readable (the op copies a last, partial block); rows >= mr only feed accumulators that
//      are never stored. (The MR-4 and MR-8 row kernels of TiledBlocks have MR rows of their own.)
//   y: y[i*ldy + j] for i < mr, j < nr. Bias per row (channel) in the epilogue.
template <class T>
struct DirectNchwArgs {
  const T* panel;
  int64_t panel_c;
  const int64_t* tap;
  int64_t taps, channels;
  const T* w;
  int64_t ldw;
  T* y;
  int64_t ldy;
  size_t mr, nr;
  const Epilogue<T>* epilogue;
};
template <class T>
using DirectNchwUkernel = void (*)(const DirectNchwArgs<T>& args);

// Direct convolution, NHWC: one output row segment, MR output pixels x NR output channels.
//   panel: the zero-padded input rows this output row reads: element (kh, column q, c) at
//          panel[kh*panel_kh + q*channels + c]; output pixel i, tap kw reads column
//          i*stride + kw*dilation.
//   w: weights for this channel block with k-row stride ldw: w[((kh*KW + kw)*C + c)*ldw + j]
//      (HWIO in place, ldw = O, or a packed panel, ldw = NR: a tail panel, or conv_transpose2d's
//      per-phase panels, whose kh x kw taps are the phase's, flipped). All NR columns readable;
//      columns >= nr only feed accumulators that are never stored.
//   y: y[i*ldy + j] for i < mr, j < nr. Bias per column (channel) in the epilogue.
template <class T>
struct DirectNhwcArgs {
  const T* panel;
  int64_t panel_kh;
  int64_t channels, kh, kw, stride, dilation;
  const T* w;
  int64_t ldw;
  T* y;
  int64_t ldy;
  size_t mr, nr;
  const Epilogue<T>* epilogue;
};
template <class T>
using DirectNhwcUkernel = void (*)(const DirectNhwcArgs<T>& args);

// A microkernel with the register tile it computes: MR rows x NR columns.
template <class Fn>
struct Tiled {
  size_t mr, nr;
  Fn run;
};

// The NHWC direct kernels also come one to four output pixels shorter (MR-1 ... MR-4 rows, at
// least 1), so that an output row whose width MR does not divide is cut into balanced tiles
// instead of ending in a mostly idle one (56 pixels: 6x6 + 4x5, not 9x6 + a 6-row tile for 2;
// 28 at MR = 12: 10 + 9 + 9, not 12 + 12 + a 12-row tile for 4, 3x3 256->256 @28 in 32
// groups of 8, one thread, 1650 -> 1322-1426 us; see RowTiles in ops/tiles.h).
constexpr size_t kRowShortfalls = 4;

template <class Fn>
struct TiledRows {
  size_t mr, nr;
  Fn run;                       // MR rows (or fewer: mr <= MR)
  Fn run_less[kRowShortfalls];  // exactly MR-1 ... MR-4 rows
  bool has_exact(size_t rows) const { return rows < mr && rows + kRowShortfalls >= mr; }
  Fn for_rows(size_t rows) const { return has_exact(rows) ? run_less[mr - rows - 1] : run; }
  // The output pixels (input columns) the for_rows(rows) kernel reads: `run` reads all MR.
  size_t rows_read(size_t rows) const { return has_exact(rows) ? rows : mr; }
};

// The NCHW direct kernels also come 4 and 8 output channels shorter (MR-4 and MR-8 rows, when
// positive), for a last channel block of that size: channel counts are mostly multiples of 4 or
// 8, so the last of 32 channels in 12-row blocks is 8 rows of work, not 12 with 4 of zeros.
template <class Fn>
struct TiledBlocks {
  size_t mr, nr;
  Fn run;           // MR rows (or fewer: mr <= MR, reading all MR weight rows)
  Fn run_fewer[2];  // exactly MR-4 and MR-8 rows (null where not positive)
  // The kernel computing exactly `rows` rows, or null if only `run` (all MR) can.
  Fn exact(size_t rows) const {
    return rows == mr ? run : rows + 4 == mr ? run_fewer[0] : rows + 8 == mr ? run_fewer[1] : nullptr;
  }
};

// Each family comes in kTileShapes register-tile shapes so an op can pick the one that wastes
// the least work on its M and N (see pick_tile in ops/): three that fill the register file, and
// one a single vector wide for N of one vector (16 output channels on AVX-512, where a two-vector
// tile would compute half zeros).
constexpr int kTileShapes = 4;

// Transpose of one block, in registers: dst[j*ldd + i] = src[i*lds + j] for i < rows,
// j < cols, both at most the kernel's block size (the vector width W, at most 16). Reads and writes
// nothing else (masked at the edges). Used by the NCHW <-> NHWC reorders of the conv ops.
template <class T>
using TransposeUkernel = void (*)(const T* src, size_t lds, T* dst, size_t ldd, size_t rows, size_t cols);

// Winograd F(2x2, 3x3) transforms (generic/winograd.h), NHWC: vectors run over channels; plane
// xi = 4*i + j of a tile is element (i, j) of its 4x4 transformed tile.
//   Input: one tile's 4x4 input patch -> its 16 planes. rows: the patch's 4 input rows (each at
//     pixel 0, channel 0), null for a padding row; col0: its first column, which may be negative
//     or the patch may reach past in_w (those columns are padding, read as zeros); pixel_stride:
//     elements between pixels. Plane xi goes to v[xi*ldv + c], c < channels.
//   Output: a tile's 16 GEMM planes m[xi*ldm + j], j < nr -> its 2x2 outputs, to y[2*i + j] + j'
//     for output pixel (i, j) (row-major), skipping null pointers (pixels past the output's
//     edge), with the epilogue's bias per column (channel) and activation. Returns false when a
//     value before the epilogue is not finite (the op then recomputes: see conv_winograd).
//   Weight: G g G^T for n output channels of one input channel: tap t = 3*kh + kw of channel j
//     at g[t*tap_stride + j], plane xi to u[xi*ldu + j], j < n.
//   Output_3x3: as Output, for F(3x3, 2x2) (the same input transform; see generic/winograd.h):
//     a tile's 3x3 outputs, pixel (i, j) to y[3*i + j] + j'.
// F(2x2, 3x3) at stride 2 (generic/winograd.h): a tile's 25 products, point (i, j) of its 5x5
// transform, lie in slots winograd_strided_slot(i, j), grouped by the plane of U they take,
// (min(i, 3), min(j, 3)) in row-major order, so the GEMMs of one plane run back to back.
//   Strided_input: as Input for the 5x5 patch (rows: its 5 input rows), slot q to v[q*ldv + c].
//   Strided_output: as Output from the 25 slots m[q*ldm + j].
//   Strided_weight: as Weight, its 16 planes.
template <class T>
struct WinogradKernels {
  void (*input)(const T* const* rows, int64_t col0, int64_t in_w, int64_t pixel_stride, int64_t channels, T* v,
                size_t ldv);
  bool (*output)(const T* m, size_t ldm, T* const* y, size_t nr, const Epilogue<T>* epilogue);
  void (*weight)(const T* g, int64_t tap_stride, size_t n, T* u, size_t ldu);
  bool (*output_3x3)(const T* m, size_t ldm, T* const* y, size_t nr, const Epilogue<T>* epilogue);
  void (*strided_input)(const T* const* rows, int64_t col0, int64_t in_w, int64_t pixel_stride, int64_t channels,
                        T* v, size_t ldv);
  bool (*strided_output)(const T* m, size_t ldm, T* const* y, size_t nr, const Epilogue<T>* epilogue);
  void (*strided_weight)(const T* g, int64_t tap_stride, size_t n, T* u, size_t ldu);
};

// Points (i, j) of the stride-2 transform that take U's plane (a, b): i = a (a < 3) or 3, 4.
constexpr int winograd_strided_points(int a) { return a == 3 ? 2 : 1; }
// The first of plane xi's slots; the plane has points(xi / 4) * points(xi % 4) of them.
constexpr int winograd_strided_first_slot(int xi) {
  int slot = 0;
  for (int q = 0; q < xi; ++q) slot += winograd_strided_points(q / 4) * winograd_strided_points(q % 4);
  return slot;
}
constexpr int winograd_strided_slot(int i, int j) {
  const int a = i < 3 ? i : 3, b = j < 3 ? j : 3;
  return winograd_strided_first_slot(4 * a + b) + (i - a) * winograd_strided_points(b) + (j - b);
}
static_assert(winograd_strided_slot(4, 4) == 24 && winograd_strided_first_slot(16) == 25);

template <class T>
struct ConvKernels {
  Tiled<GemmUkernel<T>> gemm[kTileShapes];
  Tiled<IgemmUkernel<T>> igemm[kTileShapes];  // the same shapes as gemm
  TiledBlocks<DirectNchwUkernel<T>> direct_nchw[kTileShapes];
  TiledRows<DirectNhwcUkernel<T>> direct_nhwc[kTileShapes];
  size_t transpose_block;
  TransposeUkernel<T> transpose;
  WinogradKernels<T> winograd;
};

// A register-only FMA loop for measuring the peak: `iterations` rounds of
// `flops_per_iteration` float32 flops; returns a value derived from the result.
struct PeakKernel {
  size_t flops_per_iteration;
  float (*run)(size_t iterations);
};

// ---------------------------------------------------------------------------------------------
// Pooling microkernels. Each comes in a max and an avg (sum) flavour.
//   max: NaN propagates (a NaN anywhere in a window gives NaN), -inf is the identity (an empty
//        window gives -inf), and values are only selected, never computed, so denormals pass
//        through unchanged (callers must not set DAZ around them).
//   avg: plain sums in T, multiplied by a reciprocal divisor supplied by the caller.
// None of them reads an element it does not need, so they are safe on caller-owned arrays.

// Reduction across rows: dst[i] = op over r < rows of src[r*row_stride + i], for i < n, then
// (avg only) times `scale`. rows == 0 gives the identity (-inf / 0). dst must not overlap src.
// Uses: the vertical pass of NCHW pooling, NCHW depth pooling (rows = channel planes) and
// NHWC global pooling (rows = pixels, n = channels).
template <class T>
using PoolRowsUkernel = void (*)(const T* src, int64_t row_stride, int64_t rows, int64_t n, T scale,
                                 T* dst);

// 1-D windows: y[j] = op over t < taps of src[j*stride + t*dilation], for j < n, then (avg only)
// times scale[j] when scale is not null. Vectorised over j; stride 2 deinterleaves two vector
// loads, larger strides gather. Uses: the horizontal pass of separable NCHW pooling (src = one
// vertically reduced, padded row) and NHWC depth pooling (the tensor is one row, taps = stride = k).
template <class T>
using PoolWindowUkernel = void (*)(const T* src, int64_t n, int64_t taps, int64_t stride,
                                   int64_t dilation, const T* scale, T* y);

// NHWC pooling of one output row segment, vectorised over channels.
//   x: column 0 of the first window row inside the input; row r of the window is
//      x + r*row_stride, r < rows (only the window rows inside the input; rows may be 0).
//   Output pixel j < n reads input columns iw = (col0 + j)*stride - pad_left + t*dilation,
//   t < kw, of those rows; columns outside [0, width) are padding and never count.
//   y[j*channels + c] for c < channels; scale[j] multiplies pixel j (avg; null: no scaling).
template <class T>
struct PoolNhwcArgs {
  const T* x;
  int64_t row_stride, rows;
  int64_t width, channels;
  int64_t col0, n;
  int64_t kw, stride, dilation, pad_left;
  const T* scale;
  T* y;
};
template <class T>
using PoolNhwcUkernel = void (*)(const PoolNhwcArgs<T>& args);

// NCHW pooling of whole output rows, vectorised over output columns, with the vertical and
// horizontal reductions fused (no row buffer): for each block of W output columns the kernel
// reduces the window rows over the input columns the block reads -- split into even/odd
// columns at stride 2 -- and forms each tap by shifting that vector against the next block's.
//   For output row i < out_rows: window rows x + i*x_step + r*row_stride, r < rows (only rows
//   inside the input; rows may be 0). Output column j < n reads input columns
//   j*stride - pad_left + t*dilation, t < kw; columns outside [0, width) are padding.
//   y + i*y_step receives the n outputs; scale + i*y_step (avg; null: no scaling) multiplies them.
//   Preconditions (the op checks them with fused_nchw_fits): stride is 1 or 2 and the last tap's
//   shift, (kw - 1)*dilation / stride, is below the vector width W.
//   Reads only input elements inside the rows' [0, width) (masked loads at the edges); with
//   `prefetch` (see pool2d_nchw_fused), before each output row it prefetches (hints only, at any
//   address) the x_step elements that end with the last window row of the output row about
//   kPoolPrefetchBytes of input further on.
template <class T>
struct PoolNchwArgs {
  const T* x;
  int64_t row_stride, rows, x_step;
  int64_t width;
  int64_t n, kw, stride, dilation, pad_left;
  int64_t out_rows, y_step;
  const T* scale;
  T* y;
  bool prefetch;
};
template <class T>
using PoolNchwUkernel = void (*)(const PoolNchwArgs<T>& args);

// Whole-plane reduction: y[p] = op over src[p*size + i], i < size, for p < planes, then (avg
// only) times `scale`. Uses: NCHW global pooling.
template <class T>
using PoolPlanesUkernel = void (*)(const T* src, int64_t planes, int64_t size, T scale, T* y);

template <class T>
struct PoolKernels {
  size_t vector_width;  // W of the ISA for T: the fused NCHW kernel's shift limit
  PoolRowsUkernel<T> max_rows, avg_rows;
  PoolWindowUkernel<T> max_window, avg_window;
  PoolNchwUkernel<T> max_nchw, avg_nchw;
  PoolNhwcUkernel<T> max_nhwc, avg_nhwc;
  PoolPlanesUkernel<T> max_planes, avg_planes;
};

// Whether the fused NCHW kernel accepts a window along the width (see PoolNchwArgs).
template <class T>
inline bool fused_nchw_fits(const PoolKernels<T>& k, int64_t kw, int64_t stride, int64_t dilation) {
  return (stride == 1 || stride == 2) && (kw - 1) * dilation / stride < (int64_t)k.vector_width;
}

// The order in which the in-place NCHW depthwise kernel steps through a tile's vectors of
// columns; every order computes the same sums, so gives the same bits (ops/depthwise.cpp,
// in_place_column_order, says which the op takes and why).
//   kLeftToRight: vectors 0, 1, 2, ...
//   kRightToLeft: the last vector first.
//   kInterleaved: K passes, pass p taking vectors p, p + K, p + 2K, ..., where K vectors span
//                 128 bytes (two of AVX-512, four of AVX2), so consecutive vectors are 128 bytes
//                 apart.
enum ColumnOrder : int { kLeftToRight = 0, kRightToLeft = 1, kInterleaved = 2 };

// Depthwise convolution, NCHW: MR output rows x NR output columns of one output channel.
//   plane: the zero-padded input rows of the channel, split by column stride phase: padded row
//          r, column q*stride_w + phase is at plane[r*plane_row + phase*phase_width + q]. Row 0
//          is the first row output row 0 of the tile reads; output row i, tap kh reads padded
//          row i*stride_h + kh*dilation_h. Readable for all MR rows and all NR columns of every
//          tap (the op pads rows and columns so that full tiles never leave it).
//   tap: tap[kw] = phase*phase_width + (kw*dilation_w)/stride_w, as for DirectNchwArgs.
//   w: the KH*KW taps of this output channel, w[kh*KW + kw].
//   y: y[i*ldy + j] for i < rows (<= MR), j < cols (<= NR); y = act(sum + *bias), bias may be null.
template <class T>
struct DepthwiseNchwArgs {
  const T* plane;
  int64_t plane_row;
  const int64_t* tap;
  int64_t kh, kw, stride_h, dilation_h;
  const T* w;
  T* y;
  int64_t ldy;
  size_t rows, cols;
  const T* bias;
  int activation;  // pycnn::Activation
  T activation_param;
  // The in-place 3x3 kernel (DepthwiseKernels::nchw_3x3_in_place: dilation 1, strides 1 or 2)
  // reads the input rows themselves instead of plane, plane_row and tap:
  //   in_rows: (MR-1)*stride_h + 3 rows of the channel; output row i, tap kh reads
  //            in_rows[i*stride_h + kh], a row of in_w zeros for a padding row.
  //   in_w: the row length; only columns [0, in_w) are read, any others add w*0.
  //   col0: the column tap kw = 0 of the tile's first output column reads (negative in left
  //         padding); output column j, tap kw reads col0 + j*stride_w + kw.
  //   cols: any number (the kernel steps a vector of columns at a time), not only up to NR.
  //   next_rows: null, or (used at stride_w 2 only) as many rows as in_rows of the next
  //            tile, which the kernel prefetches a vector's columns at a time as it goes.
  //   shift_taps: where masked loads are cheap (AVX-512), make column taps 0 and 2 at stride_w 1
  //            by shifting tap 1 (zmm_shuffles_cheap) rather than loading them.
  //   column_order: the order of the vectors of columns (ColumnOrder).
  // The row-streamed kernel (DepthwiseKernels::nchw_3x3_rows, stride_h = stride_w = S) reads the
  // plane itself:
  //   plane: the channel's in_h x in_w input, rows in_w apart; output row i, tap kh reads row
  //          ih0 + S*i + kh, or zero_row (in_w zeros) where that is outside [0, in_h);
  //   in_w, col0 as above (output column j, tap kw reads col0 + S*j + kw).
  const T* const* in_rows;
  int64_t in_w, col0, stride_w;
  const T* const* next_rows;
  bool shift_taps;
  int column_order;
  int64_t in_h, ih0;
  const T* zero_row;
};
template <class T>
using DepthwiseNchwUkernel = void (*)(const DepthwiseNchwArgs<T>& args);

// Depthwise convolution, NHWC: output pixels [ow_begin, ow_end) of one output row, all
// `channels` channels (the channel vectors are the SIMD lanes).
//   rows: rows[kh] = input row ih = oh*stride_h - top + kh*dilation_h at column 0 and the first
//         channel of this call, or null when that row is padding (the tap row is skipped).
//         Pixel iw, channel j is at rows[kh][iw*pixel_stride + j]; only 0 <= iw < in_w is read
//         (output pixel ow, tap kw reads iw = ow*stride - pad_left + kw*dilation) and only
//         j < channels (tails use masked loads).
//   w: packed taps, w[(kh*KW + kw)*w_stride + j]; w_stride >= channels rounded up to 16, and
//      the lanes past `channels` readable.
//   y: y[ow*y_pixel_stride + j]; epilogue (may be null): bias_col per channel, activation.
//   cyclic: w's taps and the epilogue's bias_col go on for one vector past `channels` with
//      channels 0, 1, ... again (w[t*w_stride + channels + j] = w[t*w_stride + j]). With it, 3x3
//      stride-1 interior runs over packed whole-vector pixels (pixel_stride == y_pixel_stride ==
//      channels, a multiple of the vector) whose input starts inside a vector take vectors
//      aligned to the input, one of which spans two pixels (depthwise_nhwc_3x3_run); they still
//      write only [ow_begin, ow_end) and read only 0 <= iw < in_w.
template <class T>
struct DepthwiseNhwcArgs {
  const T* const* rows;
  int64_t pixel_stride, in_w, pad_left, stride, dilation, kh, kw;
  int64_t ow_begin, ow_end, channels;
  const T* w;
  int64_t w_stride;
  T* y;
  int64_t y_pixel_stride;
  const Epilogue<T>* epilogue;
  bool cyclic;
};
template <class T>
using DepthwiseNhwcUkernel = void (*)(const DepthwiseNhwcArgs<T>& args);

// In-place epilogue over a finished block: y[i*ldy + j] = act(y[i*ldy + j] + bias) for
// i < rows, j < cols, with bias from e.bias_row[i] and/or e.bias_col[j] (either may be null).
// Used where results are assembled after the GEMMs (transposed convolution gathers them from
// its stride-phase canvas) and so cannot be finished inside the GEMM microkernel's store.
template <class T>
using EpilogueUkernel = void (*)(T* y, size_t ldy, size_t rows, size_t cols, const Epilogue<T>& e);

// Stride-2 split of one row (the NCHW depthwise planes of stride-2 layers): even[i] = src[2i]
// for 2i < n, odd[i] = src[2i + 1] for 2i + 1 < n. Reads src[0, n) and writes nothing else; no
// alignment required.
template <class T>
using Deinterleave2Ukernel = void (*)(const T* src, size_t n, T* even, T* odd);

template <class T>
struct DepthwiseKernels {
  size_t nchw_mr, nchw_nr;
  size_t nchw_in_place_nr;  // the in-place kernel's column step (a vector): it covers cols in these
  DepthwiseNchwUkernel<T> nchw;
  DepthwiseNchwUkernel<T> nchw_3x3_in_place;  // tiles of nchw_mr rows and any number of columns
  // The same in taller tiles, whose input loads feed more output rows (AVX-512: 14 rows; the
  // ISAs with 16 registers or fewer: nchw_mr).
  size_t nchw_in_place_tall_mr;
  DepthwiseNchwUkernel<T> nchw_3x3_in_place_tall;
  // 3x3 at stride 1 x 1 or 2 x 2 (stride_h), dilation 1, the input rows streamed in order (null
  // on ISAs without it: it needs cheap masked loads and the column split in lanes, AVX-512):
  // output rows [0, rows) x cols of one channel from the plane in place (plane, in_h, in_w, ih0,
  // zero_row, col0).
  DepthwiseNchwUkernel<T> nchw_3x3_rows;
  DepthwiseNhwcUkernel<T> nhwc;
  EpilogueUkernel<T> epilogue;
  Deinterleave2Ukernel<T> deinterleave2;
};

struct KernelTable {
  const char* isa;
  ConvKernels<float> f32;
  ConvKernels<double> f64;
  PeakKernel peak;
  PoolKernels<float> pool_f32;
  PoolKernels<double> pool_f64;
  DepthwiseKernels<float> dw_f32;
  DepthwiseKernels<double> dw_f64;
};

template <class T> const ConvKernels<T>& kernels_for(const KernelTable& t);
template <> inline const ConvKernels<float>& kernels_for<float>(const KernelTable& t) { return t.f32; }
template <> inline const ConvKernels<double>& kernels_for<double>(const KernelTable& t) { return t.f64; }
template <class T> const PoolKernels<T>& pool_kernels_for(const KernelTable& t);
template <> inline const PoolKernels<float>& pool_kernels_for<float>(const KernelTable& t) { return t.pool_f32; }
template <> inline const PoolKernels<double>& pool_kernels_for<double>(const KernelTable& t) { return t.pool_f64; }
template <class T> const DepthwiseKernels<T>& depthwise_kernels_for(const KernelTable& t);
template <> inline const DepthwiseKernels<float>& depthwise_kernels_for<float>(const KernelTable& t) { return t.dw_f32; }
template <> inline const DepthwiseKernels<double>& depthwise_kernels_for<double>(const KernelTable& t) { return t.dw_f64; }

namespace scalar { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }

}  // namespace pycnn
