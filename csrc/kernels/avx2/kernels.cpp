// The avx2 kernel table: the generic microkernels compiled with this directory's ISA flags.
#include "microkernels.h"
#include "avx2/simd.h"

#define PYCNN_ISA_NS avx2
#include "generic/activation.h"
#include "generic/conv.h"
#include "generic/pool.h"

namespace pycnn::avx2 {

const KernelTable& kernel_table() {
  static constexpr KernelTable table = with_pool_kernels<VecF, VecD>(make_kernel_table<VecF, 6, 2, VecD, 6, 2>("avx2"));
  return table;
}

}  // namespace pycnn::avx2
