// AVX2+FMA vector traits for the generic kernels. Compiled only with AVX2/FMA flags.
#pragma once

#include <immintrin.h>
#include <cstddef>
#include <cstdint>

namespace pycnn::avx2 {

// Lane masks for partial loads/stores: the first n lanes set.
inline __m256i lane_mask32(size_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask64(size_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)n), _mm256_setr_epi64x(0, 1, 2, 3));
}

struct VecF {
  using T = float;
  using reg = __m256;
  static constexpr size_t W = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(T v) { return _mm256_set1_ps(v); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load_partial(const T* p, size_t n) { return _mm256_maskload_ps(p, lane_mask32(n)); }
  static void store_partial(T* p, reg v, size_t n) { _mm256_maskstore_ps(p, lane_mask32(n), v); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg select_positive(reg x, reg if_pos, reg otherwise) {
    return _mm256_blendv_ps(otherwise, if_pos, _mm256_cmp_ps(x, zero(), _CMP_GT_OQ));
  }
  static reg round(reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // x * 2^n for integral n in the normal exponent range (callers clamp).
  static reg ldexp(reg x, reg n) {
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(x, _mm256_castsi256_ps(e));
  }
};

struct VecD {
  using T = double;
  using reg = __m256d;
  static constexpr size_t W = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg set1(T v) { return _mm256_set1_pd(v); }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, reg v) { _mm256_storeu_pd(p, v); }
  static reg load_partial(const T* p, size_t n) { return _mm256_maskload_pd(p, lane_mask64(n)); }
  static void store_partial(T* p, reg v, size_t n) { _mm256_maskstore_pd(p, lane_mask64(n), v); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_pd(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg max(reg a, reg b) { return _mm256_max_pd(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_pd(a, b); }
  static reg select_positive(reg x, reg if_pos, reg otherwise) {
    return _mm256_blendv_pd(otherwise, if_pos, _mm256_cmp_pd(x, zero(), _CMP_GT_OQ));
  }
  static reg round(reg x) { return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // x * 2^n for integral n in the normal exponent range: n + 1.5*2^52 puts n in the low bits.
  static reg ldexp(reg x, reg n) {
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    __m256i bits = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    __m256i e = _mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(x, _mm256_castsi256_pd(e));
  }
};

}  // namespace pycnn::avx2
