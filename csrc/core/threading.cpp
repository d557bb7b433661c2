#include "core/threading.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

namespace pycnn {
namespace {
std::atomic<int> g_threads{0};  // 0: not set, follow OpenMP
}

// More threads than this gain nothing on any machine, and libgomp keeps per-thread team data on
// the starting thread's stack: a team of ~100k threads overflows it (SIGSEGV). The cap also keeps
// `num_threads() * k` work-splitting products far from int overflow.
constexpr int kMaxThreads = 1024;

int num_threads() {
  const int omp = omp_get_max_threads();
  const int own = g_threads.load(std::memory_order_relaxed);
  return std::min(own > 0 && own < omp ? own : omp, kMaxThreads);
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

std::string openmp_runtime() {
  std::string s = "OpenMP " + std::to_string(_OPENMP);
#if defined(__GNUC__) && !defined(__clang__)
  s += " (libgomp)";
#elif defined(__clang__)
  s += " (libomp)";
#endif
  return s;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

std::string compile_flags() {
#ifdef PYCNN_COMPILE_FLAGS
  return PYCNN_COMPILE_FLAGS;
#else
  return "";
#endif
}

}  // namespace pycnn
