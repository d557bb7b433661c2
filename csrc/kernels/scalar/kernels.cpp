// The scalar kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "scalar/simd.h"

#define PYCNN_ISA_NS scalar
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/conv.h"

namespace pycnn::scalar {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = make_kernel_table<VecF, 4, 4, VecD, 4, 4, 8>("scalar");
  return table;
}

}  // namespace pycnn::scalar
