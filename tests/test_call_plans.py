"""The cached call plans of depthwise_conv2d, separable_conv2d, conv_transpose2d and pooling
(conv2d's: test_pack.py), kept by pycnn.ops and, for calls whose options the C++ PlanCache keys,
found there without Python code.

A repeated call shape runs a plan made by its first call, skipping the Python-side argument
handling (a tiny call: 8-11 -> ~2 us). It must give the first call's bits, convert inputs as an
uncached call does, and never skip a validation that an uncached call would make.
"""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops as ops
from pycnn import reference


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


@pytest.mark.parametrize("name, cache", [("depthwise_conv2d", "_DEPTHWISE_CACHE"),
                                         ("separable_conv2d", "_SEPARABLE_CACHE"),
                                         ("conv_transpose2d", "_TRANSPOSE_CACHE")])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_repeated_calls_run_the_plan_cached_in_cpp(rng, name, cache, layout):
    # Calls with array weights and no out= find their plan in C++ (ops._*_CACHE, plan_cache.h),
    # one entry per option set, and give the first call's bits.
    fn, make, kw = OPS[name]
    cache = getattr(ops, cache)
    ops._clear_plans()
    x, w, b = make(rng, layout, np.float32)
    option_sets = [dict(kw, data_format=layout), dict(kw, activation="relu", data_format=layout),
                   dict(padding=((1, 0), (0, 1)), data_format=layout)]
    for i, options in enumerate(option_sets):
        for bias in (None, b):
            first = fn(x, w, bias, **options)
            assert len(cache) == 2 * i + (bias is not None) + 1
            for _ in range(2):
                y = fn(x * 1, _each_weight(w, lambda v: v * 1), bias, **options)
                assert y.dtype == np.float32 and y.shape == first.shape
                np.testing.assert_array_equal(y, first)
    assert len(cache) == 2 * len(option_sets)
    # NumPy integer options and out= take the Python path: no new entry.
    expected = fn(x, w, b, **option_sets[0])
    np.testing.assert_array_equal(fn(x, w, b, **dict(option_sets[0], stride=np.int64(kw["stride"]))), expected)
    out = np.empty_like(expected)
    assert fn(x, w, b, out=out, **option_sets[0]) is out
    np.testing.assert_array_equal(out, expected)
    assert len(cache) == 2 * len(option_sets)
    ops._clear_plans()
    assert len(cache) == 0


def test_pooling_calls_run_the_plan_cached_in_cpp(rng):
    # max_pool2d and avg_pool2d share a cache whose key holds the kind; bools key apart from ints.
    ops._clear_plans()
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    calls = [(ops.max_pool2d, dict(kernel_size=3)), (ops.avg_pool2d, dict(kernel_size=3)),
             (ops.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
             (ops.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
             (ops.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
             (ops.avg_pool2d, dict(kernel_size=(2, 3), padding="same")),
             (ops.max_pool2d, dict(kernel_size=2, data_format="NHWC"))]
    firsts = []
    for i, (fn, kw) in enumerate(calls):
        first = fn(x, **kw)
        assert len(ops._POOL_CACHE) == i + 1
        for _ in range(2):
            y = fn(x * 1, **kw)
            assert y.dtype == np.float32 and y.shape == first.shape
            np.testing.assert_array_equal(y, first)
        firsts.append(first)
    assert not np.array_equal(firsts[0], firsts[1])  # max and avg did not share a plan
    assert not np.array_equal(firsts[3], firsts[4])  # nor count_include_pad True and False
    np.testing.assert_array_equal(firsts[0], reference.max_pool2d(x, 3))
    # float64 and unbatched inputs of the same shapes are other plans.
    np.testing.assert_array_equal(ops.max_pool2d(x.astype(np.float64), 3), firsts[0].astype(np.float64))
    np.testing.assert_array_equal(ops.max_pool2d(x[0], 3), firsts[0][0])
    assert ops.max_pool2d(x[0], 3).shape == firsts[0].shape[1:]
    assert len(ops._POOL_CACHE) == len(calls) + 2
    with pytest.raises(TypeError, match="kernel_size"):
        ops.max_pool2d(x, 3.0)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_pooling_calls_run_the_plan_cached_in_cpp(rng, layout):
    ops._clear_plans()
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    calls = [(ops.global_avg_pool2d, dict(), x.mean(axis=axes)),
             (ops.global_max_pool2d, dict(), x.max(axis=axes)),
             (ops.global_max_pool2d, dict(keepdims=True), x.max(axis=axes, keepdims=True))]
    for i, (fn, kw, expected) in enumerate(calls):
        for _ in range(3):  # the first call makes the plan
            y = fn(x * 1, data_format=layout, **kw)
            assert y.dtype == np.float32 and y.shape == expected.shape
            np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
        assert len(ops._POOL_CACHE) == i + 1
    # Unbatched and float64 inputs of the same shapes are other plans.
    for _ in range(2):
        np.testing.assert_array_equal(ops.global_max_pool2d(x[1], data_format=layout, keepdims=True),
                                      calls[2][2][1])
        y64 = ops.global_avg_pool2d(x.astype(np.float64), data_format=layout)
        assert y64.dtype == np.float64 and y64.shape == calls[0][2].shape
    assert len(ops._POOL_CACHE) == len(calls) + 2
    with pytest.raises(TypeError, match="keepdims"):
        ops.global_max_pool2d(x, data_format=layout, keepdims=1)


def test_separable_plans_key_both_weights(rng):
    ops._clear_plans()
    x, (dw, pw), _ = _separable(rng, "NCHW", np.float32)
    pw9 = rng.standard_normal((9, 12, 1, 1)).astype(np.float32)
    for _ in range(2):  # the second round runs the cached plans
        y7, y9 = ops.separable_conv2d(x, dw, pw), ops.separable_conv2d(x, dw, pw9)
        assert y7.shape == (2, 7, 7, 8) and y9.shape == (2, 9, 7, 8)
        np.testing.assert_allclose(y9, ops.conv2d(ops.depthwise_conv2d(x, dw), pw9), rtol=1e-5, atol=1e-5)
    assert len(ops._SEPARABLE_CACHE) == 2
    assert ops._run_cached_separable(x, (dw, pw9), None, (1, 0, 1, None, "NCHW")).shape == y9.shape
