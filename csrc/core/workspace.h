// Scratch memory for one op call: allocated once before the parallel region, 64-byte aligned,
// one slice per thread, released when the call returns (also on exceptions) to the calling
// thread's WorkspaceCache.
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace pycnn {

// The blocks of the last Workspaces released on this thread, kept for the next call's: a small
// convolution allocates two to four workspaces, and aligned_alloc plus free of each cost ~100 ns
// (LeNet's 5x5 6->16 @14 NCHW, four of them: 6.0 -> 5.6 us). Large blocks matter more: glibc
// serves an aligned block past its mmap threshold from fresh pages every time (a memalign asks
// for more than the block it freed, so the threshold never catches up), and faulting them in
// took ~45% of a 3x3 64->64 @28 NHWC Winograd call (800 KiB of blocks; 2 threads, p10 us, kept
// up to 256 KiB -> 8 MiB: 320 -> 75; @56 310 -> 274). At most kSlots blocks of at most kMaxBytes
// each are kept (32 MiB a calling thread); the thread's exit frees them.
class WorkspaceCache {
 public:
  static constexpr int kSlots = 4;
  static constexpr size_t kMaxBytes = 8 << 20;

  WorkspaceCache() = default;
  WorkspaceCache(const WorkspaceCache&) = delete;
  WorkspaceCache& operator=(const WorkspaceCache&) = delete;
  ~WorkspaceCache() {
    for (Slot& s : slots_) std::free(s.block);
  }

  // A 64-byte aligned block of at least `bytes` (a multiple of 64): the smallest kept one that
  // fits, or a new one.
  void* take(size_t bytes) {
    Slot* best = nullptr;
    for (Slot& s : slots_)
      if (s.block && s.bytes >= bytes && (!best || s.bytes < best->bytes)) best = &s;
    if (!best) return std::aligned_alloc(64, bytes);
    void* block = best->block;
    best->block = nullptr;
    return block;
  }

  // Keeps `block` (of `bytes`) in an empty slot or in place of a smaller one; frees what is
  // not kept.
  void give(void* block, size_t bytes) {
    if (bytes <= kMaxBytes) {
      Slot* smallest = &slots_[0];
      for (Slot& s : slots_) {
        if (!s.block) {
          smallest = &s;
          break;
        }
        if (s.bytes < smallest->bytes) smallest = &s;
      }
      if (!smallest->block || smallest->bytes < bytes) {
        std::swap(smallest->block, block);
        std::swap(smallest->bytes, bytes);
      }
    }
    std::free(block);
  }

  static WorkspaceCache& local() {
    static thread_local WorkspaceCache cache;
    return cache;
  }

 private:
  struct Slot {
    void* block = nullptr;
    size_t bytes = 0;
  };
  Slot slots_[kSlots];
};

template <class T>
class Workspace {
 public:
  Workspace() = default;
  // `per_thread` elements for each of `threads` threads, each slice 64-byte aligned.
  Workspace(size_t per_thread, int threads) { reset(per_thread, threads); }
  ~Workspace() { release(); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  void reset(size_t per_thread, int threads) {
    release();
    stride_ = (per_thread * sizeof(T) + 63) / 64 * 64 / sizeof(T);
    const size_t bytes = stride_ * (size_t)(threads > 0 ? threads : 1) * sizeof(T);
    if (bytes == 0) return;
    bytes_ = (bytes + 63) / 64 * 64;
    data_ = static_cast<T*>(WorkspaceCache::local().take(bytes_));
    if (!data_) throw std::bad_alloc();
  }
  T* slice(int thread) const { return data_ + stride_ * (size_t)thread; }
  T* data() const { return data_; }

 private:
  void release() {
    if (data_) WorkspaceCache::local().give(data_, bytes_);
    data_ = nullptr;
  }

  T* data_ = nullptr;
  size_t stride_ = 0, bytes_ = 0;
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
