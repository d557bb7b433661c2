// The scalar kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "scalar/simd.h"

#define PYCNN_ISA_NS scalar
#include "generic/activation.h"
#include "generic/conv.h"
#include "generic/pool.h"

namespace pycnn::scalar {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = with_pool_kernels<VecF, VecD>(make_kernel_table<VecF, 4, 4, VecD, 4, 4>("scalar"));
  return table;
}

}  // namespace pycnn::scalar
