// conv2d by Winograd (ops/winograd.cpp): 3x3 kernels, no dilation, groups too; F(2x2, 3x3) at
// stride 1 and, the even and odd inputs apart, at stride 2. Called by conv2d's run_conv2d
// (ops/conv2d.cpp) for algorithm "winograd" or when "auto" picks it. And conv_transpose2d by
// F(3x3, 2x2) on the same engine (below).
#pragma once

#include <string>

#include "kernels/microkernels.h"
#include "pycnn/conv.h"
#include "pycnn/conv_transpose.h"

namespace pycnn {

// Whether Winograd can compute p: a 3x3 kernel, stride 1 or 2 (the same both ways), no
// dilation. When it cannot and `why` is given, *why says why ("a 5x5 kernel ...");
// it is built only then, as "auto" asks on every call.
bool winograd_applies(const Conv2dParams& p, std::string* why = nullptr);

// Whether "auto" should take Winograd for p (which winograd_applies accepts): enough tiles to
// repay each call's weight transform (none with p.weight_winograd_given), enough channels for
// its GEMMs; at stride 2 one group and a U that stays in the L3 (larger with
// p.weight_winograd_given on a core whose L2 is 1 MiB or more).
bool winograd_pays(const Conv2dParams& p);

// y = act(conv(x, w) + bias) for a p that winograd_applies accepts. w: OIHW (NCHW) or HWIO
// (NHWC). prepared: with p.weight_winograd_given the transformed weights
// (conv2d_winograd_weights); else, NCHW with p.weight_hwio_given, the weights as HWIO; else
// null. Returns false, with y overwritten, when some value before the epilogue came out
// non-finite: the transforms mix a tile's inputs, so an Inf among them can turn outputs that
// read it into NaN (inf - inf) where a direct sum gives Inf; the caller then recomputes
// directly, so non-finite data propagates exactly as in the other algorithms.
template <class T>
bool conv_winograd(const Conv2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w, const T* prepared,
                   const T* bias, T* y);

// conv_transpose2d by Winograd F(3x3, 2x2) on every stride phase (ops/winograd.cpp): kernels of
// twice the stride in each dimension (the 4x4/2 upsampling layers), no dilation, one group.
// Called by run_conv_transpose (ops/conv_transpose.cpp) for algorithm "winograd" or when "auto"
// picks it. `why` as for winograd_applies.
bool winograd_transpose_applies(const ConvTranspose2dParams& p, std::string* why = nullptr);

// Whether "auto" should take it (for a p winograd_transpose_applies accepts): as winograd_pays.
bool winograd_transpose_pays(const ConvTranspose2dParams& p);

// y = act(conv_transpose(x, w) + bias), w as conv_transpose2d takes it (NCHW (C, O, KH, KW), NHWC
// (KH, KW, O, C)); u: with p.weight_winograd_given its transform
// (conv_transpose2d_winograd_weights), else null. Returns false, with y overwritten, when a value
// before the epilogue came out non-finite; the caller then recomputes by another algorithm (see
// conv_winograd).
template <class T>
bool conv_transpose_winograd(const ConvTranspose2dParams& p, const ConvKernels<T>& kn, const T* x, const T* w,
                             const T* u, const T* bias, T* y);

}  // namespace pycnn
