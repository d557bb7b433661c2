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
//      (ldb = NR) or a weight matrix in place. All NR columns must be readable; columns >= nr
//      only feed accumulators that are never stored.
//   c: row-major with row stride ldc; only the mr x nr corner is read or written.
//   accumulate: add to C instead of overwriting it. epilogue (may be null): applied after the
//   sum, only on the last k block. k may be 0 (then C = 0 or C unchanged, then the epilogue).
//   No alignment is required of any pointer.
template <class T>
using GemmUkernel = void (*)(size_t k, const T* a, size_t lda, const T* b, size_t ldb, T* c, size_t ldc,
                             size_t mr, size_t nr, bool accumulate, const Epilogue<T>* epilogue);

// Direct convolution, NCHW: one output row segment, MR output channels x NR output columns.
//   panel: the zero-padded input rows this output row reads, split by stride phase: for output
//          column j, tap t (of KH*KW) and channel c the input is panel[tap[t] + c*panel_c + j].
//          Readable for every j < NR (the op pads the panel so full vector loads stay inside).
//   tap: KH*KW offsets (kh*panel_kh + phase*phase_width + (kw*dilation)/stride).
//   w: weights in place (OIHW rows of this channel block): w[i*ldw + c*KH*KW + t] for i < mr;
//      rows >= mr are never read.
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
//      (HWIO in place, ldw = O, or a packed tail panel, ldw = NR). All NR columns readable;
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

struct KernelTable {
  const char* isa;
  ConvKernels<float> f32;
  ConvKernels<double> f64;
  PeakKernel peak;
};

template <class T> const ConvKernels<T>& kernels_for(const KernelTable& t);
template <> inline const ConvKernels<float>& kernels_for<float>(const KernelTable& t) { return t.f32; }
template <> inline const ConvKernels<double>& kernels_for<double>(const KernelTable& t) { return t.f64; }

namespace scalar { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }

}  // namespace pycnn
