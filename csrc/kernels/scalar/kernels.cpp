// The scalar kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "scalar/simd.h"

#define PYCNN_ISA_NS scalar
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/transpose.h"
#include "generic/winograd.h"
#include "generic/conv.h"
#include "generic/pool.h"
#include "generic/depthwise.h"

namespace pycnn::scalar {

// Tile shapes in order of preference (fewest loads per FMA first) when they waste equally.
const KernelTable& kernel_table() {
  static constexpr KernelTable table{
      "scalar",
      make_conv_kernels<VecF, Shape<4, 4>, Shape<2, 8>, Shape<8, 2>, Shape<12, 1>>(),
      make_conv_kernels<VecD, Shape<4, 4>, Shape<2, 8>, Shape<8, 2>, Shape<12, 1>>(),
      PeakKernel{8 * VecF::W * 2, fma_peak_loop<VecF, 8>},
      make_pool_kernels<VecF>(),
      make_pool_kernels<VecD>(),
      make_depthwise_kernels<VecF, 4, 4, 4, 1>(),
      make_depthwise_kernels<VecD, 4, 4, 4, 1>(),
  };
  return table;
}

}  // namespace pycnn::scalar
