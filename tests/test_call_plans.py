"""The cached call plans of depthwise_conv2d, separable_conv2d and conv_transpose2d (conv2d's:
test_pack.py).

A repeated call shape runs a plan made by its first call, skipping the Python-side argument
handling (a tiny call: 8-11 -> ~2 us). It must give the first call's bits, convert inputs as an
uncached call does, and never skip a validation that an uncached call would make.
"""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops as ops


def _depthwise(rng, layout, dtype, unbatched=False):
    x = rng.standard_normal((2, 6, 9, 10)).astype(dtype)
    w = rng.standard_normal((12, 1, 3, 3)).astype(dtype)  # multiplier 2
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.reshape(6, 2, 3, 3).transpose(2, 3, 0, 1).copy()
    return (x[0] if unbatched else x), w, rng.standard_normal(12).astype(dtype)


def _transposed(rng, layout, dtype, unbatched=False):
    x = rng.standard_normal((2, 6, 7, 8)).astype(dtype)
    w = rng.standard_normal((6, 5, 4, 4)).astype(dtype)
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    return (x[0] if unbatched else x), w, rng.standard_normal(5).astype(dtype)


def _separable(rng, layout, dtype, unbatched=False):
    x, dw, _ = _depthwise(rng, layout, dtype, unbatched)
    pw = rng.standard_normal((7, 12, 1, 1)).astype(dtype)
    if layout == "NHWC":
        pw = pw.transpose(2, 3, 1, 0).copy()
    return x, (dw, pw), rng.standard_normal(7).astype(dtype)


def _separable_conv2d(x, weights, bias=None, **kw):
    """separable_conv2d with its two weights as one argument, like the other ops' weight."""
    return ops.separable_conv2d(x, weights[0], weights[1], bias, **kw)


OPS = {
    "depthwise_conv2d": (ops.depthwise_conv2d, _depthwise, dict(stride=2, padding=1)),
    "separable_conv2d": (_separable_conv2d, _separable, dict(stride=2, padding=1)),
    "conv_transpose2d": (ops.conv_transpose2d, _transposed, dict(stride=2, padding=1)),
}


def _each_weight(w, f):
    return tuple(f(v) for v in w) if isinstance(w, tuple) else f(w)


def _strided(v):
    """The values of v in a non-contiguous view (every other element of a wider array)."""
    wide = np.zeros(v.shape[:-1] + (2 * v.shape[-1],), v.dtype)
    wide[..., ::2] = v
    return wide[..., ::2]


@pytest.fixture(params=list(OPS))
def op(request):
    return OPS[request.param]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cached_calls_give_the_first_calls_bits(op, rng, layout, dtype, unbatched):
    fn, make, kw = op
    x, w, b = make(rng, layout, dtype, unbatched)
    first = fn(x, w, b, activation="relu", data_format=layout, **kw)
    for _ in range(2):  # the second call onwards runs the cached plan
        y = fn(x, w, b, activation="relu", data_format=layout, **kw)
        assert y.dtype == dtype and y.shape == first.shape and y.ndim == (3 if unbatched else 4)
        np.testing.assert_array_equal(y, first)
    # Another activation or no bias is another plan, not the cached one.
    assert not np.array_equal(fn(x, w, b, data_format=layout, **kw), first)
    assert not np.array_equal(fn(x, w, activation="relu", data_format=layout, **kw), first)


@pytest.mark.parametrize("first, then, message", [
    (dict(stride=2), dict(stride=2.0), "stride"),
    (dict(stride=2), dict(stride=True), "stride"),
    (dict(padding=(1, 1)), dict(padding=(1, 1.0)), "padding"),
    (dict(dilation=(1, 1)), dict(dilation=(1, True)), "dilation"),
])
def test_a_cached_plan_never_skips_validation(op, rng, first, then, message):
    fn, make, _ = op
    x, w, b = make(rng, "NCHW", np.float32)
    fn(x, w, b, **first)
    fn(x, w, b, **first)  # now cached
    with pytest.raises(TypeError, match=message):
        fn(x, w, b, **then)


def test_a_changed_bias_or_weight_shape_is_validated(op, rng):
    fn, make, kw = op
    x, w, b = make(rng, "NCHW", np.float32)
    fn(x, w, b, **kw)
    fn(x, w, b, **kw)
    with pytest.raises(ValueError, match="bias"):
        fn(x, w, b[:-1], **kw)
    with pytest.raises(ValueError, match="weight|channels"):
        fn(x, _each_weight(w, lambda v: v[:-1]), b, **kw)


def test_cached_calls_convert_inputs_like_uncached_ones(op, rng):
    fn, make, kw = op
    x, w, b = make(rng, "NCHW", np.float64)
    expected = fn(x, w, b, **kw)
    fn(x, w, b, **kw)
    np.testing.assert_array_equal(fn(np.asfortranarray(x), w, b, **kw), expected)
    strided = _each_weight(w, _strided)
    assert not any(v.flags.c_contiguous for v in (strided if isinstance(strided, tuple) else (strided,)))
    np.testing.assert_array_equal(fn(x, strided, b, **kw), expected)
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(fn(frozen, w, b, **kw), expected)
    xi = (x * 4).astype(np.int64)
    for _ in range(2):
        yi = fn(xi, w, b, **kw)
        assert yi.dtype == np.float64
        np.testing.assert_array_equal(yi, fn(xi.astype(np.float64), w, b, **kw))


def test_unhashable_options_run_uncached(op, rng):
    fn, make, _ = op
    x, w, b = make(rng, "NCHW", np.float32)
    expected = fn(x, w, b, stride=(2, 2), padding=(1, 1))
    for _ in range(2):
        np.testing.assert_array_equal(fn(x, w, b, stride=[2, 2], padding=[1, 1]), expected)


def test_out_through_the_cached_plan(op, rng):
    fn, make, kw = op
    x, w, b = make(rng, "NCHW", np.float32)
    expected = fn(x, w, b, **kw)
    for _ in range(2):  # the first call makes the plan, the second reuses it
        out = np.full(expected.shape, np.nan, np.float32)
        assert fn(x, w, b, out=out, **kw) is out
        np.testing.assert_array_equal(out, expected)
    bad = np.full(expected.shape[:3] + (expected.shape[3] + 1,), 3.0, np.float32)
    with pytest.raises(ValueError, match=r"out must have shape"):
        fn(x, w, b, out=bad, **kw)
    np.testing.assert_array_equal(bad, 3.0)
    with pytest.raises((TypeError, ValueError), match=r"out"):
        fn(x, w, b, out=np.zeros(expected.shape, np.float64), **kw)
