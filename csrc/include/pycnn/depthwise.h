// Public C++ entry points: depthwise and depthwise-separable convolution (no Python here).
//
// Callers pass fully resolved parameters (pycnn/ops.py does this on the Python side): shapes
// checked, padding split, output size computed. Tensors are dense and C-contiguous.
#pragma once

#include <cstdint>

#include "pycnn/conv.h"

namespace pycnn {

// A depthwise convolution with depth multiplier M: output channel c*M + m is input channel c
// filtered by its own KH x KW kernel.
struct DepthwiseConv2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;   // input batch, channels, height, width
  int64_t multiplier = 1;               // M: output channels = c * multiplier
  int64_t kh = 1, kw = 1;               // kernel height, width
  int64_t oh = 1, ow = 1;               // output height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;    // bottom/right padding is implied by oh/ow
  Layout layout = Layout::NCHW;         // NCHW: weight (C*M, 1, KH, KW); NHWC: weight (KH, KW, C, M)
  Activation activation = Activation::None;
  double activation_param = 0.0;        // leaky_relu slope, elu alpha
};

// y = activation(depthwise(x, weight) + bias); bias (C*M values) may be null.
// Throws std::invalid_argument on inconsistent params.
void depthwise_conv2d(const DepthwiseConv2dParams& p, const float* x, const float* weight,
                      const float* bias, float* y);
void depthwise_conv2d(const DepthwiseConv2dParams& p, const double* x, const double* weight,
                      const double* bias, double* y);

// Depthwise step (geometry in `depthwise`; its activation fields describe the final activation),
// then a 1x1 convolution to `o` channels, then bias and activation. Pointwise weight: NCHW
// (O, C*M, 1, 1), NHWC (1, 1, C*M, O). The depthwise result is produced band by band into
// per-thread scratch and consumed by the GEMM right away: it is never materialised whole.
struct SeparableConv2dParams {
  DepthwiseConv2dParams depthwise;
  int64_t o = 1;
};

void separable_conv2d(const SeparableConv2dParams& p, const float* x, const float* depthwise_weight,
                      const float* pointwise_weight, const float* bias, float* y);
void separable_conv2d(const SeparableConv2dParams& p, const double* x, const double* depthwise_weight,
                      const double* pointwise_weight, const double* bias, double* y);

// Bytes of per-thread scratch the fused separable convolution uses for its depthwise bands
// (for reporting the memory saved against materialising the whole intermediate).
int64_t separable_conv2d_scratch_bytes(const SeparableConv2dParams& p, int element_size);

}  // namespace pycnn
