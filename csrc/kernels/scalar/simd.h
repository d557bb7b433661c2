// Portable "vector" traits: one lane, plain C++ (the compiler may still use SSE2, the x86-64
// baseline). The generic kernels compiled with these are the reference-grade fallback path.
#pragma once

#include <math.h>
#include <cstddef>
#include <cstdint>

namespace pycnn::scalar {

template <class Real>
struct VecScalar {
  using T = Real;
  using reg = Real;
  static constexpr size_t W = 1;
  static reg zero() { return 0; }
  static reg set1(T v) { return v; }
  static reg load(const T* p) { return *p; }
  static void store(T* p, reg v) { *p = v; }
  static reg load_partial(const T* p, size_t n) { return n ? *p : 0; }
  static void store_partial(T* p, reg v, size_t n) { if (n) *p = v; }
  static void store_partial_split(T* p, reg v, size_t n) { store_partial(p, v, n); }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg div(reg a, reg b) { return a / b; }
  static reg fmadd(reg a, reg b, reg c) { return a * b + c; }
  // Same NaN behaviour as x86 max/min: the second operand wins when either is NaN.
  static reg max(reg a, reg b) { return a > b ? a : b; }
  static reg min(reg a, reg b) { return a < b ? a : b; }
  static reg select_positive(reg x, reg if_pos, reg otherwise) { return x > 0 ? if_pos : otherwise; }
  static reg round(reg x) { return nearbyint(x); }
  static reg ldexp(reg x, reg n) { return ::ldexp(x, (int)n); }
  // Pooling: NaN when either is NaN (x, the new data, is tested first).
  static reg max_propagate_nan(reg acc, reg x) { return x != x ? x : (x > acc ? x : acc); }
  static reg load_every2(const T* p) { return *p; }
  static reg load_every2_partial(const T* p, size_t n) { return n ? *p : 0; }
  static reg gather(const T* p, int64_t) { return *p; }
  static reg gather_partial(const T* p, int64_t, size_t n) { return n ? *p : 0; }
  static T reduce_add(reg v) { return v; }
  static T reduce_max_propagate_nan(reg v) { return v; }
  static reg even(reg a, reg) { return a; }
  static reg odd(reg, reg b) { return b; }
  static reg shift_in(reg cur, reg next, int64_t m) { return m ? next : cur; }
  static reg load_lanes(const T* p, int64_t lo, int64_t hi, reg fill) { return lo <= 0 && hi > 0 ? *p : fill; }
  using Lanes = bool;  // the one lane, or none
  static Lanes lane_range(int64_t lo, int64_t hi) { return lo <= 0 && hi > 0; }
  static reg load_masked(const T* p, Lanes m) { return m ? *p : 0; }
  // Lanes in m from b, the others from a.
  static reg blend(Lanes m, reg a, reg b) { return m ? b : a; }
  static constexpr bool kFoldPairs = false;  // one lane: nothing to fold
  static constexpr bool kMaskedLoadsCheap = true;
};

using VecF = VecScalar<float>;
using VecD = VecScalar<double>;

}  // namespace pycnn::scalar
