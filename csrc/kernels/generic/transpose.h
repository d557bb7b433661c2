// Matrix transpose microkernel, written once against the vector traits V (V::transpose_pair)
// and compiled per ISA inside namespace pycnn::PYCNN_ISA_NS. Contract: microkernels.h.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

#include "generic/traits.h"

namespace pycnn::PYCNN_ISA_NS {

// Stages H = W/2, W/4, ..., 1: rows i and i + H swap their off-diagonal H x H blocks, which
// transposes the W x W block held in r[] (the classic recursive block transpose).
template <class V, size_t H>
inline void transpose_stages(typename V::reg (&r)[V::W]) {
  if constexpr (H >= 1) {
#pragma GCC unroll 16
    for (size_t i = 0; i < V::W; ++i)
      if (!(i & H)) V::template transpose_pair<H>(r[i], r[i + H]);
    transpose_stages<V, H / 2>(r);
  }
}

// dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols (both <= W), in registers; nothing
// outside those elements is read or written.
template <class V>
void transpose_ukernel(const typename V::T* src, size_t lds, typename V::T* dst, size_t ldd, size_t rows,
                       size_t cols) {
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  reg r[W];
  if (rows == W && cols == W) {
#pragma GCC unroll 16
    for (size_t i = 0; i < W; ++i) r[i] = V::load(src + i * lds);
    transpose_stages<V, W / 2>(r);
#pragma GCC unroll 16
    for (size_t j = 0; j < W; ++j) V::store(dst + j * ldd, r[j]);
    return;
  }
  if constexpr (has_interleave3<V>::value) {
    if (rows == 3 && cols == W && ldd == 3) {  // an RGB image's planes to pixels
      V::interleave3(V::load(src), V::load(src + lds), V::load(src + 2 * lds), dst);
      return;
    }
  }
  if (rows <= 4) {  // e.g. an RGB image's 3 channels: element by element beats a W-row network
    for (size_t j = 0; j < cols; ++j)
      for (size_t i = 0; i < rows; ++i) dst[j * ldd + i] = src[i * lds + j];
    return;
  }
#pragma GCC unroll 16
  for (size_t i = 0; i < W; ++i) r[i] = i < rows ? V::load_partial(src + i * lds, cols) : V::zero();
  transpose_stages<V, W / 2>(r);
#pragma GCC unroll 16
  for (size_t j = 0; j < W; ++j)
    if (j < cols) V::store_partial(dst + j * ldd, r[j], rows);
}

}  // namespace pycnn::PYCNN_ISA_NS
