// conv2d by Winograd F(2x2, 3x3) (ops/winograd.cpp): 3x3 kernels, stride 1, no dilation, one
// group. Called by conv2d's run_conv2d (ops/conv2d.cpp) for algorithm "winograd" or when "auto"
// picks it.
#pragma once

#include <string>

#include "kernels/microkernels.h"
#include "pycnn/conv.h"

namespace pycnn {

// Whether Winograd can compute p: a 3x3 kernel, stride 1, no dilation, one group. When it
// cannot and `why` is given, *why says why ("a 5x5 kernel ..."); it is built only then, as
// "auto" asks on every call.
bool winograd_applies(const Conv2dParams& p, std::string* why = nullptr);

// Whether "auto" should take Winograd for p (which winograd_applies accepts): enough tiles to
// repay each call's weight transform (none with p.weight_winograd_given), enough channels for
// its GEMMs.
bool winograd_pays(const Conv2dParams& p);

// y = act(conv(x, w) + bias) for a p that winograd_applies accepts. w: OIHW (NCHW) or HWIO
// (NHWC). prepared: with p.weight_winograd_given the transformed weights
// (conv2d_winograd_weights); else, NCHW with p.weight_hwio_given, the weights as HWIO; else null. Returns false, with y overwritten, when some value before the epilogue came
// out non-finite: the transforms mix a tile's inputs, so an Inf among them can turn outputs
// that read it into NaN (inf - inf) where a direct sum gives Inf; the caller then recomputes
// directly, so non-finite data propagates exactly as in the other algorithms.
template <class T>
bool conv_winograd(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w, const T* prepared,
                   const T* bias, T* y);

}  // namespace pycnn
