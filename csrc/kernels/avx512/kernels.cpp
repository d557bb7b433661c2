// The avx512 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx512/simd.h"

#define PYCNN_ISA_NS avx512
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/conv.h"

namespace pycnn::avx512 {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = make_kernel_table<VecF, 12, 2, VecD, 12, 2, 24>("avx512");
  return table;
}

}  // namespace pycnn::avx512
