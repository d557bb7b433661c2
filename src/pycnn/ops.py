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


class _Conv2dPlan:
    """A validated conv2d call shape: result dtype and shape, and the C++ plan that runs it."""

    __slots__ = ("dtype", "result_shape", "core")

    def __init__(self, dtype, result_shape, core):
        self.dtype, self.result_shape, self.core = dtype, result_shape, core

    def __call__(self, x, w, b, out=None):
        dtype = self.dtype
        y = np.empty(self.result_shape, dtype) if out is None else out
        self.core(_contiguous(x, dtype), _contiguous(w, dtype),
                  None if b is None else _contiguous(b, dtype), y)
        return y


# Plans of recent call shapes, so that a repeated call skips argument normalisation. The key
# holds every argument's repr: 1, 1.0, True and np.int64(1) must not share a plan.
_PLANS: dict = {}
_MAX_PLANS = 256


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None,
           data_format="NCHW", algorithm="auto", out=None):
    """2-D convolution (cross-correlation), y = activation(conv(x, weight) + bias).

    NCHW: x (N, C, H, W), weight (O, C/groups, KH, KW) as in PyTorch.
    NHWC: x (N, H, W, C), weight (KH, KW, C/groups, O) as in Keras.
    padding: int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same" (TensorFlow).
    algorithm: "auto", "direct" or "im2col" (see explain_conv2d).
    """
    key = None
    if out is None and type(x) is np.ndarray and type(weight) is np.ndarray and (
            bias is None or type(bias) is np.ndarray):
        key = (x.shape, x.dtype.num, weight.shape, weight.dtype.num,
               None if bias is None else (bias.shape, bias.dtype.num),
               repr((stride, padding, dilation, groups, activation, data_format, algorithm)))
        plan = _PLANS.get(key)
        if plan is not None:
            return plan(x, weight, bias)

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
    if g.n == 0:
        return np.empty(result_shape, dtype) if y is None else y
    plan = _Conv2dPlan(dtype, result_shape,
                       _core.Conv2dPlan(_geometry_tuple(g), _LAYOUT_CODE[layout], act, act_param, algo))
    if key is not None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan(x4, w, b, y)


def explain_conv2d(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                   data_format="NCHW") -> str:
    """Which algorithm `algorithm="auto"` picks for these shapes, and why."""
    layout = _args.data_format(data_format)
    x_shape = tuple(x_shape)
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    g = _args.conv2d_geometry(x_shape, tuple(weight_shape), stride=stride, padding_spec=padding,
                              dilation=dilation, groups=groups, layout=layout)
    return _core.Conv2dPlan(_geometry_tuple(g), _LAYOUT_CODE[layout], 0, 0.0, 0).explain()
