// Public C++ entry point: transposed 2-D convolution (no Python here).
//
// Callers pass fully resolved parameters (pycnn/ops.py resolves PyTorch/Keras padding rules,
// output_padding and the output size). Tensors are dense and C-contiguous.
#pragma once

#include <cstdint>

#include "pycnn/conv.h"

namespace pycnn {

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
};

// y = activation(conv_transpose(x, weight) + bias); bias (O values) may be null.
// Work is the real multiply-adds (no zero insertion), split by stride phase: each phase either
// as a direct stride-1 correlation written straight into the output, or (long reductions) as one
// packed GEMM per tap accumulated into a canvas, then gathered into the output. Bias and
// activation are fused. Throws std::invalid_argument on inconsistent params.
// weight_phases (optional): the same weights split by stride phase, for this call's strides and
// dilations: for phase r*stride_w + q, group g, a K x O/g row-major matrix whose rows are
// k = (m, n, c): the m-th row tap kh and n-th column tap kw of the phase, each list in
// descending order of the taps with kh*dilation_h % stride_h == r (kw: q), and input channel c
// of the group; matrices in order of phase, then group. Forms that read phase panels read them
// in place instead of packing them per call.
void conv_transpose2d(const ConvTranspose2dParams& p, const float* x, const float* weight,
                      const float* bias, float* y, const float* weight_phases = nullptr);
void conv_transpose2d(const ConvTranspose2dParams& p, const double* x, const double* weight,
                      const double* bias, double* y, const double* weight_phases = nullptr);

}  // namespace pycnn
