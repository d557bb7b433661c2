"""Bad input to the pooling ops: a clear ValueError/TypeError that names the argument, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops

_rng = np.random.default_rng(0)
X = _rng.standard_normal((2, 6, 9, 9)).astype(np.float32)   # max/avg_pool2d(X, 3, 2, 1) -> (2, 6, 5, 5)
RESULT_SHAPE = (2, 6, 5, 5)

WINDOW_OPS = ["max_pool2d", "avg_pool2d"]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _p(*values, id):
    return pytest.param(*values, id=id)


def _bad_ints(name):
    """Every way an int parameter can be wrong, for `name`."""
    return [
        (f"{name}-0", {name: 0}, ValueError),
        (f"{name}-negative", {name: -1}, ValueError),
        (f"{name}-float", {name: 1.5}, TypeError),
        (f"{name}-integral-float", {name: 2.0}, TypeError),
        (f"{name}-bool", {name: True}, TypeError),
        (f"{name}-string", {name: "2"}, TypeError),
        (f"{name}-2**31", {name: 2**31}, ValueError),
        (f"{name}-pair-with-0", {name: (1, 0)}, ValueError),
        (f"{name}-pair-with-float", {name: (1, 1.5)}, TypeError),
        (f"{name}-pair-with-bool", {name: (False, 1)}, TypeError),
        (f"{name}-pair-with-2**31", {name: (1, 2**31)}, ValueError),
        (f"{name}-triple", {name: (1, 1, 1)}, ValueError),
        (f"{name}-empty", {name: ()}, ValueError),
        (f"{name}-array", {name: np.array([2, 2])}, TypeError),
    ]


def out_overlapping_x():
    buf = np.zeros(X.size + np.prod(RESULT_SHAPE), np.float32)
    x = buf[:X.size].reshape(X.shape)
    x[...] = X
    return dict(x=x, out=buf[X.size - 10:X.size - 10 + int(np.prod(RESULT_SHAPE))].reshape(RESULT_SHAPE))


# (id, call overrides, exception, pattern). Base call: op(X, kernel_size=3, stride=2, padding=1).
WINDOW_CASES = [
    *[_p(kw, exc, r"\bkernel_size\b", id=id) for id, kw, exc in _bad_ints("kernel_size")],
    *[_p(kw, exc, r"\bstride\b", id=id) for id, kw, exc in _bad_ints("stride")],
    _p(dict(kernel_size=None), TypeError, r"\bkernel_size\b", id="kernel_size-none"),
    # padding
    _p(dict(padding=-1), ValueError, r"\bpadding\b", id="padding-negative"),
    _p(dict(padding=(0, -1)), ValueError, r"\bpadding\b", id="padding-pair-negative"),
    _p(dict(padding=((0, 0), (-1, 0))), ValueError, r"\bpadding\b", id="padding-side-negative"),
    _p(dict(padding=2), ValueError, r"\bpadding\b.*half", id="padding-more-than-half-kernel"),
    _p(dict(padding=(0, 2)), ValueError, r"\bpadding\b.*half", id="padding-pair-more-than-half"),
    _p(dict(padding=((0, 2), (0, 0))), ValueError, r"\bpadding\b.*half", id="padding-side-more-than-half"),
    _p(dict(kernel_size=2, padding=2), ValueError, r"\bpadding\b.*half", id="padding-equals-even-kernel"),
    _p(dict(padding="full"), ValueError, r"\bpadding\b", id="padding-bad-string"),
    _p(dict(padding=""), ValueError, r"\bpadding\b", id="padding-empty-string"),
    _p(dict(padding=(1, 1, 1)), ValueError, r"\bpadding\b", id="padding-triple"),
    _p(dict(padding=((1, 1), (1,))), ValueError, r"\bpadding\b", id="padding-side-short"),
    _p(dict(padding=1.5), TypeError, r"\bpadding\b", id="padding-float"),
    _p(dict(padding=True), TypeError, r"\bpadding\b", id="padding-bool"),
    _p(dict(padding=None), TypeError, r"\bpadding\b", id="padding-none"),
    _p(dict(padding=2**31), ValueError, r"\bpadding\b", id="padding-2**31"),
    # the window does not fit
    _p(dict(x=X[:, :, :2, :2], padding=0), ValueError, r"kernel.*padded input", id="kernel-larger-than-input"),
    _p(dict(x=X[:, :, :, :1], padding=0), ValueError, r"width", id="kernel-wider-than-input"),
    # flags
    _p(dict(ceil_mode=1), TypeError, r"\bceil_mode\b", id="ceil_mode-int"),
    _p(dict(ceil_mode="yes"), TypeError, r"\bceil_mode\b", id="ceil_mode-string"),
    _p(dict(ceil_mode=None), TypeError, r"\bceil_mode\b", id="ceil_mode-none"),
    # data_format
    _p(dict(data_format="NCWH"), ValueError, r"\bdata_format\b", id="data_format-bad"),
    _p(dict(data_format=None), ValueError, r"\bdata_format\b", id="data_format-none"),
    _p(dict(data_format=0), ValueError, r"\bdata_format\b", id="data_format-int"),
    # x
    _p(dict(x=X[0, 0]), ValueError, r"\bx\b", id="x-2d"),
    _p(dict(x=X[0, 0, 0]), ValueError, r"\bx\b", id="x-1d"),
    _p(dict(x=np.float32(1.0)), ValueError, r"\bx\b", id="x-0d"),
    _p(dict(x=X[None]), ValueError, r"\bx\b", id="x-5d"),
    _p(dict(x=np.zeros((2, 3, 0, 7), np.float32)), ValueError, r"\bx\b", id="x-zero-height"),
    _p(dict(x=np.zeros((2, 3, 7, 0), np.float32)), ValueError, r"\bx\b", id="x-zero-width"),
    _p(dict(x=X.astype(np.complex64)), TypeError, r"\bx\b.*complex", id="x-complex"),
    _p(dict(x=X.astype(object)), TypeError, r"\bx\b.*object", id="x-object"),
    _p(dict(x=X.astype(str)), TypeError, r"\bx\b", id="x-string"),
    _p(dict(x=None), TypeError, r"\bx\b", id="x-none"),
    _p(dict(x=[[1, 2], [3]]), (TypeError, ValueError), r"\bx\b", id="x-ragged-list"),
    # out=
    _p(dict(out=np.zeros((2, 6, 5, 6), np.float32)), ValueError, r"\bout\b", id="out-wrong-shape"),
    _p(dict(out=np.zeros(RESULT_SHAPE[1:], np.float32)), ValueError, r"\bout\b", id="out-missing-batch"),
    _p(dict(out=np.zeros(RESULT_SHAPE, np.float64)), ValueError, r"\bout\b", id="out-float64-for-float32"),
    _p(dict(x=X.astype(np.float64), out=np.zeros(RESULT_SHAPE, np.float32)), ValueError, r"\bout\b",
       id="out-float32-for-float64"),
    _p(dict(out=np.zeros(RESULT_SHAPE, np.int32)), ValueError, r"\bout\b", id="out-int"),
    _p(dict(out=np.zeros(RESULT_SHAPE[:3] + (10,), np.float32)[..., ::2]), ValueError, r"\bout\b", id="out-strided"),
    _p(dict(out=np.asfortranarray(np.zeros(RESULT_SHAPE, np.float32))), ValueError, r"\bout\b", id="out-fortran"),
    _p(dict(out=read_only(np.zeros(RESULT_SHAPE, np.float32))), ValueError, r"\bout\b", id="out-read-only"),
    _p(out_overlapping_x, ValueError, r"\bout\b", id="out-overlaps-x"),
    _p(dict(out=np.zeros(RESULT_SHAPE, np.float32).tolist()), (ValueError, TypeError), r"\bout\b", id="out-list"),
]


def _call(op, overrides):
    call = dict(x=X, kernel_size=3, stride=2, padding=1)
    call.update(overrides() if callable(overrides) else overrides)
    x = call.pop("x")
    return getattr(pycnn.ops, op)(x, **call)


@pytest.mark.parametrize("op", WINDOW_OPS)
@pytest.mark.parametrize("overrides, exc, pattern", WINDOW_CASES)
def test_window_ops_bad_input(op, overrides, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _call(op, overrides)


@pytest.mark.parametrize("overrides, exc, pattern", [
    *[_p(kw, exc, r"\bdilation\b", id=id) for id, kw, exc in _bad_ints("dilation")],
    _p(dict(dilation=2, padding=3), ValueError, r"\bpadding\b.*half", id="padding-more-than-half-dilated-kernel"),
    _p(dict(dilation=5, padding=0), ValueError, r"kernel.*padded input", id="dilated-kernel-larger-than-input"),
])
def test_max_pool2d_bad_dilation(overrides, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _call("max_pool2d", overrides)


def test_max_pool2d_padding_up_to_half_the_dilated_kernel_is_allowed():
    """Our rule is half the effective kernel (PyTorch's is half the kernel): 3 with dilation 2 is fine."""
    assert pycnn.ops.max_pool2d(X, 3, 1, padding=2, dilation=2).shape == (2, 6, 9, 9)


@pytest.mark.parametrize("value, exc", [(1, TypeError), ("no", TypeError), (None, TypeError)])
def test_avg_pool2d_bad_count_include_pad(value, exc):
    with pytest.raises(exc, match=r"\bcount_include_pad\b"):
        pycnn.ops.avg_pool2d(X, 3, count_include_pad=value)


def test_avg_pool2d_has_no_dilation():
    with pytest.raises(TypeError, match="dilation"):
        pycnn.ops.avg_pool2d(X, 3, dilation=2)


@pytest.mark.parametrize("op", WINDOW_OPS)
def test_out_is_untouched_when_arguments_are_bad(op):
    out = np.full(RESULT_SHAPE, 3.0, np.float32)
    with pytest.raises(ValueError):
        getattr(pycnn.ops, op)(X, 3, 2, 4, out=out)
    np.testing.assert_array_equal(out, 3.0)


GLOBAL_OPS = ["global_avg_pool2d", "global_max_pool2d"]


@pytest.mark.parametrize("op", GLOBAL_OPS)
@pytest.mark.parametrize("kwargs, exc, pattern", [
    _p(dict(x=X[0, 0]), ValueError, r"\bx\b", id="x-2d"),
    _p(dict(x=X[None]), ValueError, r"\bx\b", id="x-5d"),
    _p(dict(x=np.zeros((2, 3, 0, 4), np.float32)), ValueError, r"\bx\b", id="x-zero-height"),
    _p(dict(x=np.zeros((2, 0, 4, 3), np.float32), data_format="NHWC"), ValueError, r"\bx\b", id="x-zero-width-nhwc"),
    _p(dict(x=X.astype(np.complex128)), TypeError, r"\bx\b.*complex", id="x-complex"),
    _p(dict(x=X.astype(object)), TypeError, r"\bx\b.*object", id="x-object"),
    _p(dict(x=None), TypeError, r"\bx\b", id="x-none"),
    _p(dict(keepdims=1), TypeError, r"\bkeepdims\b", id="keepdims-int"),
    _p(dict(keepdims=None), TypeError, r"\bkeepdims\b", id="keepdims-none"),
    _p(dict(data_format="HWC"), ValueError, r"\bdata_format\b", id="data_format-bad"),
])
def test_global_ops_bad_input(op, kwargs, exc, pattern):
    call = dict(x=X)
    call.update(kwargs)
    x = call.pop("x")
    with pytest.raises(exc, match=pattern):
        getattr(pycnn.ops, op)(x, **call)


@pytest.mark.parametrize("op", GLOBAL_OPS)
def test_global_ops_options_are_keyword_only(op):
    with pytest.raises(TypeError):
        getattr(pycnn.ops, op)(X, "NHWC")


@pytest.mark.parametrize("args, kwargs, exc, pattern", [
    _p((X, 4), {}, ValueError, r"\bpool_size\b.*divide", id="pool_size-not-dividing"),
    _p((X, 7), {}, ValueError, r"\bpool_size\b", id="pool_size-larger-than-c"),
    _p((X.transpose(0, 2, 3, 1), 9), dict(data_format="NHWC"), ValueError, r"\bpool_size\b.*divide",
       id="pool_size-not-dividing-nhwc"),
    _p((X, 0), {}, ValueError, r"\bpool_size\b", id="pool_size-0"),
    _p((X, -2), {}, ValueError, r"\bpool_size\b", id="pool_size-negative"),
    _p((X, 2.0), {}, TypeError, r"\bpool_size\b", id="pool_size-float"),
    _p((X, True), {}, TypeError, r"\bpool_size\b", id="pool_size-bool"),
    _p((X, None), {}, TypeError, r"\bpool_size\b", id="pool_size-none"),
    _p((X, (2, 2)), {}, TypeError, r"\bpool_size\b", id="pool_size-tuple"),
    _p((X, 2**31), {}, ValueError, r"\bpool_size\b", id="pool_size-2**31"),
    _p((X[0, 0], 2), {}, ValueError, r"\bx\b", id="x-2d"),
    _p((X[None], 2), {}, ValueError, r"\bx\b", id="x-5d"),
    _p((X.astype(np.complex64), 2), {}, TypeError, r"\bx\b.*complex", id="x-complex"),
    _p((X.astype(object), 2), {}, TypeError, r"\bx\b.*object", id="x-object"),
    _p((X, 2), dict(data_format="NWHC"), ValueError, r"\bdata_format\b", id="data_format-bad"),
])
def test_depth_max_pool2d_bad_input(args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        pycnn.ops.depth_max_pool2d(*args, **kwargs)


def test_depth_max_pool2d_options_are_keyword_only():
    with pytest.raises(TypeError):
        pycnn.ops.depth_max_pool2d(X, 2, "NHWC")


def test_unknown_keyword():
    with pytest.raises(TypeError, match="strides"):
        pycnn.ops.max_pool2d(X, 3, strides=1)


def test_base_calls_are_valid():
    """The tables' base arguments are themselves valid (so each case fails for its own reason)."""
    for op in WINDOW_OPS:
        result = getattr(pycnn.ops, op)(X, kernel_size=3, stride=2, padding=1)
        assert result.shape == RESULT_SHAPE and result.dtype == np.float32
    assert pycnn.ops.depth_max_pool2d(X, 3).shape == (2, 2, 9, 9)
    assert pycnn.ops.global_avg_pool2d(X).shape == (2, 6)


def test_core_rejects_inconsistent_calls_without_crashing():
    """The C++ entry points check what they are given (for callers that bypass pycnn.ops)."""
    from pycnn import _core

    y = np.zeros(RESULT_SHAPE, np.float32)
    geometry = (2, 6, 9, 9, 3, 3, 5, 5, 2, 2, 1, 1, 1, 1, 1, 1)
    def pool2d(x, y, geometry, layout, kind, count_include_pad, float64=False):
        _core.Pool2dPlan(geometry, layout, kind, count_include_pad, float64, y.shape)(x, y)

    with pytest.raises(ValueError, match="elements"):
        pool2d(X[:1], y, geometry, 0, 0, True)
    with pytest.raises(ValueError, match="dtype"):  # a float64 plan given a float32 result
        pool2d(X.astype(np.float64), y, geometry, 0, 0, True, float64=True)
    with pytest.raises(ValueError, match="16 entries"):
        pool2d(X, y, geometry[:-1], 0, 0, True)
    with pytest.raises(ValueError, match=">= 1"):
        pool2d(X, y, (2, 6, 9, 9, 0, 3, 5, 5, 2, 2, 1, 1, 1, 1, 1, 1), 0, 0, True)
    with pytest.raises(ValueError, match="padding"):
        pool2d(X, y, (2, 6, 9, 9, 3, 3, 5, 5, 2, 2, 1, 1, -1, 1, 1, 1), 0, 0, True)
    with pytest.raises(ValueError, match="no cell"):  # an avg window entirely in the padding
        pool2d(X, np.zeros((2, 6, 5, 7), np.float32), (2, 6, 9, 9, 1, 1, 5, 7, 2, 2, 1, 1, 0, 0, 4, 0), 0, 1, False)
    with pytest.raises(ValueError, match="pool_size"):
        _core.depth_max_pool2d(X, np.zeros((2, 1, 9, 9), np.float32), 2, 6, 9, 9, 4, 0)
    with pytest.raises(ValueError, match="read-only"):
        _core.GlobalPool2dPlan(1, 0, 2, 6, 9, 9, False, (2, 6))(X, read_only(np.zeros((2, 6), np.float32)))
