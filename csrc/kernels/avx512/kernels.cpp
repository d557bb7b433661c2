// The avx512 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx512/simd.h"

#define PYCNN_ISA_NS avx512
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/transpose.h"
#include "generic/winograd.h"
#include "generic/conv.h"
#include "generic/pool.h"
#include "generic/depthwise.h"

namespace pycnn::avx512 {

// Tile shapes in order of preference (fewest loads per FMA first) when they waste equally. The
// NHWC direct kernel's two-vector tile is 14 pixels (28 accumulators, two weight vectors and a
// broadcast: all 32 registers), so 28-pixel rows are two full tiles, not 12 + 12 + 4: 3x3 1->32
// @28 NHWC 6.2 -> 5.6 us, 32->32 @28 85 -> 70 us, one thread.
const KernelTable& kernel_table() {
  static constexpr KernelTable table{
      "avx512",
      make_conv_kernels<VecF, Shape<6, 4>, Shape<8, 3>, Shape<12, 2>, Shape<12, 1>, Shape<14, 2>>(),
      make_conv_kernels<VecD, Shape<6, 4>, Shape<8, 3>, Shape<12, 2>, Shape<12, 1>, Shape<14, 2>>(),
      PeakKernel{24 * VecF::W * 2, fma_peak_loop<VecF, 24>},
      make_pool_kernels<VecF>(),
      make_pool_kernels<VecD>(),
      make_depthwise_kernels<VecF, 8, 2, 4, 2, 12, 12, 14>(),
      make_depthwise_kernels<VecD, 8, 2, 4, 2, 12, 12, 14>(),
  };
  return table;
}

}  // namespace pycnn::avx512
