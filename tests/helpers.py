"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""
from __future__ import annotations

import numpy as np

import pycnn.reference


def as64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def reference_truth(op: str, *arrays, **params):
    """(expected, scale) in float64 for `pycnn.reference.<op>`: the reference on float64 copies
    of the array arguments, and the same op on their magnitudes without the activation -- the
    size that rounding errors are measured against."""
    fn = getattr(pycnn.reference, op)
    arrays64 = [as64(a) for a in arrays]
    params = {k: v for k, v in params.items() if k not in ("out", "algorithm")}
    expected = fn(*arrays64, **params)
    params.pop("activation", None)
    scale = fn(*[None if a is None else np.abs(a) for a in arrays64], **params)
    return expected, scale


def explicit_padding(padding, h, w, kh, kw, stride, dilation):
    """((top, bottom), (left, right)) of a padding spec, computed here independently of pycnn
    (TensorFlow's "same" split), for handing to PyTorch as explicit padding."""
    s = (stride, stride) if isinstance(stride, int) else stride
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        sides = []
        for size, k, si, di in ((h, kh, s[0], d[0]), (w, kw, s[1], d[1])):
            out = -(-size // si)
            total = max((out - 1) * si + (k - 1) * di + 1 - size, 0)
            sides.append((total // 2, total - total // 2))
        return tuple(sides)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0],) * 2, (padding[1],) * 2
    return tuple(map(tuple, padding))
