// Packing of dense matrices into the micropanels the GEMM-shaped microkernels read
// (contracts in kernels/microkernels.h). Shared by every op that feeds those kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/microkernels.h"

namespace pycnn {

// Rows of a row-major matrix (rows x k, row stride ld) into panels of `mr` rows:
// dst[(panel*k + kk)*mr + i] = src[(panel*mr + i)*ld + kk], rows past the end zero.
template <class T>
void pack_row_panels(const T* src, int64_t rows, int64_t k, int64_t ld, int64_t mr, T* dst) {
  for (int64_t r0 = 0; r0 < rows; r0 += mr) {
    const int64_t n = rows - r0 < mr ? rows - r0 : mr;
    for (int64_t kk = 0; kk < k; ++kk) {
      T* d = dst + kk * mr;
      for (int64_t i = 0; i < n; ++i) d[i] = src[(r0 + i) * ld + kk];
      for (int64_t i = n; i < mr; ++i) d[i] = T(0);
    }
    dst += k * mr;
  }
}

// Columns of a row-major matrix (k x cols, row stride ld) into panels of `nr` columns:
// dst[(panel*k + kk)*nr + j] = src[kk*ld + panel*nr + j], columns past the end zero.
template <class T>
void pack_column_panels(const T* src, int64_t k, int64_t cols, int64_t ld, int64_t nr, T* dst) {
  for (int64_t c0 = 0; c0 < cols; c0 += nr) {
    const int64_t n = cols - c0 < nr ? cols - c0 : nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      T* d = dst + kk * nr;
      std::memcpy(d, src + kk * ld + c0, (size_t)n * sizeof(T));
      for (int64_t j = n; j < nr; ++j) d[j] = T(0);
    }
    dst += k * nr;
  }
}

// Copies count elements src[0], src[step], ... to dst for the output positions whose input
// index `start + t*step` lies in [0, size), and writes zeros elsewhere (the padding).
template <class T>
inline void copy_padded(const T* row, int64_t size, int64_t start, int64_t step, int64_t count, T* dst) {
  // First t with start + t*step >= 0, and first t with start + t*step >= size.
  int64_t lo = start >= 0 ? 0 : (-start + step - 1) / step;
  int64_t hi = start >= size ? 0 : (size - start + step - 1) / step;
  if (lo > count) lo = count;
  if (hi > count) hi = count;
  if (hi < lo) hi = lo;
  for (int64_t t = 0; t < lo; ++t) dst[t] = T(0);
  if (step == 1) {
    if (hi > lo) std::memcpy(dst + lo, row + start + lo, (size_t)(hi - lo) * sizeof(T));
  } else {
    for (int64_t t = lo; t < hi; ++t) dst[t] = row[start + t * step];
  }
  for (int64_t t = hi; t < count; ++t) dst[t] = T(0);
}

// dst (cols x rows, row stride ldd) = src (rows x cols, row stride lds) transposed, by the
// ISA's register blocks: strips of rows, so the strip's source lines stay in L1.
template <class T>
void transpose_blocks(const ConvKernels<T>& kn, const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst,
                      int64_t ldd) {
  const int64_t B = (int64_t)kn.transpose_block;
  for (int64_t r0 = 0; r0 < rows; r0 += B)
    for (int64_t c0 = 0; c0 < cols; c0 += B)
      kn.transpose(src + r0 * lds + c0, (size_t)lds, dst + c0 * ldd + r0, (size_t)ldd,
                   (size_t)std::min(B, rows - r0), (size_t)std::min(B, cols - c0));
}

}  // namespace pycnn
