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

// A microkernel with the register tile it computes: MR rows x NR columns.
template <class Fn>
struct Tiled {
  size_t mr, nr;
  Fn run;
};

// Each family comes in kTileShapes register-tile shapes (all filling the register file) so an
// op can pick the one that wastes the least work on its M and N (see pick_tile in ops/).
constexpr int kTileShapes = 3;

template <class T>
struct ConvKernels {
  Tiled<GemmUkernel<T>> gemm[kTileShapes];
  Tiled<DirectNchwUkernel<T>> direct_nchw[kTileShapes];
  Tiled<DirectNhwcUkernel<T>> direct_nhwc[kTileShapes];
};

// A register-only FMA loop for measuring the peak: `iterations` rounds of
// `flops_per_iteration` float32 flops; returns a value derived from the result.
struct PeakKernel {
  size_t flops_per_iteration;
  float (*run)(size_t iterations);
};

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
//      the lanes past `channels` readable (zero).
//   y: y[ow*y_pixel_stride + j]; epilogue (may be null): bias_col per channel, activation.
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
};
template <class T>
using DepthwiseNhwcUkernel = void (*)(const DepthwiseNhwcArgs<T>& args);

// In-place epilogue over a finished block: y[i*ldy + j] = act(y[i*ldy + j] + bias) for
// i < rows, j < cols, with bias from e.bias_row[i] and/or e.bias_col[j] (either may be null).
// Used where results are assembled after the GEMMs (transposed convolution gathers them from
// its stride-phase canvas) and so cannot be finished inside the GEMM microkernel's store.
template <class T>
using EpilogueUkernel = void (*)(T* y, size_t ldy, size_t rows, size_t cols, const Epilogue<T>& e);

template <class T>
struct DepthwiseKernels {
  size_t nchw_mr, nchw_nr;
  DepthwiseNchwUkernel<T> nchw;
  DepthwiseNhwcUkernel<T> nhwc;
  EpilogueUkernel<T> epilogue;
};

struct KernelTable {
  const char* isa;
  ConvKernels<float> f32;
  ConvKernels<double> f64;
  PeakKernel peak;
  DepthwiseKernels<float> dw_f32;
  DepthwiseKernels<double> dw_f64;
};

template <class T> const ConvKernels<T>& kernels_for(const KernelTable& t);
template <> inline const ConvKernels<float>& kernels_for<float>(const KernelTable& t) { return t.f32; }
template <> inline const ConvKernels<double>& kernels_for<double>(const KernelTable& t) { return t.f64; }
template <class T> const DepthwiseKernels<T>& depthwise_kernels_for(const KernelTable& t);
template <> inline const DepthwiseKernels<float>& depthwise_kernels_for<float>(const KernelTable& t) { return t.dw_f32; }
template <> inline const DepthwiseKernels<double>& depthwise_kernels_for<double>(const KernelTable& t) { return t.dw_f64; }

namespace scalar { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }

}  // namespace pycnn
