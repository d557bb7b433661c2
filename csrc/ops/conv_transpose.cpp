// conv_transpose2d: two algorithms over the stride-phase split of the full result; Winograd
// F(3x3, 2x2) on every phase of a kernel twice the stride, in ops/winograd.cpp; and at stride 1,
// conv2d with the kernel flipped (stride1_as_conv2d). run_conv_transpose at the end picks;
// choose_conv_transpose2d_algorithm says why.
//
// Input pixel (ih, iw) through tap (kh, kw) lands on full-result cell (ih*sh + kh*dh,
// iw*sw + kw*dw). Split the full result by stride phase, cell (i*sh + r, j*sw + q) -> phase
// (r, q), position (i, j): tap (kh, kw) then writes phase ((kh*dh) % sh, (kw*dw) % sw) at
// (ih + (kh*dh)/sh, iw + (kw*dw)/sw), i.e. every input pixel shifted by the same offset. Either
// way the work is exactly the real multiply-adds (no zero insertion).
//
//  - direct (phase reductions up to 768 long): each phase is a stride-1 correlation of the
//    input with the phase's taps, flipped, on the direct NHWC microkernel; tiles are written
//    straight into the output (every stride-th column) with bias and activation. NCHW data is
//    reordered to NHWC on the way in and back per output row.
//  - per-tap GEMMs into a canvas (longer reductions, which they block): with the input pixels
//    indexed on the canvas's own row pitch CW (columns W..CW-1 zero), one tap's contribution for
//    a run of pixels is one dense GEMM tile whose output rows (NHWC) or columns (NCHW) are
//    contiguous on the canvas: the GEMM microkernel adds it in place (accumulate), no scatter
//    pass per tap. Work items are (image, group, phase, block of output channels): each writes
//    only its own canvas cells. After a barrier, the output rows are gathered from the phases,
//    cropped by the padding (cells past the full result, from output_padding, are zero) and
//    finished with bias and activation.
//    NCHW data with 64 or more output channels per group runs the NHWC form, reordering each
//    input row as it is packed and each output row as it is gathered.
//
// Both NHWC forms (and NCHW direct) read the weights as per-phase K x NR panels packed once per
// call (PhaseWeights): the direct kernel a whole phase's, each tap's GEMM its C/g rows.
//
// Loops schedule dynamically (coarse items; a thread that loses its core on a shared machine
// hands its remaining items to the others).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/threading.h"
#include "core/workspace.h"
#include "ops/common.h"
#include "ops/pack.h"
#include "ops/tiles.h"
#include "ops/winograd.h"
#include "pycnn/conv_transpose.h"

namespace pycnn {
namespace {

template <class T>
struct TransposeBlocking {
  static constexpr int64_t kc = 1024 / sizeof(T);      // reduction block: one micropanel in L1
  static constexpr int64_t pack_bytes = 256 * 1024;    // weights one item reads (its phase's taps x ob x Cg)
};

// The canvas geometry and the taps of each stride phase.
struct Canvas {
  int64_t full_h, full_w;  // the uncropped result
  int64_t ch, cw;          // rows and row pitch of one phase (cw >= W: pitch of the packed input too)
  int64_t plane;           // cells of one phase: ch*cw plus the last tap's column reach
  int64_t phases;          // sh * sw
  std::vector<std::vector<int64_t>> taps;  // taps[phase] = kh*KW + kw of the taps landing there
  std::vector<int64_t> shift;              // shift[t]: canvas offset (kh*dh/sh)*cw + kw*dw/sw

  explicit Canvas(const ConvTranspose2dParams& p) {
    full_h = (p.h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
    full_w = (p.w - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
    const int64_t row_reach = (p.kh - 1) * p.dilation_h / p.stride_h;
    const int64_t col_reach = (p.kw - 1) * p.dilation_w / p.stride_w;
    ch = p.h + row_reach;
    cw = p.w + col_reach;
    plane = checked_product({ch, cw}) + col_reach;
    phases = p.stride_h * p.stride_w;
    checked_product({p.n, phases, p.o, plane});  // the canvas: [n][g][phase][o / g][plane]
    taps.resize((size_t)phases);
    shift.resize((size_t)(p.kh * p.kw));
    for (int64_t kh = 0; kh < p.kh; ++kh)
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        const int64_t r = kh * p.dilation_h, q = kw * p.dilation_w;
        taps[(size_t)((r % p.stride_h) * p.stride_w + q % p.stride_w)].push_back(kh * p.kw + kw);
        shift[(size_t)(kh * p.kw + kw)] = (r / p.stride_h) * cw + q / p.stride_w;
      }
  }
};

struct PhaseTaps {
  std::vector<int64_t> k;  // the phase's taps, flipped: largest input offset first
  int64_t reach = 0;       // that offset (a0)
  int64_t step = 1;        // d'
};

std::vector<PhaseTaps> phase_taps(int64_t kernel, int64_t stride, int64_t dilation) {
  std::vector<PhaseTaps> phases((size_t)stride);
  int64_t a = stride, b = dilation;
  while (b) std::swap(a %= b, b);  // a = gcd(stride, dilation)
  for (int64_t k = kernel - 1; k >= 0; --k) phases[(size_t)(k * dilation % stride)].k.push_back(k);
  for (PhaseTaps& ph : phases) {
    ph.step = dilation / a;
    if (!ph.k.empty()) ph.reach = ph.k[0] * dilation / stride;
  }
  return phases;
}

// Weights of stride phase (r, q) as a K x O/g matrix per group, k = (flipped row tap, flipped
// column tap, c): the operand the direct NHWC microkernel reads in K x NR panels of output
// channels, and, one tap's C/g rows of it, that tap's B operand in the per-tap NHWC GEMMs.
// Either packed once per call into [phase][group][panel][k][NR] (the last panel zero-padded),
// or given as those matrices, [phase][group][k][O/g] (pack_conv_transpose2d_weight in
// pycnn.ops makes them once): full panels are then read in place (row stride O/g) and only a
// partial last panel is copied per call.
template <class T>
class PhaseWeights {
 public:
  PhaseWeights(const ConvTranspose2dParams& p, const std::vector<PhaseTaps>& rows, const std::vector<PhaseTaps>& cols,
               int64_t NR, const T* given)
      : p_(p), cg_(p.c / p.groups), og_(p.o / p.groups), nr_(NR), npanels_(ceil_div(og_, NR)), given_(given),
        offset_((size_t)(p.stride_h * p.stride_w + 1), 0), given_offset_(offset_),
        k_((size_t)(p.stride_h * p.stride_w)), tap_phase_((size_t)(p.kh * p.kw)), tap_row_((size_t)(p.kh * p.kw)) {
    const int64_t sw = p.stride_w;
    // Packed: every panel; given: only the partial last one.
    const int64_t packed_panels = !given ? npanels_ : og_ % NR ? 1 : 0;
    for (int64_t r = 0; r < p.stride_h; ++r)
      for (int64_t q = 0; q < sw; ++q) {
        const PhaseTaps &pr = rows[(size_t)r], &pq = cols[(size_t)q];
        const int64_t ph = r * sw + q;
        k_[(size_t)ph] = (int64_t)(pr.k.size() * pq.k.size()) * cg_;
        offset_[(size_t)ph + 1] = offset_[(size_t)ph] + p.groups * packed_panels * k_[(size_t)ph] * NR;
        given_offset_[(size_t)ph + 1] = given_offset_[(size_t)ph] + p.groups * k_[(size_t)ph] * og_;
        for (size_t m = 0; m < pr.k.size(); ++m)
          for (size_t n = 0; n < pq.k.size(); ++n) {
            const int64_t t = pr.k[m] * p.kw + pq.k[n];
            tap_phase_[(size_t)t] = ph;
            tap_row_[(size_t)t] = (int64_t)(m * pq.k.size() + n);  // the tap's block of C/g rows in its phase
          }
      }
    if (nr_ > kMaxNR) throw std::logic_error("conv_transpose2d: weight panels wider than the pack's scratch");
    packed_.reset((size_t)offset_.back(), 1);
  }

  // An orphaned `omp for` (its barrier orders the callers' input reorders too). Given phase
  // matrices: each (phase, group)'s partial last panel is copied. Otherwise, (KH, KW, O/g, C):
  // each (tap, group, panel) block is one transpose into place. (C, O/g, KH, KW): per input
  // channel, the panel's nr x KK block (contiguous) is transposed, kTapBlock taps at a time,
  // into a row per tap on the stack, each then copied to its tap's panel row; gathering one tap
  // at a time would read the weights at a stride of KK elements, once per tap.
  static constexpr int64_t kTapBlock = 16, kMaxNR = 64;
  void pack(const ConvKernels<T>& kn, const T* w) {
    const int64_t G = p_.groups, KK = p_.kh * p_.kw;
    if (given_) {
      // No early return without a tail: callers count on the loop's closing barrier.
      const int64_t phases = (int64_t)k_.size(), full = og_ / nr_, items = og_ % nr_ ? phases * G : 0;
#pragma omp for schedule(static)
      for (int64_t item = 0; item < items; ++item) {
        const int64_t ph = item / G, g = item % G;
        const int64_t k = k_[(size_t)ph];
        pack_column_panels(given_ + given_offset_[(size_t)ph] + g * k * og_ + full * nr_, k, og_ % nr_, og_, nr_,
                           packed_.data() + offset_[(size_t)ph] + g * k * nr_);
      }
      return;
    }
    if (p_.layout == Layout::NCHW) {
      constexpr int64_t kChannelsPerItem = 16;
      const int64_t chunks = ceil_div(cg_, kChannelsPerItem);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < G * npanels_ * chunks; ++item) {
        const int64_t chunk = item % chunks, np = (item / chunks) % npanels_, g = item / chunks / npanels_;
        const int64_t o0 = np * nr_, nr = std::min(nr_, og_ - o0);
        alignas(64) T rows[kTapBlock * kMaxNR];  // rows[t*NR + j], zero for j >= nr
        std::fill(rows, rows + kTapBlock * nr_, T(0));
        for (int64_t c = chunk * kChannelsPerItem; c < std::min(cg_, (chunk + 1) * kChannelsPerItem); ++c)
          for (int64_t t0 = 0; t0 < KK; t0 += kTapBlock) {
            const int64_t taps = std::min(kTapBlock, KK - t0);
            transpose_blocks(kn, w + ((g * cg_ + c) * og_ + o0) * KK + t0, KK, nr, taps, rows, nr_);
            for (int64_t t = t0; t < t0 + taps; ++t)
              std::memcpy(packed_panel(tap_phase_[(size_t)t], g, np) + (tap_row_[(size_t)t] * cg_ + c) * nr_,
                          rows + (t - t0) * nr_, (size_t)nr_ * sizeof(T));
          }
      }
      return;
    }
#pragma omp for schedule(static)
    for (int64_t item = 0; item < KK * G * npanels_; ++item) {
      const int64_t np = item % npanels_, g = (item / npanels_) % G, t = item / npanels_ / G;
      const int64_t o0 = np * nr_, nr = std::min(nr_, og_ - o0);
      T* dst = packed_panel(tap_phase_[(size_t)t], g, np) + tap_row_[(size_t)t] * cg_ * nr_;
      transpose_blocks(kn, w + (t * og_ + o0) * p_.c + g * cg_, p_.c, nr, cg_, dst, nr_);
      if (nr < nr_)
        for (int64_t c = 0; c < cg_; ++c) std::fill(dst + c * nr_ + nr, dst + (c + 1) * nr_, T(0));
    }
  }

  // Panel np (K x NR, row stride *ld) of group g of phase ph.
  const T* phase_panel(int64_t ph, int64_t g, int64_t np, int64_t* ld) const {
    if (given_ && np < og_ / nr_) {
      *ld = og_;
      return given_ + given_offset_[(size_t)ph] + g * k_[(size_t)ph] * og_ + np * nr_;
    }
    *ld = nr_;
    return packed_panel(ph, g, given_ ? 0 : np);
  }
  // Tap t's C/g rows of it, from row k0.
  const T* tap_panel(int64_t t, int64_t g, int64_t np, int64_t k0, int64_t* ld) const {
    const T* panel = phase_panel(tap_phase_[(size_t)t], g, np, ld);
    return panel + (tap_row_[(size_t)t] * cg_ + k0) * *ld;
  }

 private:
  // Packed: panel np of group g; given: the partial last panel of group g (np = 0).
  T* packed_panel(int64_t ph, int64_t g, int64_t np) const {
    const int64_t panels = given_ ? 1 : npanels_;
    return packed_.data() + offset_[(size_t)ph] + (g * panels + np) * k_[(size_t)ph] * nr_;
  }

  const ConvTranspose2dParams& p_;
  int64_t cg_, og_, nr_, npanels_;
  const T* given_;
  std::vector<int64_t> offset_, given_offset_, k_, tap_phase_, tap_row_;
  Workspace<T> packed_;
};

// How the work is cut: items of (image, group, phase, block of `ob` output channels).
struct TransposePlan {
  int64_t ob, oblocks, items;
  int threads;
};

template <class T>
TransposePlan plan_transpose(const ConvTranspose2dParams& p, const Canvas& cv, int64_t min_block) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G;
  int64_t max_taps = 1;
  for (const auto& t : cv.taps) max_taps = std::max<int64_t>(max_taps, (int64_t)t.size());
  const int64_t budget = TransposeBlocking<T>::pack_bytes / (int64_t)sizeof(T);
  TransposePlan plan;
  // The weights one item reads (taps of its phase x ob x Cg, packed once per call) within the budget.
  plan.ob = std::min(Og, std::max(min_block, round_up(std::max<int64_t>(1, budget / (max_taps * Cg)), min_block)));
  const int want = num_threads() * 2;
  while (p.n * G * cv.phases * ceil_div(Og, plan.ob) < want && plan.ob > min_block)
    plan.ob = std::max(min_block, round_up(ceil_div(plan.ob, 2), min_block));
  plan.oblocks = ceil_div(Og, plan.ob);
  plan.items = p.n * G * cv.phases * plan.oblocks;
  plan.threads = threads_for(2.0 * p.n * p.h * p.w * Cg * p.o * p.kh * p.kw, plan.items);
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Per-tap GEMMs, NCHW: GEMM rows are output channels, columns input pixels on the canvas pitch.
// Canvas: [n][g][phase][o][plane].

template <class T>
void conv_transpose_nchw(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                         const T* x, const T* w, const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, KK = p.kh * p.kw, HW = p.h * p.w;
  const Canvas cv(p);
  // The tile for the block size the budget suggests, then blocks of whole MR panels of output
  // channels, so that every item uses the weight panels packed once for the call.
  const int64_t cells = p.h * cv.cw;  // input pixels on the canvas pitch
  const TransposePlan first = plan_transpose<T>(p, cv, 1);
  const auto& tile = pick_tile(kn.gemm, first.ob, cells);
  const auto gemm = tile.run;
  const int64_t MR = (int64_t)tile.mr, NR = (int64_t)tile.nr;
  const TransposePlan plan = plan_transpose<T>(p, cv, MR);
  const int64_t KC = std::min(Cg, TransposeBlocking<T>::kc);
  const int64_t mpanels_all = ceil_div(Og, MR), bpanels = ceil_div(cells, NR);

  Workspace<T> canvas((size_t)(p.n * G * cv.phases * Og * cv.plane), 1);
  // A: W^T per (group, tap), row-major Og x Cg, a[(g*KK + t)*tap_stride + o*Cg + kk] =
  // w[((g*Cg + kk)*Og + o)*KK + t]. The pack writes all KK taps at once: one cache line of
  // padding per tap keeps those KK store streams off a single cache set (a power-of-two stride
  // would alias them all).
  const int64_t tap_stride = round_up(Og * Cg, 64 / (int64_t)sizeof(T)) + 64 / (int64_t)sizeof(T);
  Workspace<T> packed_w((size_t)(G * KK * tap_stride), 1);
  // B: each image's input pixels on the canvas pitch in NR-column panels, packed once for all
  // the items (phases, channel blocks) that read them: b[kk*NR + j] = x[c][ih][iw], zero for iw >= W.
  Workspace<T> packed_x((size_t)(p.n * G * bpanels * Cg * NR), 1);
  Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;
  const int64_t rows_out = p.n * p.o * p.oh;

  parallel_region(plan.threads, [&] {
    FlushDenormals ftz;
    for_dynamic(p.n * G * bpanels, [&](int64_t ngp) {
      const int64_t jp = ngp % bpanels, ng = ngp / bpanels, j0 = jp * NR, cols = std::min(NR, cells - j0);
      const T* x_group = x + ng * Cg * HW;  // (n, g) -> channels (n*C + g*Cg): ng*Cg
      T* dst = packed_x.data() + ngp * Cg * NR;
      for (int64_t kk = 0; kk < Cg; ++kk) {
        const T* plane = x_group + kk * HW;
        T* d = dst + kk * NR;
        // Runs of pixels of one input row, then zeros up to the canvas pitch.
        for (int64_t j = 0; j < cols;) {
          const int64_t cell = j0 + j, r = cell / cv.cw, iw = cell % cv.cw;
          const int64_t run = std::min(cols - j, cv.cw - iw);
          const int64_t real = std::max<int64_t>(0, std::min(run, p.w - iw));
          std::memcpy(d + j, plane + r * p.w + iw, (size_t)real * sizeof(T));
          std::fill(d + j + real, d + j + run, T(0));
          j += run;
        }
        std::fill(d + cols, d + NR, T(0));
      }
    }, /*chunk=*/1, /*wait=*/true);
    // For output channel o, the (input channel x tap) matrix w[c][o][:] (row stride Og*KK) is
    // transposed into the taps' rows (row stride tap_stride).
#pragma omp for schedule(static)
    for (int64_t gp = 0; gp < G * mpanels_all; ++gp) {
      const int64_t g = gp / mpanels_all, mp = gp % mpanels_all, rows = std::min(MR, Og - mp * MR);
      T* dst = packed_w.data() + g * KK * tap_stride + mp * MR * Cg;
      for (int64_t i = 0; i < rows; ++i)
        transpose_blocks(kn, w + ((g * Cg) * Og + mp * MR + i) * KK, Og * KK, Cg, KK, dst + i * Cg, tap_stride);
    }
    for_dynamic(plan.items, [&](int64_t item) {
      const int64_t blk = item % plan.oblocks, ph = (item / plan.oblocks) % cv.phases;
      const int64_t g = (item / plan.oblocks / cv.phases) % G, n = item / plan.oblocks / cv.phases / G;
      const int64_t o0 = blk * plan.ob, obn = std::min(plan.ob, Og - o0), mpanels = ceil_div(obn, MR);
      T* cbase = canvas.data() + (((n * G + g) * cv.phases + ph) * Og + o0) * cv.plane;
      std::fill(cbase, cbase + obn * cv.plane, T(0));
      const std::vector<int64_t>& taps = cv.taps[(size_t)ph];
      if (taps.empty()) return;  // next item
      // The item's rows of tap t start at row o0 of (g, t).
      const T* a_item = packed_w.data() + g * KK * tap_stride + o0 * Cg;
      const T* x_panels = packed_x.data() + (n * G + g) * bpanels * Cg * NR;
      for (int64_t k0 = 0; k0 < Cg; k0 += KC) {
        const int64_t kc = std::min(KC, Cg - k0);
        for (int64_t jp = 0; jp < bpanels; ++jp) {
          const T* bpanel = x_panels + (jp * Cg + k0) * NR;
          const size_t nr = (size_t)std::min(NR, cells - jp * NR);
          for (size_t ti = 0; ti < taps.size(); ++ti) {
            T* c = cbase + jp * NR + cv.shift[(size_t)taps[ti]];
            const T* a_tap = a_item + taps[ti] * tap_stride;
            for (int64_t mp = 0; mp < mpanels; ++mp)
              gemm((size_t)kc, a_tap + mp * MR * Cg + k0, (size_t)Cg, bpanel, (size_t)NR, c + mp * MR * cv.plane,
                   (size_t)cv.plane, (size_t)std::min(MR, obn - mp * MR), nr, true, nullptr);
          }
        }
      }
    }, /*chunk=*/1, /*wait=*/true);
    // Gather: output (oh, ow) is full-result cell (oh + top, ow + left), zero past its end.
    for_dynamic(rows_out, [&](int64_t row) {
      const int64_t oh = row % p.oh, oc = (row / p.oh) % p.o, n = row / p.oh / p.o;
      const int64_t g = oc / Og, o = oc % Og, fr = oh + p.pad_top;
      T* yrow = y + row * p.ow;
      if (fr >= cv.full_h) {
        std::fill(yrow, yrow + p.ow, T(0));
      } else {
        // Column fc = j*sw + q reads phase (fr % sh, q) at in-phase column j.
        const T* src = canvas.data() + (n * G + g) * cv.phases * Og * cv.plane + o * cv.plane +
                       (fr % p.stride_h) * p.stride_w * Og * cv.plane + (fr / p.stride_h) * cv.cw;
        const int64_t phase_step = Og * cv.plane, valid = std::min(p.ow, cv.full_w - p.pad_left);
        int64_t q = p.pad_left % p.stride_w, j = p.pad_left / p.stride_w;
        for (int64_t ow = 0; ow < valid; ++ow) {
          yrow[ow] = src[q * phase_step + j];
          if (++q == p.stride_w) q = 0, ++j;
        }
        std::fill(yrow + std::max<int64_t>(valid, 0), yrow + p.ow, T(0));
      }
      if (epilogue_needed) {
        Epilogue<T> e = base;
        e.bias_row = bias ? bias + oc : nullptr;
        kd.epilogue(yrow, (size_t)p.ow, 1, (size_t)p.ow, e);
      }
    }, /*chunk=*/8);
  });
}

// ---------------------------------------------------------------------------------------------
// Per-tap GEMMs, NHWC: GEMM rows are input pixels on the canvas pitch, columns output channels.
// Canvas: [n][g][phase][plane][Og].
//
// NCHW data takes this form too once a group has 64 output channels (nchw_takes_nhwc_gemms):
// each input row's channels are transposed as they are packed, and each gathered output row
// (pixel x channel, finished with bias and activation) is transposed into the channel planes.
// Those reorders touch each element once, in cache; the NCHW form instead sweeps the input
// pixels in NR-column panels whose rows are output channels, a poor fit for small images with
// many channels.

template <class T>
void conv_transpose_nhwc(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const DepthwiseKernels<T>& kd,
                         const T* x, const T* w, const T* w_phases, const T* bias, T* y) {
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G;
  const Canvas cv(p);
  const int64_t cells = p.h * cv.cw;  // input pixels on the canvas pitch
  // Blocks of whole NR panels (or all of O/g), the panels PhaseWeights holds.
  const auto& tile = pick_tile(kn.gemm, cells, Og);
  const TransposePlan plan = plan_transpose<T>(p, cv, std::min<int64_t>(Og, (int64_t)tile.nr));
  const auto gemm = tile.run;
  const int64_t MR = (int64_t)tile.mr, NR = (int64_t)tile.nr;
  const int64_t KC = std::min(Cg, TransposeBlocking<T>::kc);
  PhaseWeights<T> weights(p, phase_taps(p.kh, p.stride_h, p.dilation_h), phase_taps(p.kw, p.stride_w, p.dilation_w),
                          NR, w_phases);

  Workspace<T> canvas((size_t)(p.n * G * cv.phases * cv.plane * Og), 1);
  // A: each image's input pixels on the canvas pitch, row-major, packed once for all the items
  // that read them: a[cell*Cg + kk] = x[ih][iw][g*Cg + kk] for cell = ih*CW + iw, zero for iw >= W.
  Workspace<T> packed_x((size_t)(p.n * G * cells * Cg), 1);
  Epilogue<T> base = make_epilogue<T>(p);
  base.bias_col = bias;
  const bool epilogue_needed = bias || p.activation != Activation::None;
  const int64_t rows_out = p.n * p.oh;
  const bool nchw = p.layout == Layout::NCHW;
  Workspace<T> rows_nhwc(nchw ? (size_t)(p.ow * p.o) : 0, plan.threads);  // NCHW: one output row

  parallel_region(plan.threads, [&] {
    FlushDenormals ftz;
    weights.pack(kn, w);
    for_dynamic(p.n * G * p.h, [&](int64_t ngr) {
      const int64_t ih = ngr % p.h, g = (ngr / p.h) % G, n = ngr / p.h / G;
      T* dst = packed_x.data() + ((n * G + g) * cells + ih * cv.cw) * Cg;
      if (nchw) {
        transpose_blocks(kn, x + (n * p.c + g * Cg) * p.h * p.w + ih * p.w, p.h * p.w, Cg, p.w, dst, Cg);
      } else {
        const T* src = x + ((n * p.h + ih) * p.w) * p.c + g * Cg;
        for (int64_t iw = 0; iw < p.w; ++iw) std::memcpy(dst + iw * Cg, src + iw * p.c, (size_t)Cg * sizeof(T));
      }
      std::fill(dst + p.w * Cg, dst + cv.cw * Cg, T(0));
    }, /*chunk=*/1, /*wait=*/true);
    for_dynamic(plan.items, [&](int64_t item) {
      const int64_t blk = item % plan.oblocks, ph = (item / plan.oblocks) % cv.phases;
      const int64_t g = (item / plan.oblocks / cv.phases) % G, n = item / plan.oblocks / cv.phases / G;
      const int64_t o0 = blk * plan.ob, obn = std::min(plan.ob, Og - o0), npanels = ceil_div(obn, NR);
      T* cbase = canvas.data() + ((n * G + g) * cv.phases + ph) * cv.plane * Og + o0;
      for (int64_t q = 0; q < cv.plane; ++q) std::fill(cbase + q * Og, cbase + q * Og + obn, T(0));
      const std::vector<int64_t>& taps = cv.taps[(size_t)ph];
      if (taps.empty()) return;  // next item
      const T* x_rows = packed_x.data() + (n * G + g) * cells * Cg;
      for (int64_t k0 = 0; k0 < Cg; k0 += KC) {
        const int64_t kc = std::min(KC, Cg - k0);
        for (int64_t i0 = 0; i0 < cells; i0 += MR) {
          const T* apanel = x_rows + i0 * Cg + k0;
          const size_t mr = (size_t)std::min(MR, cells - i0);
          for (size_t ti = 0; ti < taps.size(); ++ti) {
            T* c = cbase + (i0 + cv.shift[(size_t)taps[ti]]) * Og;
            for (int64_t np = 0; np < npanels; ++np) {
              // Blocks start on panel boundaries (ob is a multiple of NR, or all of O/g).
              int64_t ldb;
              const T* b = weights.tap_panel(taps[ti], g, o0 / NR + np, k0, &ldb);
              gemm((size_t)kc, apanel, (size_t)Cg, b, (size_t)ldb, c + np * NR, (size_t)Og, mr,
                   (size_t)std::min(NR, obn - np * NR), true, nullptr);
            }
          }
        }
      }
    }, /*chunk=*/1, /*wait=*/true);
    // Gather: output (oh, ow) is full-result cell (oh + top, ow + left), zero past its end.
    for_dynamic(rows_out, [&](int64_t row) {
      const int64_t oh = row % p.oh, n = row / p.oh, fr = oh + p.pad_top;
      T* yrow = nchw ? rows_nhwc.slice(omp_get_thread_num()) : y + row * p.ow * p.o;
      const int64_t valid = fr < cv.full_h ? std::max<int64_t>(0, std::min(p.ow, cv.full_w - p.pad_left)) : 0;
      // Column fc = j*sw + q reads phase (fr % sh, q) at in-phase cell (fr / sh, j).
      const int64_t row_at = ((fr % p.stride_h) * p.stride_w * cv.plane + (fr / p.stride_h) * cv.cw) * Og;
      int64_t q = p.pad_left % p.stride_w, j = p.pad_left / p.stride_w;
      for (int64_t ow = 0; ow < valid; ++ow) {
        const int64_t at = row_at + (q * cv.plane + j) * Og;
        for (int64_t g = 0; g < G; ++g)
          std::memcpy(yrow + ow * p.o + g * Og, canvas.data() + (n * G + g) * cv.phases * cv.plane * Og + at,
                      (size_t)Og * sizeof(T));
        if (++q == p.stride_w) q = 0, ++j;
      }
      std::fill(yrow + valid * p.o, yrow + p.ow * p.o, T(0));
      if (epilogue_needed) kd.epilogue(yrow, (size_t)p.o, (size_t)p.ow, (size_t)p.o, base);
      if (nchw) transpose_blocks(kn, yrow, p.o, p.ow, p.o, y + n * p.o * p.oh * p.ow + oh * p.ow, p.oh * p.ow);
    }, /*chunk=*/8);
  });
}

// ---------------------------------------------------------------------------------------------
// Direct, both layouts: each stride phase as a stride-1 correlation on the direct NHWC
// microkernel, written straight into the output.
//
// Along one dimension (stride s, dilation d), phase r receives the taps k with (k*d) % s == r,
// from input offset a_k = (k*d)/s back: phase cell i = sum over those k of x[i - a_k] * w[k].
// Consecutive taps of a phase are s/gcd(d, s) apart and their offsets d' = d/gcd(d, s) apart, so
// with the taps flipped (largest offset a0 first) phase cell i reads x[i - a0 + m*d'] for
// m = 0, 1, ...: a correlation with dilation d' whose input starts a0 cells back. Output row oh
// is full-result row fr = oh + pad_top, phase fr % s, cell fr / s; its columns of phase q are
// every s-th output column, which the microkernel stores with a pixel stride of s*O. Reads
// outside the input are zeros, so output_padding cells and phases without taps come out as the
// bias alone.

template <class T>
void conv_transpose_direct(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                           const T* w_phases, const T* bias, T* y) {
  const bool nchw = p.layout == Layout::NCHW;
  const int64_t G = p.groups, Og = p.o / G, Cg = p.c / G, KK = p.kh * p.kw, HW = p.h * p.w;
  const int64_t sh = p.stride_h, sw = p.stride_w;
  const std::vector<PhaseTaps> rows = phase_taps(p.kh, sh, p.dilation_h), cols = phase_taps(p.kw, sw, p.dilation_w);
  const auto& direct = pick_tile(kn.direct_nhwc, ceil_div(p.ow, sw), Og);
  const int64_t MR = (int64_t)direct.mr, NR = (int64_t)direct.nr, npanels = ceil_div(Og, NR);

  PhaseWeights<T> weights(p, rows, cols, NR, w_phases);

  // The widest phase row a thread computes, and its zero-padded input panel [tap row][column][c],
  // one per column phase with taps (at most kw of them, however large the stride): the panels
  // are filled for the first channel panel and reused by the rest.
  int64_t max_taps_h = 0, max_columns = 1;
  for (const PhaseTaps& pr : rows) max_taps_h = std::max<int64_t>(max_taps_h, (int64_t)pr.k.size());
  std::vector<int64_t> panel_slot((size_t)sw, -1);
  int64_t slots = 0;
  for (int64_t q = 0; q < sw; ++q) {
    const int64_t count = ceil_div(p.ow, sw), taps_w = (int64_t)cols[(size_t)q].k.size();
    if (taps_w == 0) continue;
    panel_slot[(size_t)q] = slots++;
    max_columns = std::max(max_columns, round_up(count, MR) + (taps_w - 1) * cols[(size_t)q].step);
  }
  const int64_t panel_size = max_taps_h * max_columns * Cg;

  const int64_t items = p.n * G * p.oh;
  const int threads = threads_for(2.0 * p.n * HW * Cg * p.o * KK, items);
  NhwcInput<T> input(x, nchw, p.n, p.c, HW, threads);  // NCHW: the input as NHWC (ops/pack.h)
  Workspace<T> panels((size_t)(slots * panel_size), threads);
  Workspace<T> rows_out(nchw ? (size_t)(p.ow * NR) : 0, threads);  // NCHW: one panel's output row
  const Epilogue<T> base = make_epilogue<T>(p);
  const bool epilogue_needed = bias || p.activation != Activation::None;

  parallel_region(threads, [&] {
    FlushDenormals ftz;
    input.transpose_batch(kn, /*wait=*/false);  // the weight pack's barrier follows
    weights.pack(kn, w);
    T* panel_base = panels.slice(omp_get_thread_num());
    T* out_row = nchw ? rows_out.slice(omp_get_thread_num()) : nullptr;
    DirectNhwcArgs<T> args;
    args.channels = Cg;
    args.stride = 1;
    args.ldy = sw * (nchw ? NR : p.o);
    // Output row oh of group g of image n, whose NHWC input is `image`.
    auto output_row = [&](int64_t n, int64_t g, int64_t oh, const T* image) {
      const int64_t fr = oh + p.pad_top, r = fr % sh;
      const PhaseTaps& pr = rows[(size_t)r];
      const int64_t taps_h = (int64_t)pr.k.size();
      const int64_t ih0 = fr / sh - pr.reach;  // input row of the first (flipped) row tap
      const bool rows_inside = G == 1 && ih0 >= 0 && ih0 + (taps_h - 1) * pr.step < p.h;
      for (int64_t np = 0; np < npanels; ++np) {
        const int64_t o0 = g * Og + np * NR;
        Epilogue<T> e = base;
        e.bias_col = bias ? bias + o0 : nullptr;
        args.epilogue = epilogue_needed ? &e : nullptr;
        args.nr = (size_t)std::min(NR, Og - np * NR);
        for (int64_t q = 0; q < sw; ++q) {
          const int64_t ow0 = ((q - p.pad_left) % sw + sw) % sw;  // first output column of phase q
          if (ow0 >= p.ow) continue;
          const PhaseTaps& pq = cols[(size_t)q];
          const int64_t taps_w = (int64_t)pq.k.size(), count = ceil_div(p.ow - ow0, sw);
          const int64_t iw0 = (ow0 + p.pad_left) / sw - pq.reach;  // input column of panel column 0
          const int64_t columns = round_up(count, MR) + (taps_w ? (taps_w - 1) * pq.step : 0);
          const int64_t panel_kh = columns * Cg;
          const bool no_taps = taps_h == 0 || taps_w == 0;
          // Tapless phases read no panel: the microkernel stores the epilogue of zero sums.
          T* panel = no_taps ? panel_base : panel_base + panel_slot[(size_t)q] * panel_size;
          // Panel column j holds input column iw0 + j, or zeros.
          auto fill_panel = [&](int64_t qa, int64_t qb) {
            fill_nhwc_panel(image, p.h, p.w, p.c, g * Cg, Cg, taps_h, ih0, pr.step, iw0, qa, qb, panel, panel_kh);
          };
          if (!rows_inside && !no_taps && np == 0) fill_panel(0, columns);
          args.kh = no_taps ? 0 : taps_h;
          args.kw = taps_w;
          args.dilation = pq.step;
          args.w = weights.phase_panel(r * sw + q, g, np, &args.ldw);
          const RowTiles row_tiles(count, MR);
          for (int64_t t = 0, i0 = 0; i0 < count; ++t) {
            const int64_t mr = row_tiles.size(t, i0, count);
            // Panel columns [i0, last] of the pixels the tile's kernel reads (all MR for `run`,
            // even past mr).
            const int64_t read = (int64_t)direct.rows_read((size_t)mr);
            const int64_t last = i0 + read - 1 + (taps_w ? (taps_w - 1) * pq.step : 0);
            if (rows_inside && !no_taps && iw0 + i0 >= 0 && iw0 + last < p.w) {
              args.panel = image + (ih0 * p.w + iw0 + i0) * p.c;
              args.panel_kh = pr.step * p.w * p.c;
            } else {
              if (rows_inside && !no_taps) fill_panel(i0, last + 1);  // an edge tile of in-place rows
              args.panel = panel + i0 * Cg;
              args.panel_kh = panel_kh;
            }
            args.mr = (size_t)mr;
            const int64_t ow = ow0 + i0 * sw;
            args.y = nchw ? out_row + ow * NR : y + ((n * p.oh + oh) * p.ow + ow) * p.o + o0;
            direct.for_rows((size_t)mr)(args);
            i0 += mr;
          }
        }
        if (nchw)  // out_row (column, channel) -> y (channel, column)
          transpose_blocks(kn, out_row, NR, p.ow, (int64_t)args.nr, y + (n * p.o + o0) * p.oh * p.ow + oh * p.ow,
                           p.oh * p.ow);
      }
    };
    input.for_each_row(kn, G, p.oh, output_row);
  });
}

// The direct form streams a phase's K x NR weight panel (K = its taps x C/groups) for every tile
// of a few pixels, which stays cheap while the panel stays in L1/L2; past that the per-tap GEMMs,
// which block K, win. Measured (2 threads, 4x4/2): 64->32 @64 (K = 256) direct 142-156 GFLOP/s
// NHWC, 115-129 NCHW, against 120-125 and 93-101 for the GEMMs. Since the tile stores are inlined
// and packed phase weights are read in place, K up to 1536 with the phase's weights within
// 640 KiB goes direct too (us, packed weights, GEMMs -> direct): 256->128 @14 (K = 1024) NHWC
// 488 -> 466, NCHW 492 -> 481 (plain weights 525 -> 493, 535 -> 517); 256->128 @28 NCHW
// 2165 -> 1851; 384->96 @14 NHWC 644 -> 541; 2x2/2 1024->128 @7 154 -> 91; 3x3/2 256->128 @14
// 371 -> 306; past it, 256->256 @7 (1 MiB) 317 -> 408. In NCHW the direct form also pays two
// reorders, which few output channels per group cannot carry: 3x3 32->16 @64 direct 56-71,
// GEMMs 86 (NHWC: direct 92, GEMMs 42); 2x2/2 128->64 @56 direct 106, GEMMs 72-90.
// The direct form's input panel spans the tile plus the taps' reach: with dilations far past the
// image (at most one tap of a row lands) it would be mostly zeros (and, at 2**31 - 1, gigabytes);
// the GEMMs never build it.
bool direct_panels_mostly_zeros(const ConvTranspose2dParams& p) {
  int64_t span_w = 0;
  for (const PhaseTaps& ph : phase_taps(p.kw, p.stride_w, p.dilation_w))
    span_w = std::max<int64_t>(span_w, ph.k.empty() ? 0 : (int64_t)(ph.k.size() - 1) * ph.step);
  return span_w > p.w + p.ow;
}

bool direct_transpose_pays(const ConvTranspose2dParams& p, std::string* why = nullptr) {
  auto reject = [&](const auto& reason) {
    if (why) *why = reason();
    return false;
  };
  if (p.layout == Layout::NCHW && p.o / p.groups < 32)
    return reject([] { return "NCHW with fewer than 32 output channels per group cannot carry its two reorders"; });
  if (direct_panels_mostly_zeros(p))
    return reject([] { return "its input panels would be mostly zeros at this dilation"; });
  int64_t taps_h = 0, taps_w = 0;
  for (const PhaseTaps& ph : phase_taps(p.kh, p.stride_h, p.dilation_h))
    taps_h = std::max<int64_t>(taps_h, (int64_t)ph.k.size());
  for (const PhaseTaps& ph : phase_taps(p.kw, p.stride_w, p.dilation_w))
    taps_w = std::max<int64_t>(taps_w, (int64_t)ph.k.size());
  // As conv2d's direct form (choose_conv2d_algorithm): K up to 768, or up to 1536 while a
  // phase's weights for the group stay within 640 KiB of float32 (L2 room beside the panels).
  const int64_t K = taps_h * taps_w * (p.c / p.groups);
  if (K <= 768 || (K <= 1536 && K * (p.o / p.groups) <= 160 * 1024)) return true;
  return reject([&] {
    return "a phase reduction of " + std::to_string(K) + " (taps x C/groups) would stream its weight panels from "
           "L2 or L3 for every few pixels; the GEMMs block it";
  });
}

// NCHW data on the NHWC per-tap GEMMs (reordering each input row as it is packed and each output
// row as it is gathered) once a group has a full AVX-512 panel of output channels. Measured, 2
// threads, 4x4/2, NCHW form vs NHWC form: 256->128 @14 847 vs 689 us, 512->256 @7 971 vs 945;
// with few output channels the NHWC tiles are mostly idle: 3x3 32->16 @64 214 vs 313,
// 3x3/2 64->8 @64 213 vs 453, 4x4/2 256->24 @28 457 vs 562.
bool nchw_takes_nhwc_gemms(const ConvTranspose2dParams& p) { return p.o / p.groups >= 64; }

// A stride-1 transposed convolution is the convolution of the input with the kernel flipped and
// its channel axes swapped, padded by dilation*(k - 1) - pad on top (left), the rest below
// (right): conv2d's params for it, if both paddings come out non-negative and there is one group
// (conv2d's grouped forms are no faster than the phase forms).
bool stride1_as_conv2d(const ConvTranspose2dParams& p, Conv2dParams* q, std::string* why = nullptr) {
  auto reject = [&](const char* reason) {
    if (why) *why = reason;
    return false;
  };
  if (p.stride_h != 1 || p.stride_w != 1) return reject("a stride other than 1");
  if (p.groups != 1) return reject("groups other than 1");
  const int64_t reach_h = p.dilation_h * (p.kh - 1), reach_w = p.dilation_w * (p.kw - 1);
  const int64_t top = reach_h - p.pad_top, left = reach_w - p.pad_left;
  if (top < 0 || left < 0 || p.oh + reach_h - p.h - top < 0 || p.ow + reach_w - p.w - left < 0)
    return reject("padding past the kernel's reach");
  if (q) {
    q->n = p.n, q->c = p.c, q->h = p.h, q->w = p.w, q->o = p.o, q->kh = p.kh, q->kw = p.kw;
    q->oh = p.oh, q->ow = p.ow, q->stride_h = q->stride_w = 1;
    q->dilation_h = p.dilation_h, q->dilation_w = p.dilation_w, q->pad_top = top, q->pad_left = left;
    q->groups = 1, q->layout = p.layout, q->activation = p.activation, q->activation_param = p.activation_param;
  }
  return true;
}

// conv2d's weights for stride1_as_conv2d: NCHW (C, O, KH, KW) -> (O, C, KH, KW), NHWC
// (KH, KW, O, C) -> (KH, KW, C, O), each tap flipped in both dimensions.
template <class T>
void flipped_conv2d_weights(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const T* w, T* w2) {
  const int64_t KK = p.kh * p.kw;
  if (p.layout == Layout::NCHW) {
    constexpr int64_t B = 16;  // blocks of channels: reads and writes both stay on a few lines
    for (int64_t o0 = 0; o0 < p.o; o0 += B)
      for (int64_t c0 = 0; c0 < p.c; c0 += B)
        for (int64_t o = o0; o < std::min(p.o, o0 + B); ++o)
          for (int64_t c = c0; c < std::min(p.c, c0 + B); ++c)
            for (int64_t t = 0; t < KK; ++t) w2[(o * p.c + c) * KK + t] = w[(c * p.o + o) * KK + KK - 1 - t];
  } else {
    for (int64_t t = 0; t < KK; ++t)  // tap t's (O, C) block -> flipped tap's (C, O) block
      transpose_blocks(kn, w + (KK - 1 - t) * p.o * p.c, p.c, p.o, p.c, w2 + t * p.c * p.o, p.o);
  }
}

template <class T>
void run_conv_transpose(const ConvTranspose2dParams& p, const T* x, const T* w, const T* bias, T* y,
                        const T* w_phases) {
  check_conv_params(p, "conv_transpose2d");
  if (p.weight_winograd_given && !w_phases)
    throw std::invalid_argument("conv_transpose2d: weight_winograd_given without Winograd weights");
  const KernelTable& table = active_kernels();
  const ConvKernels<T>& kn = kernels_for<T>(table);
  const DepthwiseKernels<T>& kd = depthwise_kernels_for<T>(table);
  ConvTransposeAlgorithm algo =
      p.algorithm == ConvTransposeAlgorithm::Auto ? choose_conv_transpose2d_algorithm(p) : p.algorithm;
  if (p.weight_winograd_given && algo != ConvTransposeAlgorithm::Winograd)
    throw std::invalid_argument("conv_transpose2d: Winograd weights given to a call that does not run Winograd");
  if (algo == ConvTransposeAlgorithm::Winograd) {
    std::string rejected;
    if (!winograd_transpose_applies(p, &rejected))
      throw std::invalid_argument("conv_transpose2d: algorithm='winograd' needs a kernel twice the stride, no "
                                  "dilation and one group; got " + rejected);
    if (conv_transpose_winograd(p, kn, x, w, w_phases, bias, y)) return;
    // Non-finite values: recomputed so that they propagate as in a direct sum, from the plain
    // weights (w_phases held Winograd's).
    if (p.weight_winograd_given) w_phases = nullptr;
    algo = direct_transpose_pays(p) ? ConvTransposeAlgorithm::Direct : ConvTransposeAlgorithm::Gemm;
  }
  if (algo == ConvTransposeAlgorithm::Conv2d) {
    Conv2dParams q;
    std::string rejected;
    if (!stride1_as_conv2d(p, &q, &rejected))
      throw std::invalid_argument("conv_transpose2d: algorithm='conv2d' needs stride 1, one group and padding "
                                  "within the kernel's reach; got " + rejected);
    Workspace<T> flipped((size_t)(p.c * p.o * p.kh * p.kw), 1);
    flipped_conv2d_weights(p, kn, w, flipped.data());
    conv2d(q, x, flipped.data(), bias, y);
    return;
  }
  if (algo == ConvTransposeAlgorithm::Direct && direct_panels_mostly_zeros(p))
    throw std::invalid_argument("conv_transpose2d: algorithm='direct' would build input panels mostly of zeros "
                                "at this dilation; use algorithm='gemm' or 'auto'");
  if (algo == ConvTransposeAlgorithm::Direct) conv_transpose_direct(p, kn, x, w, w_phases, bias, y);
  else if (p.layout == Layout::NCHW && !nchw_takes_nhwc_gemms(p)) conv_transpose_nchw(p, kn, kd, x, w, bias, y);
  else conv_transpose_nhwc(p, kn, kd, x, w, w_phases, bias, y);
}

}  // namespace

ConvTransposeAlgorithm choose_conv_transpose2d_algorithm(const ConvTranspose2dParams& p, std::string* why) {
  // The reason is built only when asked for (explain): a plain call runs this on every call.
  auto pick = [&](ConvTransposeAlgorithm a, const auto& reason) {
    if (why) *why = reason();
    return a;
  };
  const bool nchw = p.layout == Layout::NCHW;
  if (winograd_transpose_applies(p) && winograd_transpose_pays(p))
    return pick(ConvTransposeAlgorithm::Winograd, [&] {
      return "winograd: F(3x3, 2x2) on each of the " + std::to_string(p.stride_h * p.stride_w) +
             " stride phases from one input transform, 16 multiplies per 3x3 outputs and channel pair where direct "
             "does 36, summed over the input channels by the GEMM microkernel" +
             (nchw ? std::string(" (NCHW: rows of tiles go through NHWC buffers)") : std::string()) +
             "; direct and gemm rejected: 2.25x the multiply-adds";
    });
  // Stride 1: conv2d where it runs Winograd, or where the phase forms would take the GEMMs.
  Conv2dParams q;
  if (stride1_as_conv2d(p, &q)) {
    std::string conv2d_why;
    const ConvAlgorithm a = choose_conv2d_algorithm(q, why ? &conv2d_why : nullptr);
    if (a == ConvAlgorithm::Winograd || !direct_transpose_pays(p))
      return pick(ConvTransposeAlgorithm::Conv2d, [&] {
        return "conv2d: at stride 1, a convolution with the kernel flipped, padded by dilation*(k - 1) - padding; "
               "there " + conv2d_why;
      });
  }
  auto winograd_rejected = [&] {
    std::string reason;
    if (!winograd_transpose_applies(p, &reason)) return "; winograd rejected: " + reason;
    ConvTranspose2dParams packed = p;
    packed.weight_winograd_given = true;
    return std::string("; winograd rejected: too few tiles or channels to repay its transforms") +
           (!p.weight_winograd_given && winograd_transpose_pays(packed)
                ? " (a packed weight, which carries its weight transform, would take it)"
                : "");
  };
  std::string direct_rejected;
  if (direct_transpose_pays(p, &direct_rejected))
    return pick(ConvTransposeAlgorithm::Direct, [&] {
      return std::string("direct: each stride phase a correlation on the direct kernels, written straight into the "
                         "output") + (nchw ? " (NCHW: input and output rows reordered)" : "") +
             "; gemm rejected: the phase reductions fit the direct kernels' weight panels" + winograd_rejected();
    });
  return pick(ConvTransposeAlgorithm::Gemm, [&] {
    return std::string("gemm: one GEMM per kernel tap accumulated into a canvas, then gathered into the output") +
           (nchw && nchw_takes_nhwc_gemms(p) ? " (NCHW: on the NHWC GEMMs, rows reordered)" : "") +
           "; direct rejected: " + direct_rejected + winograd_rejected();
  });
}

void conv_transpose2d(const ConvTranspose2dParams& p, const float* x, const float* w, const float* b, float* y,
                      const float* w_phases) {
  run_conv_transpose(p, x, w, b, y, w_phases);
}
void conv_transpose2d(const ConvTranspose2dParams& p, const double* x, const double* w, const double* b,
                      double* y, const double* w_phases) {
  run_conv_transpose(p, x, w, b, y, w_phases);
}

}  // namespace pycnn
