"""Bad input to pycnn.ops.conv2d: a clear ValueError/TypeError that names the argument, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops

_rng = np.random.default_rng(0)
X = _rng.standard_normal((2, 3, 7, 7)).astype(np.float32)        # result (2, 4, 5, 5) with W
W = _rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
B = _rng.standard_normal(4).astype(np.float32)
RESULT_SHAPE = (2, 4, 5, 5)


def args(**overrides):
    call = dict(x=X, weight=W, bias=B)
    call.update(overrides)
    return call


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def out_is_input():
    x = X.copy()
    return args(x=x, weight=W[:3], bias=None, padding=1, out=x)


def out_overlaps_input():
    buf = np.zeros(2 * X.size, np.float32)
    x = buf[:X.size].reshape(X.shape)
    x[...] = X
    return args(x=x, weight=W[:3], bias=None, padding=1, out=buf[X.size // 2:X.size // 2 + X.size].reshape(X.shape))


def out_overlaps_weight():
    out = np.zeros(RESULT_SHAPE, np.float32)
    w = out.reshape(-1)[:W.size].reshape(W.shape)
    w[...] = W
    return args(weight=w, out=out)


def out_overlaps_bias():
    out = np.zeros(RESULT_SHAPE, np.float32)
    b = out.reshape(-1)[-4:]
    b[...] = B
    return args(bias=b, out=out)


def noncontiguous_out():
    return args(out=np.zeros(RESULT_SHAPE[:3] + (10,), np.float32)[..., ::2])


def _p(make, exc, pattern, id):
    return pytest.param(make, exc, pattern, id=id)


CASES = [
    # x and weight shapes
    _p(lambda: args(x=X[0, 0]), ValueError, r"\bx\b", "x-2d"),
    _p(lambda: args(x=X[0, 0, 0]), ValueError, r"\bx\b", "x-1d"),
    _p(lambda: args(x=np.float32(1.0)), ValueError, r"\bx\b", "x-0d"),
    _p(lambda: args(x=X[None]), ValueError, r"\bx\b", "x-5d"),
    _p(lambda: args(weight=W[0]), ValueError, r"\bweight\b", "weight-3d"),
    _p(lambda: args(weight=W[0, 0]), ValueError, r"\bweight\b", "weight-2d"),
    _p(lambda: args(weight=W[None]), ValueError, r"\bweight\b", "weight-5d"),
    _p(lambda: args(weight=W[:, :2]), ValueError, r"\bweight\b", "channel-mismatch"),
    _p(lambda: args(x=X.transpose(0, 2, 3, 1), weight=np.zeros((3, 3, 2, 4), np.float32), data_format="NHWC"),
       ValueError, r"\bweight\b", "nhwc-channel-mismatch"),
    _p(lambda: args(x=np.zeros((2, 0, 7, 7), np.float32), weight=np.zeros((4, 0, 3, 3), np.float32)),
       ValueError, r"\bx\b", "x-zero-channels"),
    _p(lambda: args(x=np.zeros((2, 3, 0, 7), np.float32)), ValueError, r"\bx\b", "x-zero-height"),
    _p(lambda: args(x=np.zeros((2, 3, 7, 0), np.float32)), ValueError, r"\bx\b", "x-zero-width"),
    _p(lambda: args(weight=np.zeros((0, 3, 3, 3), np.float32), bias=None), ValueError, r"\bweight\b",
       "weight-zero-outputs"),
    _p(lambda: args(weight=np.zeros((4, 3, 0, 3), np.float32)), ValueError, r"\bweight\b",
       "weight-zero-kernel"),
    # groups
    _p(lambda: args(weight=W[:, :1], groups=2), ValueError, r"\bgroups\b", "groups-not-dividing-c"),
    _p(lambda: args(x=np.zeros((2, 4, 7, 7), np.float32), weight=np.zeros((3, 2, 3, 3), np.float32),
                    bias=None, groups=2), ValueError, r"\bgroups\b", "groups-not-dividing-o"),
    _p(lambda: args(groups=0), ValueError, r"\bgroups\b", "groups-0"),
    _p(lambda: args(groups=-1), ValueError, r"\bgroups\b", "groups-negative"),
    _p(lambda: args(groups=1.0), TypeError, r"\bgroups\b", "groups-float"),
    _p(lambda: args(groups=True), TypeError, r"\bgroups\b", "groups-bool"),
    # bias
    _p(lambda: args(bias=B[:3]), ValueError, r"\bbias\b", "bias-too-short"),
    _p(lambda: args(bias=np.zeros(5, np.float32)), ValueError, r"\bbias\b", "bias-too-long"),
    _p(lambda: args(bias=B[:, None]), ValueError, r"\bbias\b", "bias-2d"),
    _p(lambda: args(bias=np.float32(1.0)), ValueError, r"\bbias\b", "bias-0d"),
    # kernel does not fit
    _p(lambda: args(x=X[:, :, :2, :2]), ValueError, r"kernel.*padd", "kernel-larger-than-input"),
    _p(lambda: args(x=X[:, :, :, :1], padding=(0, 0)), ValueError, r"kernel.*padd", "kernel-wider-than-input"),
    _p(lambda: args(dilation=4), ValueError, r"kernel.*padd", "dilated-kernel-larger-than-input"),
    _p(lambda: args(x=X[:, :, :1, :1], padding=((1, 0), (1, 0))), ValueError, r"kernel.*padd",
       "kernel-larger-than-padded-input"),
    # stride and dilation
    *[_p(lambda name=name, v=v: args(**{name: v}), exc, rf"\b{name}\b", f"{name}-{label}")
      for name in ("stride", "dilation")
      for label, v, exc in [
          ("0", 0, ValueError), ("negative", -1, ValueError), ("float", 1.5, TypeError),
          ("integral-float", 2.0, TypeError), ("bool", True, TypeError), ("string", "2", TypeError),
          ("none", None, TypeError), ("2**31", 2**31, ValueError), ("pair-with-0", (1, 0), ValueError),
          ("pair-with-float", (1, 1.5), TypeError), ("pair-with-2**31", (1, 2**31), ValueError),
          ("triple", (1, 1, 1), ValueError), ("empty", (), ValueError),
      ]],
    # padding
    _p(lambda: args(padding=-1), ValueError, r"\bpadding\b", "padding-negative"),
    _p(lambda: args(padding=(0, -1)), ValueError, r"\bpadding\b", "padding-pair-negative"),
    _p(lambda: args(padding=((0, 0), (-1, 0))), ValueError, r"\bpadding\b", "padding-side-negative"),
    _p(lambda: args(padding="full"), ValueError, r"\bpadding\b", "padding-bad-string"),
    _p(lambda: args(padding=""), ValueError, r"\bpadding\b", "padding-empty-string"),
    _p(lambda: args(padding=(1, 1, 1)), ValueError, r"\bpadding\b", "padding-triple"),
    _p(lambda: args(padding=(1, 1, 1, 1)), ValueError, r"\bpadding\b", "padding-four-ints"),
    _p(lambda: args(padding=((1, 1), (1,))), ValueError, r"\bpadding\b", "padding-side-short"),
    _p(lambda: args(padding=((1, 1), (1, 1), (1, 1))), ValueError, r"\bpadding\b", "padding-three-sides"),
    _p(lambda: args(padding=1.5), TypeError, r"\bpadding\b", "padding-float"),
    _p(lambda: args(padding=True), TypeError, r"\bpadding\b", "padding-bool"),
    _p(lambda: args(padding=None), TypeError, r"\bpadding\b", "padding-none"),
    _p(lambda: args(padding=2**31), ValueError, r"\bpadding\b", "padding-2**31"),
    # data_format, activation, algorithm
    _p(lambda: args(data_format="NCWH"), ValueError, r"\bdata_format\b", "data_format-bad"),
    _p(lambda: args(data_format=None), ValueError, r"\bdata_format\b", "data_format-none"),
    _p(lambda: args(data_format=1), ValueError, r"\bdata_format\b", "data_format-int"),
    _p(lambda: args(activation="gelu"), ValueError, r"\bactivation\b", "activation-unknown"),
    _p(lambda: args(activation=3), ValueError, r"\bactivation\b", "activation-int"),
    _p(lambda: args(activation=("leaky_relu",)), ValueError, r"\bactivation\b", "activation-tuple-1"),
    _p(lambda: args(activation=("leaky_relu", 0.1, 2)), ValueError, r"\bactivation\b", "activation-tuple-3"),
    _p(lambda: args(activation=("relu", 0.1)), ValueError, r"\bactivation\b", "activation-param-not-taken"),
    _p(lambda: args(activation=("leaky_relu", "0.1")), TypeError, r"\bactivation\b", "activation-param-string"),
    _p(lambda: args(activation=("leaky_relu", float("nan"))), TypeError, r"\bactivation\b", "activation-param-nan"),
    _p(lambda: args(activation=("leaky_relu", float("inf"))), TypeError, r"\bactivation\b", "activation-param-inf"),
    _p(lambda: args(algorithm="fft"), ValueError, r"\balgorithm\b", "algorithm-unknown"),
    _p(lambda: args(algorithm=""), ValueError, r"\balgorithm\b", "algorithm-empty"),
    _p(lambda: args(algorithm=1), (ValueError, TypeError), r"\balgorithm\b", "algorithm-int"),
    # dtypes
    _p(lambda: args(x=X.astype(np.complex64)), TypeError, r"\bx\b", "x-complex"),
    _p(lambda: args(weight=W.astype(np.complex128)), TypeError, r"\bweight\b", "weight-complex"),
    _p(lambda: args(bias=B.astype(np.complex64)), TypeError, r"\bbias\b", "bias-complex"),
    _p(lambda: args(x=X.astype(object)), TypeError, r"\bx\b", "x-object"),
    _p(lambda: args(weight=W.astype(object)), TypeError, r"\bweight\b", "weight-object"),
    _p(lambda: args(x=X.astype(str)), TypeError, r"\bx\b", "x-string"),
    _p(lambda: args(weight=None), (TypeError, ValueError), r"\bweight\b", "weight-none"),
    # out=
    _p(lambda: args(out=np.zeros((2, 4, 5, 6), np.float32)), ValueError, r"\bout\b", "out-wrong-shape"),
    _p(lambda: args(out=np.zeros((4, 5, 5), np.float32)), ValueError, r"\bout\b", "out-missing-batch"),
    _p(lambda: args(x=X[0], out=np.zeros((1,) + RESULT_SHAPE[1:], np.float32)),
       ValueError, r"\bout\b", "out-batched-for-unbatched-x"),
    _p(lambda: args(out=np.zeros(RESULT_SHAPE, np.float64)), ValueError, r"\bout\b", "out-float64-for-float32"),
    _p(lambda: args(x=X.astype(np.float64), out=np.zeros(RESULT_SHAPE, np.float32)), ValueError, r"\bout\b",
       "out-float32-for-float64"),
    _p(lambda: args(out=np.zeros(RESULT_SHAPE, np.int32)), ValueError, r"\bout\b", "out-int"),
    _p(noncontiguous_out, ValueError, r"\bout\b", "out-strided"),
    _p(lambda: args(out=np.asfortranarray(np.zeros(RESULT_SHAPE, np.float32))), ValueError, r"\bout\b",
       "out-fortran"),
    _p(lambda: args(out=read_only(np.zeros(RESULT_SHAPE, np.float32))), ValueError, r"\bout\b", "out-read-only"),
    _p(out_is_input, ValueError, r"\bout\b", "out-is-x"),
    _p(out_overlaps_input, ValueError, r"\bout\b", "out-overlaps-x"),
    _p(out_overlaps_weight, ValueError, r"\bout\b", "out-overlaps-weight"),
    _p(out_overlaps_bias, ValueError, r"\bout\b", "out-overlaps-bias"),
    # A list is not an array to write into; ValueError per the contract, TypeError is accepted too.
    _p(lambda: args(out=np.zeros(RESULT_SHAPE, np.float32).tolist()), (ValueError, TypeError), r"\bout\b",
       "out-list"),
]


@pytest.mark.parametrize("make, exc, pattern", CASES)
def test_bad_input_raises_naming_the_argument(make, exc, pattern):
    call = make()
    x, weight, bias = call.pop("x"), call.pop("weight"), call.pop("bias")
    with pytest.raises(exc, match=pattern):
        pycnn.ops.conv2d(x, weight, bias, **call)


OUT_CASES = [c for c in CASES if c.id.startswith("out-")]


@pytest.mark.parametrize("make, exc, pattern", OUT_CASES)
def test_bad_out_raises_after_the_plan_is_cached(make, exc, pattern):
    """A repeated call reuses the cached plan, out= included: out is still checked each time."""
    call = make()
    x, weight, bias = call.pop("x"), call.pop("weight"), call.pop("bias")
    out = call.pop("out")
    pycnn.ops.conv2d(x.copy(), weight.copy(), None if bias is None else bias.copy(), **call)  # caches the plan
    with pytest.raises(exc, match=pattern):
        pycnn.ops.conv2d(x, weight, bias, out=out, **call)


def test_out_through_the_cached_plan_is_written_and_returned():
    for weight in (W, pycnn.ops.pack_conv2d_weight(W)):
        expected = pycnn.ops.conv2d(X, weight, B)
        for _ in range(2):  # the first call makes the plan, the second reuses it
            out = np.full(RESULT_SHAPE, np.nan, np.float32)
            assert pycnn.ops.conv2d(X, weight, B, out=out) is out
            np.testing.assert_array_equal(out, expected)
        # The cached plan with a wrong out: refused, and the buffer is left alone.
        bad = np.full(RESULT_SHAPE[:3] + (RESULT_SHAPE[3] + 1,), 3.0, np.float32)
        with pytest.raises(ValueError, match=r"out must have shape"):
            pycnn.ops.conv2d(X, weight, B, out=bad)
        np.testing.assert_array_equal(bad, 3.0)


def test_out_is_untouched_when_arguments_are_bad():
    out = np.full(RESULT_SHAPE, 3.0, np.float32)
    with pytest.raises(ValueError):
        pycnn.ops.conv2d(X, W, B[:3], out=out)
    np.testing.assert_array_equal(out, 3.0)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        pycnn.ops.conv2d(X, W, B, 1)


def test_unknown_keyword():
    with pytest.raises(TypeError, match="strides"):
        pycnn.ops.conv2d(X, W, B, strides=1)


def test_valid_base_call_works():
    """The table's base arguments are themselves valid (so each case fails for its own reason)."""
    result = pycnn.ops.conv2d(X, W, B)
    assert result.shape == RESULT_SHAPE and result.dtype == np.float32
    x = X.copy()
    assert pycnn.ops.conv2d(x, W[:3], None, padding=1).shape == X.shape
    pycnn.ops.conv2d(X, W, B, out=np.zeros(RESULT_SHAPE, np.float32))
    pycnn.ops.conv2d(X[0], W, B, out=np.zeros(RESULT_SHAPE[1:], np.float32))
    pycnn.ops.conv2d(X.transpose(0, 2, 3, 1), W.transpose(2, 3, 1, 0), B, data_format="NHWC")
