"""Pure-NumPy reference implementations of `pycnn.ops`: same signatures, same answers.

Clarity over speed, but vectorized: convolutions are im2col (a strided window view, then one
matrix product per group), transposed convolutions scatter one kernel tap at a time, pooling
reduces over a window view. Every shape rule and argument check comes from `pycnn._args`.

Arithmetic: inputs are first brought to the result dtype (float32, or float64 if any input is
float64), then everything (products, sums, bias, activation) is computed in float64 and rounded
to the result dtype once at the end. Max pooling only compares, so it works in the result dtype.

Internally every op works on an NCHW batch with PyTorch weight layouts; NHWC inputs and Keras
weight layouts are transposed in and out at the edges.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _args

__all__ = [
    "apply_activation",
    "conv2d",
    "depthwise_conv2d",
    "separable_conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "depth_max_pool2d",
]

_ACC = np.float64  # accumulation dtype


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------

def _sigmoid(y):
    # exp of a non-positive number only: no overflow for large |y|
    z = np.exp(-np.abs(y))
    return np.where(y >= 0, 1 / (1 + z), z / (1 + z))


def _activate(y: np.ndarray, name, param: float) -> np.ndarray:
    one = y.dtype.type
    if name is None:
        return y
    if name == "relu":
        return np.maximum(y, one(0))
    if name == "relu6":
        return np.minimum(np.maximum(y, one(0)), one(6))
    if name == "leaky_relu":
        return np.where(y > 0, y, y * one(param))
    if name == "sigmoid":
        return _sigmoid(y).astype(y.dtype, copy=False)
    if name == "tanh":
        return np.tanh(y)
    if name == "silu":
        return (y * _sigmoid(y)).astype(y.dtype, copy=False)
    if name == "elu":
        return np.where(y > 0, y, one(param) * np.expm1(np.minimum(y, one(0))))
    raise AssertionError(f"unhandled activation {name!r}")  # _args.activation rejects unknown names


def apply_activation(y, name_or_spec):
    """Apply an activation (None, a name, or (name, parameter)) elementwise, in y's dtype.

    relu, relu6, leaky_relu (slope 0.01 or ("leaky_relu", slope)), sigmoid, tanh,
    silu (alias swish), elu (alpha 1 or ("elu", alpha)). Returns a new array (or y for None).
    """
    _, param, name = _args.activation(name_or_spec)
    y = np.asarray(y)
    if y.dtype.kind != "f":
        y = y.astype(_args.result_dtype(y))
    return _activate(y, name, param)


# ---------------------------------------------------------------------------------------------
# Layout and dtype plumbing
# ---------------------------------------------------------------------------------------------

def _arrays(**named):
    """Every given input as an ndarray (None stays None), and their common result dtype."""
    arrays = {k: None if v is None else _args.as_array(v, k) for k, v in named.items()}
    return arrays, _args.result_dtype(*arrays.values())


def _compute(a: np.ndarray, dtype) -> np.ndarray:
    """Bring an input to the result dtype (that rounding is part of the contract), then to float64."""
    return a.astype(dtype, copy=False).astype(_ACC, copy=False)


def _to_nchw(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "NCHW" else x.transpose(0, 3, 1, 2)


def _from_nchw(y: np.ndarray, layout: str) -> np.ndarray:
    return y if layout == "NCHW" else y.transpose(0, 2, 3, 1)


def _conv_weight_nchw(w: np.ndarray, layout: str) -> np.ndarray:
    """Keras conv kernel (KH, KW, C/groups, O) -> PyTorch (O, C/groups, KH, KW)."""
    return w if layout == "NCHW" else w.transpose(3, 2, 0, 1)


def _deliver(y: np.ndarray, dtype, unbatched: bool, out):
    """Round to the result dtype, drop the batch axis of an unbatched input, write into `out`."""
    y = y.astype(dtype, copy=False)
    if unbatched:
        y = y[0]
    if out is None:
        return np.ascontiguousarray(y)
    out[...] = y
    return out


def _pad(x: np.ndarray, pad, value=0.0) -> np.ndarray:
    """Pad the two spatial axes of an NCHW batch; pad = ((top, bottom), (left, right))."""
    return np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]), constant_values=value)


def _windows(xp: np.ndarray, kernel, stride, dilation, out_hw) -> np.ndarray:
    """View of every (dilated) window of a padded NCHW batch: (N, C, OH, OW, KH, KW).

    Window (oh, ow) starts at padded cell (oh*sh, ow*sw) and reads every dh-th row and every
    dw-th column. A view: nothing is copied.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = sliding_window_view(xp, span, axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow]


def _add_bias_and_activate(y: np.ndarray, bias, act) -> np.ndarray:
    """y: NCHW float64. Bias per channel, then the activation (code, param, name)."""
    if bias is not None:
        y = y + bias[None, :, None, None]
    return _activate(y, act[2], act[1])


# ---------------------------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------------------------

def _conv2d_nchw(x: np.ndarray, w: np.ndarray, stride, pad, dilation, groups: int, out_hw) -> np.ndarray:
    """Grouped cross-correlation by im2col. x (N, C, H, W), w (O, C/groups, KH, KW) -> (N, O, OH, OW)."""
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    oh, ow = out_hw
    cols = _windows(_pad(x, pad), (kh, kw), stride, dilation, out_hw)   # (N, C, OH, OW, KH, KW)
    # im2col matrix per group: rows are output pixels, columns are (channel, tap) pairs
    cols = cols.reshape(n, groups, cg, oh, ow, kh, kw)
    cols = cols.transpose(0, 1, 3, 4, 2, 5, 6).reshape(n, groups, oh * ow, cg * kh * kw)
    w_mat = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)   # (G, Cg*KH*KW, O/G)
    y = cols @ w_mat                                                        # (N, G, OH*OW, O/G)
    return y.transpose(0, 1, 3, 2).reshape(n, o, oh, ow)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None,
           data_format="NCHW", algorithm="auto", out=None):
    """2-D convolution (cross-correlation), optional bias and activation.

    NCHW: weight (O, C/groups, KH, KW); NHWC: weight (KH, KW, C/groups, O).
    `algorithm` is accepted and ignored: the reference has one algorithm.
    """
    layout = _args.data_format(data_format)
    act = _args.activation(activation)
    a, dtype = _arrays(x=x, weight=weight, bias=bias)
    xb, unbatched = _args.batched(a["x"])
    g = _args.conv2d_geometry(xb.shape, a["weight"].shape, stride=stride, padding_spec=padding,
                              dilation=dilation, groups=groups, layout=layout)
    if a["bias"] is not None:
        _args.check_bias(a["bias"].shape, g.o)
    shape = _args.make_image(g.n, g.o, g.oh, g.ow, layout)
    out = _args.out_array(out, shape[1:] if unbatched else shape, dtype, a)

    y = _conv2d_nchw(_to_nchw(_compute(xb, dtype), layout),
                     _conv_weight_nchw(_compute(a["weight"], dtype), layout),
                     g.stride, g.pad, g.dilation, g.groups, (g.oh, g.ow))
    bias_ = None if a["bias"] is None else _compute(a["bias"], dtype)
    y = _add_bias_and_activate(y, bias_, act)
    return _deliver(_from_nchw(y, layout), dtype, unbatched, out)


def _depthwise_weight_nchw(w: np.ndarray, layout: str) -> np.ndarray:
    """Depthwise weight as a grouped-conv weight (C*M, 1, KH, KW).

    Keras (KH, KW, C, M): channel c, multiplier m -> output channel c*M + m, which is exactly
    the row-major flattening of the last two axes.
    """
    if layout == "NCHW":
        return w
    kh, kw, c, m = w.shape
    return w.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


def depthwise_conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, activation=None,
                     data_format="NCHW", out=None):
    """Depthwise convolution with depth multiplier M: output channel c*M + m.

    NCHW: weight (C*M, 1, KH, KW) (= PyTorch conv2d with groups=C); NHWC: weight (KH, KW, C, M).
    """
    layout = _args.data_format(data_format)
    act = _args.activation(activation)
    a, dtype = _arrays(x=x, weight=weight, bias=bias)
    xb, unbatched = _args.batched(a["x"])
    g = _args.depthwise_conv2d_geometry(xb.shape, a["weight"].shape, stride=stride, padding_spec=padding,
                                        dilation=dilation, layout=layout)
    if a["bias"] is not None:
        _args.check_bias(a["bias"].shape, g.o)
    shape = _args.make_image(g.n, g.o, g.oh, g.ow, layout)
    out = _args.out_array(out, shape[1:] if unbatched else shape, dtype, a)

    y = _conv2d_nchw(_to_nchw(_compute(xb, dtype), layout),
                     _depthwise_weight_nchw(_compute(a["weight"], dtype), layout),
                     g.stride, g.pad, g.dilation, g.groups, (g.oh, g.ow))
    bias_ = None if a["bias"] is None else _compute(a["bias"], dtype)
    y = _add_bias_and_activate(y, bias_, act)
    return _deliver(_from_nchw(y, layout), dtype, unbatched, out)


def separable_conv2d(x, depthwise_weight, pointwise_weight, bias=None, *, stride=1, padding=0, dilation=1,
                     activation=None, data_format="NCHW", out=None):
    """Depthwise convolution, then a 1x1 convolution; bias and activation after the 1x1 step.

    Pointwise weight: NCHW (O, C*M, 1, 1), NHWC (1, 1, C*M, O). The intermediate result is kept
    in float64 (not rounded to the result dtype between the two steps).
    """
    layout = _args.data_format(data_format)
    act = _args.activation(activation)
    a, dtype = _arrays(x=x, depthwise_weight=depthwise_weight, pointwise_weight=pointwise_weight, bias=bias)
    xb, unbatched = _args.batched(a["x"])
    dw, pw = _args.separable_conv2d_geometry(
        xb.shape, a["depthwise_weight"].shape, a["pointwise_weight"].shape,
        stride=stride, padding_spec=padding, dilation=dilation, layout=layout)
    if a["bias"] is not None:
        _args.check_bias(a["bias"].shape, pw.o)
    shape = _args.make_image(pw.n, pw.o, pw.oh, pw.ow, layout)
    out = _args.out_array(out, shape[1:] if unbatched else shape, dtype, a)

    mid = _conv2d_nchw(_to_nchw(_compute(xb, dtype), layout),
                       _depthwise_weight_nchw(_compute(a["depthwise_weight"], dtype), layout),
                       dw.stride, dw.pad, dw.dilation, dw.groups, (dw.oh, dw.ow))
    y = _conv2d_nchw(mid, _conv_weight_nchw(_compute(a["pointwise_weight"], dtype), layout),
                     pw.stride, pw.pad, pw.dilation, 1, (pw.oh, pw.ow))
    bias_ = None if a["bias"] is None else _compute(a["bias"], dtype)
    y = _add_bias_and_activate(y, bias_, act)
    return _deliver(_from_nchw(y, layout), dtype, unbatched, out)


def _conv_transpose2d_nchw(x: np.ndarray, w: np.ndarray, g) -> np.ndarray:
    """x (N, C, H, W), w (C, O/groups, KH, KW) -> (N, O, OH, OW).

    The definition, one tap at a time: input pixel (i, j) through tap (a, b) adds
    x[c, i, j] * w[c, o, a, b] to full-result cell (i*sh + a*dh, j*sw + b*dw); the output is the
    full result shifted by (top, left) and cut to (OH, OW) (cells past it get only the bias).
    """
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    groups, cg = g.groups, c // g.groups
    (sh, sw), (dh, dw) = g.stride, g.dilation
    top, left = g.pad[0][0], g.pad[1][0]
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1
    canvas = np.zeros((n, groups, og, max(full_h, top + g.oh), max(full_w, left + g.ow)), _ACC)
    x_g = x.reshape(n, groups, cg, h * wd)
    w_g = w.reshape(groups, cg, og, kh, kw)
    for a in range(kh):
        for b in range(kw):
            tap = w_g[:, :, :, a, b].transpose(0, 2, 1)                  # (G, O/G, C/G)
            contribution = (tap @ x_g).reshape(n, groups, og, h, wd)    # (N, G, O/G, H, W)
            rows = slice(a * dh, a * dh + (h - 1) * sh + 1, sh)
            cols = slice(b * dw, b * dw + (wd - 1) * sw + 1, sw)
            canvas[:, :, :, rows, cols] += contribution
    y = canvas[:, :, :, top:top + g.oh, left:left + g.ow]
    return y.reshape(n, groups * og, g.oh, g.ow)


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=None, dilation=1, groups=1,
                     activation=None, data_format="NCHW", algorithm="auto", out=None):
    """Transposed convolution (the gradient of conv2d with respect to its input).

    NCHW: weight (C, O/groups, KH, KW) (PyTorch); NHWC: weight (KH, KW, O/groups, C) (Keras).
    Integer padding follows PyTorch; "valid"/"same" follow Keras Conv2DTranspose.
    `algorithm` is accepted and ignored: the reference has one algorithm.
    """
    layout = _args.data_format(data_format)
    act = _args.activation(activation)
    a, dtype = _arrays(x=x, weight=weight, bias=bias)
    xb, unbatched = _args.batched(a["x"])
    g = _args.conv_transpose2d_geometry(xb.shape, a["weight"].shape, stride=stride, padding_spec=padding,
                                        output_padding=output_padding, dilation=dilation, groups=groups,
                                        layout=layout)
    if a["bias"] is not None:
        _args.check_bias(a["bias"].shape, g.o)
    shape = _args.make_image(g.n, g.o, g.oh, g.ow, layout)
    out = _args.out_array(out, shape[1:] if unbatched else shape, dtype, a)

    w = _compute(a["weight"], dtype)
    if layout == "NHWC":
        w = w.transpose(3, 2, 0, 1)    # (KH, KW, O/groups, C) -> (C, O/groups, KH, KW)
    y = _conv_transpose2d_nchw(_to_nchw(_compute(xb, dtype), layout), w, g)
    bias_ = None if a["bias"] is None else _compute(a["bias"], dtype)
    y = _add_bias_and_activate(y, bias_, act)
    return _deliver(_from_nchw(y, layout), dtype, unbatched, out)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

def _pool_windows(x: np.ndarray, g, fill) -> np.ndarray:
    """Window view for pooling an NCHW batch: (N, C, OH, OW, KH, KW).

    Pads with `fill` by the geometry's padding, and further on the right/bottom if a ceil_mode
    window reaches past the padded input (PyTorch allows that; those cells are never counted).
    """
    extra = []
    for i, size, k in ((0, g.h, g.kh), (1, g.w, g.kw)):
        before, after = g.pad[i]
        reach = (((g.oh, g.ow)[i] - 1) * g.stride[i] + g.dilation[i] * (k - 1) + 1) - before - size
        extra.append((before, max(after, reach)))
    return _windows(_pad(x, extra, fill), (g.kh, g.kw), g.stride, g.dilation, (g.oh, g.ow))


def _pool_input(x, data_format, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad):
    layout = _args.data_format(data_format)
    a, dtype = _arrays(x=x)
    xb, unbatched = _args.batched(a["x"])
    g = _args.pool2d_geometry(xb.shape, kernel_size=kernel_size, stride=stride, padding_spec=padding,
                              dilation=dilation, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                              layout=layout)
    shape = _args.make_image(g.n, g.c, g.oh, g.ow, layout)
    return a, dtype, xb, unbatched, g, (shape[1:] if unbatched else shape)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format="NCHW",
               out=None):
    """Max over each window. Padded cells never win; a NaN anywhere in a window gives NaN."""
    a, dtype, xb, unbatched, g, shape = _pool_input(x, data_format, kernel_size, stride, padding, dilation,
                                                    ceil_mode, True)
    out = _args.out_array(out, shape, dtype, a)
    x_ = _to_nchw(xb.astype(dtype, copy=False), g.layout)
    y = _pool_windows(x_, g, -np.inf).max(axis=(-2, -1))   # np.max propagates NaN
    return _deliver(_from_nchw(y, g.layout), dtype, unbatched, out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               data_format="NCHW", out=None):
    """Mean over each window.

    count_include_pad=True divides by the window clipped to the padded input (PyTorch);
    False, and "same" padding always, divides by the number of input cells in the window.
    """
    a, dtype, xb, unbatched, g, shape = _pool_input(x, data_format, kernel_size, stride, padding, 1,
                                                    ceil_mode, count_include_pad)
    out = _args.out_array(out, shape, dtype, a)
    x_ = _to_nchw(_compute(xb, dtype), g.layout)
    total = _pool_windows(x_, g, 0.0).sum(axis=(-2, -1))

    rows = _window_counts(g.oh, g.h, g.kh, g.stride[0], *g.pad[0], g.count_include_pad)
    cols = _window_counts(g.ow, g.w, g.kw, g.stride[1], *g.pad[1], g.count_include_pad)
    y = total / np.multiply.outer(rows, cols)
    return _deliver(_from_nchw(y, g.layout), dtype, unbatched, out)


def _window_counts(out_size, size, kernel, stride, before, after, include_pad) -> np.ndarray:
    """Cells that count in each window along one axis (avg pooling has no dilation).

    Window o covers input cells [o*stride - before, o*stride - before + kernel), clipped to the
    padded input [-before, size + after) when padding counts, else to the input [0, size).
    """
    starts = np.arange(out_size) * stride - before
    low, high = (-before, size + after) if include_pad else (0, size)
    return (np.minimum(starts + kernel, high) - np.maximum(starts, low)).astype(_ACC)


def global_avg_pool2d(x, *, data_format="NCHW", keepdims=False):
    """Mean over H and W: (N, C), or (N, C, 1, 1) / (N, 1, 1, C) with keepdims."""
    return _global_pool(x, data_format, keepdims, "avg")


def global_max_pool2d(x, *, data_format="NCHW", keepdims=False):
    """Max over H and W (NaN propagates): (N, C), or (N, C, 1, 1) / (N, 1, 1, C) with keepdims."""
    return _global_pool(x, data_format, keepdims, "max")


def _global_pool(x, data_format, keepdims, kind):
    layout = _args.data_format(data_format)
    keepdims = _args.flag(keepdims, "keepdims")
    a, dtype = _arrays(x=x)
    xb, unbatched = _args.batched(a["x"])
    n, c, h, w = _args.image_dims(xb, layout)
    if h < 1 or w < 1:
        raise ValueError(f"x must have a nonzero height and width; got shape {a['x'].shape}")
    x_ = _to_nchw(xb, layout)
    if kind == "avg":
        y = _compute(x_, dtype).mean(axis=(2, 3))
    else:
        y = x_.astype(dtype, copy=False).max(axis=(2, 3))
    y = y.reshape(_args.global_pool_shape(n, c, layout, keepdims))
    return _deliver(y, dtype, unbatched, None)


def depth_max_pool2d(x, pool_size, *, data_format="NCHW"):
    """Max over groups of `pool_size` consecutive channels (pool_size must divide C)."""
    layout = _args.data_format(data_format)
    a, dtype = _arrays(x=x)
    xb, unbatched = _args.batched(a["x"])
    n, c, h, w = _args.image_dims(xb, layout)
    groups = _args.depth_pool_channels(c, pool_size)
    x_ = _to_nchw(xb.astype(dtype, copy=False), layout)
    y = x_.reshape(n, groups, int(pool_size), h, w).max(axis=2)
    return _deliver(_from_nchw(y, layout), dtype, unbatched, None)
