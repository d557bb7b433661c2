// Packing of dense matrices into the micropanels the GEMM-shaped microkernels read
// (contracts in kernels/microkernels.h). Shared by every op that feeds those kernels.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/threading.h"
#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// Columns of a row-major matrix (k x cols, row stride ld) into panels of `nr` columns:
// dst[(panel*k + kk)*nr + j] = src[kk*ld + panel*nr + j], columns past the end zero.
template <class T>
void pack_column_panels(const T* src, int64_t k, int64_t cols, int64_t ld, int64_t nr, T* dst) {
  for (int64_t c0 = 0; c0 < cols; c0 += nr) {
    const int64_t n = cols - c0 < nr ? cols - c0 : nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      T* d = dst + kk * nr;
      std::memcpy(d, src + kk * ld + c0, (size_t)n * sizeof(T));
      for (int64_t j = n; j < nr; ++j) d[j] = T(0);
    }
    dst += k * nr;
  }
}

// Copies count elements src[0], src[step], ... to dst for the output positions whose input
// index `start + t*step` lies in [0, size), and writes zeros elsewhere (the padding).
template <class T>
inline void copy_padded(const T* row, int64_t size, int64_t start, int64_t step, int64_t count, T* dst) {
  // First t with start + t*step >= 0, and first t with start + t*step >= size. Strides 1 and 2
  // divide by shifts: an integer division costs as much as copying a short row (the NCHW direct
  // kernel's row panels copy each of a row's phases in a call of its own).
  auto ceil_div_step = [step](int64_t a) { return step == 1 ? a : step == 2 ? (a + 1) >> 1 : (a + step - 1) / step; };
  int64_t lo = start >= 0 ? 0 : ceil_div_step(-start);
  int64_t hi = start >= size ? 0 : ceil_div_step(size - start);
  if (lo > count) lo = count;
  if (hi > count) hi = count;
  if (hi < lo) hi = lo;
  for (int64_t t = 0; t < lo; ++t) dst[t] = T(0);
  if (step == 1) {
    if (hi > lo) std::memcpy(dst + lo, row + start + lo, (size_t)(hi - lo) * sizeof(T));
  } else if (step == 2) {
    const T* src = row + start;
    for (int64_t t = lo; t < hi; ++t) dst[t] = src[2 * t];
  } else {
    for (int64_t t = lo; t < hi; ++t) dst[t] = row[start + t * step];
  }
  for (int64_t t = hi; t < count; ++t) dst[t] = T(0);
}

// dst (cols x rows, row stride ldd) = src (rows x cols, row stride lds) transposed, by the
// ISA's register blocks, a strip of W destination rows at a time, each strip written left to
// right before the next: the writes (read-for-ownership, then write-back) are what a transpose
// waits on, so they stream, and the reads jump. One thread, float32 (AVX-512), us, strips of
// source rows -> of destination rows: (C, HW) -> (HW, C) 512 x 196 42-45 -> 9.6, 256 x 196
// 12-13.5 -> 3.8, 64 x 3136 x 8 images 168 -> 126; (HW, C) -> (C, HW) 12544 x 128 366 -> 136;
// a layer's output rows (64-channel pixel rows in cache) into NCHW planes, 64 x 112 x 112
// 117-202 -> 57-78, batch 8 of 64 x 56 x 56 380-630 -> 250-285. No shape measured slower.
// prefetch_bytes > 0: each source row is prefetched that far ahead (kPrefetchBytes, below).
template <class T>
void transpose_blocks(const ConvKernels<T>& kn, const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst,
                      int64_t ldd, int64_t prefetch_bytes = 0) {
  const int64_t B = (int64_t)kn.transpose_block;
  for (int64_t c0 = 0; c0 < cols; c0 += B)
    for (int64_t r0 = 0; r0 < rows; r0 += B) {
      // A hint (an address past the end of src does not fault), as an integer: no pointer leaves src.
      for (int64_t i = r0; prefetch_bytes && i < std::min(rows, r0 + B); ++i)
        __builtin_prefetch((const void*)((uintptr_t)(src + i * lds + c0) + (uintptr_t)prefetch_bytes));
      kn.transpose(src + r0 * lds + c0, (size_t)lds, dst + c0 * ldd + r0, (size_t)ldd,
                   (size_t)std::min(B, rows - r0), (size_t)std::min(B, cols - c0));
    }
}

// Columns [qa, qb) of a direct NHWC input panel (kernels/microkernels.h: DirectNhwcArgs) with
// `rows` kernel rows: row r holds input row first_row + r*row_step of `image` (h x w x c), column
// q holds input column q + col_origin, channels [c0, c0 + cg); zeros outside the image. With all
// channels (one group) a row's columns are one contiguous run of the input.
template <class T>
void fill_nhwc_panel(const T* image, int64_t h, int64_t w, int64_t c, int64_t c0, int64_t cg, int64_t rows,
                     int64_t first_row, int64_t row_step, int64_t col_origin, int64_t qa, int64_t qb, T* panel,
                     int64_t panel_kh) {
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = panel + r * panel_kh;
    const int64_t ih = first_row + r * row_step;
    if (ih < 0 || ih >= h) {
      std::fill(dst + qa * cg, dst + qb * cg, T(0));
      continue;
    }
    const T* in = image + ih * w * c + c0;
    const int64_t lo = std::clamp(-col_origin, qa, qb), hi = std::clamp(w - col_origin, lo, qb);
    std::fill(dst + qa * cg, dst + lo * cg, T(0));
    if (cg == c) {
      std::memcpy(dst + lo * cg, in + (lo + col_origin) * c, (size_t)((hi - lo) * cg) * sizeof(T));
    } else {
      for (int64_t q = lo; q < hi; ++q) std::memcpy(dst + q * cg, in + (q + col_origin) * c, (size_t)cg * sizeof(T));
    }
    std::fill(dst + hi * cg, dst + qb * cg, T(0));
  }
}

// OIHW weights (O x Cg*taps, k = c*taps + t) -> rows k = t*Cg + c of the output channels
// [o0, o0 + count): dst[(t*Cg + c)*ldd + j] = w[((o0 + j)*Cg + c)*taps + t]. The (O, Cg*taps)
// matrix is transposed one register block at a time into a buffer whose rows (16 outputs each, a
// cache line in float32) are then stored to their tap-major rows. One thread, us, against one
// element at a time (a scalar gather of stride Cg*taps): 64x32x3x3 5.6 -> 2.2, 16x6x5x5 0.78 ->
// 0.26, 256x256x3x3 187 -> 92, 512x512x3x3 (9.4 MB, memory-bound) 1790 -> 1500.
template <class T>
void reorder_oihw_rows(const ConvKernels<T>& kn, const T* w, int64_t o0, int64_t count, int64_t cg, int64_t taps,
                       T* dst, int64_t ldd) {
  const int64_t B = (int64_t)kn.transpose_block, k_count = cg * taps;
  alignas(64) T block[16 * 16];
  for (int64_t oo = 0; oo < count; oo += B) {
    const int64_t rows = std::min(B, count - oo);
    int64_t c = 0, t = 0;  // of k = k0 + j
    for (int64_t k0 = 0; k0 < k_count; k0 += B) {
      const int64_t cols = std::min(B, k_count - k0);
      kn.transpose(w + (o0 + oo) * k_count + k0, (size_t)k_count, block, (size_t)B, (size_t)rows, (size_t)cols);
      for (int64_t j = 0; j < cols; ++j) {
        T* d = dst + (t * cg + c) * ldd + oo;
        if (rows * sizeof(T) == 64)  // a constant size copies inline; a variable one calls libc
          std::memcpy(d, block + j * B, 64);
        else
          std::memcpy(d, block + j * B, (size_t)rows * sizeof(T));
        if (++t == taps) t = 0, ++c;
      }
    }
  }
}

// Convolution weights as the vector operand of the NHWC microkernels: per group, panels of NR
// output channels, each a K x NR block (k = (tap, c) as in HWIO).
//  - Packed: every panel copied into one contiguous, 64-byte aligned block ([group][panel][k][NR],
//    zeros past a group's last channel), from HWIO weights (a K x O matrix) or reordered from
//    PyTorch's OIHW on the way. Reordering OIHW straight into panels, where it went to a whole
//    HWIO matrix first: 3x3 256->256 @14 NCHW (2.3 MiB of weights), 2 threads, p10 2286 ->
//    1883 us.
//  - In place (HWIO only): full panels read with row stride O; a group's partial last panel
//    copied into a zero-padded K x NR block so that full-width loads never leave the array.
// HWIO weights are packed when the call is large enough to repay the copy (`large`) and the
// in-place panels would be slow: rows of under four cache lines (NR of every O columns), or
// weights off a 64-byte boundary (NumPy aligns to 16), where every vector load splits across two
// lines. 2 threads, p10 us, in place -> packed (Intel, 2 MiB L2), weights 64-byte aligned / 16
// bytes off: 3x3 64->64 @56 NHWC (rows of 2 lines) 1311 -> 1204 / 1508 -> 1251; 1x1 256->64
// @56 (4 lines) 659 -> 661 / 744 -> 667; 3x3/2 128->256 @56 (4 lines) 2766 -> 2820 / 3055 -> 2886.
//
// A caller with no barrier of its own between the start of its parallel region and the first
// read of the weights (`threads` > 1) has small weights packed by every thread into its own copy:
// twice the packing, but no barrier, where a thread that starts late holds the other up (as the
// private NCHW transposes, NhwcInput). NCHW, 2 threads, median / p10 us, shared -> private:
// 3x3 32->64 @13 77.9 / 70.5 -> 58.3 / 47.5, LeNet's 5x5 6->16 @14 21.2 / 17.2 -> 17.5 / 12.8,
// 3x3 64->64 @28 441 / 390 -> 414 / 292.
template <class T>
class WeightPanels {
 public:
  static constexpr int64_t kPrivateBytes = 256 * 1024;

  // w: HWIO (K x O), or OIHW when `oihw` (then always packed); K = cg * taps.
  WeightPanels(const T* w, bool oihw, int64_t cg, int64_t taps, int64_t O, int64_t groups, int64_t NR, bool large,
               int threads = 1)
      : w_(w), oihw_(oihw),
        packed_(oihw || (large && (NR * (int64_t)sizeof(T) < 4 * 64 || reinterpret_cast<uintptr_t>(w) % 64 != 0))),
        cg_(cg), taps_(taps), K_(cg * taps), O_(O), groups_(groups),
        Og_(O / groups), NR_(NR), full_(Og_ / NR), npanels_(ceil_div(Og_, NR)),
        private_(threads > 1 && copies() && K_ * O_ * (int64_t)sizeof(T) <= kPrivateBytes),
        blocks_(packed_ ? (size_t)(groups * npanels_ * K_ * NR) : Og_ % NR ? (size_t)(groups * K_ * NR) : 0,
                private_ ? threads : 1) {}

  // Whether pack() copies anything.
  bool copies() const { return packed_ || Og_ % NR_ != 0; }
  // Whether pack() ends in a barrier: it copies into the one shared block.
  bool waits() const { return copies() && !private_; }

  // Copies the panels that are not read in place: with private copies all of them into this
  // thread's, else an orphaned `omp for` (shared by the team inside a parallel region) with its
  // barrier; or nothing at all.
  void pack(const ConvKernels<T>& kn) {
    // Copy i: every panel of every group when packed, else each group's partial last panel.
    const int64_t count = packed_ ? groups_ * npanels_ : Og_ % NR_ != 0 ? groups_ : 0;
    auto copy = [&](int64_t i) { packed_ ? pack_panel(kn, i / npanels_, i % npanels_) : pack_panel(kn, i, full_); };
    if (private_) {
      for (int64_t i = 0; i < count; ++i) copy(i);
    } else if (count > 0) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < count; ++i) copy(i);
    }
  }

  // Panel np of group g from k row k0, and its row stride.
  const T* panel(int64_t g, int64_t np, int64_t k0, int64_t* ld) const {
    if (!packed_ && np < full_) {
      *ld = O_;
      return w_ + k0 * O_ + g * Og_ + np * NR_;
    }
    *ld = NR_;
    return own_blocks() + block_offset(g, np) + k0 * NR_;
  }

 private:
  // This thread's copy of the packed blocks, or the shared one.
  T* own_blocks() const { return private_ ? blocks_.slice(omp_get_thread_num()) : blocks_.data(); }

  void pack_panel(const ConvKernels<T>& kn, int64_t g, int64_t np) {
    const int64_t o0 = g * Og_ + np * NR_, n = std::min(NR_, Og_ - np * NR_);
    T* dst = own_blocks() + block_offset(g, np);
    if (oihw_) {
      reorder_oihw_rows(kn, w_, o0, n, cg_, taps_, dst, NR_);
      if (n < NR_)
        for (int64_t k = 0; k < K_; ++k) std::fill(dst + k * NR_ + n, dst + (k + 1) * NR_, T(0));
    } else {
      pack_column_panels(w_ + o0, K_, n, O_, NR_, dst);
    }
  }

  // Where panel np of group g starts in blocks_ (a partial panel's only block when not packed).
  int64_t block_offset(int64_t g, int64_t np) const { return ((packed_ ? g * npanels_ + np : g) * K_) * NR_; }

  const T* w_;
  bool oihw_, packed_;
  int64_t cg_, taps_, K_, O_, groups_, Og_, NR_, full_, npanels_;
  bool private_;
  Workspace<T> blocks_;
};

// A whole image's rows (one per channel, 64 or more of them) are more streams than the hardware
// prefetchers follow, so transposing an image prefetches each source row 256 bytes ahead. Zen 5,
// NCHW 3x3 64->64 @56 batch 8 (6.1 MiB each way through L3), alternating rounds, p10 us, without
// vs with: 2 threads 4237-4388 vs 4121-4223 (8 rounds, every one faster), 1 thread 8535-8714 vs
// 8298-8508; batch 1 128 @112 7672-8026 vs 7604-7803; 64 @56 and the MNIST sizes level.
// (Zen 4, stop 28: level with the source in L3.)
constexpr int64_t kPrefetchBytes = 256;

// dst[m] = src[m] transposed, for `count` row-major rows x cols matrices: an image's (C, HW) to
// (HW, C) and back. Iterations are (matrix, 64 source columns): whole destination rows each,
// and enough of them for the team on one small image (a 14x14 map has 196 columns). With fewer
// than the team (one 7x7 map of 960 channels: 49 columns), the rows are split too, in runs of
// 64: the whole transpose on one thread held the other at the barrier (3x3 depthwise 960 @7
// NCHW, reordered to NHWC, 2 threads: a quarter of the samples in libgomp's wait).
// An orphaned `omp for`: shared by the team inside a parallel region, run whole outside one.
// wait = false skips the barrier at its end, for a caller whose next loop ends in one before
// anything reads dst.
template <class T>
void transpose_matrices(const ConvKernels<T>& kn, const T* src, int64_t count, int64_t rows, int64_t cols,
                        T* dst, bool wait = true) {
  constexpr int64_t kColumnsPerItem = 64, kRowRun = 64;
  const int64_t chunks = ceil_div(cols, kColumnsPerItem), team = omp_get_num_threads();
  const int64_t run = count * chunks >= team ? rows : round_up(ceil_div(rows, ceil_div(team, count * chunks)), kRowRun);
  const int64_t runs = ceil_div(rows, run), items = count * chunks * runs;
  auto transpose_item = [&](int64_t item) {
    const int64_t m = item / (chunks * runs), c0 = item / runs % chunks * kColumnsPerItem, r0 = item % runs * run;
    transpose_blocks(kn, src + (m * rows + r0) * cols + c0, cols, std::min(run, rows - r0),
                     std::min(kColumnsPerItem, cols - c0), dst + m * rows * cols + c0 * rows + r0, rows, kPrefetchBytes);
  };
  if (wait) {
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) transpose_item(item);
  } else {
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) transpose_item(item);
  }
}

// The input of a convolution on the NHWC kernels (direct conv2d and conv_transpose2d), row by
// row. NHWC data is read in place. NCHW data is transposed:
//  - a batch that divides evenly among the threads, an image at a time, each thread into its
//    own buffer, and all of the image's rows run while it is in that thread's L2;
//  - a single image of up to kPrivateImageBytes, whole by every thread into its own buffer: twice
//    the transposing, but no barrier between the transpose and the rows, where a thread that
//    starts late (woken late, or its vCPU descheduled) holds the other up. 2 threads, p10 us,
//    shared -> private, in sittings where this VM's threads synchronised fast / slowly: 5x5
//    6->16 @14 4.5 -> 4.2 / 8.2 -> 6.2, 3x3 32->64 @13 13.6 -> 13.3 / 19.3 -> 17.8, 32->16 @10
//    5.8 -> 5.7 / 10.3 -> 8.4, 24->48 @12 11.0 -> 10.7 / 17.4 -> 15.2; 64->64 @28 (196 KiB)
//    129.2 -> 130.6 / 152.6 -> 145.7;
//  - any other batch whole, through L3, before the rows.
template <class T>
class NhwcInput {
 public:
  static constexpr int64_t kPrivateImageBytes = 256 * 1024;

  NhwcInput(const T* x, bool nchw, int64_t n, int64_t c, int64_t hw, int threads)
      : x_(x), nchw_(nchw), per_image_(nchw && n > 1 && n % threads == 0),
        private_(nchw && n == 1 && threads > 1 && hw * c * (int64_t)sizeof(T) <= kPrivateImageBytes), n_(n), c_(c),
        hw_(hw), buffer_(nchw ? (size_t)((per_image_ || private_ ? 1 : n) * hw * c) : 0,
                         per_image_ || private_ ? threads : 1) {}

  // Whether the input is transposed once for the whole team (transpose_batch ends in a barrier,
  // or leaves it to the caller's next loop).
  bool shared_transpose() const { return nchw_ && !per_image_ && !private_; }

  // The whole batch's transpose when it has one: an orphaned `omp for` (transpose_matrices;
  // wait = false leaves its barrier to the caller's next loop).
  void transpose_batch(const ConvKernels<T>& kn, bool wait) {
    if (nchw_ && !per_image_ && !private_) transpose_matrices(kn, x_, n_, c_, hw_, buffer_.data(), wait);
  }

  // row(n, g, r, image) for every output row r < rows of every group and image, with image n's
  // NHWC input: an orphaned `omp for` (images dynamic, rows guided: see ops/conv2d.cpp), after
  // transpose_batch's barrier. No barrier at its end: call it last in the parallel region.
  template <class Row>
  void for_each_row(const ConvKernels<T>& kn, int64_t groups, int64_t rows, const Row& row) {
    if (per_image_) {
      T* image = buffer_.slice(omp_get_thread_num());
      for_dynamic(n_, [&](int64_t i) {
        transpose_image(kn, i, image);
        for (int64_t g = 0; g < groups; ++g)
          for (int64_t r = 0; r < rows; ++r) row(i, g, r, (const T*)image);
      });
    } else if (private_) {
      T* image = buffer_.slice(omp_get_thread_num());
      transpose_image(kn, 0, image);
      for_guided(groups * rows, [&](int64_t item) {
        row(0, item / rows, item % rows, (const T*)image);
      });
    } else {
      const T* batch = nchw_ ? buffer_.data() : x_;
      for_guided(n_ * groups * rows, [&](int64_t item) {
        const int64_t r = item % rows, g = (item / rows) % groups, i = item / rows / groups;
        row(i, g, r, batch + i * hw_ * c_);
      });
    }
  }

 private:
  // Image i of the NCHW batch, as NHWC, into image (this thread's buffer).
  void transpose_image(const ConvKernels<T>& kn, int64_t i, T* image) const {
    transpose_blocks(kn, x_ + i * c_ * hw_, hw_, c_, hw_, image, c_, kPrefetchBytes);
  }

  const T* x_;
  bool nchw_, per_image_, private_;
  int64_t n_, c_, hw_;
  Workspace<T> buffer_;
};

}  // namespace pycnn
