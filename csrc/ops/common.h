// Small pieces every convolution op shares, written once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// The fused bias + activation epilogue of an op (any parameter struct with `activation` and
// `activation_param`); ops fill in the bias pointer per tile.
template <class T, class Params>
Epilogue<T> make_epilogue(const Params& p) {
  Epilogue<T> e;
  e.activation = (int)p.activation;
  e.param = (T)p.activation_param;
  return e;
}

// The reduction blocks of the ops' GEMMs: K in equal blocks of at most 3 KiB of elements (768
// float32, 384 float64: a 3x3 kernel row of 256 channels), a multiple of 16. Each block reloads
// and stores the output tiles once more, and the image tile, the block's weight panel and the
// outputs still fit L2 together. Measured, 2 threads, us, blocks of at most 256 -> 768 floats:
// conv2d NHWC 3x3 256->256 @14 572 -> 534, 512 @7 679 -> 605, 3x3/2 128->256 @56 1146 -> 1049,
// @112 4489 -> 4304 (blocks of 1024, 1024 + 128 for K = 1152, slower again); conv2d NCHW 1x1
// 512->128 @28 272 -> 250, 1024->256 @14 306 -> 281; separable NCHW 728 @19 1386 -> 1307,
// 512 @14 373 -> 354; float64 3x3 256->256 @14 1310 -> 1160.
template <class T>
constexpr int64_t kMaxReductionBlock = 3072 / (int64_t)sizeof(T);
template <class T>
int64_t reduction_block(int64_t K) {
  return std::min(K, round_up(ceil_div(K, ceil_div(K, kMaxReductionBlock<T>)), 16));
}

// Guards the C++ core against inconsistent parameters from a caller that bypasses pycnn.ops
// (Conv2dParams, ConvTranspose2dParams: the same fields).
template <class Params>
void check_conv_params(const Params& p, const char* op) {
  const int64_t dims[] = {p.n, p.c, p.h, p.w, p.o, p.kh, p.kw, p.oh, p.ow, p.stride_h,
                          p.stride_w, p.dilation_h, p.dilation_w, p.groups};
  for (int64_t d : dims)
    if (d < 1) throw std::invalid_argument(std::string(op) + ": sizes, strides, dilations and groups must be >= 1");
  if (p.pad_top < 0 || p.pad_left < 0) throw std::invalid_argument(std::string(op) + ": negative padding");
  if (p.c % p.groups || p.o % p.groups)
    throw std::invalid_argument(std::string(op) + ": groups must divide C and O");
}

}  // namespace pycnn
