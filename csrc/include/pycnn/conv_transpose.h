// Public C++ entry point: transposed 2-D convolution (no Python here).
//
// Callers pass fully resolved parameters (pycnn/ops.py resolves PyTorch/Keras padding rules,
// output_padding and the output size). Tensors are dense and C-contiguous.
#pragma once

#include <cstdint>
#include <string>

#include "pycnn/conv.h"

namespace pycnn {

// Direct: each stride phase a correlation on the direct microkernel; Gemm: one GEMM per tap into a
// canvas; Winograd: F(3x3, 2x2) on every phase (kernels of twice the stride, no dilation, one group);
// Conv2d: stride 1 and one group, as conv2d with the kernel flipped (whichever algorithm conv2d's
// `Auto` picks, Winograd for 3x3).
enum class ConvTransposeAlgorithm : int { Auto = 0, Direct = 1, Gemm = 2, Winograd = 3, Conv2d = 4 };

// Input pixel (i, j) through tap (a, b) adds x * w to output (i*stride_h + a*dilation_h - pad_top,
// j*stride_w + b*dilation_w - pad_left); contributions outside [0, oh) x [0, ow) are dropped,
// and output cells that no tap reaches (output_padding) hold only the bias.
struct ConvTranspose2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;   // input batch, channels, height, width
  int64_t o = 1, kh = 1, kw = 1;        // output channels, kernel height, width
  int64_t oh = 1, ow = 1;               // output height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;    // cells cropped from the top/left of the full result
  int64_t groups = 1;
  Layout layout = Layout::NCHW;         // NCHW: weight (C, O/g, KH, KW); NHWC: weight (KH, KW, O/g, C)
  Activation activation = Activation::None;
  double activation_param = 0.0;
  ConvTransposeAlgorithm algorithm = ConvTransposeAlgorithm::Auto;
  // The caller passes, as weight_phases, the weights transformed for Winograd
  // (conv_transpose2d_winograd_weights), made once ahead of time; `Auto` then counts no weight
  // transform, and the call must run Winograd.
  bool weight_winograd_given = false;
};

// y = activation(conv_transpose(x, weight) + bias); bias (O values) may be null.
// Work is the real multiply-adds (no zero insertion), split by stride phase: each phase either
// as a direct stride-1 correlation written straight into the output, or (long reductions) as one
// packed GEMM per tap accumulated into a canvas, then gathered into the output; or, kernels of
// twice the stride, by Winograd F(3x3, 2x2) (p.algorithm; `Auto` picks). Bias and activation are
// fused. Throws std::invalid_argument on inconsistent params, a forced Winograd that does not
// apply, or Winograd weights given to a call that does not run Winograd.
// weight_phases (optional): with p.weight_winograd_given, the weights' Winograd transform
// (conv_transpose2d_winograd_weights, below; required then); else the same weights split by
// stride phase, for this call's strides and dilations: for phase r*stride_w + q, group g, a
// K x O/g row-major matrix whose rows are k = (m, n, c): the m-th row tap kh and n-th column tap
// kw of the phase, each list in descending order of the taps with kh*dilation_h % stride_h == r
// (kw: q), and input channel c of the group; matrices in order of phase, then group. Forms that
// read phase panels read them in place instead of packing them per call.
void conv_transpose2d(const ConvTranspose2dParams& p, const float* x, const float* weight,
                      const float* bias, float* y, const float* weight_phases = nullptr);
void conv_transpose2d(const ConvTranspose2dParams& p, const double* x, const double* weight,
                      const double* bias, double* y, const double* weight_phases = nullptr);

// The algorithm `Auto` resolves to for p, and why (which choices it rejected and why).
ConvTransposeAlgorithm choose_conv_transpose2d_algorithm(const ConvTranspose2dParams& p, std::string* why = nullptr);

// The weights of a conv_transpose2d with kernel 2*stride_h x 2*stride_w and one group (C input,
// O output channels; (C, O, KH, KW) for NCHW, (KH, KW, O, C) for NHWC) transformed for Winograd
// F(3x3, 2x2): 16 * C * winograd_weights_stride(stride_h * stride_w * O) elements, passed as
// weight_phases with p.weight_winograd_given.
void conv_transpose2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride_h, int64_t stride_w,
                                       const float* w, float* u);
void conv_transpose2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride_h, int64_t stride_w,
                                       const double* w, double* u);

}  // namespace pycnn
