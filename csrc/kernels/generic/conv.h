// Register-blocked convolution microkernels, written once against the vector traits V and
// compiled per ISA inside namespace pycnn::PYCNN_ISA_NS. Contracts: microkernels.h.
//
// Every kernel keeps an MR x NV tile of vector accumulators (NR = NV * V::W columns) in
// registers for the whole reduction, then runs the fused epilogue once while storing.
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

namespace pycnn::PYCNN_ISA_NS {

// For helpers that take a kernel's accumulator tile by reference: out of line, the tile lives in
// memory and every FMA becomes a load, an FMA and a store. GCC's inliner left such a helper out
// of line once the translation unit grew (see depthwise_nchw_3x3_rows).
#if defined(__GNUC__)
#define PYCNN_TILE_INLINE inline __attribute__((always_inline))
#define PYCNN_NOINLINE __attribute__((noinline))
#else
#define PYCNN_TILE_INLINE inline
#define PYCNN_NOINLINE
#endif

// The activations the unrolled stores apply in registers: none (Act 0), relu (1), relu6 (2).
template <class V, int Act>
PYCNN_TILE_INLINE typename V::reg activate_unrolled(typename V::reg x) {
  if (Act >= 1) x = V::max(V::zero(), x);
  if (Act == 2) x = V::min(V::set1(typename V::T(6)), x);
  return x;
}

// Stores the mr x nr corner of the accumulator tile to c (row stride ldc), adding what is
// there when `accumulate`, then, with an epilogue, its bias and activation. With no activation,
// relu or relu6 (Act 0, 1, 2: most layers) the tile is stored from registers, unrolled, the edge
// vectors masked, inside the kernel: with a short reduction, as in MNIST-size layers, the store
// is a large part of a tile's time (out of line, GCC's choice for some shapes, the tile went
// through memory: 3x3 1->32 @28 NHWC 6.2 -> 5.3 us inlined). The costlier activations go
// through a stack copy of the tile and one rolled loop, out of line, so that their code exists
// once per tile shape. Both apply the same operations in the same order. SplitEdges: edge
// vectors through V::store_partial_split (for a column of rows, each with an edge: NCHW
// depthwise), not the one-instruction masked store that keeps a wide tile's unrolled code small.
template <class V, size_t MR, size_t NV, int Act, bool SplitEdges = false>
PYCNN_TILE_INLINE void store_tile_unrolled(typename V::reg (&acc)[MR][NV], typename V::T* c, size_t ldc,
                                           size_t mr, size_t nr, bool accumulate, const Epilogue<typename V::T>* e) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  const T* bias_row = e ? e->bias_row : nullptr;
  const T* bias_col = e ? e->bias_col : nullptr;
  reg col[NV];
#pragma GCC unroll 8
  for (size_t v = 0; v < NV; ++v) {
    const size_t n = v * W < nr ? nr - v * W : 0;
    col[v] = !bias_col || n == 0 ? V::zero() : n >= W ? V::load(bias_col + v * W) : V::load_partial(bias_col + v * W, n);
  }
#pragma GCC unroll 32
  for (size_t i = 0; i < MR; ++i) {
    if (i >= mr) break;
    const reg row = bias_row ? V::set1(bias_row[i]) : V::zero();
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) {
      if (v * W >= nr) break;
      const size_t n = nr - v * W;
      T* p = c + i * ldc + v * W;
      reg x = acc[i][v];
      if (accumulate) x = V::add(n >= W ? V::load(p) : V::load_partial(p, n), x);
      if (bias_row) x = V::add(x, row);
      if (bias_col) x = V::add(x, col[v]);
      x = activate_unrolled<V, Act>(x);
      if (n >= W) V::store(p, x);
      else if constexpr (SplitEdges) V::store_partial_split(p, x, n);
      else V::store_partial(p, x, n);
    }
  }
}

template <class V, size_t MR, size_t NV>
PYCNN_NOINLINE void store_tile_rolled(const typename V::T* tile, typename V::T* c, size_t ldc, size_t mr, size_t nr,
                                      bool accumulate, const Epilogue<typename V::T>* epilogue) {
  using T = typename V::T;
  using reg = typename V::reg;
  constexpr size_t W = V::W, NR = NV * W;
  for (size_t i = 0; i < mr; ++i) {
    for (size_t j = 0; j < nr; j += W) {
      const size_t cols = nr - j < W ? nr - j : W;
      T* p = c + i * ldc + j;
      reg x = V::load(tile + i * NR + j);
      if (accumulate) x = V::add(cols == W ? V::load(p) : V::load_partial(p, cols), x);
      if (epilogue->bias_row) x = V::add(x, V::set1(epilogue->bias_row[i]));
      if (epilogue->bias_col) {
        const T* b = epilogue->bias_col + j;
        x = V::add(x, cols == W ? V::load(b) : V::load_partial(b, cols));
      }
      x = activate<V>(x, epilogue->activation, epilogue->param);
      if (cols == W) V::store(p, x);
      else V::store_partial(p, x, cols);
    }
  }
}

template <class V, size_t MR, size_t NV>
PYCNN_TILE_INLINE void store_tile(typename V::reg (&acc)[MR][NV], typename V::T* c, size_t ldc, size_t mr,
                                  size_t nr, bool accumulate, const Epilogue<typename V::T>* epilogue) {
  using T = typename V::T;
  constexpr size_t W = V::W, NR = NV * W;
  switch (epilogue ? epilogue->activation : 0) {
    case 0: return store_tile_unrolled<V, MR, NV, 0>(acc, c, ldc, mr, nr, accumulate, epilogue);
    case 1: return store_tile_unrolled<V, MR, NV, 1>(acc, c, ldc, mr, nr, accumulate, epilogue);
    case 2: return store_tile_unrolled<V, MR, NV, 2>(acc, c, ldc, mr, nr, accumulate, epilogue);
    default: break;
  }
  alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
  for (size_t i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) V::store(tile + i * NR + v * W, acc[i][v]);
  store_tile_rolled<V, MR, NV>(tile, c, ldc, mr, nr, accumulate, epilogue);
}

template <class V, size_t MR, size_t NV>
PYCNN_TILE_INLINE void zero_tile(typename V::reg (&acc)[MR][NV]) {
#pragma GCC unroll 32
  for (size_t i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) acc[i][v] = V::zero();
}

// acc += A[MR x k] * B[k x NR] with A's row i at rows[i]: per k, NV vector loads of B and MR
// broadcasts of A feed MR*NV FMAs. Returns b past its k rows.
template <class V, size_t MR, size_t NV>
PYCNN_TILE_INLINE const typename V::T* fma_rows(typename V::reg (&acc)[MR][NV], const typename V::T* const (&rows)[MR],
                                                size_t k, const typename V::T* b, size_t ldb) {
  using reg = typename V::reg;
  for (size_t kk = 0; kk < k; ++kk) {
    reg bv[NV];
#pragma GCC unroll 8
    for (size_t v = 0; v < NV; ++v) bv[v] = V::load(b + v * V::W);
#pragma GCC unroll 32
    for (size_t i = 0; i < MR; ++i) {
      const reg ai = V::set1(rows[i][kk]);
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) acc[i][v] = V::fmadd(ai, bv[v], acc[i][v]);
    }
    b += ldb;
  }
  return b;
}

// C[MR x NR] (+)= A[MR x k] * B[k x NR], A row-major.
template <class V, size_t MR, size_t NV>
void gemm_ukernel(size_t k, const typename V::T* a, size_t lda, const typename V::T* b,
                  size_t ldb, typename V::T* c, size_t ldc, size_t mr, size_t nr, bool accumulate,
                  const Epilogue<typename V::T>* epilogue) {
  using T = typename V::T;
  // Rows past mr repeat the last real row: their sums land in accumulators never stored.
  const T* rows[MR];
#pragma GCC unroll 32
  for (size_t i = 0; i < MR; ++i) rows[i] = a + (i < mr ? i : mr - 1) * lda;
  typename V::reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  fma_rows<V, MR, NV>(acc, rows, k, b, ldb);
  store_tile<V, MR, NV>(acc, c, ldc, mr, nr, accumulate, epilogue);
}

// Indirect GEMM: C[MR x NR] (+)= sum over segments s of A_s[MR x k] * B_s[k x NR], A_s's row i
// at a[s*MR + i] + a_offset, B_s the next k rows of b.
template <class V, size_t MR, size_t NV>
void igemm_ukernel(size_t segments, size_t k, const typename V::T* const* a, size_t a_offset,
                   const typename V::T* b, size_t ldb, typename V::T* c, size_t ldc, size_t mr, size_t nr,
                   bool accumulate, const Epilogue<typename V::T>* epilogue) {
  using T = typename V::T;
  typename V::reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  for (size_t s = 0; s < segments; ++s, a += MR) {
    const T* rows[MR];
#pragma GCC unroll 32
    for (size_t i = 0; i < MR; ++i) rows[i] = a[i] + a_offset;
    b = fma_rows<V, MR, NV>(acc, rows, k, b, ldb);
  }
  store_tile<V, MR, NV>(acc, c, ldc, mr, nr, accumulate, epilogue);
}

// NCHW direct convolution: MR output channels x NR output columns of one output row.
template <class V, size_t MR, size_t NV>
void direct_nchw_ukernel(const DirectNchwArgs<typename V::T>& args) {
  using T = typename V::T;
  using reg = typename V::reg;
  reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  // Weight row i is base[i/4] + step[i%4] past 8 rows, as in direct_nhwc_ukernel (MR row
  // pointers spilled: 3x3 1->32 @28, one thread, 6.9 -> 5.9 us).
  constexpr size_t NB = MR > 8 ? (MR + 3) / 4 : 1;  // up to 8 rows: base[0] and i*step
  const int64_t ldw = args.ldw, step[4] = {0, ldw, 2 * ldw, 3 * ldw};
  // Taps outside, channels inside: the long loop has fixed strides and no indirection.
  for (int64_t t = 0; t < args.taps; ++t) {
    const T* src = args.panel + args.tap[t];
    const T* base[NB];
#pragma GCC unroll 8
    for (size_t b = 0; b < NB; ++b) base[b] = args.w + (int64_t)(4 * b) * ldw + t;
    for (int64_t c = 0; c < args.channels; ++c) {
      reg bv[NV];
#pragma GCC unroll 8
      for (size_t v = 0; v < NV; ++v) bv[v] = V::load(src + v * V::W);
#pragma GCC unroll 32
      for (size_t i = 0; i < MR; ++i) {
        const reg wi = V::set1(MR > 8 ? base[i / 4][step[i % 4]] : base[0][(int64_t)i * ldw + c * args.taps]);
#pragma GCC unroll 8
        for (size_t v = 0; v < NV; ++v) acc[i][v] = V::fmadd(wi, bv[v], acc[i][v]);
      }
      if constexpr (MR > 8) {
#pragma GCC unroll 8
        for (size_t b = 0; b < NB; ++b) base[b] += args.taps;
      }
      src += args.panel_c;
    }
  }
  store_tile<V, MR, NV>(acc, args.y, (size_t)args.ldy, args.mr, args.nr, false, args.epilogue);
}

// NHWC direct convolution: MR output pixels of one output row x NR output channels.
template <class V, size_t MR, size_t NV>
void direct_nhwc_ukernel(const DirectNhwcArgs<typename V::T>& args) {
  using T = typename V::T;
  using reg = typename V::reg;
  reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  const int64_t C = args.channels;
  const int64_t pixel_step = args.stride * C;
  const T* w = args.w;
  // Undilated taps of one kernel row are adjacent in the panel (column i*stride + kw holds
  // channels kw*C ... kw*C + C-1 after the pixel's first), so (kw, c) runs as one loop of KW*C.
  const bool merge = args.dilation == 1;
  const int64_t taps_per_pass = merge ? 1 : args.kw, run = merge ? args.kw * C : C;
  // Past 8 pixels, pixel i reads base[i/4] + step[i%4]: a few pointers, advanced together, and
  // the 0-3 pixel steps as index registers. With one pointer per pixel (GCC's choice for
  // src + i*pixel_step) 12 pointers spilled and were rebuilt from the stack for every kernel row,
  // about as costly as the FMAs where a run is short (3 for 3x3 1->32: ~45 instructions per 72
  // FMAs; 7.0 -> 6.2 us, one thread). Up to 8 they stay in registers, and the extra pointer
  // increments cost the 7x7/2 3->64 stem's 6-pixel tiles 2%.
  constexpr size_t NB = MR > 8 ? (MR + 3) / 4 : 1;  // up to 8 rows: base[0] and i*step
  const int64_t step[4] = {0, pixel_step, 2 * pixel_step, 3 * pixel_step};
  for (int64_t kh = 0; kh < args.kh; ++kh) {
    for (int64_t kw = 0; kw < taps_per_pass; ++kw) {
      const T* base[NB];
#pragma GCC unroll 8
      for (size_t b = 0; b < NB; ++b)
        base[b] = args.panel + kh * args.panel_kh + kw * args.dilation * C + (int64_t)(4 * b) * pixel_step;
      for (int64_t c = 0; c < run; ++c) {
        reg bv[NV];
#pragma GCC unroll 8
        for (size_t v = 0; v < NV; ++v) bv[v] = V::load(w + v * V::W);
#pragma GCC unroll 32
        for (size_t i = 0; i < MR; ++i) {
          const reg xi = V::set1(MR > 8 ? base[i / 4][step[i % 4]] : base[0][(int64_t)i * pixel_step + c]);
#pragma GCC unroll 8
          for (size_t v = 0; v < NV; ++v) acc[i][v] = V::fmadd(xi, bv[v], acc[i][v]);
        }
        if constexpr (MR > 8) {
#pragma GCC unroll 8
          for (size_t b = 0; b < NB; ++b) ++base[b];
        }
        w += args.ldw;
      }
    }
  }
  store_tile<V, MR, NV>(acc, args.y, (size_t)args.ldy, args.mr, args.nr, false, args.epilogue);
}

// A tile shape: MR rows x NV vectors.
template <size_t MR_, size_t NV_>
struct Shape {
  static constexpr size_t MR = MR_, NV = NV_;
};

template <class V, class S>
constexpr TiledBlocks<DirectNchwUkernel<typename V::T>> direct_nchw_kernels() {
  using Fn = DirectNchwUkernel<typename V::T>;
  constexpr size_t less4 = S::MR > 4 ? S::MR - 4 : 1, less8 = S::MR > 8 ? S::MR - 8 : 1;
  return {S::MR, S::NV * V::W, direct_nchw_ukernel<V, S::MR, S::NV>,
          {S::MR > 4 ? direct_nchw_ukernel<V, less4, S::NV> : Fn(nullptr),
           S::MR > 8 ? direct_nchw_ukernel<V, less8, S::NV> : Fn(nullptr)}};
}

template <class V, class S>
constexpr TiledRows<DirectNhwcUkernel<typename V::T>> direct_nhwc_kernels() {
  static_assert(kRowShortfalls == 4);
  constexpr auto less = [](size_t k) { return S::MR > k ? S::MR - k : 1; };
  return {S::MR, S::NV * V::W, direct_nhwc_ukernel<V, S::MR, S::NV>,
          {direct_nhwc_ukernel<V, less(1), S::NV>, direct_nhwc_ukernel<V, less(2), S::NV>,
           direct_nhwc_ukernel<V, less(3), S::NV>, direct_nhwc_ukernel<V, less(4), S::NV>}};
}

// The four tile shapes of every family; DirectNhwcS2 replaces S2 for the NHWC direct kernel,
// whose pixel addressing (base pointers plus steps) leaves room for more rows than the GEMM's
// MR row pointers do.
template <class V, class S0, class S1, class S2, class S3, class DirectNhwcS2 = S2>
constexpr ConvKernels<typename V::T> make_conv_kernels() {
  using T = typename V::T;
  return ConvKernels<T>{
      {{S0::MR, S0::NV * V::W, gemm_ukernel<V, S0::MR, S0::NV>},
       {S1::MR, S1::NV * V::W, gemm_ukernel<V, S1::MR, S1::NV>},
       {S2::MR, S2::NV * V::W, gemm_ukernel<V, S2::MR, S2::NV>},
       {S3::MR, S3::NV * V::W, gemm_ukernel<V, S3::MR, S3::NV>}},
      {{S0::MR, S0::NV * V::W, igemm_ukernel<V, S0::MR, S0::NV>},
       {S1::MR, S1::NV * V::W, igemm_ukernel<V, S1::MR, S1::NV>},
       {S2::MR, S2::NV * V::W, igemm_ukernel<V, S2::MR, S2::NV>},
       {S3::MR, S3::NV * V::W, igemm_ukernel<V, S3::MR, S3::NV>}},
      {direct_nchw_kernels<V, S0>(), direct_nchw_kernels<V, S1>(), direct_nchw_kernels<V, S2>(),
       direct_nchw_kernels<V, S3>()},
      {direct_nhwc_kernels<V, S0>(), direct_nhwc_kernels<V, S1>(), direct_nhwc_kernels<V, DirectNhwcS2>(),
       direct_nhwc_kernels<V, S3>()},
      V::W,
      transpose_ukernel<V>,
      make_winograd_kernels<V>(),
  };
}

}  // namespace pycnn::PYCNN_ISA_NS
