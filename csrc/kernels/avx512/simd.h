// AVX-512F vector traits for the generic kernels. Compiled only with AVX-512 flags.
#pragma once

#include <immintrin.h>
#include <cstddef>
#include <cstdint>

namespace pycnn::avx512 {

struct VecF {
  using T = float;
  using reg = __m512;
  static constexpr size_t W = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(T v) { return _mm512_set1_ps(v); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, reg v) { _mm512_storeu_ps(p, v); }
  static __mmask16 mask(size_t n) { return (__mmask16)((1u << n) - 1u); }
  static reg load_partial(const T* p, size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_partial(T* p, reg v, size_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  // max/min return b when either is NaN (as x86 does), so pass the data as b to keep NaN.
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg select_positive(reg x, reg if_pos, reg otherwise) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_GT_OQ), otherwise, if_pos);
  }
  static reg round(reg x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg ldexp(reg x, reg n) { return _mm512_scalef_ps(x, n); }
};

struct VecD {
  using T = double;
  using reg = __m512d;
  static constexpr size_t W = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg set1(T v) { return _mm512_set1_pd(v); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, reg v) { _mm512_storeu_pd(p, v); }
  static __mmask8 mask(size_t n) { return (__mmask8)((1u << n) - 1u); }
  static reg load_partial(const T* p, size_t n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_partial(T* p, reg v, size_t n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_pd(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg max(reg a, reg b) { return _mm512_max_pd(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_pd(a, b); }
  static reg select_positive(reg x, reg if_pos, reg otherwise) {
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, zero(), _CMP_GT_OQ), otherwise, if_pos);
  }
  static reg round(reg x) { return _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg ldexp(reg x, reg n) { return _mm512_scalef_pd(x, n); }
};

}  // namespace pycnn::avx512
