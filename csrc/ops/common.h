// Small pieces every convolution op shares, written once.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

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
