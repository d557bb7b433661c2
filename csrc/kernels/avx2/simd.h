// AVX2+FMA vector traits for the generic kernels. Compiled only with AVX2/FMA flags.
#pragma once

#include <immintrin.h>
#include <cstddef>
#include <cstdint>
#include <type_traits>

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
  // Transpose step (kernels/generic/transpose.h): for each 2H-lane group, a takes the first H
  // lanes of a then of b, and b the last H lanes of a then of b.
  template <size_t H>
  static void transpose_pair(reg& a, reg& b) {
    reg lo, hi;
    if constexpr (H == 4) {
      lo = _mm256_permute2f128_ps(a, b, 0x20);
      hi = _mm256_permute2f128_ps(a, b, 0x31);
    } else if constexpr (H == 2) {
      lo = _mm256_shuffle_ps(a, b, 0x44);
      hi = _mm256_shuffle_ps(a, b, 0xEE);
    } else {
      static_assert(H == 1);
      lo = _mm256_blend_ps(a, _mm256_moveldup_ps(b), 0xAA);
      hi = _mm256_blend_ps(_mm256_movehdup_ps(a), b, 0xAA);
    }
    a = lo;
    b = hi;
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(T v) { return _mm256_set1_ps(v); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg load_partial(const T* p, size_t n) { return _mm256_maskload_ps(p, lane_mask32(n)); }
  static void store_partial(T* p, reg v, size_t n) { _mm256_maskstore_ps(p, lane_mask32(n), v); }
  // store_partial through 128-, 64- and 32-bit moves, for the row kernels (pooling, NCHW
  // depthwise) that store a partial vector at the end of every row: a masked store (vmaskmovps)
  // takes ~12 cycles on Zen 1 (one core, ns per independent store: masked 4.8, these 2.0, full
  // width 1.2). Inlined, as a call would spill the caller's live vectors; the register tiles
  // keep store_partial, whose one instruction keeps their unrolled stores small.
  __attribute__((always_inline)) static void store_partial_split(T* p, reg v, size_t n) {
    if (n >= W) return store(p, v);
    __m128 part = _mm256_castps256_ps128(v);
    if (n >= 4) {
      _mm_storeu_ps(p, part);
      part = _mm256_extractf128_ps(v, 1);
      p += 4;
      n -= 4;
    }
    if (n >= 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
      part = _mm_movehl_ps(part, part);
      p += 2;
      n -= 2;
    }
    if (n) _mm_store_ss(p, part);
  }
  // dst[3*j + i] = lane j of row i, for the 3 rows a, b, c (3*W elements): an RGB image's planes
  // to pixels. Output vector k, lane l holds element e = k*W + l: lane e / 3 of row e % 3.
  static constexpr int interleave3_rows(int k, int row) {
    int m = 0;
    for (int l = 0; l < 8; ++l) m |= (8 * k + l) % 3 == row ? 1 << l : 0;
    return m;
  }
  static constexpr bool kInterleave3 = true;
  static void interleave3(reg a, reg b, reg c, T* dst) {
    const __m256i idx0 = _mm256_setr_epi32(0, 0, 0, 1, 1, 1, 2, 2);
    const __m256i idx1 = _mm256_setr_epi32(2, 3, 3, 3, 4, 4, 4, 5);
    const __m256i idx2 = _mm256_setr_epi32(5, 5, 6, 6, 6, 7, 7, 7);
    auto out = [&](const __m256i idx, auto k) {
      const reg va = _mm256_permutevar8x32_ps(a, idx), vb = _mm256_permutevar8x32_ps(b, idx),
                vc = _mm256_permutevar8x32_ps(c, idx);
      return _mm256_blend_ps(_mm256_blend_ps(va, vb, interleave3_rows(decltype(k)::value, 1)), vc,
                             interleave3_rows(decltype(k)::value, 2));
    };
    _mm256_storeu_ps(dst, out(idx0, std::integral_constant<int, 0>{}));
    _mm256_storeu_ps(dst + 8, out(idx1, std::integral_constant<int, 1>{}));
    _mm256_storeu_ps(dst + 16, out(idx2, std::integral_constant<int, 2>{}));
  }
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
  // Pooling. max(acc, x) that is NaN when either is NaN; x is the new data, so its NaN test
  // stays off the accumulator's dependency chain.
  static reg max_propagate_nan(reg acc, reg x) {
    return _mm256_blendv_ps(_mm256_max_ps(x, acc), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  // Lanes p[0], p[2], ..., p[2W-2] (reads exactly p[0 .. 2W-2]); the partial form fills n lanes
  // and reads p[0 .. 2n-2].
  static reg load_every2(const T* p) { return every2(load(p), load_partial(p + W, W - 1)); }
  static reg load_every2_partial(const T* p, size_t n) {
    const size_t count = 2 * n - 1;
    const reg lo = load_partial(p, count < W ? count : W);
    const reg hi = count > W ? load_partial(p + W, count - W) : zero();
    return every2(lo, hi);
  }
  // Lanes p[i*stride]; the caller guarantees stride * (W - 1) fits in int32.
  static reg gather(const T* p, int64_t stride) {
    return _mm256_i32gather_ps(p, _mm256_mullo_epi32(lanes(), _mm256_set1_epi32((int)stride)), 4);
  }
  static reg gather_partial(const T* p, int64_t stride, size_t n) {
    return _mm256_mask_i32gather_ps(zero(), p, _mm256_mullo_epi32(lanes(), _mm256_set1_epi32((int)stride)),
                                    _mm256_castsi256_ps(lane_mask32(n)), 4);
  }
  static T reduce_add(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static T reduce_max_propagate_nan(reg v) {
    v = max_propagate_nan(v, _mm256_permute2f128_ps(v, v, 0x01));
    v = max_propagate_nan(v, _mm256_permute_ps(v, 0x4E));
    v = max_propagate_nan(v, _mm256_permute_ps(v, 0xB1));
    return _mm256_cvtss_f32(v);
  }
  // The stride-2 column split kept inside the 128-bit halves: even_in_lanes(a, b) holds the even
  // lanes of the 2W-lane pair (a, b), odd_in_lanes the odd ones, both with their 64-bit pairs in
  // the order [0 2 1 3]; in_lane_order restores the order (the one lane-crossing permute, which
  // a kernel can defer to its sums: kernels/generic/depthwise.h).
  static constexpr bool kEvenOddInLanes = true;
  static reg even_in_lanes(reg a, reg b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); }
  static reg odd_in_lanes(reg a, reg b) { return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)); }
  static reg in_lane_order(reg v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  // In the same order: element i takes v's element i - 1, element 0 a zero. (Lanes hold
  // elements 0 1 4 5 2 3 6 7.)
  static reg previous_in_lanes(reg v) {
    const reg moved = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 0, 5, 2, 1, 4, 3, 6));
    return _mm256_blend_ps(moved, _mm256_setzero_ps(), 0x01);
  }
  // Even lanes of the 2W-lane pair (a, b).
  static reg every2(reg a, reg b) { return in_lane_order(even_in_lanes(a, b)); }
  static reg even(reg a, reg b) { return every2(a, b); }
  static reg odd(reg a, reg b) { return in_lane_order(odd_in_lanes(a, b)); }
  // Lane i: cur[i + m] while i + m < W, then next[i + m - W]; 0 <= m < W.
  static reg shift_in(reg cur, reg next, int64_t m) {
    const __m256i index = _mm256_add_epi32(lanes(), _mm256_set1_epi32((int)m));  // permutevar uses index & 7
    const __m256i from_next = _mm256_cmpgt_epi32(index, _mm256_set1_epi32(7));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(cur, index), _mm256_permutevar8x32_ps(next, index),
                            _mm256_castsi256_ps(from_next));
  }
  // Lanes lo <= i < hi from p[i] (nothing else is read), the others `fill`; 0 <= lo < hi <= W.
  static reg load_lanes(const T* p, int64_t lo, int64_t hi, reg fill) {
    const __m256i m = lanes_between(lo, hi);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  // A lane set computed once for many loads: lanes lo <= i < hi, clipped to [0, W) (may be empty).
  using Lanes = __m256i;
  static Lanes lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo > (int64_t)W ? (int64_t)W : lo;
    hi = hi < 0 ? 0 : hi > (int64_t)W ? (int64_t)W : hi;
    return lanes_between(lo, hi);
  }
  // The mask of lanes lo <= i < hi (none when hi <= lo); 0 <= lo, hi <= W.
  static __m256i lanes_between(int64_t lo, int64_t hi) {
    return _mm256_andnot_si256(lane_mask32((size_t)lo), lane_mask32((size_t)hi));
  }
  // Lanes in m from p[i] (nothing else is read), the others 0.
  static reg load_masked(const T* p, Lanes m) { return _mm256_maskload_ps(p, m); }
  // Lanes in m from b, the others from a.
  static reg blend(Lanes m, reg a, reg b) { return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m)); }
  static __m256i lanes() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static constexpr bool kFoldPairs = false;  // two-source permutes are too dear here: reduce per vector
  // Masked loads are vmaskmovps, slower than plain loads: kernels load plainly where all lanes are inside.
  static constexpr bool kMaskedLoadsCheap = false;
};

struct VecD {
  using T = double;
  using reg = __m256d;
  static constexpr size_t W = 4;
  // Transpose step (kernels/generic/transpose.h): for each 2H-lane group, a takes the first H
  // lanes of a then of b, and b the last H lanes of a then of b.
  template <size_t H>
  static void transpose_pair(reg& a, reg& b) {
    reg lo, hi;
    if constexpr (H == 2) {
      lo = _mm256_permute2f128_pd(a, b, 0x20);
      hi = _mm256_permute2f128_pd(a, b, 0x31);
    } else {
      static_assert(H == 1);
      lo = _mm256_unpacklo_pd(a, b);
      hi = _mm256_unpackhi_pd(a, b);
    }
    a = lo;
    b = hi;
  }
  static reg zero() { return _mm256_setzero_pd(); }
  static reg set1(T v) { return _mm256_set1_pd(v); }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, reg v) { _mm256_storeu_pd(p, v); }
  static reg load_partial(const T* p, size_t n) { return _mm256_maskload_pd(p, lane_mask64(n)); }
  static void store_partial(T* p, reg v, size_t n) { _mm256_maskstore_pd(p, lane_mask64(n), v); }
  // As VecF's: 128- and 64-bit moves in place of vmaskmovpd.
  __attribute__((always_inline)) static void store_partial_split(T* p, reg v, size_t n) {
    if (n >= W) return store(p, v);
    __m128d part = _mm256_castpd256_pd128(v);
    if (n >= 2) {
      _mm_storeu_pd(p, part);
      part = _mm256_extractf128_pd(v, 1);
      p += 2;
      n -= 2;
    }
    if (n) _mm_store_sd(p, part);
  }
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
  static reg max_propagate_nan(reg acc, reg x) {
    return _mm256_blendv_pd(_mm256_max_pd(x, acc), x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
  }
  static reg load_every2(const T* p) { return every2(load(p), load_partial(p + W, W - 1)); }
  static reg load_every2_partial(const T* p, size_t n) {
    const size_t count = 2 * n - 1;
    const reg lo = load_partial(p, count < W ? count : W);
    const reg hi = count > W ? load_partial(p + W, count - W) : zero();
    return every2(lo, hi);
  }
  static reg gather(const T* p, int64_t stride) {
    return _mm256_i32gather_pd(p, _mm_mullo_epi32(lanes(), _mm_set1_epi32((int)stride)), 8);
  }
  static reg gather_partial(const T* p, int64_t stride, size_t n) {
    return _mm256_mask_i32gather_pd(zero(), p, _mm_mullo_epi32(lanes(), _mm_set1_epi32((int)stride)),
                                    _mm256_castsi256_pd(lane_mask64(n)), 8);
  }
  static T reduce_add(reg v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static T reduce_max_propagate_nan(reg v) {
    v = max_propagate_nan(v, _mm256_permute2f128_pd(v, v, 0x01));
    v = max_propagate_nan(v, _mm256_permute_pd(v, 0x5));
    return _mm256_cvtsd_f64(v);
  }
  // As VecF's: lanes a0 b0 a2 b2 (even) and a1 b1 a3 b3 (odd), restored to a0 a2 b0 b2.
  static constexpr bool kEvenOddInLanes = true;
  static reg even_in_lanes(reg a, reg b) { return _mm256_unpacklo_pd(a, b); }
  static reg odd_in_lanes(reg a, reg b) { return _mm256_unpackhi_pd(a, b); }
  static reg in_lane_order(reg v) { return _mm256_permute4x64_pd(v, _MM_SHUFFLE(3, 1, 2, 0)); }
  // As VecF's (lanes hold elements 0 2 1 3).
  static reg previous_in_lanes(reg v) {
    return _mm256_blend_pd(_mm256_permute4x64_pd(v, _MM_SHUFFLE(1, 0, 2, 0)), _mm256_setzero_pd(), 0x1);
  }
  // Even lanes of the 2W-lane pair (a, b).
  static reg every2(reg a, reg b) { return in_lane_order(even_in_lanes(a, b)); }
  static reg even(reg a, reg b) { return every2(a, b); }
  static reg odd(reg a, reg b) { return in_lane_order(odd_in_lanes(a, b)); }
  // Lane i: cur[i + m] while i + m < W, then next[i + m - W]; 0 <= m < W. Lanes move as pairs of
  // 32-bit halves through permutevar8x32.
  static reg shift_in(reg cur, reg next, int64_t m) {
    const __m256i k = _mm256_add_epi64(_mm256_setr_epi64x(0, 1, 2, 3), _mm256_set1_epi64x(m));
    const __m256i low = _mm256_slli_epi64(_mm256_and_si256(k, _mm256_set1_epi64x(3)), 1);  // 2*(k & 3)
    const __m256i index = _mm256_or_si256(low, _mm256_slli_epi64(_mm256_add_epi64(low, _mm256_set1_epi64x(1)), 32));
    const reg from_cur = _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(cur), index));
    const reg from_next = _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(next), index));
    return _mm256_blendv_pd(from_cur, from_next, _mm256_castsi256_pd(_mm256_cmpgt_epi64(k, _mm256_set1_epi64x(3))));
  }
  static reg load_lanes(const T* p, int64_t lo, int64_t hi, reg fill) {
    const __m256i m = lanes_between(lo, hi);
    return _mm256_blendv_pd(fill, _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  using Lanes = __m256i;
  static Lanes lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo > (int64_t)W ? (int64_t)W : lo;
    hi = hi < 0 ? 0 : hi > (int64_t)W ? (int64_t)W : hi;
    return lanes_between(lo, hi);
  }
  // The mask of lanes lo <= i < hi (none when hi <= lo); 0 <= lo, hi <= W.
  static __m256i lanes_between(int64_t lo, int64_t hi) {
    return _mm256_andnot_si256(lane_mask64((size_t)lo), lane_mask64((size_t)hi));
  }
  static reg load_masked(const T* p, Lanes m) { return _mm256_maskload_pd(p, m); }
  // Lanes in m from b, the others from a.
  static reg blend(Lanes m, reg a, reg b) { return _mm256_blendv_pd(a, b, _mm256_castsi256_pd(m)); }
  static __m128i lanes() { return _mm_setr_epi32(0, 1, 2, 3); }
  static constexpr bool kFoldPairs = false;
  static constexpr bool kMaskedLoadsCheap = false;
};

}  // namespace pycnn::avx2
