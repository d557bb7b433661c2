// Winograd F(2x2, 3x3) transforms (Lavin and Gray, 2015), written once against the vector
// traits V and compiled per ISA inside namespace pycnn::PYCNN_ISA_NS. Contracts: microkernels.h.
//
// A 2x2 output tile Y of a 3x3 convolution is A^T [(G g G^T) . (B^T d B)] A, d the tile's 4x4
// input patch and g the 3x3 kernel: 16 multiplies per (input, output) channel pair where direct
// convolution does 36. Summed over input channels, each of the 16 elementwise products is a
// GEMM (tiles x C times C x O), which the op runs on the GEMM microkernel; these kernels do the
// three transforms, vectorised over channels (NHWC), with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// F(3x3, 2x2) (conv_transpose2d's stride phases) shares the input transform:
// its own B^T is this one with row 3 negated, and a sign on both U's and V's element (i, j)
// cancels in their product, so the op negates G's last row instead (G = [1 0; .5 .5; .5 -.5;
// 0 -1]); its 3x3 outputs then come from A^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1].
#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

#include <type_traits>

// Needs generic/activation.h (activate), included before it by kernels.cpp.

namespace pycnn::PYCNN_ISA_NS {

// B^T x for the four vectors x[0..3] (a row or a column of a patch), in place.
template <class V>
inline void winograd_input_1d(typename V::reg (&x)[4]) {
  const typename V::reg x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
  x[0] = V::sub(x0, x2);
  x[1] = V::add(x1, x2);
  x[2] = V::sub(x2, x1);
  x[3] = V::sub(x1, x3);
}

// Channels [c, c + n) of one tile (n == W when Full): the 4x4 patch, padding as zeros, to its
// 16 planes.
template <class V, bool Full, bool Checked>
inline void winograd_input_vector(const typename V::T* const* rows, int64_t col0, int64_t in_w, int64_t ps,
                                  int64_t c, size_t n, typename V::T* v, size_t ldv) {
  using reg = typename V::reg;
  reg d[4][4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int s = 0; s < 4; ++s) {
      const int64_t col = col0 + s;
      if (Checked && (!rows[r] || col < 0 || col >= in_w)) {
        d[r][s] = V::zero();
        continue;
      }
      const typename V::T* p = rows[r] + col * ps + c;
      d[r][s] = Full ? V::load(p) : V::load_partial(p, n);
    }
  // Rows of d B, then columns of B^T (d B).
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) winograd_input_1d<V>(d[r]);
#pragma GCC unroll 4
  for (int s = 0; s < 4; ++s) {
    reg col[4] = {d[0][s], d[1][s], d[2][s], d[3][s]};
    winograd_input_1d<V>(col);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      typename V::T* dst = v + (size_t)(4 * r + s) * ldv + c;
      if (Full) V::store(dst, col[r]);
      else V::store_partial(dst, col[r], n);
    }
  }
}


// A^T x for the four vectors x[0..3]: Out outputs. F(2x2, 3x3): A^T = [1 1 1 0; 0 1 -1 -1];
// F(3x3, 2x2): A^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1].
template <class V, int Out>
inline void winograd_output_1d(const typename V::reg (&x)[4], typename V::reg (&y)[Out]) {
  const typename V::reg mid = V::add(x[1], x[2]), diff = V::sub(x[1], x[2]);
  y[0] = V::add(x[0], mid);
  if constexpr (Out == 2) {
    y[1] = V::sub(diff, x[3]);
  } else {
    y[1] = diff;
    y[2] = V::add(mid, x[3]);
  }
}

template <class V, int Out, bool Full>
inline void winograd_output_vector(const typename V::T* m, size_t ldm, typename V::T* const* y, size_t j, size_t n,
                                   const Epilogue<typename V::T>* e, typename V::reg& nonfinite) {
  using reg = typename V::reg;
  reg rows[4][Out];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    reg x[4];
#pragma GCC unroll 4
    for (int s = 0; s < 4; ++s) {
      const typename V::T* p = m + (size_t)(4 * r + s) * ldm + j;
      x[s] = Full ? V::load(p) : V::load_partial(p, n);
    }
    winograd_output_1d<V, Out>(x, rows[r]);
  }
  reg bias = V::zero();
  if (e && e->bias_col) bias = Full ? V::load(e->bias_col + j) : V::load_partial(e->bias_col + j, n);
#pragma GCC unroll 3
  for (int s = 0; s < Out; ++s) {
    const reg col[4] = {rows[0][s], rows[1][s], rows[2][s], rows[3][s]};
    reg out[Out];
    winograd_output_1d<V, Out>(col, out);
#pragma GCC unroll 3
    for (int r = 0; r < Out; ++r) {
      nonfinite = V::add(nonfinite, V::sub(out[r], out[r]));  // NaN from here on if out[r] is not finite
      typename V::T* dst = y[Out * r + s];
      if (!dst) continue;
      reg value = out[r];
      if (e && e->bias_col) value = V::add(value, bias);
      if (e) value = activate<V>(value, e->activation, e->param);
      if (Full) V::store(dst + j, value);
      else V::store_partial(dst + j, value, n);
    }
  }
}


// G g G^T for one vector of output channels: g[t] the 9 taps (t = 3*kh + kw), u[xi] the 16 planes.
// Strided: F(2x2, 3x3) at stride 2's G, its four distinct rows (g0, g0 + g2, g2, g1).
template <class V, bool Strided>
inline void winograd_weight_vector(const typename V::reg (&g)[9], typename V::reg (&u)[16]) {
  using reg = typename V::reg;
  const reg half = V::set1(typename V::T(0.5));
  // G x for the three vectors x[0..2]: four out.
  auto expand = [&](reg x0, reg x1, reg x2, reg (&out)[4]) {
    if constexpr (Strided) {
      out[0] = x0;
      out[1] = V::add(x0, x2);
      out[2] = x2;
      out[3] = x1;
      return;
    }
    const reg ends = V::mul(V::add(x0, x2), half), mid = V::mul(x1, half);
    out[0] = x0;
    out[1] = V::add(ends, mid);
    out[2] = V::sub(ends, mid);
    out[3] = x2;
  };
  reg rows[3][4];  // G g^T's columns, as rows: rows[kh] = G (g[kh][0..2])
#pragma GCC unroll 3
  for (int kh = 0; kh < 3; ++kh) expand(g[3 * kh], g[3 * kh + 1], g[3 * kh + 2], rows[kh]);
#pragma GCC unroll 4
  for (int s = 0; s < 4; ++s) {
    reg col[4];
    expand(rows[0][s], rows[1][s], rows[2][s], col);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) u[4 * r + s] = col[r];
  }
}

template <class V, bool Strided>
void winograd_weight_ukernel(const typename V::T* g, int64_t tap_stride, size_t n, typename V::T* u, size_t ldu) {
  using reg = typename V::reg;
  constexpr size_t W = V::W;
  for (size_t j = 0; j < n; j += W) {
    const size_t count = n - j < W ? n - j : W;
    reg taps[9], planes[16];
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) {
      const typename V::T* p = g + t * tap_stride + (int64_t)j;
      taps[t] = count == W ? V::load(p) : V::load_partial(p, count);
    }
    winograd_weight_vector<V, Strided>(taps, planes);
#pragma GCC unroll 16
    for (int xi = 0; xi < 16; ++xi) {
      if (count == W) V::store(u + xi * ldu + j, planes[xi]);
      else V::store_partial(u + xi * ldu + j, planes[xi], count);
    }
  }
}

// F(2x2, 3x3) at stride 2. Along one dimension, outputs y0 = g0 x0 + g1 x1 + g2 x2 and y1 = g0 x2
// + g1 x3 + g2 x4 split into the even inputs (x0, x2, x4) convolved with (g0, g2), F(2, 2) in 3
// multiplies, and the odd ones (x1, x3) with g1, 2 more: 5 where direct does 6, with
//   B^T x = (x0 - x2, x2, x4 - x2, x1, x3), G g = (g0, g0 + g2, g2, g1, g1),
//   y0 = m0 + m1 + m3, y1 = m1 + m2 + m4.
// In 2D a tile's 2x2 outputs take a 5x5 input patch (4 pixels from the next tile's) and 25
// products where direct does 36, and the weights have 16 distinct planes: G g's last two
// elements agree. Slots and planes: microkernels.h (winograd_strided_slot).

// Channels [c, c + n) of one tile (n == W when Full): the 5x5 patch, padding as zeros, to its
// 25 slots. Row i of B^T d needs at most two of the patch's rows, so it is built one row at a time
// (a whole patch would take 25 registers).
template <class V, bool Full, bool Checked>
inline void winograd_strided_input_vector(const typename V::T* const* rows, int64_t col0, int64_t in_w, int64_t ps,
                                          int64_t c, size_t n, typename V::T* v, size_t ldv) {
  using reg = typename V::reg;
  auto load_row = [&](int r, reg (&d)[5]) {
#pragma GCC unroll 5
    for (int s = 0; s < 5; ++s) {
      const int64_t col = col0 + s;
      if (Checked && (!rows[r] || col < 0 || col >= in_w)) {
        d[s] = V::zero();
        continue;
      }
      const typename V::T* p = rows[r] + col * ps + c;
      d[s] = Full ? V::load(p) : V::load_partial(p, n);
    }
  };
  // Rows i of B^T d: (d0 - d2, d2, d4 - d2, d1, d3), each then times B along its columns.
  constexpr int kFirst[5] = {0, 2, 4, 1, 3};  // the row itself, less row 2 for i = 0 and 2
#pragma GCC unroll 5
  for (int i = 0; i < 5; ++i) {
    reg x[5];
    load_row(kFirst[i], x);
    if (i == 0 || i == 2) {
      reg mid[5];
      load_row(2, mid);
#pragma GCC unroll 5
      for (int s = 0; s < 5; ++s) x[s] = V::sub(x[s], mid[s]);
    }
    const reg t[5] = {V::sub(x[0], x[2]), x[2], V::sub(x[4], x[2]), x[1], x[3]};
#pragma GCC unroll 5
    for (int j = 0; j < 5; ++j) {
      typename V::T* dst = v + (size_t)winograd_strided_slot(i, j) * ldv + c;
      if (Full) V::store(dst, t[j]);
      else V::store_partial(dst, t[j], n);
    }
  }
}

// Input transforms: one tile's channels, a vector at a time. Strided: the stride-2 form's 5x5
// patch and 25 slots, else F(2x2, 3x3)'s 4x4 patch and 16 planes.
template <class V, bool Strided, bool Checked>
inline void winograd_input_tile(const typename V::T* const* rows, int64_t col0, int64_t in_w, int64_t ps,
                                int64_t channels, typename V::T* v, size_t ldv) {
  constexpr int64_t W = (int64_t)V::W;
  auto vector = [&](int64_t c, auto full, size_t n) {
    constexpr bool Full = decltype(full)::value;
    if constexpr (Strided) winograd_strided_input_vector<V, Full, Checked>(rows, col0, in_w, ps, c, n, v, ldv);
    else winograd_input_vector<V, Full, Checked>(rows, col0, in_w, ps, c, n, v, ldv);
  };
  int64_t c = 0;
  for (; c + W <= channels; c += W) vector(c, std::true_type{}, W);
  if (c < channels) vector(c, std::false_type{}, (size_t)(channels - c));
}

template <class V, bool Strided>
void winograd_input_ukernel(const typename V::T* const* rows, int64_t col0, int64_t in_w, int64_t pixel_stride,
                            int64_t channels, typename V::T* v, size_t ldv) {
  constexpr int span = Strided ? 5 : 4;
  bool inside = col0 >= 0 && col0 + span <= in_w;
  for (int r = 0; r < span; ++r) inside = inside && rows[r];
  if (inside) winograd_input_tile<V, Strided, false>(rows, col0, in_w, pixel_stride, channels, v, ldv);
  else winograd_input_tile<V, Strided, true>(rows, col0, in_w, pixel_stride, channels, v, ldv);
}

template <class V, bool Full>
inline void winograd_strided_output_vector(const typename V::T* m, size_t ldm, typename V::T* const* y, size_t j,
                                           size_t n, const Epilogue<typename V::T>* e,
                                           typename V::reg& nonfinite) {
  using reg = typename V::reg;
  // out[r][s] sums slot (i, k) over i in A_r, k in A_s: A_0 = {0, 1, 3}, A_1 = {1, 2, 4}.
  reg out[2][2] = {{V::zero(), V::zero()}, {V::zero(), V::zero()}};
#pragma GCC unroll 5
  for (int i = 0; i < 5; ++i) {
    reg x[5];
#pragma GCC unroll 5
    for (int k = 0; k < 5; ++k) {
      const typename V::T* p = m + (size_t)winograd_strided_slot(i, k) * ldm + j;
      x[k] = Full ? V::load(p) : V::load_partial(p, n);
    }
    const reg y0 = V::add(V::add(x[0], x[1]), x[3]), y1 = V::add(V::add(x[1], x[2]), x[4]);
    if (i != 2 && i != 4) out[0][0] = V::add(out[0][0], y0), out[0][1] = V::add(out[0][1], y1);
    if (i != 0 && i != 3) out[1][0] = V::add(out[1][0], y0), out[1][1] = V::add(out[1][1], y1);
  }
  reg bias = V::zero();
  if (e && e->bias_col) bias = Full ? V::load(e->bias_col + j) : V::load_partial(e->bias_col + j, n);
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    reg value = out[q / 2][q % 2];
    nonfinite = V::add(nonfinite, V::sub(value, value));  // NaN from here on if value is not finite
    typename V::T* dst = y[q];
    if (!dst) continue;
    if (e && e->bias_col) value = V::add(value, bias);
    if (e) value = activate<V>(value, e->activation, e->param);
    if (Full) V::store(dst + j, value);
    else V::store_partial(dst + j, value, n);
  }
}

// Output transforms, a vector of columns at a time: Out x Out outputs of a tile's 16 planes (2 for
// F(2x2, 3x3), 3 for F(3x3, 2x2)), or with Strided the stride-2 form's 2x2 from its 25 slots.
template <class V, int Out, bool Strided = false>
bool winograd_output_ukernel(const typename V::T* m, size_t ldm, typename V::T* const* y, size_t nr,
                             const Epilogue<typename V::T>* e) {
  constexpr size_t W = V::W;
  typename V::reg nonfinite = V::zero();
  auto vector = [&](size_t j, auto full, size_t n) {
    if constexpr (Strided) winograd_strided_output_vector<V, decltype(full)::value>(m, ldm, y, j, n, e, nonfinite);
    else winograd_output_vector<V, Out, decltype(full)::value>(m, ldm, y, j, n, e, nonfinite);
  };
  size_t j = 0;
  for (; j + W <= nr; j += W) vector(j, std::true_type{}, W);
  if (j < nr) vector(j, std::false_type{}, nr - j);
  return V::reduce_add(nonfinite) == typename V::T(0);
}

template <class V>
constexpr WinogradKernels<typename V::T> make_winograd_kernels() {
  return WinogradKernels<typename V::T>{winograd_input_ukernel<V, false>,
                                        winograd_output_ukernel<V, 2>,
                                        winograd_weight_ukernel<V, false>,
                                        winograd_output_ukernel<V, 3>,
                                        winograd_input_ukernel<V, true>,
                                        winograd_output_ukernel<V, 2, true>,
                                        winograd_weight_ukernel<V, true>};
}

}  // namespace pycnn::PYCNN_ISA_NS
