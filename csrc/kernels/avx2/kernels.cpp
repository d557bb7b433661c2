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
      make_depthwise_kernels<VecF, 4, 2, 4, 2>(),
      make_depthwise_kernels<VecD, 4, 2, 4, 2>(),
  };
  return table;
}

}  // namespace pycnn::avx2
