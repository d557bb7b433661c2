// Pooling: tiling and the parallel loops around the pooling microkernels.
//
//  - NCHW windows, stride 1 or 2 along the width (nearly every CNN pool): fused. Per output
//    row, the kernel reduces the window rows straight from the input over each block of columns
//    (split into even/odd columns at stride 2) and forms the taps by lane shifts; runs of rows
//    with the same window shape go to the kernel in one call. Vectorised over output columns.
//  - NCHW windows, other strides or very wide windows: separable. For a block of output rows of
//    one plane, the window rows are reduced vertically into a padded row buffer (padding columns
//    pre-filled with the identity once per thread), then 1-D windows run along each buffer row
//    (larger strides gather). Reducing a block of rows before reading any back keeps the loads
//    clear of the buffer's pending stores, and the block stays in L1 next to the input rows.
//  - NHWC windows: per output row, each pixel's window clipped to the input, vectorised over
//    channels; no buffer.
//  - Global pooling: whole-plane reductions (NCHW) or a reduction across pixels (NHWC).
//  - Depth pooling: a reduction across channel planes (NCHW), or 1-D windows of pool_size
//    along the flattened tensor (NHWC: y[j] = max x[j*k .. j*k + k)).
// One parallel region per call over independent (plane or image, row block) items; averages
// get their reciprocal divisors from a table built before it. Max pooling does not set DAZ/FTZ:
// it only selects values, and DAZ would zero denormal inputs.
#include <omp.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "pycnn/pool.h"

namespace pycnn {
namespace {

// threads_for counts multiply-adds; moving one element through a pooling kernel costs about
// as much time as this many of them (so ~100k elements are worth a second thread).
constexpr double kWorkPerElement = 4.0;
// Row-buffer size per thread for NCHW pooling: comfortably inside L1.
constexpr int64_t kRowBufferBytes = 8 * 1024;

int pool_threads(double elements, int64_t items) { return threads_for(elements * kWorkPerElement, items); }

// Averages flush denormals like every arithmetic kernel; max pooling must not (see top).
struct FlushDenormalsForSums {
  explicit FlushDenormalsForSums(bool sums) {
    if (sums) guard.emplace();
  }
  std::optional<FlushDenormals> guard;
};

// Taps t < k of a window starting at `first` (step d) that land in [lo, hi).
struct TapRange {
  int64_t t0 = 0, count = 0;
};
TapRange taps_inside(int64_t first, int64_t k, int64_t d, int64_t lo, int64_t hi) {
  TapRange r;
  if (first >= hi) return r;
  const int64_t t0 = first >= lo ? 0 : d == 1 ? lo - first : (lo - first + d - 1) / d;
  const int64_t t1 = std::min(k, d == 1 ? hi - first : (hi - 1 - first) / d + 1);
  if (t1 > t0) {
    r.t0 = t0;
    r.count = t1 - t0;
  }
  return r;
}

// The input rows window row `o` reads: first row and count (count 0: the whole window is
// padding; first is then 0 so that pointers stay inside the input).
struct RowSpan {
  int64_t first = 0, count = 0;
};
RowSpan window_rows(const Pool2dParams& p, int64_t o) {
  const int64_t start = o * p.stride_h - p.pad_top;
  const TapRange r = taps_inside(start, p.kh, p.dilation_h, 0, p.h);
  RowSpan s;
  if (r.count) {
    s.first = start + r.t0 * p.dilation_h;
    s.count = r.count;
  }
  return s;
}

void check(const Pool2dParams& p) {
  const int64_t positive[] = {p.h, p.w, p.kh, p.kw, p.oh, p.ow, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w};
  for (int64_t d : positive)
    if (d < 1) throw std::invalid_argument("pool2d: sizes, window, strides and dilations must be >= 1");
  if (p.n < 0 || p.c < 0) throw std::invalid_argument("pool2d: negative batch or channel count");
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0)
    throw std::invalid_argument("pool2d: negative padding");
}

// Reciprocal divisors of avg pooling, (oh, ow) row-major: 1/rows(oh) * 1/cols(ow) in double,
// rounded to T once (within an ulp of 1/(rows*cols), without a division per cell).
template <class T>
void avg_scale_table(const Pool2dParams& p, T* table) {
  auto reciprocal_counts = [&](int64_t out, int64_t stride, int64_t before, int64_t after, int64_t k, int64_t d,
                               int64_t size) {
    std::vector<double> r((size_t)out);
    const int64_t lo = p.count_include_pad ? -before : 0, hi = p.count_include_pad ? size + after : size;
    for (int64_t o = 0; o < out; ++o) {
      const int64_t count = taps_inside(o * stride - before, k, d, lo, hi).count;
      if (count == 0)
        throw std::invalid_argument("avg pool2d: a window covers no cell that counts (padding too large)");
      r[(size_t)o] = 1.0 / (double)count;
    }
    return r;
  };
  const std::vector<double> rows = reciprocal_counts(p.oh, p.stride_h, p.pad_top, p.pad_bottom, p.kh, p.dilation_h, p.h);
  const std::vector<double> cols = reciprocal_counts(p.ow, p.stride_w, p.pad_left, p.pad_right, p.kw, p.dilation_w, p.w);
  for (int64_t i = 0; i < p.oh; ++i) {
    const double r = rows[(size_t)i];
    T* row = table + i * p.ow;
    for (int64_t j = 0; j < p.ow; ++j) row[j] = (T)(r * cols[(size_t)j]);
  }
}

// Separable NCHW (see the top of the file): the path for strides above 2 and very wide windows.
template <class T>
void pool2d_nchw(const Pool2dParams& p, const PoolKernels<T>& kn, const T* x, T* y, const T* scale) {
  const bool is_max = p.kind == PoolKind::Max;
  const PoolRowsUkernel<T> reduce_rows = is_max ? kn.max_rows : kn.avg_rows;
  const PoolWindowUkernel<T> reduce_windows = is_max ? kn.max_window : kn.avg_window;
  const T identity = is_max ? (T)(-__builtin_inf()) : T(0);
  // Buffer columns are padded input columns: [0, pad_left) padding, then the input, then
  // whatever the last window reaches past it (right padding and ceil_mode overhang).
  const int64_t reach = (p.ow - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
  const int64_t width = std::max(reach, p.pad_left + p.w);
  const int64_t row_block = std::max<int64_t>(1, std::min<int64_t>(p.oh, kRowBufferBytes / (width * (int64_t)sizeof(T))));
  const int64_t blocks = ceil_div(p.oh, row_block);
  const int64_t items = p.n * p.c * blocks;
  const int threads = pool_threads((double)p.n * p.c * (p.h * p.w + p.oh * p.ow * p.kw), items);
  Workspace<T> buffers((size_t)(row_block * width), threads);

  parallel_region(threads, [&] {
    FlushDenormalsForSums ftz(!is_max);
    T* buffer = buffers.slice(omp_get_thread_num());
    for (int64_t r = 0; r < row_block; ++r) {
      T* row = buffer + r * width;
      std::fill(row, row + p.pad_left, identity);
      std::fill(row + p.pad_left + p.w, row + width, identity);
    }
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) {
      const int64_t plane = item / blocks, oh0 = (item % blocks) * row_block;
      const int64_t oh1 = std::min(p.oh, oh0 + row_block);
      const T* xp = x + plane * p.h * p.w;
      T* yp = y + plane * p.oh * p.ow;
      for (int64_t o = oh0; o < oh1; ++o) {
        const RowSpan rows = window_rows(p, o);
        reduce_rows(xp + rows.first * p.w, p.dilation_h * p.w, rows.count, p.w, T(1),
                    buffer + (o - oh0) * width + p.pad_left);
      }
      for (int64_t o = oh0; o < oh1; ++o)
        reduce_windows(buffer + (o - oh0) * width, p.ow, p.kw, p.stride_w, p.dilation_w,
                       scale ? scale + o * p.ow : nullptr, yp + o * p.ow);
    }
  });
}

// Fused NCHW (see PoolNchwArgs): no buffer. Items are (plane, block of output rows); within an
// item, runs of rows whose windows have the same shape go to the kernel in one call.
template <class T>
void pool2d_nchw_fused(const Pool2dParams& p, const PoolKernels<T>& kn, const T* x, T* y, const T* scale) {
  const bool is_max = p.kind == PoolKind::Max;
  const PoolNchwUkernel<T> pool_rows = is_max ? kn.max_nchw : kn.avg_nchw;
  const int64_t planes = p.n * p.c;
  const int threads = pool_threads((double)planes * (p.h * p.w + p.oh * p.ow * p.kw), planes * p.oh);
  // Whole planes when there are enough of them; else split the rows so every thread has work.
  const int64_t want = (int64_t)threads * 4;
  const int64_t row_blocks = planes >= want ? 1 : std::min(p.oh, ceil_div(want, planes));
  const int64_t rows_per_block = ceil_div(p.oh, row_blocks);
  const int64_t items = planes * row_blocks;

  // The kernel's input prefetch (kPoolPrefetchBytes), where the hardware prefetchers do not
  // follow the window's rows, or rows of 896 bytes and more, or an input past 8 MiB (from memory).
  // Zen 4 (hardware_follows_rows), one build, off / on alternated in one process, one thread,
  // min us: max 2x2/2 128 @112 (rows of 448 bytes, 6.4 MB) 122.2 / 145.4, 256 @56 (224 bytes)
  // 67.1 / 77.7, max 3x3/2 64 @112 91.0 / 102.9, avg 3x3/2 64 @112 95.9 / 106.6, float64 max
  // 2x2/2 128 @56 (448 bytes) 61.4 / 68.2; rows of 896 bytes: max 2x2/2 32 @224 132.8 / 125.9,
  // float64 max 2x2/2 64 @112 119.8 / 114.8, float64 max 3x3/2 32 @112 85.2 / 78.5; from memory,
  // 2 threads: max 2x2/2 128 @224 (26 MB) 933 / 527, avg 3x3/2 96 @224 (19 MB) 818 / 382, float64
  // max 2x2/2 128 @112 (12.8 MB) 152.5 / 134.8.
  const bool prefetch = !hardware_follows_rows() || p.w * (int64_t)sizeof(T) >= 896 ||
                        planes * p.h * p.w * (int64_t)sizeof(T) > (int64_t(8) << 20);
  parallel_region(threads, [&] {
    FlushDenormalsForSums ftz(!is_max);
    PoolNchwArgs<T> args;
    args.row_stride = p.dilation_h * p.w;
    args.x_step = p.stride_h * p.w;
    args.width = p.w;
    args.n = p.ow;
    args.kw = p.kw;
    args.stride = p.stride_w;
    args.dilation = p.dilation_w;
    args.pad_left = p.pad_left;
    args.y_step = p.ow;
    args.prefetch = prefetch;
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) {
      const int64_t plane = item / row_blocks;
      const int64_t o0 = (item % row_blocks) * rows_per_block, o1 = std::min(p.oh, o0 + rows_per_block);
      const T* xp = x + plane * p.h * p.w;
      T* yp = y + plane * p.oh * p.ow;
      for (int64_t o = o0; o < o1;) {
        const RowSpan rows = window_rows(p, o);
        int64_t end = o + 1;  // extend while the window slides by whole strides with the same rows
        while (end < o1) {
          const RowSpan next = window_rows(p, end);
          if (next.count != rows.count || next.first != rows.first + (end - o) * p.stride_h) break;
          ++end;
        }
        args.x = xp + rows.first * p.w;
        args.rows = rows.count;
        args.out_rows = end - o;
        args.scale = scale ? scale + o * p.ow : nullptr;
        args.y = yp + o * p.ow;
        pool_rows(args);
        o = end;
      }
    }
  });
}

template <class T>
void pool2d_nhwc(const Pool2dParams& p, const PoolKernels<T>& kn, const T* x, T* y, const T* scale) {
  const PoolNhwcUkernel<T> pool_pixels = p.kind == PoolKind::Max ? kn.max_nhwc : kn.avg_nhwc;
  const int64_t items = p.n * p.oh;
  const int threads = pool_threads((double)p.n * p.c * p.oh * p.ow * p.kh * p.kw, items);

  parallel_region(threads, [&] {
    FlushDenormalsForSums ftz(p.kind == PoolKind::Avg);
    PoolNhwcArgs<T> args;
    args.row_stride = p.dilation_h * p.w * p.c;
    args.width = p.w;
    args.channels = p.c;
    args.col0 = 0;
    args.n = p.ow;
    args.kw = p.kw;
    args.stride = p.stride_w;
    args.dilation = p.dilation_w;
    args.pad_left = p.pad_left;
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < items; ++item) {
      const int64_t image = item / p.oh, o = item % p.oh;
      const RowSpan rows = window_rows(p, o);
      args.x = x + ((image * p.h + rows.first) * p.w) * p.c;
      args.rows = rows.count;
      args.scale = scale ? scale + o * p.ow : nullptr;
      args.y = y + (image * p.oh + o) * p.ow * p.c;
      pool_pixels(args);
    }
  });
}

// Drops the taps of one dimension that no window can place inside the input: leading taps left
// of the input for every output (they shorten the window and the padding before it), and
// trailing taps right of it for every output. A window far larger than the input ("same" with
// kernel_size or dilation in the millions) then costs what the input costs, not what the window
// spans. Results are unchanged: padded cells never win a max and are never summed; avg divisors
// come from the table built with the original geometry.
void trim_window(int64_t& k, int64_t d, int64_t s, int64_t& before, int64_t& after, int64_t out, int64_t size) {
  const int64_t left_of_all = before - (out - 1) * s;  // tap t is left of every window's input if t*d < this
  if (left_of_all > 0) {
    const int64_t drop = std::min((left_of_all + d - 1) / d, before / d);  // padding stays >= 0
    if (drop < k) {
      k -= drop;
      before -= drop * d;
    }
  }
  k = std::max<int64_t>(1, std::min(k, (size + before + d - 1) / d));  // tap t >= this: right of every window's input
  after = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - before - size);
}

template <class T>
void run_pool2d(const Pool2dParams& params, const T* x, T* y) {
  check(params);
  if (params.n == 0 || params.c == 0) return;
  const PoolKernels<T>& kn = pool_kernels_for<T>(active_kernels());
  Workspace<T> scale;
  if (params.kind == PoolKind::Avg) {
    scale.reset((size_t)(params.oh * params.ow), 1);
    avg_scale_table(params, scale.data());
  }
  Pool2dParams p = params;
  trim_window(p.kh, p.dilation_h, p.stride_h, p.pad_top, p.pad_bottom, p.oh, p.h);
  trim_window(p.kw, p.dilation_w, p.stride_w, p.pad_left, p.pad_right, p.ow, p.w);
  if (p.layout == Layout::NHWC) pool2d_nhwc(p, kn, x, y, scale.data());
  else if (fused_nchw_fits(kn, p.kw, p.stride_w, p.dilation_w)) pool2d_nchw_fused(p, kn, x, y, scale.data());
  else pool2d_nchw(p, kn, x, y, scale.data());
}

// Global averages of planes above kSumBlock cells sum blocks of kSumBlock cells with the
// microkernels (block sums of T) and add the block sums in double: one T accumulator per lane
// over a plane of 2**30 cells lost 2% of the mean in float32.
// (NHWC sums each channel's block row by row, one accumulator per channel: shorter blocks.)
constexpr int64_t kSumBlock = 8192, kSumRowsBlock = 512;

template <class T>
void global_avg_pool2d_blocked(const PoolKernels<T>& kn, Layout layout, int64_t n, int64_t c, int64_t size,
                               const T* x, T* y) {
  const double inv = 1.0 / (double)size;
  const int64_t blocks = ceil_div(size, kSumBlock);
  const double elements = (double)n * c * size;
  if (layout == Layout::NCHW) {
    const int64_t planes = n * c;
    const int threads = pool_threads(elements, planes);
    parallel_region(threads, [&] {
#pragma omp for schedule(static) nowait
    for (int64_t plane = 0; plane < planes; ++plane) {
      FlushDenormals ftz;
      double total = 0;
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t i0 = b * kSumBlock, len = std::min(kSumBlock, size - i0);
        T part;
        kn.avg_planes(x + plane * size + i0, 1, len, T(1), &part);
        total += (double)part;
      }
      y[plane] = (T)(total * inv);
    }
    });
    return;
  }
  // NHWC: per image, blocks of kSumRowsBlock pixels summed over all channels at once.
  const int64_t row_blocks = ceil_div(size, kSumRowsBlock);
  const int threads = pool_threads(elements, n);
  Workspace<T> parts((size_t)c, threads);
  Workspace<double> totals((size_t)c, threads);
  parallel_region(threads, [&] {
    FlushDenormals ftz;
    T* part = parts.slice(omp_get_thread_num());
    double* total = totals.slice(omp_get_thread_num());
#pragma omp for schedule(static) nowait
    for (int64_t image = 0; image < n; ++image) {
      std::fill(total, total + c, 0.0);
      for (int64_t b = 0; b < row_blocks; ++b) {
        const int64_t i0 = b * kSumRowsBlock, len = std::min(kSumRowsBlock, size - i0);
        kn.avg_rows(x + (image * size + i0) * c, c, len, c, T(1), part);
        for (int64_t ch = 0; ch < c; ++ch) total[ch] += (double)part[ch];
      }
      for (int64_t ch = 0; ch < c; ++ch) y[image * c + ch] = (T)(total[ch] * inv);
    }
  });
}

template <class T>
void run_global_pool2d(PoolKind kind, Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, const T* x, T* y) {
  if (n < 0 || c < 0 || h < 1 || w < 1)
    throw std::invalid_argument("global_pool2d: need n, c >= 0 and h, w >= 1");
  if (n == 0 || c == 0) return;
  const PoolKernels<T>& kn = pool_kernels_for<T>(active_kernels());
  const bool is_max = kind == PoolKind::Max;
  const int64_t size = h * w;
  const T scale = (T)(1.0 / (double)size);
  const double elements = (double)n * c * size;
  if (!is_max && size > kSumBlock) {
    global_avg_pool2d_blocked(kn, layout, n, c, size, x, y);
    return;
  }
  if (layout == Layout::NCHW) {
    const PoolPlanesUkernel<T> reduce_planes = is_max ? kn.max_planes : kn.avg_planes;
    const int64_t planes = n * c;
    const int threads = pool_threads(elements, planes);
    const int64_t chunks = std::min<int64_t>(planes, (int64_t)threads * 4);
    const int64_t per_chunk = ceil_div(planes, chunks);
    parallel_region(threads, [&] {
      FlushDenormalsForSums ftz(!is_max);
#pragma omp for schedule(static) nowait
      for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        const int64_t p0 = chunk * per_chunk, p1 = std::min(planes, p0 + per_chunk);
        if (p0 < p1) reduce_planes(x + p0 * size, p1 - p0, size, scale, y + p0);
      }
    });
  } else {
    const PoolRowsUkernel<T> reduce_rows = is_max ? kn.max_rows : kn.avg_rows;
    // Channel chunks of whole 64-channel blocks when images alone cannot feed the team.
    const int want = num_threads() * 2;
    const int64_t chunk_c = n >= want ? c : std::max<int64_t>(64, round_up(ceil_div(c, ceil_div(want, n)), 64));
    const int64_t chunks = ceil_div(c, chunk_c);
    const int threads = pool_threads(elements, n * chunks);
    parallel_region(threads, [&] {
      FlushDenormalsForSums ftz(!is_max);
#pragma omp for schedule(static) nowait
      for (int64_t item = 0; item < n * chunks; ++item) {
        const int64_t image = item / chunks, c0 = (item % chunks) * chunk_c;
        reduce_rows(x + image * size * c + c0, c, size, std::min(chunk_c, c - c0), scale, y + image * c + c0);
      }
    });
  }
}

template <class T>
void run_depth_max_pool2d(Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, const T* x, T* y) {
  if (n < 0 || c < 0 || h < 1 || w < 1 || k < 1 || c % k)
    throw std::invalid_argument("depth_max_pool2d: need n, c >= 0, h, w >= 1 and pool_size dividing c");
  if (n == 0 || c == 0) return;
  const PoolKernels<T>& kn = pool_kernels_for<T>(active_kernels());
  const int64_t groups = c / k, size = h * w;
  const double elements = (double)n * c * size;
  const int want = num_threads() * 4;
  if (layout == Layout::NCHW) {
    // Items: (image, group, slice of the plane); slices only when planes cannot feed the team.
    const int64_t planes = n * groups;
    const int64_t slices = planes >= want ? 1 : std::min(ceil_div(size, 1024), ceil_div(want, planes));
    const int64_t per_slice = ceil_div(size, slices);
    const int threads = pool_threads(elements, planes * slices);
    parallel_region(threads, [&] {
#pragma omp for schedule(static) nowait
    for (int64_t item = 0; item < planes * slices; ++item) {
      const int64_t plane = item / slices, i0 = (item % slices) * per_slice;
      const int64_t image = plane / groups, g = plane % groups;
      if (i0 < size)
        kn.max_rows(x + (image * c + g * k) * size + i0, size, k, std::min(per_slice, size - i0), T(1),
                    y + plane * size + i0);
    }
    });
  } else {
    // Channels are innermost and C = groups * k, so output j of the flattened tensor is the max
    // of x[j*k .. j*k + k): one long row of 1-D windows with stride k.
    const int64_t total = n * size * groups;
    const int threads = pool_threads(elements, total);
    const int64_t chunks = std::min<int64_t>(total, (int64_t)threads * 4);
    const int64_t per_chunk = ceil_div(total, chunks);
    parallel_region(threads, [&] {
#pragma omp for schedule(static) nowait
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t j0 = chunk * per_chunk, j1 = std::min(total, j0 + per_chunk);
      if (j0 < j1) kn.max_window(x + j0 * k, j1 - j0, k, k, 1, nullptr, y + j0);
    }
    });
  }
}

}  // namespace

void pool2d(const Pool2dParams& p, const float* x, float* y) { run_pool2d(p, x, y); }
void pool2d(const Pool2dParams& p, const double* x, double* y) { run_pool2d(p, x, y); }

void global_pool2d(PoolKind kind, Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, const float* x,
                   float* y) {
  run_global_pool2d(kind, layout, n, c, h, w, x, y);
}
void global_pool2d(PoolKind kind, Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, const double* x,
                   double* y) {
  run_global_pool2d(kind, layout, n, c, h, w, x, y);
}

void depth_max_pool2d(Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pool_size, const float* x,
                      float* y) {
  run_depth_max_pool2d(layout, n, c, h, w, pool_size, x, y);
}
void depth_max_pool2d(Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pool_size, const double* x,
                      double* y) {
  run_depth_max_pool2d(layout, n, c, h, w, pool_size, x, y);
}

}  // namespace pycnn
