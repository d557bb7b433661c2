// conv_transpose2d: packed GEMM, then a scatter-add of the GEMM's columns into the output.
//
// For one group, every (output channel, tap) pair times every input pixel is one product
// matrix: NCHW Cols[(o, t) x p] = W^T[(o, t) x C] * X[C x p], NHWC Cols[p x (t, o)] =
// X[p x C] * W[C x (t, o)]. Entry ((o, t), p) belongs to output pixel p*stride + t*dilation -
// padding, so the GEMM does exactly the real multiply-adds (no zero insertion), and the scatter
// adds each entry once. Work items own disjoint blocks of output channels (no two threads add to
// one output), each walking the input in tiles of rows so its Cols tile stays in cache; bias and
// activation run over the item's finished output block at the end.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/pack.h"
#include "ops/tiles.h"
#include "pycnn/conv_transpose.h"

namespace pycnn {
namespace {

template <class T>
struct TransposeBlocking {
  static constexpr int64_t kc = 1024 / sizeof(T);           // reduction block: one micropanel in L1
  static constexpr int64_t tile_bytes = 256 * 1024;         // Cols tile and packed input tile, each
  static constexpr int64_t max_block_rows = 512;            // (o, tap) rows per item
};

void check(const ConvTranspose2dParams& p) {
  const int64_t dims[] = {p.n, p.c, p.h, p.w, p.o, p.kh, p.kw, p.oh, p.ow, p.stride_h,
                          p.stride_w, p.dilation_h, p.dilation_w, p.groups};
  for (int64_t d : dims)
    if (d < 1) throw std::invalid_argument("conv_transpose2d: sizes, strides, dilations and groups must be >= 1");
  if (p.pad_top < 0 || p.pad_left < 0) throw std::invalid_argument("conv_transpose2d: negative padding");
  if (p.c % p.groups || p.o % p.groups)
    throw std::invalid_argument("conv_transpose2d: groups must divide C and O");
}

// How the work is cut: blocks of `ob` output channels per item, tiles of `tile_rows` input rows.
struct TransposePlan {
  int64_t ob, oblocks, items, tile_rows;
  int threads;
};

template <class T>
TransposePlan plan_transpose(const ConvTranspose2dParams& p, int64_t channel_align) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, KK = p.kh * p.kw;
  TransposePlan plan;
  plan.ob = std::min(Og, std::max<int64_t>(1, TransposeBlocking<T>::max_block_rows / KK));
  const int want = num_threads() * 2;
  while (p.n * G * ceil_div(Og, plan.ob) < want && plan.ob > channel_align)
    plan.ob = std::max(channel_align, round_up(ceil_div(plan.ob, 2), channel_align));
  plan.oblocks = ceil_div(Og, plan.ob);
  plan.items = p.n * G * plan.oblocks;
  const int64_t rows = plan.ob * KK;
  const int64_t tile_pixels =
      std::max<int64_t>(1, TransposeBlocking<T>::tile_bytes / (int64_t)sizeof(T) / std::max(rows, Cg));
  plan.tile_rows = std::min(p.h, std::max<int64_t>(1, tile_pixels / p.w));
  plan.threads = threads_for(2.0 * p.n * p.h * p.w * Cg * p.o * KK, plan.items);
  return plan;
}

// Valid input columns [lo, hi) of a tap: 0 <= iw*s + off < out.
inline void tap_range(int64_t in, int64_t s, int64_t off, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = off >= 0 ? 0 : (-off + s - 1) / s;
  *hi = out - off <= 0 ? 0 : std::min(in, (out - off + s - 1) / s);
  if (*hi < *lo) *hi = *lo;
}

// ---------------------------------------------------------------------------------------------
// NCHW: item = (image, group, block of output channels); Cols rows are (o, tap), columns input
// pixels of a tile of whole input rows.

template <class T>
void conv_transpose_nchw(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                         const T* x, const T* w, const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, KK = p.kh * p.kw, HW = p.h * p.w;
  const int64_t OP = p.oh * p.ow;
  const TransposePlan plan = plan_transpose<T>(p, 1);
  const int64_t KC = std::min(Cg, TransposeBlocking<T>::kc);
  const int64_t rows_max = plan.ob * KK, tile_max = plan.tile_rows * p.w;
  const auto& tile = pick_tile(kn.gemm, rows_max, tile_max);
  const auto gemm = tile.run;
  const int64_t MR = (int64_t)tile.mr, NR = (int64_t)tile.nr;
  Workspace<T> a_bufs((size_t)(round_up(rows_max, MR) * Cg), plan.threads);
  Workspace<T> b_bufs((size_t)(round_up(tile_max, NR) * Cg), plan.threads);
  Workspace<T> c_bufs((size_t)(rows_max * tile_max), plan.threads);
  Epilogue<T> base;
  base.activation = (int)p.activation;
  base.param = (T)p.activation_param;
  const bool epilogue_needed = bias || p.activation != Activation::None;

#pragma omp parallel num_threads(plan.threads) if (plan.threads > 1)
  {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num();
    T* abuf = a_bufs.slice(tid);
    T* bbuf = b_bufs.slice(tid);
    T* cols = c_bufs.slice(tid);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < plan.items; ++item) {
      const int64_t blk = item % plan.oblocks, g = (item / plan.oblocks) % G, n = item / plan.oblocks / G;
      const int64_t o0 = blk * plan.ob, obn = std::min(plan.ob, Og - o0), R = obn * KK;
      const int64_t mpanels = ceil_div(R, MR);
      // W^T rows (o, t) for o in the block: weight (C, O/g, KH, KW) read as [c][(o, t)].
      pack_column_panels(w + (g * Cg * Og + o0) * KK, Cg, R, Og * KK, MR, abuf);
      T* y_block = y + (n * p.o + g * Og + o0) * OP;
      std::fill(y_block, y_block + obn * OP, T(0));
      const T* x_group = x + (n * p.c + g * Cg) * HW;
      for (int64_t ih0 = 0; ih0 < p.h; ih0 += plan.tile_rows) {
        const int64_t th = std::min(plan.tile_rows, p.h - ih0), tp = th * p.w;
        pack_column_panels(x_group + ih0 * p.w, Cg, tp, HW, NR, bbuf);
        for (int64_t k0 = 0; k0 < Cg; k0 += KC) {
          const int64_t kc = std::min(KC, Cg - k0);
          for (int64_t j0 = 0; j0 < tp; j0 += NR) {
            const T* bpanel = bbuf + ((j0 / NR) * Cg + k0) * NR;
            for (int64_t mp = 0; mp < mpanels; ++mp)
              gemm((size_t)kc, abuf + (mp * Cg + k0) * MR, bpanel, cols + mp * MR * tp + j0, (size_t)tp,
                      (size_t)std::min(MR, R - mp * MR), (size_t)std::min(NR, tp - j0), k0 > 0, nullptr);
          }
        }
        // Scatter: row (o, kh, kw), input pixel (ih, iw) -> output (ih*sh + kh*dh - top, iw*sw + kw*dw - left).
        for (int64_t r = 0; r < R; ++r) {
          const int64_t o = r / KK, kh = (r % KK) / p.kw, kw = r % p.kw;
          const int64_t row_off = kh * p.dilation_h - p.pad_top, col_off = kw * p.dilation_w - p.pad_left;
          int64_t lo, hi;
          tap_range(p.w, p.stride_w, col_off, p.ow, &lo, &hi);
          T* y_plane = y_block + o * OP;
          const T* crow = cols + r * tp;
          for (int64_t i = 0; i < th; ++i) {
            const int64_t oh = (ih0 + i) * p.stride_h + row_off;
            if (oh < 0 || oh >= p.oh) continue;
            T* yrow = y_plane + oh * p.ow + col_off;
            const T* src = crow + i * p.w;
            if (p.stride_w == 1) {
              for (int64_t iw = lo; iw < hi; ++iw) yrow[iw] += src[iw];
            } else {
              for (int64_t iw = lo; iw < hi; ++iw) yrow[iw * p.stride_w] += src[iw];
            }
          }
        }
      }
      if (epilogue_needed) {
        Epilogue<T> e = base;
        e.bias_row = bias ? bias + g * Og + o0 : nullptr;
        kd.epilogue(y_block, (size_t)OP, (size_t)obn, (size_t)OP, e);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// NHWC: item = (image, group, block of output channels); Cols rows are input pixels of a tile of
// whole input rows, columns (tap, o) for o in the block, so each scatter is a contiguous run.

// B panels of NR columns (t, o), t-major: column t*obn + (o - o0) of W[c][(t, o)], weight
// (KH, KW, O/g, C) read at [(t*Og + o)*C + g*Cg + c]; columns past R are zero.
template <class T>
void pack_transpose_nhwc_weights(const ConvTranspose2dParams& p, const T* w, int64_t g, int64_t o0, int64_t obn,
                                 int64_t nr, T* dst) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, R = p.kh * p.kw * obn;
  for (int64_t c0 = 0; c0 < R; c0 += nr) {
    for (int64_t j = 0; j < nr; ++j) {
      const int64_t col = c0 + j;
      if (col >= R) {
        for (int64_t kk = 0; kk < Cg; ++kk) dst[kk * nr + j] = T(0);
        continue;
      }
      const T* src = w + ((col / obn) * Og + o0 + col % obn) * p.c + g * Cg;
      for (int64_t kk = 0; kk < Cg; ++kk) dst[kk * nr + j] = src[kk];
    }
    dst += Cg * nr;
  }
}

template <class T>
void conv_transpose_nhwc(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                         const T* x, const T* w, const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, KK = p.kh * p.kw;
  const int64_t OP = p.oh * p.ow;
  // Blocks of whole cache lines of output channels, so threads never share a line.
  const TransposePlan plan = plan_transpose<T>(p, std::min<int64_t>(Og, 64 / (int64_t)sizeof(T)));
  const int64_t KC = std::min(Cg, TransposeBlocking<T>::kc);
  const int64_t rows_max = plan.ob * KK, tile_max = plan.tile_rows * p.w;
  const auto& tile = pick_tile(kn.gemm, tile_max, rows_max);
  const auto gemm = tile.run;
  const int64_t MR = (int64_t)tile.mr, NR = (int64_t)tile.nr;
  Workspace<T> a_bufs((size_t)(round_up(tile_max, MR) * Cg), plan.threads);
  Workspace<T> b_bufs((size_t)(round_up(rows_max, NR) * Cg), plan.threads);
  Workspace<T> c_bufs((size_t)(rows_max * tile_max), plan.threads);
  Epilogue<T> base;
  base.activation = (int)p.activation;
  base.param = (T)p.activation_param;
  const bool epilogue_needed = bias || p.activation != Activation::None;

#pragma omp parallel num_threads(plan.threads) if (plan.threads > 1)
  {
    FlushDenormals ftz;
    const int tid = omp_get_thread_num();
    T* abuf = a_bufs.slice(tid);
    T* bbuf = b_bufs.slice(tid);
    T* cols = c_bufs.slice(tid);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < plan.items; ++item) {
      const int64_t blk = item % plan.oblocks, g = (item / plan.oblocks) % G, n = item / plan.oblocks / G;
      const int64_t o0 = blk * plan.ob, obn = std::min(plan.ob, Og - o0), R = obn * KK;
      const int64_t npanels = ceil_div(R, NR);
      pack_transpose_nhwc_weights(p, w, g, o0, obn, NR, bbuf);
      T* y_block = y + n * OP * p.o + g * Og + o0;
      for (int64_t q = 0; q < OP; ++q) std::fill(y_block + q * p.o, y_block + q * p.o + obn, T(0));
      const T* x_image = x + n * p.h * p.w * p.c + g * Cg;
      for (int64_t ih0 = 0; ih0 < p.h; ih0 += plan.tile_rows) {
        const int64_t th = std::min(plan.tile_rows, p.h - ih0), tp = th * p.w;
        pack_row_panels(x_image + ih0 * p.w * p.c, tp, Cg, p.c, MR, abuf);
        for (int64_t k0 = 0; k0 < Cg; k0 += KC) {
          const int64_t kc = std::min(KC, Cg - k0);
          for (int64_t i0 = 0; i0 < tp; i0 += MR) {
            const T* apanel = abuf + ((i0 / MR) * Cg + k0) * MR;
            for (int64_t np = 0; np < npanels; ++np)
              gemm((size_t)kc, apanel, bbuf + (np * Cg + k0) * NR, cols + i0 * R + np * NR, (size_t)R,
                      (size_t)std::min(MR, tp - i0), (size_t)std::min(NR, R - np * NR), k0 > 0, nullptr);
          }
        }
        // Scatter: pixel (ih, iw), tap (kh, kw) -> output (ih*sh + kh*dh - top, iw*sw + kw*dw - left),
        // obn contiguous channels.
        for (int64_t t = 0; t < KK; ++t) {
          const int64_t kh = t / p.kw, kw = t % p.kw;
          const int64_t row_off = kh * p.dilation_h - p.pad_top, col_off = kw * p.dilation_w - p.pad_left;
          int64_t lo, hi;
          tap_range(p.w, p.stride_w, col_off, p.ow, &lo, &hi);
          for (int64_t i = 0; i < th; ++i) {
            const int64_t oh = (ih0 + i) * p.stride_h + row_off;
            if (oh < 0 || oh >= p.oh) continue;
            for (int64_t iw = lo; iw < hi; ++iw) {
              T* dst = y_block + (oh * p.ow + iw * p.stride_w + col_off) * p.o;
              const T* src = cols + (i * p.w + iw) * R + t * obn;
              for (int64_t o = 0; o < obn; ++o) dst[o] += src[o];
            }
          }
        }
      }
      if (epilogue_needed) {
        Epilogue<T> e = base;
        e.bias_col = bias ? bias + g * Og + o0 : nullptr;
        kd.epilogue(y_block, (size_t)p.o, (size_t)OP, (size_t)obn, e);
      }
    }
  }
}

template <class T>
void run_conv_transpose(const ConvTranspose2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  check(p);
  const KernelTable& table = active_kernels();
  const ConvKernels<T>& kn = kernels_for<T>(table);
  const DepthwiseKernels<T>& kd = depthwise_kernels_for<T>(table);
  if (p.layout == Layout::NCHW) conv_transpose_nchw(p, kn, kd, x, w, bias, y);
  else conv_transpose_nhwc(p, kn, kd, x, w, bias, y);
}

}  // namespace

void conv_transpose2d(const ConvTranspose2dParams& p, const float* x, const float* w, const float* b, float* y) {
  run_conv_transpose(p, x, w, b, y);
}
void conv_transpose2d(const ConvTranspose2dParams& p, const double* x, const double* w, const double* b,
                      double* y) {
  run_conv_transpose(p, x, w, b, y);
}

}  // namespace pycnn
