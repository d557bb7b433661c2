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

// GEMM microkernel: C[mr x nr] (+)= A * B over k, on packed micropanels.
//   a: k x MR, k-major (a[kk*MR + i]), rows >= mr zero-padded. Any alignment.
//   b: k x NR, k-major (b[kk*NR + j]), columns >= nr zero-padded. Any alignment.
//   c: row-major with row stride ldc; only the mr x nr corner is read or written.
//   accumulate: add to C instead of overwriting it. epilogue (may be null): applied after the
//   sum, only on the last k block. k may be 0 (then C = 0 or C unchanged, then the epilogue).
template <class T>
using GemmUkernel = void (*)(size_t k, const T* a, const T* b, T* c, size_t ldc, size_t mr,
                             size_t nr, bool accumulate, const Epilogue<T>* epilogue);

// Direct convolution, NCHW: one output row segment, MR output channels x NR output columns.
//   panel: the zero-padded input rows this output row reads, split by stride phase:
//          element (c, kh, phase, q) at panel[c*panel_c + kh*panel_kh + phase*panel_phase + q]
//          holds padded input column q*stride + phase. Readable for every q the taps reach
//          (the op pads the panel so that full NR-wide loads never leave it).
//   tap: tap[kw] = offset of tap kw for output column 0: phase*panel_phase + (kw*dilation)/stride.
//   w: packed weights for this channel block, w[((c*KH + kh)*KW + kw)*MR + i], rows >= mr zero.
//   y: y[i*ldy + j] for i < mr, j < nr. Bias per row (channel) in the epilogue.
template <class T>
struct DirectNchwArgs {
  const T* panel;
  int64_t panel_c, panel_kh;
  const int64_t* tap;
  int64_t channels, kh, kw;
  const T* w;
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
//   w: packed weights for this channel block, w[((kh*KW + kw)*C + c)*NR + j], columns >= nr zero.
//   y: y[i*ldy + j] for i < mr, j < nr. Bias per column (channel) in the epilogue.
template <class T>
struct DirectNhwcArgs {
  const T* panel;
  int64_t panel_kh;
  int64_t channels, kh, kw, stride, dilation;
  const T* w;
  T* y;
  int64_t ldy;
  size_t mr, nr;
  const Epilogue<T>* epilogue;
};
template <class T>
using DirectNhwcUkernel = void (*)(const DirectNhwcArgs<T>& args);

template <class T>
struct ConvKernels {
  size_t gemm_mr, gemm_nr;
  GemmUkernel<T> gemm;
  size_t direct_nchw_mr, direct_nchw_nr;
  DirectNchwUkernel<T> direct_nchw;
  size_t direct_nhwc_mr, direct_nhwc_nr;
  DirectNhwcUkernel<T> direct_nhwc;
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
//   Reads only input elements inside the rows' [0, width) (masked loads at the edges).
template <class T>
struct PoolNchwArgs {
  const T* x;
  int64_t row_stride, rows, x_step;
  int64_t width;
  int64_t n, kw, stride, dilation, pad_left;
  int64_t out_rows, y_step;
  const T* scale;
  T* y;
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

struct KernelTable {
  const char* isa;
  ConvKernels<float> f32;
  ConvKernels<double> f64;
  PoolKernels<float> pool_f32;
  PoolKernels<double> pool_f64;
};

template <class T> const ConvKernels<T>& kernels_for(const KernelTable& t);
template <> inline const ConvKernels<float>& kernels_for<float>(const KernelTable& t) { return t.f32; }
template <> inline const ConvKernels<double>& kernels_for<double>(const KernelTable& t) { return t.f64; }
template <class T> const PoolKernels<T>& pool_kernels_for(const KernelTable& t);
template <> inline const PoolKernels<float>& pool_kernels_for<float>(const KernelTable& t) { return t.pool_f32; }
template <> inline const PoolKernels<double>& pool_kernels_for<double>(const KernelTable& t) { return t.pool_f64; }

namespace scalar { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }

}  // namespace pycnn
