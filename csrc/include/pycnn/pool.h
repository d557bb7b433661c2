// Public C++ entry points for pooling (no Python here).
//
// Callers pass fully resolved parameters: padding split per side, output size computed
// (pycnn/_args.py does this on the Python side, following PyTorch for integer padding and
// Keras for "same"/"valid"). Tensors are dense and C-contiguous in the stated layout.
//
// Semantics shared by every entry point:
//  - max: padded cells never win; a NaN in a window gives NaN; a window with no input cell
//    (possible only with dilation) gives -inf. Values are selected, never computed, so
//    denormals and signed zeros pass through unchanged.
//  - avg: the window sum divided by the window's count: with count_include_pad, the window
//    clipped to the padded input [-pad_top, h + pad_bottom) x [-pad_left, w + pad_right)
//    (PyTorch); without, the window clipped to the input. Computed in T.
#pragma once

#include <cstdint>

#include "pycnn/conv.h"  // Layout

namespace pycnn {

enum class PoolKind : int { Max = 0, Avg = 1 };

// One 2-D pooling. Output cell (oh, ow) reads input rows oh*stride_h - pad_top + i*dilation_h,
// i < kh, and columns likewise; rows and columns outside the input are padding.
struct Pool2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input batch, channels, height, width
  int64_t kh = 1, kw = 1;              // window height, width
  int64_t oh = 1, ow = 1;              // output height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool count_include_pad = true;       // avg only
  PoolKind kind = PoolKind::Max;
  Layout layout = Layout::NCHW;        // x (n, c, h, w) / (n, h, w, c); y likewise with oh, ow
};

// y = pool(x). Throws std::invalid_argument on inconsistent params (also for an avg window
// that would count no cell).
void pool2d(const Pool2dParams& p, const float* x, float* y);
void pool2d(const Pool2dParams& p, const double* x, double* y);

// y[n, c] = max or mean of x[n, c, :, :] (x in `layout`, y dense (n, c)).
void global_pool2d(PoolKind kind, Layout layout, int64_t n, int64_t c, int64_t h, int64_t w,
                   const float* x, float* y);
void global_pool2d(PoolKind kind, Layout layout, int64_t n, int64_t c, int64_t h, int64_t w,
                   const double* x, double* y);

// Max over groups of pool_size consecutive channels: y channel g = max of x channels
// [g*pool_size, (g + 1)*pool_size). pool_size must divide c; y has c / pool_size channels.
void depth_max_pool2d(Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pool_size,
                      const float* x, float* y);
void depth_max_pool2d(Layout layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t pool_size,
                      const double* x, double* y);

}  // namespace pycnn
