// The kernel table for the ISA in use (chosen at import from CPU features or PYCNN_ISA).
#pragma once

#include "kernels/microkernels.h"
#include "pycnn/runtime.h"

namespace pycnn {

inline const KernelTable& active_kernels() {
  switch (current_isa()) {
    case Isa::Avx512: return avx512::kernel_table();
    case Isa::Avx2: return avx2::kernel_table();
    default: return scalar::kernel_table();
  }
}

}  // namespace pycnn
