// The avx512 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx512/simd.h"

#define PYCNN_ISA_NS avx512
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/transpose.h"
#include "generic/conv.h"
#include "generic/pool.h"
#include "generic/depthwise.h"

namespace pycnn::avx512 {

// Tile shapes in order of preference (fewest loads per FMA first) when they waste equally.
const KernelTable& kernel_table() {
  static constexpr KernelTable table{
      "avx512",
      make_conv_kernels<VecF, Shape<6, 4>, Shape<8, 3>, Shape<12, 2>, Shape<12, 1>>(),
      make_conv_kernels<VecD, Shape<6, 4>, Shape<8, 3>, Shape<12, 2>, Shape<12, 1>>(),
      PeakKernel{24 * VecF::W * 2, fma_peak_loop<VecF, 24>},
      make_pool_kernels<VecF>(),
      make_pool_kernels<VecD>(),
      make_depthwise_kernels<VecF, 8, 2, 4, 2, 12, 12>(),
      make_depthwise_kernels<VecD, 8, 2, 4, 2, 12, 12>(),
  };
  return table;
}

}  // namespace pycnn::avx512
