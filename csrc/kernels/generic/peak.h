// The machine's FMA peak as this ISA sees it: independent FMA chains on registers only (no
// memory traffic), enough chains to cover FMA latency on two ports. The benchmark divides
// every kernel's GFLOP/s by this measured figure.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

namespace pycnn::PYCNN_ISA_NS {

// Runs `iterations` rounds of CHAINS vector FMAs (CHAINS * V::W * 2 flops per round) and
// returns a lane of the sum so the work cannot be optimised away.
template <class V, size_t CHAINS>
float fma_peak_loop(size_t iterations) {
  using T = typename V::T;
  using reg = typename V::reg;
  reg acc[CHAINS];
#pragma GCC unroll 32
  for (size_t i = 0; i < CHAINS; ++i) acc[i] = V::set1(T(i) * T(1e-3));
  const reg a = V::set1(T(0.999999)), b = V::set1(T(1e-7));
  for (size_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 32
    for (size_t i = 0; i < CHAINS; ++i) acc[i] = V::fmadd(acc[i], a, b);
    __asm__ volatile("" ::: "memory");
  }
  reg sum = acc[0];
#pragma GCC unroll 32
  for (size_t i = 1; i < CHAINS; ++i) sum = V::add(sum, acc[i]);
  T out[V::W];
  V::store(out, sum);
  return (float)out[0];
}

}  // namespace pycnn::PYCNN_ISA_NS
