// The avx512 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx512/simd.h"

#define PYCNN_ISA_NS avx512
#include "generic/activation.h"
#include "generic/conv.h"
#include "generic/depthwise.h"

namespace pycnn::avx512 {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = with_depthwise_kernels(
      make_kernel_table<VecF, 12, 2, VecD, 12, 2>("avx512"),
      make_depthwise_kernels<VecF, 4, 2, 4, 2>(), make_depthwise_kernels<VecD, 4, 2, 4, 2>());
  return table;
}

}  // namespace pycnn::avx512
