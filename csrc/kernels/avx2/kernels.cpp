// The avx2 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx2/simd.h"

#define PYCNN_ISA_NS avx2
#include "generic/activation.h"
#include "generic/peak.h"
#include "generic/conv.h"

namespace pycnn::avx2 {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = make_kernel_table<VecF, 6, 2, VecD, 6, 2, 12>("avx2");
  return table;
}

}  // namespace pycnn::avx2
