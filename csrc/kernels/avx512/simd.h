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
  // Transpose step (kernels/generic/transpose.h): for each 2H-lane group, a takes the first H
  // lanes of a then of b, and b the last H lanes of a then of b.
  template <size_t H>
  static void transpose_pair(reg& a, reg& b) {
    reg lo, hi;
    if constexpr (H == 8) {
      lo = _mm512_shuffle_f32x4(a, b, 0x44);
      hi = _mm512_shuffle_f32x4(a, b, 0xEE);
    } else if constexpr (H == 4) {
      lo = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27), b);
      hi = _mm512_permutex2var_ps(a, _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31), b);
    } else if constexpr (H == 2) {
      lo = _mm512_shuffle_ps(a, b, 0x44);
      hi = _mm512_shuffle_ps(a, b, 0xEE);
    } else {
      static_assert(H == 1);
      lo = _mm512_mask_blend_ps(0xAAAA, a, _mm512_moveldup_ps(b));
      hi = _mm512_mask_blend_ps(0xAAAA, _mm512_movehdup_ps(a), b);
    }
    a = lo;
    b = hi;
  }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(T v) { return _mm512_set1_ps(v); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, reg v) { _mm512_storeu_ps(p, v); }
  static __mmask16 mask(size_t n) { return (__mmask16)((1u << n) - 1u); }
  static reg load_partial(const T* p, size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_partial(T* p, reg v, size_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static void store_partial_split(T* p, reg v, size_t n) { store_partial(p, v, n); }  // masked stores are cheap
  // dst[3*j + i] = lane j of row i, for the 3 rows a, b, c (3*W elements): an RGB image's planes
  // to pixels. Output vector k, lane l holds element e = k*W + l: lane e / 3 of row e % 3.
  static constexpr unsigned interleave3_rows(int k, int row) {
    unsigned m = 0;
    for (int l = 0; l < 16; ++l) m |= (16 * k + l) % 3 == row ? 1u << l : 0u;
    return m;
  }
  static constexpr bool kInterleave3 = true;
  static void interleave3(reg a, reg b, reg c, T* dst) {
#pragma GCC unroll 3
    for (int k = 0; k < 3; ++k) {
      alignas(64) int32_t lane[16];
      for (int l = 0; l < 16; ++l) lane[l] = (16 * k + l) / 3;
      const __m512i idx = _mm512_load_si512(lane);
      reg v = _mm512_permutexvar_ps(idx, a);
      v = _mm512_mask_permutexvar_ps(v, (__mmask16)interleave3_rows(k, 1), idx, b);
      v = _mm512_mask_permutexvar_ps(v, (__mmask16)interleave3_rows(k, 2), idx, c);
      _mm512_storeu_ps(dst + 16 * k, v);
    }
  }
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
  // Pooling. max(acc, x) that is NaN when either is NaN; x is the new data, so its NaN test
  // stays off the accumulator's dependency chain.
  static reg max_propagate_nan(reg acc, reg x) {
    return _mm512_mask_max_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x, acc);
  }
  // Lanes p[0], p[2], ..., p[2W-2] (reads exactly p[0 .. 2W-2]); the partial form fills n lanes
  // and reads p[0 .. 2n-2].
  static reg load_every2(const T* p) {
    return _mm512_permutex2var_ps(load(p), every2_index(), _mm512_maskz_loadu_ps(0x7FFF, p + W));
  }
  static reg load_every2_partial(const T* p, size_t n) {
    const size_t count = 2 * n - 1;
    const reg lo = load_partial(p, count < W ? count : W);
    const reg hi = count > W ? load_partial(p + W, count - W) : zero();
    return _mm512_permutex2var_ps(lo, every2_index(), hi);
  }
  // Lanes p[i*stride]; the caller guarantees stride * (W - 1) fits in int32.
  static reg gather(const T* p, int64_t stride) {
    return _mm512_i32gather_ps(_mm512_mullo_epi32(lanes(), _mm512_set1_epi32((int)stride)), p, 4);
  }
  static reg gather_partial(const T* p, int64_t stride, size_t n) {
    return _mm512_mask_i32gather_ps(zero(), mask(n), _mm512_mullo_epi32(lanes(), _mm512_set1_epi32((int)stride)), p, 4);
  }
  static T reduce_add(reg v) { return _mm512_reduce_add_ps(v); }
  static T reduce_max_propagate_nan(reg v) {
    v = max_propagate_nan(v, _mm512_shuffle_f32x4(v, v, 0x4E));
    v = max_propagate_nan(v, _mm512_shuffle_f32x4(v, v, 0xB1));
    v = max_propagate_nan(v, _mm512_permute_ps(v, 0x4E));
    v = max_propagate_nan(v, _mm512_permute_ps(v, 0xB1));
    return _mm512_cvtss_f32(v);
  }
  // The stride-2 column split kept inside the 128-bit lanes (vshufps, which Zen 4 runs beside
  // its FMAs, where a two-source permute takes an FMA's slot: 8 FMAs and 4 vpermt2ps 10.5 cycles,
  // with 4 vshufps 8.0): even_in_lanes(a, b) holds the even lanes of the 2W-lane pair (a, b),
  // odd_in_lanes the odd ones, both with their 64-bit pairs in the order [0 4 1 5 2 6 3 7];
  // in_lane_order restores the order (one permute, which a kernel can defer to its sums:
  // kernels/generic/depthwise.h); next_in_lanes(v, next), v in that order, is v a column on:
  // column j holds v's column j + 1, column W - 1 next's lane 0.
  static constexpr bool kEvenOddInLanes = true;
  static reg even_in_lanes(reg a, reg b) { return _mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); }
  static reg odd_in_lanes(reg a, reg b) { return _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)); }
  static reg in_lane_order(reg v) {
    return _mm512_castpd_ps(_mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_castps_pd(v)));
  }
  static reg next_in_lanes(reg v, reg next) {
    return _mm512_permutex2var_ps(v, _mm512_setr_epi32(1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 2, 15, 16), next);
  }
  // Even / odd lanes of the 2W-lane pair (a, b).
  static reg even(reg a, reg b) { return _mm512_permutex2var_ps(a, every2_index(), b); }
  static reg odd(reg a, reg b) {
    return _mm512_permutex2var_ps(a, _mm512_add_epi32(every2_index(), _mm512_set1_epi32(1)), b);
  }
  // Lane i: cur[i + m] while i + m < W, then next[i + m - W]; 0 <= m < W.
  static reg shift_in(reg cur, reg next, int64_t m) {
    return _mm512_permutex2var_ps(cur, _mm512_add_epi32(lanes(), _mm512_set1_epi32((int)m)), next);
  }
  // shift_in by M lanes, M known when compiled: valignd, an immediate shift, where shift_in takes
  // a two-source permute (vpermt2ps). Zen 4, one thread, a replica of the NCHW depthwise row loop
  // (a load, two shifts, nine FMAs): 3.2-3.3 G FMA/s with valignd, 2.6-2.7 with vpermt2ps.
  static constexpr bool kShiftInBy = true;
  template <int M>
  static reg shift_in_by(reg cur, reg next) {
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(cur), M));
  }
  // Lane 0: p[0] if `inside`, else 0 (p is not read); the other lanes unspecified. One masked
  // scalar load, where a broadcast of a column or a zero took a branch, a load and a broadcast.
  static reg first_or_zero(const T* p, bool inside) {
    return _mm512_castps128_ps512(_mm_maskz_load_ss((__mmask8)inside, p));
  }
  // Lanes lo <= i < hi from p[i] (nothing else is read), the others `fill`; 0 <= lo < hi <= W.
  static reg load_lanes(const T* p, int64_t lo, int64_t hi, reg fill) {
    return _mm512_mask_loadu_ps(fill, lanes_between(lo, hi), p);
  }
  // A lane set computed once for many loads: lanes lo <= i < hi, clipped to [0, W) (may be empty).
  using Lanes = __mmask16;
  static Lanes lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > (int64_t)W ? (int64_t)W : hi;
    return hi <= lo ? (Lanes)0 : lanes_between(lo, hi);
  }
  // The mask of lanes lo <= i < hi; 0 <= lo <= hi <= W.
  static __mmask16 lanes_between(int64_t lo, int64_t hi) { return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)); }
  // Lanes in m from p[i] (nothing else is read), the others 0.
  static reg load_masked(const T* p, Lanes m) { return _mm512_maskz_loadu_ps(m, p); }
  // Lanes in m from b, the others from a.
  static reg blend(Lanes m, reg a, reg b) { return _mm512_mask_blend_ps(m, a, b); }
  // Reducing W vectors to one vector of W per-vector results, a level at a time: lo/hi take, for
  // each block of h output lanes, lanes [0, h) / [h, 2h) of the matching 2h-lane block of (a, b),
  // so combine(lo, hi) halves every vector's partial results and packs two vectors into one.
  static constexpr bool kFoldPairs = true;
  static constexpr bool kMaskedLoadsCheap = true;  // a k-mask on an ordinary load
  static void fold_pairs(reg a, reg b, int64_t h, reg& lo, reg& hi) {
    const int shift = h == 8 ? 3 : h == 4 ? 2 : h == 2 ? 1 : 0;
    const __m512i k = lanes();
    const __m512i index = _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(k, shift), shift + 1),
                                          _mm512_and_si512(k, _mm512_set1_epi32((int)h - 1)));
    lo = _mm512_permutex2var_ps(a, index, b);
    hi = _mm512_permutex2var_ps(a, _mm512_add_epi32(index, _mm512_set1_epi32((int)h)), b);
  }
  static __m512i every2_index() { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
  static __m512i lanes() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
};

struct VecD {
  using T = double;
  using reg = __m512d;
  static constexpr size_t W = 8;
  // Transpose step (kernels/generic/transpose.h): for each 2H-lane group, a takes the first H
  // lanes of a then of b, and b the last H lanes of a then of b.
  template <size_t H>
  static void transpose_pair(reg& a, reg& b) {
    reg lo, hi;
    if constexpr (H == 4) {
      lo = _mm512_shuffle_f64x2(a, b, 0x44);
      hi = _mm512_shuffle_f64x2(a, b, 0xEE);
    } else if constexpr (H == 2) {
      lo = _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), b);
      hi = _mm512_permutex2var_pd(a, _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15), b);
    } else {
      static_assert(H == 1);
      lo = _mm512_unpacklo_pd(a, b);
      hi = _mm512_unpackhi_pd(a, b);
    }
    a = lo;
    b = hi;
  }
  static reg zero() { return _mm512_setzero_pd(); }
  static reg set1(T v) { return _mm512_set1_pd(v); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, reg v) { _mm512_storeu_pd(p, v); }
  static __mmask8 mask(size_t n) { return (__mmask8)((1u << n) - 1u); }
  static reg load_partial(const T* p, size_t n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_partial(T* p, reg v, size_t n) { _mm512_mask_storeu_pd(p, mask(n), v); }
  static void store_partial_split(T* p, reg v, size_t n) { store_partial(p, v, n); }  // masked stores are cheap
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
  static reg max_propagate_nan(reg acc, reg x) {
    return _mm512_mask_max_pd(x, _mm512_cmp_pd_mask(x, x, _CMP_ORD_Q), x, acc);
  }
  static reg load_every2(const T* p) {
    return _mm512_permutex2var_pd(load(p), every2_index(), _mm512_maskz_loadu_pd(0x7F, p + W));
  }
  static reg load_every2_partial(const T* p, size_t n) {
    const size_t count = 2 * n - 1;
    const reg lo = load_partial(p, count < W ? count : W);
    const reg hi = count > W ? load_partial(p + W, count - W) : zero();
    return _mm512_permutex2var_pd(lo, every2_index(), hi);
  }
  static reg gather(const T* p, int64_t stride) {
    return _mm512_i32gather_pd(_mm256_mullo_epi32(lanes(), _mm256_set1_epi32((int)stride)), p, 8);
  }
  static reg gather_partial(const T* p, int64_t stride, size_t n) {
    return _mm512_mask_i32gather_pd(zero(), mask(n), _mm256_mullo_epi32(lanes(), _mm256_set1_epi32((int)stride)), p, 8);
  }
  static T reduce_add(reg v) { return _mm512_reduce_add_pd(v); }
  static T reduce_max_propagate_nan(reg v) {
    v = max_propagate_nan(v, _mm512_shuffle_f64x2(v, v, 0x4E));
    v = max_propagate_nan(v, _mm512_shuffle_f64x2(v, v, 0xB1));
    v = max_propagate_nan(v, _mm512_permute_pd(v, 0x55));
    return _mm512_cvtsd_f64(v);
  }
  // As VecF's, in the order [0 4 1 5 2 6 3 7].
  static constexpr bool kEvenOddInLanes = true;
  static reg even_in_lanes(reg a, reg b) { return _mm512_unpacklo_pd(a, b); }
  static reg odd_in_lanes(reg a, reg b) { return _mm512_unpackhi_pd(a, b); }
  static reg in_lane_order(reg v) { return _mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), v); }
  static reg next_in_lanes(reg v, reg next) {
    return _mm512_permutex2var_pd(v, _mm512_setr_epi64(2, 3, 4, 5, 6, 7, 1, 8), next);
  }
  static reg even(reg a, reg b) { return _mm512_permutex2var_pd(a, every2_index(), b); }
  static reg odd(reg a, reg b) {
    return _mm512_permutex2var_pd(a, _mm512_add_epi64(every2_index(), _mm512_set1_epi64(1)), b);
  }
  static reg shift_in(reg cur, reg next, int64_t m) {
    return _mm512_permutex2var_pd(cur, _mm512_add_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64(m)), next);
  }
  static constexpr bool kShiftInBy = true;
  template <int M>
  static reg shift_in_by(reg cur, reg next) {
    return _mm512_castsi512_pd(_mm512_alignr_epi64(_mm512_castpd_si512(next), _mm512_castpd_si512(cur), M));
  }
  static reg first_or_zero(const T* p, bool inside) {
    return _mm512_castpd128_pd512(_mm_maskz_load_sd((__mmask8)inside, p));
  }
  static reg load_lanes(const T* p, int64_t lo, int64_t hi, reg fill) {
    return _mm512_mask_loadu_pd(fill, lanes_between(lo, hi), p);
  }
  using Lanes = __mmask8;
  static Lanes lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo;
    hi = hi > (int64_t)W ? (int64_t)W : hi;
    return hi <= lo ? (Lanes)0 : lanes_between(lo, hi);
  }
  // The mask of lanes lo <= i < hi; 0 <= lo <= hi <= W.
  static __mmask8 lanes_between(int64_t lo, int64_t hi) { return (__mmask8)(((1u << hi) - 1u) & ~((1u << lo) - 1u)); }
  static reg load_masked(const T* p, Lanes m) { return _mm512_maskz_loadu_pd(m, p); }
  // Lanes in m from b, the others from a.
  static reg blend(Lanes m, reg a, reg b) { return _mm512_mask_blend_pd(m, a, b); }
  static constexpr bool kFoldPairs = true;
  static constexpr bool kMaskedLoadsCheap = true;
  static void fold_pairs(reg a, reg b, int64_t h, reg& lo, reg& hi) {
    const int shift = h == 4 ? 2 : h == 2 ? 1 : 0;
    const __m512i k = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512i index = _mm512_or_si512(_mm512_slli_epi64(_mm512_srli_epi64(k, shift), shift + 1),
                                          _mm512_and_si512(k, _mm512_set1_epi64(h - 1)));
    lo = _mm512_permutex2var_pd(a, index, b);
    hi = _mm512_permutex2var_pd(a, _mm512_add_epi64(index, _mm512_set1_epi64(h)), b);
  }
  static __m512i every2_index() { return _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14); }
  static __m256i lanes() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
};

}  // namespace pycnn::avx512
