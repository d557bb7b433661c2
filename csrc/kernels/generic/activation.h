// Fused epilogue: y = act(y + bias) on one vector, written once against the vector traits V
// (see <isa>/simd.h) and compiled per ISA inside namespace pycnn::PYCNN_ISA_NS.
//
// NaN propagates through every activation (the data is always the second operand of max/min).
// exp is a Cody-Waite range reduction plus a polynomial: <= 2 ulp in float, ~1e-15 relative in
// double, accurate over the clamped range; outside it sigmoid/tanh/silu/elu saturate exactly.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

namespace pycnn::PYCNN_ISA_NS {

template <class V>
struct ExpConstants;
template <>
struct ExpConstants<VecF> {
  static constexpr float lo = -87.3f, hi = 88.7f;
  static constexpr float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
};
template <>
struct ExpConstants<VecD> {
  static constexpr double lo = -708.3, hi = 709.7;
  static constexpr double log2e = 1.4426950408889634074, ln2_hi = 0.693145751953125,
                          ln2_lo = 1.42860682030941723212e-6;
};

template <class V>
inline typename V::reg vexp(typename V::reg x) {
  using T = typename V::T;
  using C = ExpConstants<V>;
  x = V::min(V::set1(C::hi), V::max(V::set1(C::lo), x));
  typename V::reg n = V::round(V::mul(x, V::set1(C::log2e)));
  typename V::reg r = V::fmadd(n, V::set1(-C::ln2_hi), x);
  r = V::fmadd(n, V::set1(-C::ln2_lo), r);
  typename V::reg p;
  if constexpr (sizeof(T) == 4) {
    // Cephes expf: exp(r) = 1 + r + r^2 * P(r), |r| <= ln2/2.
    p = V::set1(1.9875691500e-4f);
    p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
    p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
    p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
    p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
    p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
    p = V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
  } else {
    // Taylor series to degree 13: truncation error < 2e-16 for |r| <= ln2/2.
    constexpr double inv_fact[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                                   1.0 / 3628800.0,    1.0 / 362880.0,    1.0 / 40320.0,
                                   1.0 / 5040.0,       1.0 / 720.0,       1.0 / 120.0,
                                   1.0 / 24.0,         1.0 / 6.0,         0.5,
                                   1.0,                1.0};
    p = V::set1(inv_fact[0]);
    for (int i = 1; i < 14; ++i) p = V::fmadd(p, r, V::set1(inv_fact[i]));
  }
  return V::ldexp(p, n);
}

template <class V>
inline typename V::reg activate(typename V::reg v, int activation, typename V::T param) {
  using T = typename V::T;
  using reg = typename V::reg;
  const reg one = V::set1(T(1));
  switch (activation) {
    case 1:  // relu
      return V::max(V::zero(), v);
    case 2:  // relu6
      return V::min(V::set1(T(6)), V::max(V::zero(), v));
    case 3:  // leaky_relu
      return V::select_positive(v, v, V::mul(v, V::set1(param)));
    case 4:  // sigmoid = 1 / (1 + exp(-v))
      return V::div(one, V::add(one, vexp<V>(V::sub(V::zero(), v))));
    case 5: {  // tanh = sign(v) * (1 - 2 / (exp(2|v|) + 1)); small |v| uses the odd series
      reg a = V::max(v, V::sub(V::zero(), v));  // |v| (NaN stays NaN)
      reg big = V::sub(one, V::div(V::set1(T(2)), V::add(vexp<V>(V::add(a, a)), one)));
      // |v| < 0.0625: the odd Taylor series to v^13 keeps relative accuracy near 0.
      reg v2 = V::mul(a, a);
      reg series = V::set1(T(21844.0 / 6081075));
      series = V::fmadd(series, v2, V::set1(T(-1382.0 / 155925)));
      series = V::fmadd(series, v2, V::set1(T(62.0 / 2835)));
      series = V::fmadd(series, v2, V::set1(T(-17.0 / 315)));
      series = V::fmadd(series, v2, V::set1(T(2.0 / 15)));
      series = V::fmadd(series, v2, V::set1(T(-1.0 / 3)));
      series = V::fmadd(V::mul(series, v2), a, a);
      reg t = V::select_positive(V::sub(V::set1(T(0.0625)), a), series, big);
      return V::select_positive(v, t, V::select_positive(V::sub(V::zero(), v), V::sub(V::zero(), t), v));
    }
    case 6: {  // silu = v * sigmoid(v); sigmoid is exactly 0 where exp(-v) saturates, so that
      // silu(-inf) is NaN (as v * sigmoid(v) in PyTorch) and silu(v < -hi) is -0, not v / exp(hi).
      using C = ExpConstants<V>;
      const reg s = V::div(one, V::add(one, vexp<V>(V::sub(V::zero(), v))));
      return V::mul(v, V::select_positive(V::add(v, V::set1(C::hi)), s, V::zero()));
    }
    case 7:  // elu = v > 0 ? v : alpha * (exp(v) - 1)
      return V::select_positive(v, v, V::mul(V::set1(param), V::sub(vexp<V>(v), one)));
    default:
      return v;
  }
}

}  // namespace pycnn::PYCNN_ISA_NS
