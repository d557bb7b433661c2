// Threads and the per-thread floating-point environment of pycnn's parallel regions.
#pragma once

#include <omp.h>
#include <xmmintrin.h>

#include <cstdint>

#include "pycnn/runtime.h"

namespace pycnn {

// Threads for a problem of `flops` multiply-adds (or element operations) split into `items`
// independent pieces: 1 below ~a few microseconds of work, so small problems skip the team.
inline int threads_for(double flops, int64_t items) {
  constexpr double kMinFlopsPerThread = 50000.0;
  int t = num_threads();
  if (flops < kMinFlopsPerThread * 2) t = 1;
  if (items < t) t = (int)(items < 1 ? 1 : items);
  return t;
}

// Runs body() once on each of `threads` threads of one parallel region, or directly on the
// calling thread when threads == 1: small problems then pay no team start-up (~1 us), and the
// `omp for` loops inside body, orphaned, run all their iterations on this thread. Inside a
// caller's active parallel region (a C++ framework calling from its own OpenMP loop) those
// loops would bind to the caller's team and split one call's work across its threads, so
// there the call opens its own (single-thread) region.
template <class Body>
void parallel_region(int threads, const Body& body) {
  if (threads <= 1 && !omp_in_parallel()) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

// Flush-to-zero and denormals-are-zero for the lifetime of the guard, then the caller's
// MXCSR back: denormal weights would otherwise slow FMAs down ~100x, and the caller's
// thread must not see the mode change.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned int saved_;
};

}  // namespace pycnn
