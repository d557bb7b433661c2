"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""
from __future__ import annotations

import numpy as np

import pycnn.reference


def as64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def to_layout(x_nchw, w, layout):
    """Contiguous copies of an NCHW image and a PyTorch-order weight in `layout`: conv2d's
    (O, C/g, KH, KW) and conv_transpose2d's (C, O/g, KH, KW) both go to NHWC by (2, 3, 1, 0)."""
    if layout == "NCHW":
        return np.ascontiguousarray(x_nchw), np.ascontiguousarray(w)
    return np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))


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


def draw_window(draw, st, max_kernel: int):
    """Kernel, stride, dilation and padding of a forward convolution, drawn with Hypothesis
    (`draw`, `st` = hypothesis.strategies), and the smallest input (hmin, wmin) the padded
    kernel fits in ('same' always fits): (kh, kw, stride, dilation, padding, hmin, wmin)."""
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = sh if sh == sw and draw(st.booleans()) else (sh, sw)
    dilation = dh if dh == dw and draw(st.booleans()) else (dh, dw)
    kind = draw(st.sampled_from(["int", "pair", "sides", "valid", "same"]))
    p = st.integers(0, 3)
    if kind == "int":
        padding = draw(p)
        sides = ((padding, padding), (padding, padding))
    elif kind == "pair":
        padding = (draw(p), draw(p))
        sides = ((padding[0],) * 2, (padding[1],) * 2)
    elif kind == "sides":
        sides = padding = ((draw(p), draw(p)), (draw(p), draw(p)))
    else:
        padding = kind
        sides = ((0, 0), (0, 0))
    hmin = 1 if kind == "same" else max(1, dh * (kh - 1) + 1 - sum(sides[0]))
    wmin = 1 if kind == "same" else max(1, dw * (kw - 1) + 1 - sum(sides[1]))
    return kh, kw, stride, dilation, padding, hmin, wmin


def at_line_offset(x0, offset):
    """A copy of x0 starting `offset` bytes into a 64-byte line (a multiple of its itemsize)."""
    raw = np.empty(x0.size + 2 * 64 // x0.itemsize, x0.dtype)
    first = (-raw.ctypes.data % 64 + offset) // x0.itemsize
    x = raw[first:first + x0.size].reshape(x0.shape)
    x[...] = x0
    assert x.ctypes.data % 64 == offset
    return x


def at_each_line_offset(x0):
    """(offset, copy of x0 starting `offset` elements into a 64-byte line) for every offset."""
    for offset in range(64 // x0.itemsize):
        yield offset, at_line_offset(x0, offset * x0.itemsize)
