// The avx512 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx512/simd.h"

#define PYCNN_ISA_NS avx512
#include "generic/activation.h"
#include "generic/conv.h"
#include "generic/pool.h"

namespace pycnn::avx512 {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = with_pool_kernels<VecF, VecD>(make_kernel_table<VecF, 12, 2, VecD, 12, 2>("avx512"));
  return table;
}

}  // namespace pycnn::avx512
