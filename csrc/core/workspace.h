// Scratch memory for one op call: allocated once before the parallel region, 64-byte aligned,
// one slice per thread, freed when the call returns (also on exceptions).
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace pycnn {

template <class T>
class Workspace {
 public:
  Workspace() = default;
  // `per_thread` elements for each of `threads` threads, each slice 64-byte aligned.
  Workspace(size_t per_thread, int threads) { reset(per_thread, threads); }
  ~Workspace() { std::free(data_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  void reset(size_t per_thread, int threads) {
    std::free(data_);
    data_ = nullptr;
    stride_ = (per_thread * sizeof(T) + 63) / 64 * 64 / sizeof(T);
    const size_t bytes = stride_ * (size_t)(threads > 0 ? threads : 1) * sizeof(T);
    if (bytes == 0) return;
    data_ = static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    if (!data_) throw std::bad_alloc();
  }
  T* slice(int thread) const { return data_ + stride_ * (size_t)thread; }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t stride_ = 0;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a * b * ... for buffer sizes derived from strides, dilations and paddings (each < 2**31, so
// their products can pass 2**63): std::length_error instead of a wrapped, too-small size.
inline int64_t checked_product(std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(r, f, &r))
      throw std::length_error("pycnn: buffer size overflows 64 bits (stride, dilation or padding too large)");
  return r;
}
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

}  // namespace pycnn
