"""The functional API: every argument is validated and normalized here, once.

Arrays in: anything `numpy.asarray` accepts (NumPy arrays, CPU torch tensors, buffers).
Arrays out: new C-contiguous arrays, or `out=`. Semantics: ../DESIGN.md (PyTorch for NCHW,
Keras/TensorFlow for NHWC and the "same"/"valid" padding names).
"""
from __future__ import annotations

import numpy as np

from . import _args, _core

__all__ = ["conv2d", "explain_conv2d"]

_ALGORITHMS = {"auto": 0, "direct": 1, "im2col": 2}
_LAYOUT_CODE = {"NCHW": 0, "NHWC": 1}


def _contiguous(a, dtype):
    return a if (a.dtype == dtype and a.flags.c_contiguous) else np.ascontiguousarray(a, dtype)


def _conv2d_setup(x, weight, bias, stride, padding, dilation, groups, data_format):
    layout = _args.data_format(data_format)
    x = _args.as_array(x, "x")
    w = _args.as_array(weight, "weight")
    b = None if bias is None else _args.as_array(bias, "bias")
    dtype = _args.result_dtype(x, w, b)
    x4, unbatched = _args.batched(x)
    g = _args.conv2d_geometry(x4.shape, w.shape, stride=stride, padding_spec=padding,
                              dilation=dilation, groups=groups, layout=layout)
    if b is not None:
        _args.check_bias(b.shape, g.o)
    return layout, x, x4, w, b, dtype, unbatched, g


def _geometry_tuple(g):
    return (g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow, g.stride[0], g.stride[1],
            g.dilation[0], g.dilation[1], g.pad[0][0], g.pad[1][0], g.groups)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None,
           data_format="NCHW", algorithm="auto", out=None):
    """2-D convolution (cross-correlation), y = activation(conv(x, weight) + bias).

    NCHW: x (N, C, H, W), weight (O, C/groups, KH, KW) as in PyTorch.
    NHWC: x (N, H, W, C), weight (KH, KW, C/groups, O) as in Keras.
    padding: int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same" (TensorFlow).
    algorithm: "auto", "direct" or "im2col" (see explain_conv2d).
    """
    try:
        algo = _ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm must be one of 'auto', 'direct', 'im2col'; got {algorithm!r}") from None
    act, act_param, _ = _args.activation(activation)
    layout, x_in, x4, w, b, dtype, unbatched, g = _conv2d_setup(
        x, weight, bias, stride, padding, dilation, groups, data_format)
    shape = _args.make_image(g.n, g.o, g.oh, g.ow, layout)
    result_shape = shape[1:] if unbatched else shape
    y = _args.out_array(out, result_shape, dtype, {"x": x_in, "weight": w, "bias": b})
    if y is None:
        y = np.empty(result_shape, dtype)
    if g.n == 0:
        return y
    _core.conv2d(_contiguous(x4, dtype), _contiguous(w, dtype),
                 None if b is None else _contiguous(b, dtype), y.reshape(shape),
                 _geometry_tuple(g), _LAYOUT_CODE[layout], act, act_param, algo)
    return y


def explain_conv2d(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                   data_format="NCHW") -> str:
    """Which algorithm `algorithm="auto"` picks for these shapes, and why."""
    layout = _args.data_format(data_format)
    x_shape = tuple(x_shape)
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    g = _args.conv2d_geometry(x_shape, tuple(weight_shape), stride=stride, padding_spec=padding,
                              dilation=dilation, groups=groups, layout=layout)
    return _core.explain_conv2d(_geometry_tuple(g), _LAYOUT_CODE[layout])
