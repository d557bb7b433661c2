// Pooling microkernels, written once against the vector traits V and compiled per ISA inside
// namespace pycnn::PYCNN_ISA_NS. Contracts: microkernels.h (PoolKernels).
//
// Each kernel is a template over a reduction `Op` (PoolMax or PoolSum), so the max and avg
// flavours share their loops and differ only in the identity, the combine step and whether the
// result is scaled. Pooling is bandwidth-bound: the kernels aim to read each input element once
// per use with full-width loads and to keep a few independent accumulators in flight.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

#include "generic/traits.h"

namespace pycnn::PYCNN_ISA_NS {

// Max: -inf is the identity (padding never wins), NaN propagates, nothing is rescaled.
struct PoolMax {
  static constexpr bool kScaled = false;
  template <class V>
  static typename V::reg identity() { return V::set1((typename V::T)(-__builtin_inf())); }
  template <class V>
  static typename V::reg combine(typename V::reg acc, typename V::reg x) { return V::max_propagate_nan(acc, x); }
  template <class V>
  static typename V::T reduce(typename V::reg v) { return V::reduce_max_propagate_nan(v); }
  template <class T>
  static T combine_scalar(T acc, T x) { return x != x ? x : (x > acc ? x : acc); }
  template <class T>
  static T identity_scalar() { return (T)(-__builtin_inf()); }
};

// Sum (for averages): 0 is the identity; the caller's reciprocal divisor scales the result.
struct PoolSum {
  static constexpr bool kScaled = true;
  template <class V>
  static typename V::reg identity() { return V::zero(); }
  template <class V>
  static typename V::reg combine(typename V::reg acc, typename V::reg x) { return V::add(acc, x); }
  template <class V>
  static typename V::T reduce(typename V::reg v) { return V::reduce_add(v); }
  template <class T>
  static T combine_scalar(T acc, T x) { return acc + x; }
  template <class T>
  static T identity_scalar() { return T(0); }
};

// ---------------------------------------------------------------------------------------------
// Rows: dst[i] = op_r src[r*row_stride + i]. NV-vector column blocks, the rows loop inside, so
// each block's accumulators stay in registers across all rows.

template <class V, class Op, size_t NV, int kRows>
inline void pool_rows_block(const typename V::T* src, int64_t row_stride, int64_t runtime_rows,
                            typename V::T scale, typename V::T* dst) {
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  const int64_t rows = kRows ? kRows : runtime_rows;
  reg acc[NV];
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) acc[v] = rows > 0 ? V::load(src + v * W) : Op::template identity<V>();
#pragma GCC unroll 4
  for (int64_t r = 1; r < rows; ++r) {
    const typename V::T* s = src + r * row_stride;
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) acc[v] = Op::template combine<V>(acc[v], V::load(s + v * W));
  }
  if (Op::kScaled) {
    const reg sv = V::set1(scale);
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) acc[v] = V::mul(acc[v], sv);
  }
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) V::store(dst + v * W, acc[v]);
}

template <class V, class Op, int kRows>
void pool_rows_loop(const typename V::T* src, int64_t row_stride, int64_t rows, int64_t n, typename V::T scale,
                    typename V::T* dst) {
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  int64_t i = 0;
  // A run-time row count is a long reduction (NHWC global pooling: 49 rows of a 7x7 map): blocks
  // of 8 vectors read twice the bytes of each row per visit. NHWC global average of 512 @7,
  // batch 8, alternating, p10 us, 4 -> 8 vectors: AVX-512 1 thread 15.8 -> 12.7, 2 threads 9.5
  // -> 8.0; AVX2 18.7 -> 12.9, 12.5 -> 8.5 (16 vectors on AVX-512: 13.0 and 8.7). Level: global
  // max (14.1 -> 13.5), NCHW 5x5/3 max pooling's 5-row pass, NCHW depth pooling.
  if constexpr (kRows == 0)
    for (; i + 8 * W <= n; i += 8 * W) pool_rows_block<V, Op, 8, kRows>(src + i, row_stride, rows, scale, dst + i);
  for (; i + 4 * W <= n; i += 4 * W) pool_rows_block<V, Op, 4, kRows>(src + i, row_stride, rows, scale, dst + i);
  for (; i + W <= n; i += W) pool_rows_block<V, Op, 1, kRows>(src + i, row_stride, rows, scale, dst + i);
  if (i < n) {
    const size_t m = (size_t)(n - i);
    reg acc = rows > 0 ? V::load_partial(src + i, m) : Op::template identity<V>();
    for (int64_t r = 1; r < rows; ++r) acc = Op::template combine<V>(acc, V::load_partial(src + r * row_stride + i, m));
    if (Op::kScaled) acc = V::mul(acc, V::set1(scale));
    V::store_partial_split(dst + i, acc, m);
  }
}

// The common window heights (2 and 3 rows) get fully unrolled loops.
template <class V, class Op>
void pool_rows_ukernel(const typename V::T* src, int64_t row_stride, int64_t rows, int64_t n,
                       typename V::T scale, typename V::T* dst) {
  if (rows == 2) pool_rows_loop<V, Op, 2>(src, row_stride, rows, n, scale, dst);
  else if (rows == 3) pool_rows_loop<V, Op, 3>(src, row_stride, rows, n, scale, dst);
  else pool_rows_loop<V, Op, 0>(src, row_stride, rows, n, scale, dst);
}

// ---------------------------------------------------------------------------------------------
// 1-D windows: y[j] = op_t src[j*stride + t*dilation]. One output vector per step; the loader
// turns "W elements `stride` apart" into a register: plain loads at stride 1, a two-vector
// deinterleave at stride 2, a gather above.

template <class V>
struct ContiguousLoad {
  static typename V::reg full(const typename V::T* p, int64_t) { return V::load(p); }
  static typename V::reg partial(const typename V::T* p, int64_t, size_t n) { return V::load_partial(p, n); }
};
template <class V>
struct Every2Load {
  static typename V::reg full(const typename V::T* p, int64_t) { return V::load_every2(p); }
  static typename V::reg partial(const typename V::T* p, int64_t, size_t n) { return V::load_every2_partial(p, n); }
};
template <class V>
struct GatherLoad {
  static typename V::reg full(const typename V::T* p, int64_t stride) { return V::gather(p, stride); }
  static typename V::reg partial(const typename V::T* p, int64_t stride, size_t n) {
    return V::gather_partial(p, stride, n);
  }
};

template <class V, class Op, class Load, int kTaps>
void pool_window_loop(const typename V::T* src, int64_t n, int64_t runtime_taps, int64_t stride, int64_t dilation,
                      const typename V::T* scale, typename V::T* y) {
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  const int64_t taps = kTaps ? kTaps : runtime_taps;
  const bool scaled = Op::kScaled && scale != nullptr;
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const typename V::T* p = src + j * stride;
    reg acc = Load::full(p, stride);
#pragma GCC unroll 4
    for (int64_t t = 1; t < taps; ++t) acc = Op::template combine<V>(acc, Load::full(p + t * dilation, stride));
    if (scaled) acc = V::mul(acc, V::load(scale + j));
    V::store(y + j, acc);
  }
  if (j < n) {
    const size_t m = (size_t)(n - j);
    const typename V::T* p = src + j * stride;
    reg acc = Load::partial(p, stride, m);
    for (int64_t t = 1; t < taps; ++t)
      acc = Op::template combine<V>(acc, Load::partial(p + t * dilation, stride, m));
    if (scaled) acc = V::mul(acc, V::load_partial(scale + j, m));
    V::store_partial_split(y + j, acc, m);
  }
}

// The common window widths (2 and 3 taps) get fully unrolled loops.
template <class V, class Op, class Load>
void pool_window_taps(const typename V::T* src, int64_t n, int64_t taps, int64_t stride, int64_t dilation,
                      const typename V::T* scale, typename V::T* y) {
  if (taps == 2) pool_window_loop<V, Op, Load, 2>(src, n, taps, stride, dilation, scale, y);
  else if (taps == 3) pool_window_loop<V, Op, Load, 3>(src, n, taps, stride, dilation, scale, y);
  else pool_window_loop<V, Op, Load, 0>(src, n, taps, stride, dilation, scale, y);
}

template <class V, class Op>
void pool_window_ukernel(const typename V::T* src, int64_t n, int64_t taps, int64_t stride, int64_t dilation,
                         const typename V::T* scale, typename V::T* y) {
  using T = typename V::T;
  // Gather indices are int32 lane offsets: lane W-1 sits at (W-1)*stride.
  constexpr int64_t kMaxGatherStride = 2147483647 / (int64_t)V::W;
  if (taps < 1) {
    for (int64_t j = 0; j < n; ++j) y[j] = Op::template identity_scalar<T>();
  } else if (stride == 1) {
    pool_window_taps<V, Op, ContiguousLoad<V>>(src, n, taps, stride, dilation, scale, y);
  } else if (stride == 2) {
    pool_window_taps<V, Op, Every2Load<V>>(src, n, taps, stride, dilation, scale, y);
  } else if (stride <= kMaxGatherStride) {
    pool_window_taps<V, Op, GatherLoad<V>>(src, n, taps, stride, dilation, scale, y);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      T acc = src[j * stride];
      for (int64_t t = 1; t < taps; ++t) acc = Op::combine_scalar(acc, src[j * stride + t * dilation]);
      if (Op::kScaled && scale) acc *= scale[j];
      y[j] = acc;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// NCHW, fused: per block of W output columns, the window rows are reduced over the input columns
// the block reads (split into even/odd columns at stride 2), and each tap is that vector shifted
// by the tap's offset against the next block's vector, which the loop carries to its next step.

// Input columns [c, c + W), all inside the row, reduced over the window rows.
template <class V, class Op, int kRows>
PYCNN_TILE_INLINE typename V::reg pool_column_inside(const typename V::T* x, int64_t row_stride, int64_t rows,
                                                     int64_t c) {
  typename V::reg acc = V::load(x + c);
#pragma GCC unroll 4
  for (int64_t r = 1; r < rows; ++r) acc = Op::template combine<V>(acc, V::load(x + r * row_stride + c));
  return acc;
}

// Input columns [c, c + W) reduced over the window rows; columns outside [0, width) are the
// identity and are never read.
template <class V, class Op, int kRows>
inline typename V::reg pool_column_block(const typename V::T* x, int64_t row_stride, int64_t runtime_rows,
                                         int64_t width, int64_t c) {
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  const int64_t rows = kRows ? kRows : runtime_rows;
  const reg identity = Op::template identity<V>();
  if (rows <= 0) return identity;
  if (c >= 0 && c + W <= width) return pool_column_inside<V, Op, kRows>(x, row_stride, rows, c);
  const int64_t lo = c < 0 ? -c : 0, hi = width - c < W ? width - c : W;
  if (hi <= lo) return identity;
  reg acc = V::load_lanes(x + c, lo, hi, identity);
  for (int64_t r = 1; r < rows; ++r)
    acc = Op::template combine<V>(acc, V::load_lanes(x + r * row_stride + c, lo, hi, identity));
  return acc;
}

template <class V, class Op>
inline void pool_store_outputs(typename V::reg acc, const typename V::T* scale, int64_t j, int64_t n,
                               typename V::T* y) {
  constexpr int64_t W = (int64_t)V::W;
  if (j + W <= n) {
    if (Op::kScaled && scale) acc = V::mul(acc, V::load(scale + j));
    V::store(y + j, acc);
  } else {
    const size_t m = (size_t)(n - j);
    if (Op::kScaled && scale) acc = V::mul(acc, V::load_partial(scale + j, m));
    V::store_partial_split(y + j, acc, m);
  }
}

// The hardware prefetchers lose the NCHW window's streams (two or three rows of a few hundred
// bytes read side by side, then the next plane's): before each output row the kernel prefetches
// the input the output row this far ahead adds to its window -- the x_step elements that end
// with its last row, so each input line is hinted once --, one hint per cache line. Zen 1 (AVX2),
// 2 threads, medians of 7 alternating processes, us, none -> 3 KiB ahead: max 2x2/2 128 @112
// (6.4 MB, past L3) 822 -> 256, 64 @224 1916 -> 1463; max 3x3/2 p1 64 @112 310 -> 237, avg
// 250 -> 237; avg 3x3 256 @56 750 -> 707, 256 @14 125 -> 128. Hinting every window row's lines
// (each input line once per window) lost at stride 1. Zen 4 follows short rows from its L3, not
// long ones or rows from memory: the op turns the hints off there (pool2d_nchw_fused).
constexpr int64_t kPoolPrefetchBytes = 3072;

// Lines of [begin, end), as integers: a hint past the end of the input never faults, and no
// pointer leaves it.
inline void prefetch_span(uintptr_t begin, uintptr_t end) {
  for (uintptr_t line = begin & ~(uintptr_t)63; line < end; line += 64) __builtin_prefetch((const void*)line);
}

template <class V, class Op, int kRows, int kTaps>
void pool_nchw_rows(const PoolNchwArgs<typename V::T>& a) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  const int64_t taps = kTaps ? kTaps : a.kw, d = a.dilation;
  // The last block needs the next one only if its last output's taps shift past lane W - 1.
  const int64_t max_shift = (taps - 1) * d / a.stride;
  const bool last_needs_next = (a.n - 1) % W + max_shift >= W;
  constexpr int64_t S = (int64_t)sizeof(T);
  const int64_t step_bytes = a.x_step * S, rows = kRows ? kRows : a.rows;
  // Bytes from a window's start to the end of the window ahead's last row.
  const int64_t ahead_end = a.prefetch && step_bytes > 0 && rows > 0
                                ? (kPoolPrefetchBytes > step_bytes ? kPoolPrefetchBytes / step_bytes : 1) * step_bytes +
                                      ((rows - 1) * a.row_stride + a.width) * S
                                : 0;
  for (int64_t i = 0; i < a.out_rows; ++i) {
    const T* x = a.x + i * a.x_step;
    if (ahead_end) {
      const uintptr_t end = (uintptr_t)x + (uintptr_t)ahead_end;
      prefetch_span(end - (uintptr_t)step_bytes, end);
    }
    T* y = a.y + i * a.y_step;
    const T* scale = Op::kScaled && a.scale ? a.scale + i * a.y_step : nullptr;
    int64_t c = -a.pad_left;
    if constexpr (kTaps == 2 && has_even_odd_in_lanes<V>::value) {
      // 2x2/2-like windows: each output's taps are one even and one odd lane of its block pair,
      // so the split stays inside the 128-bit lanes and one permute per output restores their
      // order (AVX2: one vpermpd where the split across lanes took two; AVX-512 on Zen 4, one
      // thread, CPU time, fastest of 4 alternating processes: max 2x2/2 128 @112 131.5-134.2 ->
      // 120.5-122.7 us, avg 2x2/2 64 @112 74.4-76.2 -> 69.9-71.8).
      if (a.stride == 2 && d == 1) {
        for (int64_t j = 0; j < a.n; j += W, c += 2 * W) {
          // Blocks inside the row inline: as calls (GCC's choice here) they cost a third of the
          // time.
          const bool inside = rows > 0 && c >= 0 && c + 2 * W <= a.width;
          const reg lo = inside ? pool_column_inside<V, Op, kRows>(x, a.row_stride, rows, c)
                                : pool_column_block<V, Op, kRows>(x, a.row_stride, rows, a.width, c);
          const reg hi = inside ? pool_column_inside<V, Op, kRows>(x, a.row_stride, rows, c + W)
                                : pool_column_block<V, Op, kRows>(x, a.row_stride, rows, a.width, c + W);
          const reg acc = Op::template combine<V>(V::even_in_lanes(lo, hi), V::odd_in_lanes(lo, hi));
          pool_store_outputs<V, Op>(V::in_lane_order(acc), scale, j, a.n, y);
        }
        continue;
      }
    }
    if (a.stride == 2) {
      reg lo = pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c);
      reg hi = pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c + W);
      reg even = V::even(lo, hi), odd = V::odd(lo, hi);
      for (int64_t j = 0; j < a.n; j += W) {
        c += 2 * W;
        reg next_even = Op::template identity<V>(), next_odd = next_even;
        if (j + W < a.n || last_needs_next) {
          lo = pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c);
          hi = pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c + W);
          next_even = V::even(lo, hi);
          next_odd = V::odd(lo, hi);
        }
        reg acc = even;
#pragma GCC unroll 4
        for (int64_t t = 1; t < taps; ++t) {
          const int64_t offset = t * d, m = offset >> 1;
          const reg cur = offset & 1 ? odd : even, next = offset & 1 ? next_odd : next_even;
          acc = Op::template combine<V>(acc, m ? V::shift_in(cur, next, m) : cur);
        }
        pool_store_outputs<V, Op>(acc, scale, j, a.n, y);
        even = next_even;
        odd = next_odd;
      }
    } else {
      reg cur = pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c);
      for (int64_t j = 0; j < a.n; j += W) {
        c += W;
        const reg next = j + W < a.n || last_needs_next
                             ? pool_column_block<V, Op, kRows>(x, a.row_stride, a.rows, a.width, c)
                             : Op::template identity<V>();
        reg acc = cur;
#pragma GCC unroll 4
        for (int64_t t = 1; t < taps; ++t) acc = Op::template combine<V>(acc, V::shift_in(cur, next, t * d));
        pool_store_outputs<V, Op>(acc, scale, j, a.n, y);
        cur = next;
      }
    }
  }
}

// The common window sizes (2 or 3 rows, 2 or 3 taps) get fully unrolled loops.
template <class V, class Op, int kRows>
void pool_nchw_taps(const PoolNchwArgs<typename V::T>& a) {
  if (a.kw == 2) pool_nchw_rows<V, Op, kRows, 2>(a);
  else if (a.kw == 3) pool_nchw_rows<V, Op, kRows, 3>(a);
  else pool_nchw_rows<V, Op, kRows, 0>(a);
}

template <class V, class Op>
void pool_nchw_ukernel(const PoolNchwArgs<typename V::T>& a) {
  if (a.rows == 2) pool_nchw_taps<V, Op, 2>(a);
  else if (a.rows == 3) pool_nchw_taps<V, Op, 3>(a);
  else pool_nchw_taps<V, Op, 0>(a);
}

// ---------------------------------------------------------------------------------------------
// NHWC: per output pixel, the window's taps clipped to the input (so padding needs no buffer),
// then NV-vector channel blocks accumulate over the clipped rows x columns.

template <class V, class Op, size_t NV, int kRows, int kTaps>
inline void pool_nhwc_block(const typename V::T* x, int64_t row_stride, int64_t runtime_rows, int64_t tap_stride,
                            int64_t runtime_taps, typename V::T scale, typename V::T* y) {
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  const int64_t rows = kRows ? kRows : runtime_rows, taps = kTaps ? kTaps : runtime_taps;
  reg acc[NV];
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) acc[v] = Op::template identity<V>();
#pragma GCC unroll 4
  for (int64_t r = 0; r < rows; ++r) {
    const typename V::T* row = x + r * row_stride;
#pragma GCC unroll 4
    for (int64_t t = 0; t < taps; ++t) {
      const typename V::T* s = row + t * tap_stride;
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) acc[v] = Op::template combine<V>(acc[v], V::load(s + v * W));
    }
  }
  if (Op::kScaled) {
    const reg sv = V::set1(scale);
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) acc[v] = V::mul(acc[v], sv);
  }
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) V::store(y + v * W, acc[v]);
}

// All channels of one output pixel: 4-vector blocks, single vectors, then a masked remainder.
template <class V, class Op, int kRows, int kTaps>
inline void pool_nhwc_pixel(const typename V::T* x, int64_t row_stride, int64_t rows, int64_t tap_stride,
                            int64_t taps, int64_t C, typename V::T scale, typename V::T* y) {
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  int64_t c = 0;
  for (; c + 4 * W <= C; c += 4 * W)
    pool_nhwc_block<V, Op, 4, kRows, kTaps>(x + c, row_stride, rows, tap_stride, taps, scale, y + c);
  for (; c + W <= C; c += W)
    pool_nhwc_block<V, Op, 1, kRows, kTaps>(x + c, row_stride, rows, tap_stride, taps, scale, y + c);
  if (c < C) {
    const size_t m = (size_t)(C - c);
    reg acc = Op::template identity<V>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < taps; ++t)
        acc = Op::template combine<V>(acc, V::load_partial(x + r * row_stride + t * tap_stride + c, m));
    if (Op::kScaled) acc = V::mul(acc, V::set1(scale));
    V::store_partial_split(y + c, acc, m);
  }
}

template <class V, class Op>
void pool_nhwc_ukernel(const PoolNhwcArgs<typename V::T>& a) {
  using T = typename V::T;
  const int64_t C = a.channels, d = a.dilation, tap_stride = d * C;
  const int64_t last_tap = (a.kw - 1) * d;
  for (int64_t j = 0; j < a.n; ++j) {
    // Taps t whose column first + t*d lies in [0, width): all of them inside the image, else
    // clipped (divisions only at the borders, and only with dilation).
    const int64_t first = (a.col0 + j) * a.stride - a.pad_left;
    int64_t t0 = 0, t1 = a.kw;
    if (first < 0 || first + last_tap >= a.width) {
      t0 = first >= 0 ? 0 : d == 1 ? -first : (-first + d - 1) / d;
      t1 = first >= a.width ? 0 : d == 1 ? a.width - first : (a.width - 1 - first) / d + 1;
      if (t1 > a.kw) t1 = a.kw;
    }
    const int64_t taps = t1 > t0 ? t1 - t0 : 0;
    const T* x = a.x + (taps ? (first + t0 * d) * C : 0);
    const int64_t rows = taps ? a.rows : 0;
    const T scale = Op::kScaled && a.scale ? a.scale[j] : T(1);
    T* y = a.y + j * C;
    // The common interior windows (2x2, 3x3, 2x3, 3x2) get fully unrolled loops.
    const bool rows2 = rows == 2, rows3 = rows == 3, taps2 = taps == 2, taps3 = taps == 3;
    if (rows2 && taps2) pool_nhwc_pixel<V, Op, 2, 2>(x, a.row_stride, rows, tap_stride, taps, C, scale, y);
    else if (rows2 && taps3) pool_nhwc_pixel<V, Op, 2, 3>(x, a.row_stride, rows, tap_stride, taps, C, scale, y);
    else if (rows3 && taps2) pool_nhwc_pixel<V, Op, 3, 2>(x, a.row_stride, rows, tap_stride, taps, C, scale, y);
    else if (rows3 && taps3) pool_nhwc_pixel<V, Op, 3, 3>(x, a.row_stride, rows, tap_stride, taps, C, scale, y);
    else pool_nhwc_pixel<V, Op, 0, 0>(x, a.row_stride, rows, tap_stride, taps, C, scale, y);
  }
}

// ---------------------------------------------------------------------------------------------
// Planes: y[p] = op over one contiguous plane. Each plane is first reduced to one vector of
// per-lane partials (four accumulators hide the combine latency; the tail is a masked load
// filled with the identity). Where the ISA folds vector pairs cheaply, W planes' vectors are then
// folded together into one vector of W results (log2 W levels instead of W horizontal
// reductions); elsewhere each vector is reduced on its own.

template <class V, class Op>
inline typename V::reg pool_plane_partials(const typename V::T* s, int64_t size) {
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  const reg identity = Op::template identity<V>();
  reg acc0 = identity, acc1 = identity, acc2 = identity, acc3 = identity;
  int64_t i = 0;
  for (; i + 4 * W <= size; i += 4 * W) {
    acc0 = Op::template combine<V>(acc0, V::load(s + i));
    acc1 = Op::template combine<V>(acc1, V::load(s + i + W));
    acc2 = Op::template combine<V>(acc2, V::load(s + i + 2 * W));
    acc3 = Op::template combine<V>(acc3, V::load(s + i + 3 * W));
  }
  for (; i + W <= size; i += W) acc0 = Op::template combine<V>(acc0, V::load(s + i));
  if (i < size) acc1 = Op::template combine<V>(acc1, V::load_lanes(s + i, 0, size - i, identity));
  return Op::template combine<V>(Op::template combine<V>(acc0, acc1), Op::template combine<V>(acc2, acc3));
}

template <class V, class Op>
void pool_planes_ukernel(const typename V::T* src, int64_t planes, int64_t size, typename V::T scale,
                         typename V::T* y) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr int64_t W = (int64_t)V::W;
  int64_t p = 0;
  if constexpr (V::kFoldPairs) {
    for (; p + W <= planes; p += W) {
      reg v[W];
#pragma GCC unroll 16
      for (int64_t q = 0; q < W; ++q) v[q] = pool_plane_partials<V, Op>(src + (p + q) * size, size);
#pragma GCC unroll 4
      for (int64_t count = W, h = W / 2; count > 1; count /= 2, h /= 2) {
#pragma GCC unroll 8
        for (int64_t i = 0; i < count / 2; ++i) {
          reg lo, hi;
          V::fold_pairs(v[2 * i], v[2 * i + 1], h, lo, hi);
          v[i] = Op::template combine<V>(lo, hi);
        }
      }
      V::store(y + p, Op::kScaled ? V::mul(v[0], V::set1(scale)) : v[0]);
    }
  }
  for (; p < planes; ++p) {
    const T result = Op::template reduce<V>(pool_plane_partials<V, Op>(src + p * size, size));
    y[p] = Op::kScaled ? result * scale : result;
  }
}

template <class V>
constexpr PoolKernels<typename V::T> make_pool_kernels() {
  return PoolKernels<typename V::T>{
      V::W,
      pool_rows_ukernel<V, PoolMax>,   pool_rows_ukernel<V, PoolSum>,
      pool_window_ukernel<V, PoolMax>, pool_window_ukernel<V, PoolSum>,
      pool_nchw_ukernel<V, PoolMax>,   pool_nchw_ukernel<V, PoolSum>,
      pool_nhwc_ukernel<V, PoolMax>,   pool_nhwc_ukernel<V, PoolSum>,
      pool_planes_ukernel<V, PoolMax>, pool_planes_ukernel<V, PoolSum>,
  };
}

}  // namespace pycnn::PYCNN_ISA_NS
