// Depthwise-convolution and epilogue microkernels, written once against the vector traits V and
// compiled per ISA inside namespace pycnn::PYCNN_ISA_NS. Contracts: microkernels.h.
//
// Depthwise convolution has no reduction over channels: every output value is KH*KW products,
// so the kernels are load-bound. They keep an MR x NV tile of accumulators in registers and
// load each weight vector (or broadcast) once per tap for the whole tile, so a tap costs
// about one input load per FMA; the NCHW 3x3 kernel also shares each input row's loads among
// the output rows that read it.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

#include "generic/traits.h"

namespace pycnn::PYCNN_ISA_NS {

// x, opaque to the optimiser: a value loaded for several FMAs must stay one load into a
// register, which GCC otherwise re-reads as a memory operand of each FMA.
template <class reg>
inline reg in_register(reg x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(x));
#endif
  return x;
}

// p + step, opaque to the optimiser, for loads that walk pixels one pointer step at a time.
// Given row + j*step instead, GCC hoists every offset j*step out of the tile loop (25 of them in
// a stride-2 strip), more than there are registers, and each load reloads its offset from the
// stack.
template <class T>
inline const T* advanced(const T* p, int64_t step) {
  p += step;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+r"(p));
#endif
  return p;
}

// Whether output row (r - kh) / SH of an MR-row tile reads input row r with tap kh (row stride
// SH); the same for pixels and column taps.
template <size_t MR, size_t SH>
constexpr bool tile_row_reads(size_t r, size_t kh) {
  return r >= kh && (r - kh) % SH == 0 && (r - kh) / SH < MR;
}

// How many output rows of the tile read input row r (taps 0..2): a row read by one is a memory
// operand of its FMA, a row read by several is loaded once into a register (in_register).
template <size_t MR, size_t SH>
constexpr size_t tile_row_uses(size_t r) {
  return (size_t)tile_row_reads<MR, SH>(r, 0) + tile_row_reads<MR, SH>(r, 1) + tile_row_reads<MR, SH>(r, 2);
}

// The channel's 3x3 weights, broadcast: wv[kh][kw] = w[kh*3 + kw].
template <class V>
PYCNN_TILE_INLINE void broadcast_3x3(const typename V::T* w, typename V::reg (&wv)[3][3]) {
#pragma GCC unroll 3
  for (size_t kh = 0; kh < 3; ++kh)
#pragma GCC unroll 3
    for (size_t kw = 0; kw < 3; ++kw) wv[kh][kw] = V::set1(w[kh * 3 + kw]);
}

// The epilogue of an NCHW tile of one channel (MR rows of the channel's bias in row_bias), or
// null when there is neither bias nor activation.
template <class T, size_t MR>
const Epilogue<T>* nchw_epilogue(const DepthwiseNchwArgs<T>& a, Epilogue<T>& e, T (&row_bias)[MR]) {
  if (a.bias) {
    for (size_t i = 0; i < MR; ++i) row_bias[i] = *a.bias;
    e.bias_row = row_bias;
  }
  e.activation = a.activation;
  e.param = a.activation_param;
  return a.bias || a.activation ? &e : nullptr;
}

// 3x3 taps, row dilation 1, row stride SH: each padded input row of the tile is loaded once per
// column tap and feeds every output row that reads it (up to 3 with SH = 1), with the nine
// weights in registers: (MR-1)*SH + 3 input rows' loads instead of 9 per output row. Each
// output's sum still runs kh-major, kw-minor, as in the generic loop, so both give the same bits.
template <class V, size_t MR, size_t NV, size_t SH>
PYCNN_TILE_INLINE void depthwise_nchw_3x3_rows(const DepthwiseNchwArgs<typename V::T>& a, typename V::reg (&acc)[MR][NV]) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W, IR = (MR - 1) * SH + 3;
  reg wv[3][3];
  broadcast_3x3<V>(a.w, wv);
  const int64_t tap[3] = {a.tap[0], a.tap[1], a.tap[2]};
#pragma GCC unroll 32
  for (size_t r = 0; r < IR; ++r) {
    const T* row = a.plane + (int64_t)r * a.plane_row;
#pragma GCC unroll 3
    for (size_t kw = 0; kw < 3; ++kw)
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) {
        // SH = 2: odd rows, the first and the last are read by one output row.
        const reg loaded = V::load(row + tap[kw] + v * W);
        const reg x = tile_row_uses<MR, SH>(r) > 1 ? in_register(loaded) : loaded;
#pragma GCC unroll 3
        for (size_t kh = 0; kh < 3; ++kh)
          if (tile_row_reads<MR, SH>(r, kh))
            acc[(r - kh) / SH][v] = V::fmadd(wv[kh][kw], x, acc[(r - kh) / SH][v]);
      }
  }
}

// NCHW: MR output rows x NR = NV*W output columns of one output channel.
template <class V, size_t MR, size_t NV>
void depthwise_nchw_ukernel(const DepthwiseNchwArgs<typename V::T>& a) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  const bool k3 = a.kh == 3 && a.kw == 3 && a.dilation_h == 1;
  if (k3 && a.stride_h == 1) {
    depthwise_nchw_3x3_rows<V, MR, NV, 1>(a, acc);
  } else if (k3 && a.stride_h == 2) {
    depthwise_nchw_3x3_rows<V, MR, NV, 2>(a, acc);
  } else {
    const int64_t row_step = a.stride_h * a.plane_row;
    for (int64_t kh = 0; kh < a.kh; ++kh) {
      const T* base = a.plane + kh * a.dilation_h * a.plane_row;
      for (int64_t kw = 0; kw < a.kw; ++kw) {
        const reg wv = V::set1(a.w[kh * a.kw + kw]);
        const T* src = base + a.tap[kw];
#pragma GCC unroll 16
        for (size_t i = 0; i < MR; ++i)
#pragma GCC unroll 8
          for (size_t v = 0; v < NV; ++v)
            acc[i][v] = V::fmadd(wv, V::load(src + (int64_t)i * row_step + v * W), acc[i][v]);
      }
    }
  }
  Epilogue<T> e;
  T row_bias[MR];
  store_tile<V, MR, NV>(acc, a.y, (size_t)a.ldy, a.rows, a.cols, false, nchw_epilogue(a, e, row_bias));
}

// An in-place NCHW tile's column of MR rows x cols (<= W), stored inline for no activation,
// relu and relu6: a call per vector spilled and reloaded the 9 weights around it (store_tile was
// 15% of samples).
template <class V, size_t MR>
PYCNN_TILE_INLINE void store_nchw_column(typename V::reg (&acc)[MR][1], typename V::T* y,
                                         const DepthwiseNchwArgs<typename V::T>& a, size_t cols,
                                         const Epilogue<typename V::T>* ep) {
  if (a.activation == 0) store_tile_unrolled<V, MR, 1, 0, true>(acc, y, (size_t)a.ldy, a.rows, cols, false, ep);
  else if (a.activation == 1) store_tile_unrolled<V, MR, 1, 1, true>(acc, y, (size_t)a.ldy, a.rows, cols, false, ep);
  else if (a.activation == 2) store_tile_unrolled<V, MR, 1, 2, true>(acc, y, (size_t)a.ldy, a.rows, cols, false, ep);
  else store_tile<V, MR, 1>(acc, y, (size_t)a.ldy, a.rows, cols, false, ep);
}

// p[0] in every lane, or zeros when `inside` is false (p is then not read): a column a vector
// brings in by shifting, or padding.
template <class V>
PYCNN_TILE_INLINE typename V::reg broadcast_or_zero(const typename V::T* p, bool inside) {
  static const typename V::T zero = 0;
  return V::set1(*(inside ? p : &zero));
}

// The three column taps of one input row for an in-place NCHW vector (see below): x[kw] holds
// the columns tap kw reads for the vector's W output columns. Masked: the loads (bit k: load k)
// that keep to the row (lanes); the others have every lane inside it and load plainly (AVX2's
// masked loads, vmaskmovps, are a slower instruction).
// A W-lane load from a column off the cache-line grid crosses a line, which costs two loads on
// Zen 5 (half the load rate), and numpy's buffers start 16 bytes past a line. So with cheap
// masks (AVX-512) each tap that a shift can make is one: at stride 1 (ShiftTaps, where 512-bit
// shuffles are cheap: Zen 5; on Zen 4 loading them measured faster, see
// depthwise_nchw_3x3_in_place_ukernel), taps 0 and 2 are tap 1 shifted by a lane, the column
// each brings in broadcast; at stride 2, tap 2 is tap 0 moved a column on, its one new column
// brought in (with the split in lanes, below). An input row then costs one vector load (stride 1)
// or two (stride 2) where it cost three. AVX-512 on Zen 5, alternating, p10 us, 1 thread / 2 threads:
// 3x3 144 @56 105 -> 90 / 53 -> 48; 3x3/2 96 @112 (stride 2 only) 128 -> 116 / 67 -> 62.
// At stride 2 with the split in lanes, all three taps come in that lane order, which the kernel
// restores once per sum. AVX2 (four loads): tap 2 is the even lanes of loads 2 and 3, two columns
// on from loads 0 and 1; an input row then costs 4 loads and 3 in-lane shuffles, where the split
// across lanes took 2 loads, a broadcast, 2 shuffles, 4 lane-crossing permutes and a blend. AVX2
// on Zen 4, one thread, p10 us: 3x3/2 96 @112 231 -> 204, 144 @56 113 -> 103, 32 @224 290 ->
// 270. AVX-512 (two loads): tap 2 is tap 0 moved a column on in that order (next_in_lanes, one
// permute) with the new column from a masked scalar load; an input row costs 2 in-lane shuffles
// and one two-source permute where the split across lanes took two, a shift and a broadcast (a
// two-source permute takes an FMA's slot on Zen 4, an in-lane shuffle does not). Zen 4, one
// thread, CPU time, fastest of 4 alternating processes, us: 3x3/2 96 @112 147.3-148.9 ->
// 142.1-144.7, 32 @224 193.8-196.9 -> 177.4-182.3, 64 @112 100.0-101.5 -> 97.4-98.4.
// Load K of an in-place NCHW vector (below): masked (bit K of Masked set) to keep to the row, or
// plain where every lane of it is inside.
constexpr unsigned kAllLoadsMasked = 0xF;
// Stride 2 with the split in lanes, where AVX2's masked loads are dear, two edges need no mask:
// - kTap2OneEarly, a right edge one column past the row's end (load 3's last lane, an odd
//   column that tap 2 never reads): loads 2 and 3 start a column early, and tap 2 takes their
//   odd lanes, the same columns.
// - kTap0Previous, a left edge one column before the row (padding 1): loads 0 and 1 start a
//   column late, at column 0; their even lanes are tap 1, their odd lanes tap 2, and tap 0 is
//   tap 2 a column back, a zero first (the padding column).
// At stride 1, with the same names for the same columns (padding 1, AVX2 on Zen 1, see below):
// - kTap0Previous, a left edge one column before the row: tap 0 is tap 1 a column back, a zero
//   first; loads 1 and 2 only.
// - kTap2Next, a right edge one column past the row's end: tap 2 is tap 1 a column on, a zero
//   last; loads 0 and 1 only.
// - kRowTail, a vector that reaches the row's end from inside it, possibly past both ends (rows
//   of at most W columns): tap 1 is a partial load of the row's last columns (zeros after),
//   tap 0 that a column back with the column before broadcast (a zero at the left edge), tap 2
//   that a column on: one masked load and a broadcast where there were three masked loads.
//   With the row ends stored by split moves (V::store_partial_split), AVX2 on Zen 1, one
//   thread, us: 3x3 960 @7 331 -> 287, 576 @14 428 -> 370.
constexpr unsigned kTap2OneEarly = 0x10, kTap0Previous = 0x20, kTap2Next = 0x40, kRowTail = 0x80;
template <class V, unsigned Masked, size_t K>
PYCNN_TILE_INLINE typename V::reg in_place_load(const typename V::T* row, const int64_t (&start)[4],
                                                const typename V::Lanes (&lanes)[4]) {
  if constexpr ((Masked >> K) & 1) return V::load_masked(row + start[K], lanes[K]);
  else return V::load(row + start[K]);
}

template <class V, size_t SW, bool ShiftTaps, unsigned Masked = kAllLoadsMasked>
PYCNN_TILE_INLINE void in_place_taps(const typename V::T* row, const int64_t (&start)[4],
                                     const typename V::Lanes (&lanes)[4], typename V::reg (&x)[3],
                                     int64_t in_w = 0) {
  constexpr size_t W = V::W;
  // lanes: a bit mask
  constexpr bool shifted = ShiftTaps && Masked == kAllLoadsMasked && V::kMaskedLoadsCheap && W > 1;
  auto load = [&](auto k) { return in_place_load<V, Masked, decltype(k)::value>(row, start, lanes); };
  using k0 = std::integral_constant<size_t, 0>;
  using k1 = std::integral_constant<size_t, 1>;
  using k2 = std::integral_constant<size_t, 2>;
  using k3 = std::integral_constant<size_t, 3>;
  if constexpr (SW == 1 && shifted) {
    static_assert(std::is_integral_v<typename V::Lanes>, "lane tests read the lane sets as bit masks");
    x[1] = load(k1{});
    x[0] = shift_in_by<W - 1, V>(broadcast_or_zero<V>(row + start[0], lanes[0] & 1), x[1]);
    x[2] = shift_in_by<1, V>(x[1], broadcast_or_zero<V>(row + start[2] + (W - 1), (lanes[2] >> (W - 1)) & 1));
  } else if constexpr (SW == 1 && Masked == kRowTail) {
    x[1] = V::load_partial(row + start[1], (size_t)(in_w - start[1]));
    x[0] = shift_in_by<W - 1, V>(broadcast_or_zero<V>(row + start[0], start[0] >= 0), x[1]);
    x[2] = shift_in_by<1, V>(x[1], V::zero());
  } else if constexpr (SW == 1 && Masked == kTap0Previous) {
    x[1] = V::load(row + start[1]);
    x[2] = V::load(row + start[2]);
    x[0] = shift_in_by<W - 1, V>(V::zero(), x[1]);
  } else if constexpr (SW == 1 && Masked == kTap2Next) {
    x[0] = V::load(row + start[0]);
    x[1] = V::load(row + start[1]);
    x[2] = shift_in_by<1, V>(x[1], V::zero());
  } else if constexpr (SW == 1) {
    x[0] = load(k0{});
    x[1] = load(k1{});
    x[2] = load(k2{});
  } else if constexpr (has_even_odd_in_lanes<V>::value && V::kMaskedLoadsCheap) {
    const typename V::reg lo = load(k0{});
    const typename V::reg hi = load(k1{});
    x[0] = V::even_in_lanes(lo, hi);
    x[1] = V::odd_in_lanes(lo, hi);
    x[2] = V::next_in_lanes(x[0], V::first_or_zero(row + start[2], lanes[2] & 1));
  } else if constexpr (has_even_odd_in_lanes<V>::value) {
    if constexpr (Masked == kTap0Previous) {
      const typename V::reg lo = V::load(row + start[0] + 1), hi = V::load(row + start[1] + 1);
      x[1] = V::even_in_lanes(lo, hi);
      x[2] = V::odd_in_lanes(lo, hi);
      x[0] = V::previous_in_lanes(x[2]);
      return;
    }
    const typename V::reg lo = load(k0{});
    const typename V::reg hi = load(k1{});
    x[0] = V::even_in_lanes(lo, hi);
    x[1] = V::odd_in_lanes(lo, hi);
    if constexpr (Masked == kTap2OneEarly)
      x[2] = V::odd_in_lanes(V::load(row + start[2] - 1), V::load(row + start[3] - 1));
    else
      x[2] = V::even_in_lanes(load(k2{}), load(k3{}));
  } else {
    static_assert(Masked == kAllLoadsMasked, "plain loads at stride 2 take the split in lanes");
    const typename V::reg lo = load(k0{});
    const typename V::reg hi = load(k1{});
    x[0] = V::even(lo, hi);
    x[1] = V::odd(lo, hi);
    x[2] = shift_in_by<1, V>(x[0], broadcast_or_zero<V>(row + start[2], lanes[2] & 1));
  }
}

// Input row r of an MR-row tile (row stride SH), its three column taps in x, into the sums of
// every output row that reads it, kh-major and kw-minor as each sum runs.
template <class V, size_t MR, size_t SH>
PYCNN_TILE_INLINE void accumulate_row_taps(size_t r, const typename V::reg (&x)[3], const typename V::reg (&wv)[3][3],
                                           typename V::reg (&acc)[MR][1]) {
#pragma GCC unroll 3
  for (size_t kw = 0; kw < 3; ++kw) {
    const typename V::reg xk = tile_row_uses<MR, SH>(r) > 1 ? in_register(x[kw]) : x[kw];
#pragma GCC unroll 3
    for (size_t kh = 0; kh < 3; ++kh)
      if (tile_row_reads<MR, SH>(r, kh)) acc[(r - kh) / SH][0] = V::fmadd(wv[kh][kw], xk, acc[(r - kh) / SH][0]);
  }
}

// The MR rows of an in-place NCHW vector (below): each input row's taps feed every output row
// that reads it.
template <class V, size_t MR, size_t SH, size_t SW, bool ShiftTaps, unsigned Masked>
PYCNN_TILE_INLINE void in_place_rows(const DepthwiseNchwArgs<typename V::T>& a, const int64_t (&start)[4],
                                     const typename V::Lanes (&lanes)[4], const typename V::reg (&wv)[3][3],
                                     typename V::reg (&acc)[MR][1]) {
  using reg = typename V::reg;
  constexpr size_t IR = (MR - 1) * SH + 3;
#pragma GCC unroll 32
  for (size_t r = 0; r < IR; ++r) {
    reg x[3];
    in_place_taps<V, SW, ShiftTaps, Masked>(a.in_rows[r], start, lanes, x, a.in_w);
    accumulate_row_taps<V, MR, SH>(r, x, wv, acc);
  }
}

// An in-place NCHW tile's column of MR whole rows (W columns each) with no activation, relu or
// relu6: each row put in column order (InLanes), given the channel's bias and activation and
// stored in turn, with no edge tests. Through store_nchw_column the 14 sums were put in order
// together and half of them spilled to the stack around its per-row edge tests. One build, the
// two forms alternated in one process, one thread, min us, Zen 4: 3x3/2 96 @112 148.8 -> 141.3,
// 32 @224 175.8 -> 166.9; 3x3 32 @112 96.0 -> 95.0, 144 @56 level; AVX2 3x3/2 96 @112 298 -> 267,
// 3x3 144 @56 252 -> 213. The same operations in the same order: the same bits.
template <class V, size_t MR, bool InLanes, int Act>
PYCNN_TILE_INLINE void store_whole_column(typename V::reg (&acc)[MR][1], typename V::T* y, size_t ldy,
                                          const typename V::T* bias) {
  using reg = typename V::reg;
  const reg b = bias ? V::set1(*bias) : V::zero();
#pragma GCC unroll 16
  for (size_t i = 0; i < MR; ++i) {
    reg x = acc[i][0];
    if constexpr (InLanes) x = V::in_lane_order(x);
    if (bias) x = V::add(x, b);
    V::store(y + i * ldy, activate_unrolled<V, Act>(x));
  }
}

// A stride-2 in-place tile's last vector when it is at most half full (rows of 56 columns: 3
// vectors and 8 columns): output rows i and i + MR/2 share a vector, lanes [0, W/2) and
// [W/2, W). Their input rows r and r + SH*MR/2 are split together: the in-lane split of a W-lane
// load of each row (from column `first`) holds row r's even columns in the places a whole row's
// first W columns take, row r + SH*MR/2's in those of its next W, so in_lane_order puts each
// row's W/2 sums in its half. Tap 2 is the split of two loads two columns on. A pair of input
// rows costs four loads, three in-lane shuffles and one row's FMAs, where the two rows in
// full-width vectors took four loads, two masked scalar loads, four shuffles, two two-source
// permutes and twice the FMAs. Only where masked loads are cheap (AVX-512: the loads at a row's
// end are masked) and only whole tiles (MR rows). One build, with and without, alternated in one
// process, one thread, min us, Zen 4: 3x3/2 96 @112 150.8 -> 143.0, 64 @112 96.7 -> 92.9.
template <class V, size_t MR, size_t SH>
PYCNN_TILE_INLINE void stride2_half_tail(const DepthwiseNchwArgs<typename V::T>& a, int64_t first, size_t cols,
                                         const typename V::reg (&wv)[3][3], typename V::T* y,
                                         const Epilogue<typename V::T>* ep) {
  using reg = typename V::reg;
  constexpr size_t W = V::W, HR = MR / 2, HIR = (HR - 1) * SH + 3, apart = HR * SH;
  const typename V::Lanes taps01 = V::lane_range(-first, a.in_w - first);
  const typename V::Lanes tap2 = V::lane_range(-(first + 2), a.in_w - (first + 2));
  reg pairs[HR][1];
  zero_tile<V, HR, 1>(pairs);
#pragma GCC unroll 32
  for (size_t r = 0; r < HIR; ++r) {
    const typename V::T *upper = a.in_rows[r], *lower = a.in_rows[r + apart];
    const reg u = V::load_masked(upper + first, taps01), l = V::load_masked(lower + first, taps01);
    const reg u2 = V::load_masked(upper + first + 2, tap2), l2 = V::load_masked(lower + first + 2, tap2);
    const reg x[3] = {V::even_in_lanes(u, l), V::odd_in_lanes(u, l), V::even_in_lanes(u2, l2)};
    accumulate_row_taps<V, HR, SH>(r, x, wv, pairs);
  }
  reg acc[MR][1];
#pragma GCC unroll 16
  for (size_t i = 0; i < HR; ++i) {
    reg upper = V::in_lane_order(pairs[i][0]), lower = upper;
    V::template transpose_pair<W / 2>(upper, lower);  // upper: row i in lanes [0, W/2); lower: row i + HR
    acc[i][0] = upper;
    acc[i + HR][0] = lower;
  }
  store_nchw_column<V, MR>(acc, y, a, cols, ep);
}

// NCHW 3x3, dilation 1, row stride SH and column stride SW (1 or 2), the input rows read in
// place: MR output rows x the tile's columns, one vector at a time. As in
// depthwise_nchw_3x3_rows, each input row is loaded once per vector and feeds every output row
// that reads it. Columns outside [0, in_w) enter as zero lanes of masked loads (lane sets
// computed once per vector), or as zero broadcasts (in_place_taps), and padding rows as rows of
// zeros, so each sum runs kh-major, kw-minor and adds w*0 for padding: the same bits as the
// padded plane gives.
// Where the ISA streams rows (kStreamsRows: AVX-512), strides 1 x 1 and 2 x 2 go there
// (depthwise_nchw_3x3_rows_ukernel) when a row is at most a few vectors wide, so this kernel
// takes wider rows and strides (2, 1) and (1, 2); the 3x3 and 3x3/2 figures below at such
// widths were measured before that kernel.
// SW = 2: the column split happens in registers, not in a plane: of two loads from column
// 2j - pad_left on, tap 0 is the even lanes, tap 1 the odd lanes, and tap 2 the even lanes
// shifted in by one from the next column (lane 0 of lanes[2]). The plane's split was
// 41% of samples of 3x3/2 96 @112 (one thread): a pass over the input apart from the
// arithmetic, bound by the input's reads from L3.
template <class V, size_t MR, size_t SH, size_t SW, bool ShiftTaps>
void depthwise_nchw_3x3_in_place(const DepthwiseNchwArgs<typename V::T>& a) {
  using T = typename V::T;
  using reg = typename V::reg;
  using Lanes = typename V::Lanes;
  constexpr size_t W = V::W, IR = (MR - 1) * SH + 3;
  constexpr bool in_lanes = SW == 2 && has_even_odd_in_lanes<V>::value;
  reg wv[3][3];
  broadcast_3x3<V>(a.w, wv);
  Epilogue<T> e;
  T row_bias[MR];
  const Epilogue<T>* ep = nchw_epilogue(a, e, row_bias);
  const size_t vectors = (a.cols + W - 1) / W;
  constexpr size_t interleave = 128 / (W * sizeof(T)) > 1 ? 128 / (W * sizeof(T)) : 1;
  const size_t passes = a.column_order == kInterleaved ? interleave : 1;
  size_t pass = 0, step = 0;
#pragma GCC unroll 1
  for (size_t visited = 0; visited < vectors; ++visited, step += passes) {
    if (step >= vectors) step = ++pass;  // kInterleaved: the next pass
    const size_t v = a.column_order == kRightToLeft ? vectors - 1 - step : step;
    // Load k starts at start[k]: SW = 1, tap k of the vector's first column; SW = 2, k vectors
    // into the 2W columns from col0 + 2*v*W on, or with four loads (the split in lanes where
    // masked loads are dear), loads 2 and 3 two columns after loads 0 and 1.
    constexpr bool four_loads = in_lanes && !V::kMaskedLoadsCheap;
    constexpr size_t loads = four_loads ? 4 : 3;
    int64_t start[4];
#pragma GCC unroll 4
    for (size_t k = 0; k < loads; ++k)
      start[k] = a.col0 + (int64_t)(SW == 1 ? v * W + k : four_loads ? (2 * v + k % 2) * W + k / 2 * 2 : (2 * v + k) * W);
    // Loads that leave the row (bit k: load k), where masked loads cost more than plain ones
    // (see below); vectors with none skip the lane sets.
    unsigned masked = kAllLoadsMasked;
    if constexpr (!V::kMaskedLoadsCheap) {
      masked = 0;
#pragma GCC unroll 4
      for (size_t k = 0; k < loads; ++k)
        if (start[k] < 0 || start[k] + (int64_t)W > a.in_w) masked |= 1u << k;
    }
    const size_t cols = a.cols - v * W < W ? a.cols - v * W : W;
    Lanes lanes[4] = {};
    if (masked != 0 || cols <= W / 2) {  // the half-vector tail below masks all its loads
#pragma GCC unroll 4
      for (size_t k = 0; k < loads; ++k) lanes[k] = V::lane_range(-start[k], a.in_w - start[k]);
    }
    if (SW == 2 && a.next_rows) {
      // The columns this vector reads, of the next tile's rows (stride 2 only: the stride-1
      // kernel with this code measured slower; see depthwise_nchw_band_in_place).
      const int64_t first = a.col0 + (int64_t)(v * SW * W), last = first + (int64_t)(SW * W) + 1;
#pragma GCC unroll 32
      for (size_t r = 0; r < IR; ++r) {
        if (v == 0) __builtin_prefetch(a.next_rows[r] + first);
        __builtin_prefetch(a.next_rows[r] + last);
      }
    }
    T* y = a.y + v * W;
    if constexpr (SH == 1 && SW == 1 && MR % 2 == 0 && W >= 2) {
      // A last vector at most half full (rows of 56 columns: 3 vectors and 8 columns) takes two
      // rows a vector: lanes [0, W/2) row 2i, lanes [W/2, W) row 2i + 1, so the tail costs half
      // the multiply-adds. Input pair j (rows j and j + 1) feeds output pair i through tap kh
      // when j = 2i + kh, as input row r feeds output row (r - kh) / 2 at row stride 2. (At
      // column stride 2 these pairs measured level: each row's taps still took a full split.
      // There stride2_half_tail splits the two rows together instead, where masked loads are
      // cheap.)
      if (cols <= W / 2 && a.rows == MR) {
        reg pairs[MR / 2][1];
        zero_tile<V, MR / 2, 1>(pairs);
        reg previous[3];
#pragma GCC unroll 32
        for (size_t r = 0; r < IR; ++r) {
          reg x[3];
          in_place_taps<V, SW, ShiftTaps>(a.in_rows[r], start, lanes, x);
          if (r > 0) {
#pragma GCC unroll 3
            for (size_t kw = 0; kw < 3; ++kw) {
              reg pair = previous[kw], unused = x[kw];
              V::template transpose_pair<W / 2>(pair, unused);  // pair: rows r - 1 and r
#pragma GCC unroll 3
              for (size_t kh = 0; kh < 3; ++kh)
                if (tile_row_reads<MR / 2, 2>(r - 1, kh))
                  pairs[(r - 1 - kh) / 2][0] = V::fmadd(wv[kh][kw], pair, pairs[(r - 1 - kh) / 2][0]);
            }
          }
#pragma GCC unroll 3
          for (size_t k = 0; k < 3; ++k) previous[k] = x[k];
        }
        reg acc[MR][1];
#pragma GCC unroll 16
        for (size_t i = 0; i < MR / 2; ++i) {
          reg lo = pairs[i][0], hi = pairs[i][0];
          V::template transpose_pair<W / 2>(lo, hi);  // lo: row 2i in lanes [0, W/2); hi: row 2i + 1
          acc[2 * i][0] = lo;
          acc[2 * i + 1][0] = hi;
        }
        store_nchw_column<V, MR>(acc, y, a, cols, ep);
        continue;
      }
    }
    if constexpr (in_lanes && V::kMaskedLoadsCheap && MR % 2 == 0) {
      if (cols <= W / 2 && a.rows == MR) {
        stride2_half_tail<V, MR, SH>(a, start[0], cols, wv, y, ep);
        continue;
      }
    }
    reg acc[MR][1];
    zero_tile<V, MR, 1>(acc);
    // Where masked loads cost more than plain ones, vectors whose taps all lie inside the row
    // load plainly: AVX2 on Zen 4, one thread, us, 3x3/2 96 @112 262 -> 231, 144 @56 211 -> 199
    // (on AVX-512 the second copy of the rows cost 2-5%). On Zen 1 a masked load (vmaskmovps)
    // costs several plain ones, so an edge vector masks only the loads that leave the row: at a
    // left edge the first (load 0), at a right edge the last (SW = 1: load 2; SW = 2: loads 1
    // and 3, the second of each pair), and none at edges one column past either end (padding 1:
    // kTap2OneEarly, kTap0Previous). Zen 1, alternating, min of p10 us over 10 rounds, one
    // thread, 3x3/2 8 @112 (in cache): masked edges 68.3 -> kTap2OneEarly 60.3 -> and
    // kTap0Previous 56.1. At stride 1 (kTap0Previous, kTap2Next: a vpermps and a blend for the
    // masked load, whose variants also spilled weights), medians of 5 alternating rounds, us, 3x3
    // 144 @56 one thread 498 -> 440, two 300 -> 270; 32 @112 (min) 363 -> 337.
    if constexpr (V::kMaskedLoadsCheap) {
      in_place_rows<V, MR, SH, SW, ShiftTaps, kAllLoadsMasked>(a, start, lanes, wv, acc);
    } else {
      static_assert(SW == 1 || in_lanes, "plain loads at stride 2 take the split in lanes");
      constexpr unsigned left = 1u, right = SW == 1 ? 4u : 10u;
      if (masked == 0) in_place_rows<V, MR, SH, SW, ShiftTaps, 0u>(a, start, lanes, wv, acc);
      else if (masked == left && start[0] == -1)  // SW = 2: loads 1-3 inside, so are 0 and 1 a column on
        in_place_rows<V, MR, SH, SW, ShiftTaps, kTap0Previous>(a, start, lanes, wv, acc);
      else if (masked == left) in_place_rows<V, MR, SH, SW, ShiftTaps, left>(a, start, lanes, wv, acc);
      else if (SW == 1 && masked == right && start[2] + (int64_t)W == a.in_w + 1)
        in_place_rows<V, MR, SH, SW, ShiftTaps, (SW == 1 ? kTap2Next : right)>(a, start, lanes, wv, acc);
      else if (masked == right) in_place_rows<V, MR, SH, SW, ShiftTaps, right>(a, start, lanes, wv, acc);
      else if (SW == 2 && masked == 8u && start[3] + (int64_t)W == a.in_w + 1)
        in_place_rows<V, MR, SH, SW, ShiftTaps, (SW == 2 ? kTap2OneEarly : right)>(a, start, lanes, wv, acc);
      else if (SW == 1 && start[1] >= 0 && start[1] + (int64_t)W >= a.in_w)
        in_place_rows<V, MR, SH, SW, ShiftTaps, (SW == 1 ? kRowTail : right)>(a, start, lanes, wv, acc);
      else in_place_rows<V, MR, SH, SW, ShiftTaps, kAllLoadsMasked>(a, start, lanes, wv, acc);
    }
    if (a.rows == MR && cols == W && a.activation <= 2) {
      if (a.activation == 0) store_whole_column<V, MR, in_lanes, 0>(acc, y, (size_t)a.ldy, a.bias);
      else if (a.activation == 1) store_whole_column<V, MR, in_lanes, 1>(acc, y, (size_t)a.ldy, a.bias);
      else store_whole_column<V, MR, in_lanes, 2>(acc, y, (size_t)a.ldy, a.bias);
      continue;
    }
    if constexpr (in_lanes) {
#pragma GCC unroll 16
      for (size_t i = 0; i < MR; ++i) acc[i][0] = V::in_lane_order(acc[i][0]);
    }
    store_nchw_column<V, MR>(acc, y, a, cols, ep);
  }
}

// Column taps at stride 1 where masked loads are cheap (AVX-512): shifted from tap 1 with
// a.shift_taps (zmm_shuffles_cheap), else loaded. One thread, us, 3x3 144 @56 / 32 @112: Zen 5
// (stop 33, loaded -> shifted) 105 -> 90; Zen 4, CPU time, fastest of 4 alternating processes,
// shifted (valignd) -> loaded 130.1-131.3 -> 119.9-121.3 / 100.8-105.3 -> 95.9-97.8: there a
// 512-bit shuffle takes the units the FMAs use, and the two line-crossing loads do not.
// Whether the ISA streams rows at strides 1 x 1 and 2 x 2 (depthwise_nchw_3x3_rows_ukernel,
// below): it needs cheap masked loads and the column split in lanes with next_in_lanes
// (AVX-512).
template <class V>
constexpr bool kStreamsRows = has_even_odd_in_lanes<V>::value && V::kMaskedLoadsCheap;

template <class V, size_t MR>
void depthwise_nchw_3x3_in_place_ukernel(const DepthwiseNchwArgs<typename V::T>& a) {
  constexpr bool can_shift = V::kMaskedLoadsCheap && V::W > 1;  // else taps are loaded either way
  if (a.stride_w == 1) {
    if (can_shift && a.shift_taps) {
      if (a.stride_h == 1) depthwise_nchw_3x3_in_place<V, MR, 1, 1, can_shift>(a);
      else depthwise_nchw_3x3_in_place<V, MR, 2, 1, can_shift>(a);
    } else {
      if (a.stride_h == 1) depthwise_nchw_3x3_in_place<V, MR, 1, 1, false>(a);
      else depthwise_nchw_3x3_in_place<V, MR, 2, 1, false>(a);
    }
  } else {  // the shift tap 2 takes at stride 2 replaces two loads and a split
    if (a.stride_h == 1) depthwise_nchw_3x3_in_place<V, MR, 1, 2, true>(a);
    else depthwise_nchw_3x3_in_place<V, MR, 2, 2, true>(a);
  }
}

// NCHW 3x3 at stride S x S (1 or 2), dilation 1, the input rows streamed in order
// (nchw_3x3_rows, where kStreamsRows), a block of NV vectors of output columns at a time: each
// input row of the block is loaded once and feeds every output row that reads it, output row i
// reading input row ih0 + S*i + kh through tap kh. The sums run kh-major, kw-minor from zero,
// then take bias and activation, as in depthwise_nchw_3x3_in_place: the same bits.
// - S = 2: two masked loads a vector, split in lanes (even columns: tap 0, odd: tap 1; tap 2
//   the even ones a column on, from the next vector's split or, past the block, one masked
//   scalar load); the sums go back to column order before the store. After row ih0 (kh = 0 of
//   output row 0) each output row takes two new rows: ih0 + 2i + 1 through kh = 1, then
//   ih0 + 2i + 2 through kh = 2 and, into `next`, kh = 0 of output row i + 1. NV = 4: 4 sums,
//   4 next sums, 9 weights and a row's taps fit the 32 registers. The in-place kernel walks a
//   vector of columns down 29 input rows, then the next vector: 2 lines of each row in turn,
//   which Zen 4's prefetchers follow worse than rows in order. Its input order, with only the
//   loads, measured 99 us against 70 us in row order (3x3/2 96 @112, one thread, 4.8 MB from
//   L3); the kernels, one thread, 133 -> 91 us. A half-full last vector shared by two output
//   rows (as stride2_half_tail does) measured slower here: 95 -> 110.
// - S = 1: three masked loads a vector (its three column taps; on Zen 4 loads beat shifts, see
//   depthwise_nchw_3x3_in_place_ukernel). Input row ih0 + j is tap row 2 of output row j - 2,
//   which it completes (stored), tap row 1 of row j - 1 and tap row 0 of row j, whose sums it
//   starts. Three sets of NV sums take those roles in turn (the loop goes three rows at a time,
//   so none is copied). NV = 4: 12 sums and 9 weights, with a vector's taps at a time. One
//   thread, against the in-place kernel's 14-row tiles: 3x3 144 @56 114 -> 98 us, 32 @112 94
//   -> 78. Where a row's stores alias the next row's loads modulo 4 KiB (rows of 1024 columns
//   with the output at the input's place; of the rows the op streams, at most 8 vectors, only an
//   output placed so), 4 @1024 x 64 measured 76 us against 62 elsewhere, the in-place kernel
//   left to right 202 against 93.
// (Zen 4, CPU time, fastest of 7, each kernel alone; where the op streams rows and what it
// gains: nchw_streams_rows, ops/depthwise.cpp.)
template <class V, size_t S, size_t NV, int Act>
void depthwise_nchw_3x3_rows_block(const DepthwiseNchwArgs<typename V::T>& a, int64_t col0, typename V::T* y,
                                   size_t cols) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  // Load k of vector v reads from start[v] + k*step: S = 2, the vector's two halves of 2W
  // columns; S = 1, its three column taps.
  constexpr size_t loads = S == 2 ? 2 : 3, step = S == 2 ? W : 1;
  reg wv[3][3];
  broadcast_3x3<V>(a.w, wv);
  int64_t start[NV];
  typename V::Lanes lanes[NV][loads];
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) {
    start[v] = col0 + (int64_t)(S * v * W);
#pragma GCC unroll 3
    for (size_t k = 0; k < loads; ++k) {
      const int64_t first = start[v] + (int64_t)(k * step);
      lanes[v][k] = V::lane_range(-first, a.in_w - first);
    }
  }
  auto row = [&](int64_t ih) { return ih >= 0 && ih < a.in_h ? a.plane + ih * a.in_w : a.zero_row; };
  Epilogue<T> e;
  T row_bias[1];
  const Epilogue<T>* ep = nchw_epilogue(a, e, row_bias);
  auto store = [&](reg (&sums)[1][NV], size_t i) {
    if constexpr (S == 2) {
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) sums[0][v] = V::in_lane_order(sums[0][v]);
    }
    if constexpr (Act >= 0) store_tile_unrolled<V, 1, NV, Act>(sums, y + i * a.ldy, (size_t)a.ldy, 1, cols, false, ep);
    else store_tile<V, 1, NV>(sums, y + i * a.ldy, (size_t)a.ldy, 1, cols, false, ep);
  };
  if constexpr (S == 2) {
    const int64_t past = col0 + (int64_t)(2 * NV * W);  // tap 2 of the block's last column
    const bool past_inside = past >= 0 && past < a.in_w;
    // Row r's taps into the sums `into` through tap row kh and, where `next` (a bool constant)
    // is true, into next_sums through kh = 0, from zero.
    auto feed = [&](const T* r, size_t kh, reg (&into)[1][NV], auto next, reg (&next_sums)[1][NV]) {
      reg even[NV + 1], odd[NV];
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) {
        const reg lo = V::load_masked(r + start[v], lanes[v][0]);
        const reg hi = V::load_masked(r + start[v] + W, lanes[v][1]);
        even[v] = V::even_in_lanes(lo, hi);
        odd[v] = V::odd_in_lanes(lo, hi);
      }
      even[NV] = V::first_or_zero(r + past, past_inside);
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) {
        const reg tap2 = V::next_in_lanes(even[v], even[v + 1]);
        reg& sum = into[0][v];
        sum = V::fmadd(wv[kh][2], tap2, V::fmadd(wv[kh][1], odd[v], V::fmadd(wv[kh][0], even[v], sum)));
        if constexpr (decltype(next)::value)
          next_sums[0][v] = V::fmadd(wv[0][2], tap2, V::fmadd(wv[0][1], odd[v], V::fmadd(wv[0][0], even[v], V::zero())));
      }
    };
    reg sums[1][NV], next[1][NV];
    zero_tile<V, 1, NV>(next);
    feed(row(a.ih0), 0, next, std::false_type{}, next);
#pragma GCC unroll 1
    for (size_t i = 0; i < a.rows; ++i) {
      const int64_t ih = a.ih0 + 2 * (int64_t)i;
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) sums[0][v] = next[0][v];
      feed(row(ih + 1), 1, sums, std::false_type{}, next);
      feed(row(ih + 2), 2, sums, std::true_type{}, next);
      store(sums, i);
    }
  } else {
    // Row r's taps into `last` through tap row 2, `middle` through 1 and `first` through 0 (from
    // zero).
    auto feed = [&](const T* r, reg (&last)[1][NV], reg (&middle)[1][NV], reg (&first)[1][NV]) {
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) {
        reg x[3];
#pragma GCC unroll 3
        for (size_t kw = 0; kw < 3; ++kw) x[kw] = V::load_masked(r + start[v] + kw, lanes[v][kw]);
        last[0][v] = V::fmadd(wv[2][2], x[2], V::fmadd(wv[2][1], x[1], V::fmadd(wv[2][0], x[0], last[0][v])));
        middle[0][v] = V::fmadd(wv[1][2], x[2], V::fmadd(wv[1][1], x[1], V::fmadd(wv[1][0], x[0], middle[0][v])));
        first[0][v] = V::fmadd(wv[0][2], x[2], V::fmadd(wv[0][1], x[1], V::fmadd(wv[0][0], x[0], V::zero())));
      }
    };
    reg s0[1][NV], s1[1][NV], s2[1][NV];
    zero_tile<V, 1, NV>(s0);
    zero_tile<V, 1, NV>(s1);
    zero_tile<V, 1, NV>(s2);
    feed(row(a.ih0), s2, s1, s0);      // s0: output row 0 (s1, s2 not yet any row's)
    feed(row(a.ih0 + 1), s2, s0, s1);  // s1: output row 1
#pragma GCC unroll 1
    for (size_t i = 0; i < a.rows; i += 3) {
      const int64_t ih = a.ih0 + (int64_t)i + 2;
      feed(row(ih), s0, s1, s2);
      store(s0, i);
      if (i + 1 == a.rows) break;
      feed(row(ih + 1), s1, s2, s0);
      store(s1, i + 1);
      if (i + 2 == a.rows) break;
      feed(row(ih + 2), s2, s0, s1);
      store(s2, i + 2);
    }
  }
}

// Blocks of up to NV = 4 vectors of output columns, each streamed down the rows.
template <class V, size_t S, int Act>
void depthwise_nchw_3x3_rows_act(const DepthwiseNchwArgs<typename V::T>& a) {
  constexpr size_t W = V::W, NV = 4;
  for (size_t j = 0; j < a.cols; j += NV * W) {
    const size_t cols = a.cols - j < NV * W ? a.cols - j : NV * W;
    const int64_t col0 = a.col0 + (int64_t)(S * j);
    typename V::T* y = a.y + j;
    const size_t vectors = (cols + W - 1) / W;
    if (vectors == 4) depthwise_nchw_3x3_rows_block<V, S, 4, Act>(a, col0, y, cols);
    else if (vectors == 3) depthwise_nchw_3x3_rows_block<V, S, 3, Act>(a, col0, y, cols);
    else if (vectors == 2) depthwise_nchw_3x3_rows_block<V, S, 2, Act>(a, col0, y, cols);
    else depthwise_nchw_3x3_rows_block<V, S, 1, Act>(a, col0, y, cols);
  }
}

template <class V, size_t S>
void depthwise_nchw_3x3_rows_stride(const DepthwiseNchwArgs<typename V::T>& a) {
  if (a.activation == 0) depthwise_nchw_3x3_rows_act<V, S, 0>(a);
  else if (a.activation == 1) depthwise_nchw_3x3_rows_act<V, S, 1>(a);
  else if (a.activation == 2) depthwise_nchw_3x3_rows_act<V, S, 2>(a);
  else depthwise_nchw_3x3_rows_act<V, S, -1>(a);
}

// Contract: microkernels.h (DepthwiseKernels::nchw_3x3_rows).
template <class V>
void depthwise_nchw_3x3_rows_ukernel(const DepthwiseNchwArgs<typename V::T>& a) {
  if (a.stride_h == 1) depthwise_nchw_3x3_rows_stride<V, 1>(a);
  else depthwise_nchw_3x3_rows_stride<V, 2>(a);
}

// DepthwiseKernels::nchw_3x3_rows: the kernel, or null where the ISA does not stream rows.
template <class V>
constexpr DepthwiseNchwUkernel<typename V::T> nchw_3x3_rows_kernel() {
  if constexpr (kStreamsRows<V>) return depthwise_nchw_3x3_rows_ukernel<V>;
  else return nullptr;
}

// Stores an NHWC tile of output pixels [ow, ow + count) x channels [c0, c0 + nc), with the
// epilogue's bias for those channels.
template <class V, size_t MR, size_t NV>
inline void store_nhwc_tile(const DepthwiseNhwcArgs<typename V::T>& a, typename V::reg (&acc)[MR][NV], int64_t ow,
                            size_t count, int64_t c0, size_t nc) {
  Epilogue<typename V::T> e;
  const Epilogue<typename V::T>* ep = nullptr;
  if (a.epilogue) {
    e = *a.epilogue;
    if (e.bias_col) e.bias_col += c0;
    ep = &e;
  }
  store_tile<V, MR, NV>(acc, a.y + ow * a.y_pixel_stride + c0, (size_t)a.y_pixel_stride, count, nc, false, ep);
}

// NHWC tile: output pixels [ow, ow + count) (count <= MR) x the channel block [c0, c0 + nc).
// Full: nc == NV*W (plain loads); otherwise NV == 1 and nc < W (masked loads).
// Checked: some tap of some pixel may fall outside [0, in_w); it adds w * 0 (padding).
template <class V, size_t MR, size_t NV, bool Full, bool Checked>
inline void depthwise_nhwc_tile(const DepthwiseNhwcArgs<typename V::T>& a, int64_t ow, size_t count,
                                int64_t c0, size_t nc) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  const int64_t ps = a.pixel_stride;
  const int64_t first = ow * a.stride - a.pad_left;
  for (int64_t kh = 0; kh < a.kh; ++kh) {
    const T* row = a.rows[kh];
    const T* wk = a.w + kh * a.kw * a.w_stride + c0;
    if (!row) {
      // A padding row still contributes w * 0: zero for finite weights, NaN for non-finite
      // ones, exactly as a zero-padded convolution (and the NCHW kernel) computes it.
      for (int64_t kw = 0; kw < a.kw; ++kw)
#pragma GCC unroll 8
        for (size_t v = 0; v < NV; ++v) {
          const reg pad = V::mul(V::load(wk + kw * a.w_stride + v * W), V::zero());
#pragma GCC unroll 16
          for (size_t i = 0; i < MR; ++i) acc[i][v] = V::add(acc[i][v], pad);
        }
      continue;
    }
    row += c0;
    for (int64_t kw = 0; kw < a.kw; ++kw) {
      reg wv[NV];
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) wv[v] = V::load(wk + kw * a.w_stride + v * W);
      const int64_t iw0 = first + kw * a.dilation;
#pragma GCC unroll 16
      for (size_t i = 0; i < MR; ++i) {
        const int64_t iw = iw0 + (int64_t)i * a.stride;
        if (Checked && (i >= count || iw < 0 || iw >= a.in_w)) {
#pragma GCC unroll 8
          for (size_t v = 0; v < NV; ++v) acc[i][v] = V::add(acc[i][v], V::mul(wv[v], V::zero()));
          continue;
        }
        const T* src = row + iw * ps;
#pragma GCC unroll 8
        for (size_t v = 0; v < NV; ++v) {
          const reg x = Full ? V::load(src + v * W) : V::load_partial(src, nc);
          acc[i][v] = V::fmadd(wv[v], x, acc[i][v]);
        }
      }
    }
  }
  store_nhwc_tile<V, MR, NV>(a, acc, ow, count, c0, nc);
}

// 3x3, column stride S, dilation 1: the full MR-pixel tiles [ow0, ow1) of one channel vector,
// its 9 weight vectors held in registers across the tiles; each input pixel of a kernel row is
// loaded once for the outputs that read it. Padding enters as zero vectors: rows that are null,
// and columns outside [0, in_w) -- found per load when Checked, else known when compiled: the
// first Left and last Right of a tile's IC columns (an edge tile). Each output's sum runs
// kh-major, kw-minor and adds w*0 for padding, as depthwise_nhwc_tile does, so all give the
// same bits.
// Span (stride 2, interior, packed pixels): the vector [c0, c0 + W) runs past the pixel's last
// channel C into the next pixel's first channels, as a rotated strip's last vector does (see
// depthwise_nhwc_3x3_run). At stride 2 those lanes belong to output pixel ow + 1, whose taps
// lie two input pixels on, so each column's vector takes them from the next column's load:
// lanes [C - c0, W) of load j + 1 in place of load j's (one blend; the tile loads IC + 1).
template <class V, size_t MR, size_t S, bool Full, bool Checked, size_t Left = 0, size_t Right = 0,
          bool Span = false>
inline void depthwise_nhwc_3x3_strip(const DepthwiseNhwcArgs<typename V::T>& a, int64_t ow0, int64_t ow1,
                                     int64_t c0, size_t nc) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t IC = (MR - 1) * S + 3;  // input pixels a tile reads per row
  // Interior tiles at stride 2 (25 pixels a row) walk them with one pointer (advanced). One
  // thread, pinned, p10 us, 7 alternating runs: 3x3/2 96 @112 99.0 -> 95.3, 64 @112 90.0 -> 83.5.
  // At stride 1 (14 pixels) the offsets fit in registers, and walking measured 0-3% slower.
  constexpr bool walk = !Checked && S == 2 && Left == 0 && Right == 0;
  static_assert(!Span || (walk && Full), "a spanning vector is a full vector of an interior stride-2 strip");
  const typename V::Lanes next_pixel = V::lane_range(Span ? a.channels - c0 : (int64_t)V::W, (int64_t)V::W);
  reg wv[9];
#pragma GCC unroll 9
  for (size_t t = 0; t < 9; ++t) {
    const T* wt = a.w + (int64_t)t * a.w_stride + c0;
    wv[t] = Full ? V::load(wt) : V::load_partial(wt, nc);  // nc lanes: a strip may start mid-vector
  }
  const int64_t ps = a.pixel_stride;
  for (int64_t ow = ow0; ow < ow1; ow += (int64_t)MR) {
    reg acc[MR][1];
    zero_tile<V, MR, 1>(acc);
    const int64_t first = ow * (int64_t)S - a.pad_left;
#pragma GCC unroll 3
    for (size_t kh = 0; kh < 3; ++kh) {
      const T* row = a.rows[kh];
      if (!Checked && !row) {  // a padding row: w * 0 for each of its taps, in the same order
#pragma GCC unroll 32
        for (size_t j = 0; j < IC; ++j)
#pragma GCC unroll 3
          for (size_t kw = 0; kw < 3; ++kw)
            if (tile_row_reads<MR, S>(j, kw))
              acc[(j - kw) / S][0] = V::fmadd(wv[kh * 3 + kw], V::zero(), acc[(j - kw) / S][0]);
        continue;
      }
      const T* pixel = walk ? row + first * ps + c0 : nullptr;
      reg ahead = Span ? V::load(pixel) : V::zero();  // load j when it is column j's turn
#pragma GCC unroll 32
      for (size_t j = 0; j < IC; ++j) {
        const int64_t iw = first + (int64_t)j;
        reg loaded = V::zero();
        if (!Checked && (j < Left || j + Right >= IC)) {
          // a padding column of an edge tile: stays zero
        } else if (Span) {
          pixel = advanced(pixel, ps);
          const reg next = V::load(pixel);
          loaded = V::blend(next_pixel, ahead, next);
          ahead = next;
        } else if (walk) {
          loaded = Full ? V::load(pixel) : V::load_partial(pixel, nc);
          pixel = advanced(pixel, ps);
        } else if (!Checked || (row && iw >= 0 && iw < a.in_w)) {
          const T* src = row + iw * ps + c0;
          loaded = Full ? V::load(src) : V::load_partial(src, nc);
        }
        const reg x = tile_row_uses<MR, S>(j) > 1 ? in_register(loaded) : loaded;
#pragma GCC unroll 3
        for (size_t kw = 0; kw < 3; ++kw)
          if (tile_row_reads<MR, S>(j, kw))
            acc[(j - kw) / S][0] = V::fmadd(wv[kh * 3 + kw], x, acc[(j - kw) / S][0]);
      }
    }
    store_nhwc_tile<V, MR, 1>(a, acc, ow, MR, c0, nc);
  }
}

// Channels [c0, c0 + nc) of the full MR-pixel tiles [from, to): in tiles of RUN_MR pixels while
// they fit (interior), then of MR (and only of MR when Checked).
template <class V, size_t RUN_MR, size_t MR, size_t S, bool Full, bool Checked, size_t Left, size_t Right,
          bool Span = false>
inline void depthwise_nhwc_3x3_strips(const DepthwiseNhwcArgs<typename V::T>& a, int64_t from, int64_t to,
                                      int64_t c0, size_t nc) {
  const int64_t split = Checked ? from : from + (to - from) / (int64_t)RUN_MR * (int64_t)RUN_MR;
  if (split > from) depthwise_nhwc_3x3_strip<V, RUN_MR, S, Full, false, Left, Right, Span>(a, from, split, c0, nc);
  if (to > split) depthwise_nhwc_3x3_strip<V, MR, S, Full, Checked, Left, Right, Span>(a, split, to, c0, nc);
}

// Full MR-pixel tiles [ow0, ow1) through every channel vector: an interior run (Checked false)
// in tiles of RUN_MR pixels, then of MR for the rest; edge tiles (Checked, or Left / Right
// padding columns: one tile) in tiles of MR.
template <class V, size_t RUN_MR, size_t MR, size_t S, bool Checked, size_t Left = 0, size_t Right = 0>
inline void depthwise_nhwc_3x3_run(const DepthwiseNhwcArgs<typename V::T>& a, int64_t ow0, int64_t ow1) {
  static_assert(RUN_MR % MR == 0, "the MR-tile rest must cover the run exactly");
  using T = typename V::T;
  constexpr int64_t W = (int64_t)V::W;
  // Channels [c0, c0 + nc) of pixels [from, to): a full vector or, nc < W, a partial one.
  auto strip = [&](int64_t c0, int64_t nc, int64_t from, int64_t to) {
    if (nc == W) depthwise_nhwc_3x3_strips<V, RUN_MR, MR, S, true, Checked, Left, Right>(a, from, to, c0, W);
    else depthwise_nhwc_3x3_strips<V, RUN_MR, MR, S, false, Checked, Left, Right>(a, from, to, c0, (size_t)nc);
  };
  // NumPy's large arrays start 16 bytes into a cache line. When pixels are whole lines apart,
  // every full vector from channel 0 then straddles two lines.
  constexpr uintptr_t vector_bytes = (uintptr_t)W * sizeof(T);  // a divisor of the line
  const T* row = a.rows[0] ? a.rows[0] : a.rows[1] ? a.rows[1] : a.rows[2];
  const int64_t lead = row && a.pixel_stride % W == 0 && (uintptr_t)row % sizeof(T) == 0
                           ? (int64_t)((vector_bytes - (uintptr_t)row % vector_bytes) % vector_bytes / sizeof(T))
                           : 0;
  // Rotated strips (packed whole-vector pixels, cyclic weights): the vectors start `lead`
  // channels in, so every load is aligned with no extra vector, and the last one spans two
  // pixels: channels [C - W + lead, C) of pixel ow and [0, lead) of pixel ow + 1, which its
  // weights (cyclic) and store see as contiguous, and its loads too at stride 1; at stride 2 it
  // is a Span strip (each column blends two aligned loads). Pixel `from`'s first `lead` channels
  // take a one-pixel tile; the strip's spill into pixel `to` is rewritten (same bits) by what
  // comes next: the next segment, the caller's next tile or, where the run ends the row or ow1's
  // taps leave it, the run's last tile, which goes unrotated. One thread, pinned, p10 us, input
  // 16 bytes into a line, lead strip or split loads -> rotated: 144 @56 87.1 -> 84.2, 64 @56
  // 43.7 -> 38.7, 32 @112 92.7 -> 67.9. Stride 2, lead strip / split loads -> Span strip, p10 us,
  // alternating builds, one thread / two: 96 @112 89.7-93.0 -> 79.4-81.8 / 48.2-49.2 ->
  // 43.1-43.8 (on a line boundary: 41.4-44.1 both), 64 @112 (two threads) 37.3-39.3 -> 33.2-34.3.
  constexpr bool edge = Checked || Left > 0 || Right > 0;
  const bool rotated = !edge && a.cyclic && lead > 0 && a.channels % W == 0 && a.pixel_stride == a.channels &&
                       a.y_pixel_stride == a.channels;
  const bool spill_past_run = ow1 < a.ow_end && ow1 * (int64_t)S - a.pad_left + 2 < a.in_w;
  auto rotated_channels = [&](int64_t from, int64_t to) {
    depthwise_nhwc_tile<V, 1, 1, false, false>(a, from, 1, 0, (size_t)lead);
    const int64_t spanning = a.channels - W + lead;
    for (int64_t c0 = lead; c0 < spanning; c0 += W) strip(c0, W, from, to);
    if constexpr (S == 1 || edge) strip(spanning, W, from, to);
    else depthwise_nhwc_3x3_strips<V, RUN_MR, MR, S, true, false, 0, 0, true>(a, from, to, spanning, W);
  };
  // Otherwise, with 6 vectors or more per pixel, a first partial vector up to the line's end
  // aligns all the others for one more vector (144 channels in 10, not 9). One thread, pinned,
  // p10 us, input 16 bytes into a line: 144 @56 97.6 -> 94.9, 3x3/2 96 @112 122.7 -> 105.1,
  // 576 @14 38.4 -> 37.3. With fewer vectors the extra one costs more than the split loads (32
  // channels: 3 vectors for 2, 96 -> 108).
  auto every_channel = [&](int64_t from, int64_t to) {
    if (rotated) {
      const int64_t rotated_to = to == ow1 && !spill_past_run ? to - (int64_t)MR : to;
      if (rotated_to > from) rotated_channels(from, rotated_to), from = rotated_to;
      if (from == to) return;
    }
    int64_t c = 0;
    if (a.channels >= 6 * W && lead > 0) strip(0, lead, from, to), c = lead;
    for (; c < a.channels; c += W) strip(c, a.channels - c < W ? a.channels - c : W, from, to);
  };
  // Stride 2, pixels a power of two bytes apart and three input rows past L1: a strip along the
  // whole run puts its loads in a few L1 sets (256-byte pixels: 16 of 64) and evicts the rows'
  // lines before the next channel vector reads the same pixels, so the run goes RUN_MR pixels
  // at a time through every channel. p10 us, whole run -> segments, one thread (pinned) / two:
  // 64 @112 89.7 -> 73.3 / 52.3 -> 46.0, 32 @224 190 -> 141 / 102 -> 77.5, 128 @112 145 -> 143
  // / 87.8 -> 81.9 (153-170 -> 138-145 in other sittings), 64 @224 411 -> 282 (one thread);
  // level with small rows (64 @56, 128 @56, 256 @28). Other strides stay whole: 96 @112
  // (384-byte pixels) measured 1-16% slower in segments, 80 @112 level to 10% faster.
  const int64_t pixel_bytes = a.pixel_stride * (int64_t)sizeof(T);
  if (S == 2 && !edge && (pixel_bytes & (pixel_bytes - 1)) == 0 && 3 * a.in_w * pixel_bytes > 48 * 1024) {
    for (int64_t from = ow0; from < ow1; from += (int64_t)RUN_MR)
      every_channel(from, ow1 - from < (int64_t)RUN_MR ? ow1 : from + (int64_t)RUN_MR);
    return;
  }
  every_channel(ow0, ow1);
}

// The full MR-pixel tile at ow whose IC = (MR-1)*S + 3 input columns reach past the row: by one
// column on one side (padding 1), that column is fixed when compiled; otherwise each load is
// checked.
template <class V, size_t MR, size_t S>
inline void depthwise_nhwc_3x3_edge_tile(const DepthwiseNhwcArgs<typename V::T>& a, int64_t ow) {
  const int64_t first = ow * (int64_t)S - a.pad_left, reads = ((int64_t)MR - 1) * (int64_t)S + 3;
  const int64_t left = first < 0 ? -first : 0, right = first + reads > a.in_w ? first + reads - a.in_w : 0;
  if (left == 1 && right == 0) depthwise_nhwc_3x3_run<V, MR, MR, S, false, 1, 0>(a, ow, ow + (int64_t)MR);
  else if (left == 0 && right == 1) depthwise_nhwc_3x3_run<V, MR, MR, S, false, 0, 1>(a, ow, ow + (int64_t)MR);
  else depthwise_nhwc_3x3_run<V, MR, MR, S, true>(a, ow, ow + (int64_t)MR);
}

// All channel blocks of one tile of `count` pixels at ow: NV-vector blocks, then single vectors,
// then one masked vector for the remainder.
template <class V, size_t MR, size_t NV, bool Checked>
inline void depthwise_nhwc_pixels(const DepthwiseNhwcArgs<typename V::T>& a, int64_t ow, size_t count) {
  constexpr int64_t W = (int64_t)V::W;
  int64_t c0 = 0;
  for (; c0 + (int64_t)NV * W <= a.channels; c0 += (int64_t)NV * W)
    depthwise_nhwc_tile<V, MR, NV, true, Checked>(a, ow, count, c0, NV * W);
  for (; c0 + W <= a.channels; c0 += W) depthwise_nhwc_tile<V, MR, 1, true, Checked>(a, ow, count, c0, W);
  if (c0 < a.channels)
    depthwise_nhwc_tile<V, MR, 1, false, Checked>(a, ow, count, c0, (size_t)(a.channels - c0));
}

// NHWC: one output row segment, MR-pixel tiles in order, each through all its channels (so the
// input and output stream through memory sequentially); interior tiles skip the bounds checks.
// 3x3 layers, stride 1 or 2: the run of interior tiles goes one channel vector at a time in
// tiles of RUN_MR / S2_RUN_MR pixels (AVX-512: 12), the vector's 9 weights in registers; full
// edge tiles take the 3x3 strip too, padding as zero vectors (through depthwise_nhwc_tile they
// were 17% of 144 @56's tiles and 29% of its time). One thread, us: 144 @56 124 -> 100, 576 @14
// 52 -> 43, AVX2 144 @56 195 -> 134; stride 2 96 @112 138 -> 116, 144 @56 59 -> 51. 2 threads:
// 144 @56 71 -> 59, stride 2 96 @112 82.5 -> 70.
// Rows of padding run with the interior (their taps w * 0, no loads), and an edge tile whose
// columns reach one past the row has that column fixed when compiled (Left / Right), where both
// took the per-load checks: their branches made a 4-pixel edge tile cost 2.4 interior pixels
// each. Alternating, p10 us, before -> after, one thread: 144 @56 126 -> 114, 576 @14 49.7 ->
// 44.2, 32 @112 105 -> 98, 3x3/2 96 @112 145 -> 143, AVX2 144 @56 172 -> 157; two threads:
// 144 @56 63.4 -> 56.0, 576 @14 27.1 -> 23.7, 3x3/2 96 @112 74.2 -> 71.6.
template <class V, size_t MR, size_t NV, size_t RUN_MR = MR, size_t S2_RUN_MR = MR>
void depthwise_nhwc_ukernel(const DepthwiseNhwcArgs<typename V::T>& a) {
  const int64_t reach = (a.kw - 1) * a.dilation;
  const bool k3 = a.kh == 3 && a.kw == 3 && a.dilation == 1 && a.stride == 1;
  const bool k3s2 = a.kh == 3 && a.kw == 3 && a.dilation == 1 && a.stride == 2;
  auto inside = [&](int64_t ow) {  // a full tile at ow, every column it reads inside the image
    return a.ow_end - ow >= (int64_t)MR && ow * a.stride - a.pad_left >= 0 &&
           (ow + (int64_t)MR - 1) * a.stride - a.pad_left + reach < a.in_w;
  };
  for (int64_t ow = a.ow_begin; ow < a.ow_end; ow += (int64_t)MR) {
    const size_t count = (size_t)(a.ow_end - ow < (int64_t)MR ? a.ow_end - ow : (int64_t)MR);
    const bool columns_inside = inside(ow);
    if ((k3 || k3s2) && columns_inside) {  // the whole run of interior tiles (rows may be padding)
      int64_t end = ow + (int64_t)MR;
      while (inside(end)) end += (int64_t)MR;
      if (k3) depthwise_nhwc_3x3_run<V, RUN_MR, MR, 1, false>(a, ow, end);
      else depthwise_nhwc_3x3_run<V, S2_RUN_MR, MR, 2, false>(a, ow, end);
      ow = end - (int64_t)MR;
      continue;
    }
    if ((k3 || k3s2) && count == MR) {  // a full edge tile
      if (k3) depthwise_nhwc_3x3_edge_tile<V, MR, 1>(a, ow);
      else depthwise_nhwc_3x3_edge_tile<V, MR, 2>(a, ow);
    } else if (columns_inside) {
      depthwise_nhwc_pixels<V, MR, NV, false>(a, ow, count);
    } else {
      depthwise_nhwc_pixels<V, MR, NV, true>(a, ow, count);
    }
  }
}

// y[i*ldy + j] = act(y[i*ldy + j] + bias) for i < rows, j < cols.
template <class V>
void epilogue_ukernel(typename V::T* y, size_t ldy, size_t rows, size_t cols,
                      const Epilogue<typename V::T>& e) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  for (size_t i = 0; i < rows; ++i) {
    T* row = y + i * ldy;
    const reg row_bias = V::set1(e.bias_row ? e.bias_row[i] : T(0));
    size_t j = 0;
    for (; j + W <= cols; j += W) {
      reg x = V::add(V::load(row + j), row_bias);
      if (e.bias_col) x = V::add(x, V::load(e.bias_col + j));
      V::store(row + j, activate<V>(x, e.activation, e.param));
    }
    if (j < cols) {
      const size_t n = cols - j;
      reg x = V::add(V::load_partial(row + j, n), row_bias);
      if (e.bias_col) x = V::add(x, V::load_partial(e.bias_col + j, n));
      V::store_partial_split(row + j, activate<V>(x, e.activation, e.param), n);
    }
  }
}

// Contract: microkernels.h (Deinterleave2Ukernel). Two vectors in, one of even and one of odd
// lanes out. A tail of more than W/2 elements goes the same way from one pair of masked loads
// (before: element by element up to W, two masked every-other-lane loads per phase above); a
// shorter one element by element. One thread splitting rows, ns per row in L1 / streamed from
// 4.8 MB, before -> after: AVX-512 112 wide (16-element tail) 6.8 / 9.8 -> 5.9 / 8.6, 56 wide
// (24) 4.0 / 5.2 -> 3.1 / 4.6, 14 wide 3.4 / 3.6 -> 2.3 / 2.6; AVX2 28 wide 3.2 / 3.4 ->
// 2.6 / 2.8; an 8-element tail measured 6.0 / 8.1 element by element vs 6.8 / 8.3 masked.
template <class V>
void deinterleave2_ukernel(const typename V::T* src, size_t n, typename V::T* even, typename V::T* odd) {
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  size_t i = 0;
  for (; 2 * i + 2 * W <= n; i += W) {
    const reg lo = V::load(src + 2 * i), hi = V::load(src + 2 * i + W);
    V::store(even + i, V::even(lo, hi));
    V::store(odd + i, V::odd(lo, hi));
  }
  const size_t rest = n - 2 * i;  // < 2W
  if (rest > W / 2) {
    const reg lo = V::load_partial(src + 2 * i, rest < W ? rest : W);
    const reg hi = rest > W ? V::load_partial(src + 2 * i + W, rest - W) : V::zero();
    V::store_partial(even + i, V::even(lo, hi), (rest + 1) / 2);
    V::store_partial(odd + i, V::odd(lo, hi), rest / 2);
    return;
  }
  for (; 2 * i < n; ++i) {
    even[i] = src[2 * i];
    if (2 * i + 1 < n) odd[i] = src[2 * i + 1];
  }
}

template <class V, size_t NCHW_MR, size_t NCHW_NV, size_t NHWC_MR, size_t NHWC_NV, size_t RUN_MR = NHWC_MR,
          size_t S2_RUN_MR = NHWC_MR, size_t NCHW_TALL_MR = NCHW_MR>
constexpr DepthwiseKernels<typename V::T> make_depthwise_kernels() {
  return DepthwiseKernels<typename V::T>{
      NCHW_MR, NCHW_NV * V::W, V::W, depthwise_nchw_ukernel<V, NCHW_MR, NCHW_NV>,
      depthwise_nchw_3x3_in_place_ukernel<V, NCHW_MR>, NCHW_TALL_MR,
      depthwise_nchw_3x3_in_place_ukernel<V, NCHW_TALL_MR>, nchw_3x3_rows_kernel<V>(),
      depthwise_nhwc_ukernel<V, NHWC_MR, NHWC_NV, RUN_MR, S2_RUN_MR>, epilogue_ukernel<V>, deinterleave2_ukernel<V>};
}

}  // namespace pycnn::PYCNN_ISA_NS
