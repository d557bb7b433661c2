// Measured FMA peak of this machine for the ISA in use (the roof the benchmark compares to).
#include <omp.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "core/dispatch.h"
#include "core/workspace.h"
#include "pycnn/runtime.h"

namespace pycnn {

double measure_fma_peak_gflops(int threads, double seconds) {
  const PeakKernel& kernel = active_kernels().peak;
  using clock = std::chrono::steady_clock;
  std::atomic<float> sink{0.0f};
  // Calibrate on one thread: grow the round count until a run takes >= 10 ms.
  size_t iterations = 1 << 16;
  for (;;) {
    const auto t0 = clock::now();
    sink = sink + kernel.run(iterations);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt >= 0.01) {
      iterations = (size_t)((double)iterations * (seconds > 0 ? seconds : 0.1) / dt) + 1;
      break;
    }
    iterations *= 4;
  }
  if (threads < 1) threads = 1;
  double elapsed = 0;
#pragma omp parallel num_threads(threads)
  {
#pragma omp barrier
    const auto t0 = clock::now();
    const float r = kernel.run(iterations);
    sink = sink + r;
#pragma omp barrier
#pragma omp master
    elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  }
  return (double)kernel.flops_per_iteration * (double)iterations * threads / elapsed / 1e9;
}

double measure_copy_bandwidth_gbs(int threads, size_t bytes) {
  using clock = std::chrono::steady_clock;
  if (threads < 1) threads = 1;
  const size_t n = bytes / sizeof(float) / 2;
  Workspace<float> buffer(2 * n, 1);
  float* src = buffer.data();
  float* dst = src + n;
  // Large copies stream through memory: bytes read + bytes written per pass.
  double best = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const auto t0 = clock::now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < (int64_t)n; ++i) dst[i] = src[i] + 1.0f;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (pass > 0) best = std::max(best, 2.0 * (double)n * sizeof(float) / dt / 1e9);
  }
  return best;
}

}  // namespace pycnn
