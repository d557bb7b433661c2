// The avx2 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx2/simd.h"

#define PYCNN_ISA_NS avx2
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/transpose.h"
#include "generic/winograd.h"
#include "generic/conv.h"
#include "generic/pool.h"
#include "generic/depthwise.h"

namespace pycnn::avx2 {

// Tile shapes in order of preference (fewest loads per FMA first) when they waste equally.
const KernelTable& kernel_table() {
  static constexpr KernelTable table{
      "avx2",
      make_conv_kernels<VecF, Shape<3, 4>, Shape<4, 3>, Shape<6, 2>, Shape<12, 1>>(),
      make_conv_kernels<VecD, Shape<3, 4>, Shape<4, 3>, Shape<6, 2>, Shape<12, 1>>(),
      PeakKernel{12 * VecF::W * 2, fma_peak_loop<VecF, 12>},
      make_pool_kernels<VecF>(),
      make_pool_kernels<VecD>(),
      // float32's NCHW in-place depthwise kernel also in 6-row tiles (16 registers: with 4 rows its
      // 9-FMA chains run 4 at a time). Zen 1, alternating medians, us, 4 -> 6, one thread / two:
      // 3x3 144 @56 529 -> 504 / 268 -> 255, 576 @14 (two) 239 -> 210, 32 @112 (one) 409 -> 389;
      // 3x3/2 96 @112 level (641 -> 638 / 316 -> 312); 8 rows measured no better. float64 keeps 4
      // (not measured).
      make_depthwise_kernels<VecF, 4, 2, 4, 2, 4, 4, 6>(),
      make_depthwise_kernels<VecD, 4, 2, 4, 2>(),
  };
  return table;
}

}  // namespace pycnn::avx2
