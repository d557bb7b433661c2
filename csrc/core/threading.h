// Threads and the per-thread floating-point environment of pycnn's parallel regions.
#pragma once

#include <omp.h>
#include <xmmintrin.h>

#include <cstdint>

#include "pycnn/runtime.h"

namespace pycnn {

// Threads for a problem of `flops` multiply-adds (or element operations) split into `items`
// independent pieces: 1 below ~a few microseconds of work, so small problems skip the team.
// The team pays from ~200K flops: 2 threads against 1 (the threshold at 200K against 400K),
// alternating, us: conv2d 3x3 1->32 @28 (389K flops) 7.1 -> 6.2, NHWC 6.8 -> 5.6, 2->16 @24
// (332K) 6.8 -> 5.5, 1->20 @28 NHWC (243K) 7.0 -> 6.1, 5x5 1->6 @32 NHWC (235K) 9.1 -> 7.0;
// depthwise 3x3 96 @14 (338K) 7.7 -> 5.6, conv_transpose 4x4/2 16->8 @8 NHWC (262K) 7.7 -> 6.3;
// 100-200K equal within 0.2 us. (On a machine whose other core is busy, one thread is faster
// at any size: README, Threads.)
inline int threads_for(double flops, int64_t items) {
  constexpr double kMinFlopsPerThread = 100000.0;
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
//
// The loop that ends a region is `nowait`: the region's own closing barrier follows it, and
// every barrier costs a small call (libgomp's last thread to arrive makes a futex syscall; on
// 2 threads, 4 -> 3 syscalls per LeNet-size NCHW conv2d).
template <class Body>
void parallel_region(int threads, const Body& body) {
  if (threads <= 1 && !omp_in_parallel()) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

// The loops of a parallel_region body that hand out items [0, n) dynamically: `item(i)` for
// this thread's share, as `#pragma omp for schedule(dynamic, chunk) nowait` (for_dynamic) or
// `schedule(guided) nowait` (for_guided), then the team's barrier when `wait`. On
// parallel_region's one-thread path (no region) a plain loop: libgomp builds a work share even
// for an orphaned dynamic or guided loop with no team (an aligned malloc, a lock, a free):
// medians of 7 alternating processes, Zen 1, us, tiny conv2d (1x1x8x8, 3x3) 3.14 -> 2.68,
// conv_transpose 4x4/2 8->4 @4 8.4 -> 7.0. (Static loops compile to no runtime call and stay
// pragmas.)
template <class Item>
void for_dynamic(int64_t n, const Item& item, int64_t chunk = 1, bool wait = false) {
  if (!omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) item(i);
    return;
  }
#pragma omp for schedule(dynamic, chunk) nowait
  for (int64_t i = 0; i < n; ++i) item(i);
  if (wait) {
#pragma omp barrier
  }
}
template <class Item>
void for_guided(int64_t n, const Item& item, bool wait = false) {
  if (!omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) item(i);
    return;
  }
#pragma omp for schedule(guided) nowait
  for (int64_t i = 0; i < n; ++i) item(i);
  if (wait) {
#pragma omp barrier
  }
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
