// Public C++ entry points of pycnn (no Python here: a C++ framework can embed csrc/ alone).
//
// Callers pass fully resolved parameters: shapes already checked, padding already split,
// output size already computed (pycnn/ops.py does this on the Python side). Tensors are dense
// and C-contiguous in the stated layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pycnn {

enum class Layout : int { NCHW = 0, NHWC = 1 };

// Fused activation applied after the bias, inside the kernels.
enum class Activation : int {
  None = 0, Relu = 1, Relu6 = 2, LeakyRelu = 3, Sigmoid = 4, Tanh = 5, Silu = 6, Elu = 7,
};

enum class ConvAlgorithm : int { Auto = 0, Direct = 1, Im2col = 2, Winograd = 3 };

// One 2-D convolution. All sizes are element counts; 64-bit so that large tensors index safely.
struct Conv2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;   // input batch, channels, height, width
  int64_t o = 1, kh = 1, kw = 1;        // output channels, kernel height, width
  int64_t oh = 1, ow = 1;               // output height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;    // bottom/right padding is implied by oh/ow
  int64_t groups = 1;
  Layout layout = Layout::NCHW;         // NCHW: weight (O, C/g, KH, KW); NHWC: weight (KH, KW, C/g, O)
  Activation activation = Activation::None;
  double activation_param = 0.0;        // leaky_relu slope, elu alpha
  ConvAlgorithm algorithm = ConvAlgorithm::Auto;
  // NCHW only: the caller also passes the weights reordered to HWIO (weight_hwio below), made
  // once ahead of time, so no call pays for the reorder (and `Auto` does not count it).
  bool weight_hwio_given = false;
  // Instead: the caller passes the weights transformed for Winograd (conv2d_winograd_weights),
  // made once ahead of time; `Auto` then counts no weight transform.
  bool weight_winograd_given = false;
};

// y = activation(conv(x, weight) + bias). bias may be null. Releases nothing, allocates workspace
// once per call outside its parallel region. Throws std::invalid_argument on inconsistent params.
// weight_hwio: with p.weight_hwio_given (NCHW), the same weights as (KH, KW, C/g, O); with
// p.weight_winograd_given, their Winograd transform (conv2d_winograd_weights), and the call must
// run Winograd; required in both cases, ignored otherwise.
void conv2d(const Conv2dParams& p, const float* x, const float* weight, const float* bias, float* y,
            const float* weight_hwio = nullptr);
void conv2d(const Conv2dParams& p, const double* x, const double* weight, const double* bias, double* y,
            const double* weight_hwio = nullptr);

// The weights of a 3x3 conv2d with one group (C input, O output channels; OIHW for NCHW, HWIO
// for NHWC) transformed for Winograd F(2x2, 3x3) at `stride` 1 or 2 (each its own transform):
// 16 * C * winograd_weights_stride(O) elements, passed as conv2d's weight_hwio argument with
// p.weight_winograd_given to calls of that stride.
int64_t winograd_weights_stride(int64_t o);
// The `stride` of the Winograd weights a conv2d call of p takes: the stride Winograd runs p at, 1
// or 2 (a stride over a single output row or column counts as the other's); 1 where Winograd
// cannot run p (the call then says why).
int64_t conv2d_winograd_stride(const Conv2dParams& p);
void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride, const float* w, float* u);
void conv2d_winograd_weights(Layout layout, int64_t c, int64_t o, int64_t stride, const double* w, double* u);

// The algorithm `Auto` resolves to for these parameters, and why (one line per rejected choice).
ConvAlgorithm choose_conv2d_algorithm(const Conv2dParams& p, std::string* why = nullptr);

}  // namespace pycnn
