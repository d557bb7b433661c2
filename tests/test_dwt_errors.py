"""Bad input to depthwise_conv2d, separable_conv2d and conv_transpose2d: a clear
ValueError/TypeError whose message names the argument, never a crash. One table per op."""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops

_rng = np.random.default_rng(0)
X = _rng.standard_normal((2, 3, 7, 7)).astype(np.float32)


def _p(make, exc, pattern, id):
    return pytest.param(make, exc, pattern, id=id)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _common_cases(args, result_shape, weight_name="weight"):
    """Cases every op shares: x, stride/dilation/padding, names, dtypes, out=."""
    return [
        _p(lambda: args(x=X[0, 0]), ValueError, r"\bx\b", "x-2d"),
        _p(lambda: args(x=X[None]), ValueError, r"\bx\b", "x-5d"),
        _p(lambda: args(x=np.float32(1.0)), ValueError, r"\bx\b", "x-0d"),
        _p(lambda: args(x=np.zeros((2, 3, 0, 7), np.float32)), ValueError, r"\bx\b", "x-zero-height"),
        _p(lambda: args(x=X.astype(np.complex64)), TypeError, r"\bx\b", "x-complex"),
        _p(lambda: args(x=X.astype(object)), TypeError, r"\bx\b", "x-object"),
        _p(lambda: args(x=None), TypeError, r"\bx\b", "x-none"),
        _p(lambda: args(**{weight_name: args()[weight_name].astype(np.complex128)}), TypeError,
           rf"\b{weight_name}\b", "weight-complex"),
        _p(lambda: args(**{weight_name: args()[weight_name][0]}), ValueError, rf"\b{weight_name}\b", "weight-3d"),
        _p(lambda: args(bias=np.zeros(99, np.float32)), ValueError, r"\bbias\b", "bias-wrong-length"),
        _p(lambda: args(bias=np.zeros((1, 1), np.float32)), ValueError, r"\bbias\b", "bias-2d"),
        _p(lambda: args(bias=np.zeros(3, np.complex64)), TypeError, r"\bbias\b", "bias-complex"),
        *[_p(lambda name=name, v=v: args(**{name: v}), exc, rf"\b{name}\b", f"{name}-{label}")
          for name in ("stride", "dilation")
          for label, v, exc in [("0", 0, ValueError), ("negative", -2, ValueError), ("float", 1.5, TypeError),
                                ("bool", True, TypeError), ("triple", (1, 1, 1), ValueError),
                                ("pair-with-0", (1, 0), ValueError)]],
        _p(lambda: args(padding=-1), ValueError, r"\bpadding\b", "padding-negative"),
        _p(lambda: args(padding="full"), ValueError, r"\bpadding\b", "padding-bad-string"),
        _p(lambda: args(padding=(1, 1, 1)), ValueError, r"\bpadding\b", "padding-triple"),
        _p(lambda: args(padding=1.5), TypeError, r"\bpadding\b", "padding-float"),
        _p(lambda: args(data_format="NCWH"), ValueError, r"\bdata_format\b", "data_format-bad"),
        _p(lambda: args(activation="gelu"), ValueError, r"\bactivation\b", "activation-unknown"),
        _p(lambda: args(activation=("relu", 0.1)), ValueError, r"\bactivation\b", "activation-param-not-taken"),
        _p(lambda: args(out=np.zeros((1, 1, 1, 1), np.float32)), ValueError, r"\bout\b", "out-wrong-shape"),
        _p(lambda: args(out=np.zeros(result_shape, np.float64)), ValueError, r"\bout\b", "out-wrong-dtype"),
        _p(lambda: args(out=np.zeros(result_shape[:3] + (2 * result_shape[3],), np.float32)[..., ::2]),
           ValueError, r"\bout\b", "out-strided"),
        _p(lambda: args(out=read_only(np.zeros(result_shape, np.float32))), ValueError, r"\bout\b", "out-read-only"),
        _p(lambda: args(out=np.zeros(result_shape, np.float32).tolist()), (ValueError, TypeError), r"\bout\b",
           "out-list"),
    ]


def _out_aliasing_x(args, result_shape):
    """out= whose memory is x itself (possible when the result has x's shape)."""
    def make():
        base = args()
        x = base["x"].copy()
        assert x.shape == result_shape
        return args(x=x, out=x)
    return _p(make, ValueError, r"\bout\b", "out-is-x")


# ------------------------------------------------------------------------------ depthwise

DW = _rng.standard_normal((6, 1, 3, 3)).astype(np.float32)           # C=3, M=2
DW_B = np.zeros(6, np.float32)
DW_RESULT = (2, 6, 5, 5)


def dw_args(**overrides):
    call = dict(x=X, weight=DW, bias=DW_B)
    call.update(overrides)
    return call


DEPTHWISE_CASES = _common_cases(dw_args, DW_RESULT) + [
    _p(lambda: dw_args(weight=DW[:5]), ValueError, r"\bweight\b", "weight-not-multiple-of-c"),
    _p(lambda: dw_args(weight=np.zeros((6, 2, 3, 3), np.float32)), ValueError, r"\bweight\b", "weight-in-channels-2"),
    _p(lambda: dw_args(weight=np.zeros((0, 1, 3, 3), np.float32)), ValueError, r"\bweight\b", "weight-zero-outputs"),
    _p(lambda: dw_args(weight=np.zeros((6, 1, 0, 3), np.float32)), ValueError, r"\bweight\b", "weight-zero-kernel"),
    _p(lambda: dw_args(x=X.transpose(0, 2, 3, 1), weight=np.zeros((3, 3, 4, 2), np.float32), data_format="NHWC"),
       ValueError, r"\bweight\b", "nhwc-weight-channel-mismatch"),
    _p(lambda: dw_args(x=X.transpose(0, 2, 3, 1), weight=np.zeros((3, 3, 3, 0), np.float32), bias=None,
                       data_format="NHWC"), ValueError, r"\bweight\b", "nhwc-weight-zero-multiplier"),
    _p(lambda: dw_args(x=X[:, :, :2, :2]), ValueError, r"kernel.*padd", "kernel-larger-than-input"),
    _p(lambda: dw_args(weight=DW[:3], bias=None, padding=1, out=X), ValueError, r"\bout\b", "out-is-x"),
]


@pytest.mark.parametrize("make, exc, pattern", DEPTHWISE_CASES)
def test_depthwise_bad_input(make, exc, pattern):
    call = make()
    x, weight, bias = call.pop("x"), call.pop("weight"), call.pop("bias")
    with pytest.raises(exc, match=pattern):
        pycnn.ops.depthwise_conv2d(x, weight, bias, **call)


# ------------------------------------------------------------------------------ separable

PW = _rng.standard_normal((4, 6, 1, 1)).astype(np.float32)           # C*M=6 -> O=4
PW_B = np.zeros(4, np.float32)
SEP_RESULT = (2, 4, 5, 5)


def sep_args(**overrides):
    call = dict(x=X, depthwise_weight=DW, pointwise_weight=PW, bias=PW_B)
    call.update(overrides)
    return call


SEPARABLE_CASES = _common_cases(sep_args, SEP_RESULT, "depthwise_weight") + [
    _p(lambda: sep_args(depthwise_weight=DW[:5]), ValueError, r"\bdepthwise_weight\b", "dw-not-multiple-of-c"),
    _p(lambda: sep_args(pointwise_weight=PW[:, :5]), ValueError, r"\bpointwise_weight\b", "pw-channel-mismatch"),
    _p(lambda: sep_args(pointwise_weight=np.zeros((4, 6, 3, 3), np.float32)), ValueError, r"\bpointwise_weight\b",
       "pw-not-1x1"),
    _p(lambda: sep_args(pointwise_weight=PW[:, :, 0]), ValueError, r"\bpointwise_weight\b", "pw-3d"),
    _p(lambda: sep_args(pointwise_weight=np.zeros((0, 6, 1, 1), np.float32), bias=None), ValueError,
       r"\bpointwise_weight\b", "pw-zero-outputs"),
    _p(lambda: sep_args(pointwise_weight=PW.astype(object)), TypeError, r"\bpointwise_weight\b", "pw-object"),
    _p(lambda: sep_args(bias=np.zeros(6, np.float32)), ValueError, r"\bbias\b", "bias-has-depthwise-length"),
    _p(lambda: sep_args(x=X.transpose(0, 2, 3, 1), depthwise_weight=DW.reshape(3, 2, 3, 3).transpose(2, 3, 0, 1),
                        pointwise_weight=PW, data_format="NHWC"), ValueError, r"\bpointwise_weight\b",
       "nhwc-pw-in-nchw-layout"),
]


@pytest.mark.parametrize("make, exc, pattern", SEPARABLE_CASES)
def test_separable_bad_input(make, exc, pattern):
    call = make()
    args = [call.pop(k) for k in ("x", "depthwise_weight", "pointwise_weight", "bias")]
    with pytest.raises(exc, match=pattern):
        pycnn.ops.separable_conv2d(*args, **call)


# ------------------------------------------------------------------------------ transposed

TW = _rng.standard_normal((3, 4, 3, 3)).astype(np.float32)           # C=3 -> O=4
TW_B = np.zeros(4, np.float32)
T_RESULT = (2, 4, 9, 9)


def t_args(**overrides):
    call = dict(x=X, weight=TW, bias=TW_B)
    call.update(overrides)
    return call


TRANSPOSE_CASES = _common_cases(t_args, T_RESULT) + [
    _p(lambda: t_args(weight=TW[:2]), ValueError, r"\bweight\b", "weight-channel-mismatch"),
    _p(lambda: t_args(x=X.transpose(0, 2, 3, 1), weight=TW.transpose(2, 3, 1, 0)[..., :2], data_format="NHWC"),
       ValueError, r"\bweight\b", "nhwc-weight-channel-mismatch"),
    _p(lambda: t_args(weight=np.zeros((3, 0, 3, 3), np.float32), bias=None), ValueError, r"\bweight\b",
       "weight-zero-outputs"),
    _p(lambda: t_args(groups=2), ValueError, r"\bgroups\b", "groups-not-dividing-c"),
    _p(lambda: t_args(groups=0), ValueError, r"\bgroups\b", "groups-0"),
    _p(lambda: t_args(groups=1.0), TypeError, r"\bgroups\b", "groups-float"),
    _p(lambda: t_args(x=np.zeros((1, 4, 5, 5), np.float32), weight=np.zeros((4, 2, 3, 3), np.float32), bias=None,
                      groups=2, out=np.zeros((1, 2, 7, 7), np.float32)), ValueError, r"\bout\b",
       "out-shape-ignores-groups"),
    _p(lambda: t_args(bias=np.zeros(4, np.float32), x=np.zeros((1, 6, 5, 5), np.float32),
                      weight=np.zeros((6, 4, 3, 3), np.float32), groups=2), ValueError, r"\bbias\b",
       "bias-groups-o"),
    _p(lambda: t_args(stride=2, output_padding=2), ValueError, r"\boutput_padding\b", "output_padding-eq-stride"),
    _p(lambda: t_args(output_padding=1), ValueError, r"\boutput_padding\b", "output_padding-stride1-dil1"),
    _p(lambda: t_args(stride=2, dilation=3, output_padding=3), ValueError, r"\boutput_padding\b",
       "output_padding-eq-dilation"),
    _p(lambda: t_args(stride=(2, 1), output_padding=(1, 1)), ValueError, r"\boutput_padding\b",
       "output_padding-w-too-big"),
    _p(lambda: t_args(stride=2, output_padding=-1), ValueError, r"\boutput_padding\b", "output_padding-negative"),
    _p(lambda: t_args(stride=2, output_padding=0.5), TypeError, r"\boutput_padding\b", "output_padding-float"),
    _p(lambda: t_args(stride=2, output_padding=(1, 1, 1)), ValueError, r"\boutput_padding\b",
       "output_padding-triple"),
    _p(lambda: t_args(padding=5), ValueError, r"output size", "padding-crops-everything"),
]


@pytest.mark.parametrize("make, exc, pattern", TRANSPOSE_CASES)
def test_conv_transpose_bad_input(make, exc, pattern):
    call = make()
    x, weight, bias = call.pop("x"), call.pop("weight"), call.pop("bias")
    with pytest.raises(exc, match=pattern):
        pycnn.ops.conv_transpose2d(x, weight, bias, **call)


# ------------------------------------------------------------------------------ shared

@pytest.mark.parametrize("op, call", [
    (pycnn.ops.depthwise_conv2d, lambda: dw_args()),
    (pycnn.ops.separable_conv2d, lambda: sep_args()),
    (pycnn.ops.conv_transpose2d, lambda: t_args()),
], ids=["depthwise", "separable", "transpose"])
def test_base_calls_are_valid_and_options_keyword_only(op, call):
    """The tables' base arguments work (so each case fails for its own reason)."""
    args = list(call().values())
    result = op(*args)
    assert result.dtype == np.float32
    with pytest.raises(TypeError):
        op(*args, 1)
    with pytest.raises(TypeError, match="strides"):
        op(*args, strides=1)


def test_out_is_untouched_when_arguments_are_bad():
    out = np.full(T_RESULT, 3.0, np.float32)
    with pytest.raises(ValueError):
        pycnn.ops.conv_transpose2d(X, TW, np.zeros(3, np.float32), out=out)
    np.testing.assert_array_equal(out, 3.0)
    out = np.full(DW_RESULT, 3.0, np.float32)
    with pytest.raises(ValueError):
        pycnn.ops.depthwise_conv2d(X, DW, DW_B, stride=2, padding=1, out=out)
    np.testing.assert_array_equal(out, 3.0)
