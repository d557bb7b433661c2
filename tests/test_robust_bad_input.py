"""Bad input to every public function of pycnn.ops (and pycnn.set_num_threads / set_isa): a
ValueError/TypeError that names the argument, never a crash, hang or huge allocation.

The per-op error files (test_conv2d_errors.py, test_pool_errors.py, test_dwt_errors.py) hold the
basic tables; this file adds what they miss, table-driven over all ops at once: huge values
(>= 2**31) for every integer parameter, bools and floats (Python and NumPy) where ints belong,
None / complex / object / string / bytes / datetime / structured arrays for every array argument,
every out= defect for every op that takes out=, and empty batches (N = 0) for every op.
"""
from __future__ import annotations

import numpy as np
import pytest

import pycnn
import pycnn.ops as ops

_rng = np.random.default_rng(6)
X = _rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
W = _rng.standard_normal((4, 3, 3, 3)).astype(np.float32)           # conv2d: result (2, 4, 5, 5)
DW = _rng.standard_normal((6, 1, 3, 3)).astype(np.float32)          # depthwise M=2: (2, 6, 5, 5)
PW = _rng.standard_normal((4, 6, 1, 1)).astype(np.float32)          # separable: (2, 4, 5, 5)
WT = _rng.standard_normal((3, 2, 3, 3)).astype(np.float32)          # transposed: (2, 2, 9, 9)


def _bias(n):
    return np.arange(n, dtype=np.float32)


# name -> (function, array arguments in order, fixed keywords, result shape, integer parameters)
OPS = {
    "conv2d": (ops.conv2d, dict(x=X, weight=W, bias=_bias(4)), {}, (2, 4, 5, 5),
               ("stride", "padding", "dilation", "groups")),
    "depthwise_conv2d": (ops.depthwise_conv2d, dict(x=X, weight=DW, bias=_bias(6)), {}, (2, 6, 5, 5),
                         ("stride", "padding", "dilation")),
    "separable_conv2d": (ops.separable_conv2d, dict(x=X, depthwise_weight=DW, pointwise_weight=PW, bias=_bias(4)),
                         {}, (2, 4, 5, 5), ("stride", "padding", "dilation")),
    "conv_transpose2d": (ops.conv_transpose2d, dict(x=X, weight=WT, bias=_bias(2)), {}, (2, 2, 9, 9),
                         ("stride", "padding", "dilation", "groups", "output_padding")),
    "max_pool2d": (ops.max_pool2d, dict(x=X), dict(kernel_size=3), (2, 3, 2, 2),
                   ("kernel_size", "stride", "padding", "dilation")),
    "avg_pool2d": (ops.avg_pool2d, dict(x=X), dict(kernel_size=3), (2, 3, 2, 2),
                   ("kernel_size", "stride", "padding")),
    "global_avg_pool2d": (ops.global_avg_pool2d, dict(x=X), {}, (2, 3), ()),
    "global_max_pool2d": (ops.global_max_pool2d, dict(x=X), {}, (2, 3), ()),
    "depth_max_pool2d": (ops.depth_max_pool2d, dict(x=X), dict(pool_size=3), (2, 1, 7, 7), ("pool_size",)),
}
OUT_OPS = [name for name in OPS if name not in ("global_avg_pool2d", "global_max_pool2d", "depth_max_pool2d")]


def call(name, **overrides):
    fn, arrays, fixed, _, _ = OPS[name]
    kwargs = {**arrays, **fixed, **overrides}
    return fn(**kwargs)


def test_every_base_call_is_valid_and_has_the_expected_shape():
    """The base arguments are valid, so every case below fails for its own reason."""
    for name, (_, _, _, shape, _) in OPS.items():
        result = call(name)
        assert result.shape == shape and result.dtype == np.float32, name
        # Pools accept a stride of 1 explicitly; convolutions take stride=1 too.
        if "stride" in OPS[name][4]:
            call(name, stride=1)
        if "output_padding" in OPS[name][4]:
            call(name, stride=2, output_padding=1)


# ---------------------------------------------------------------------------------------------
# Integer parameters: huge values, bools, floats (Python and NumPy)
# ---------------------------------------------------------------------------------------------

# Already in the per-op error files for conv2d: stride/dilation 0, negative, 1.5, 2.0, True, "2",
# None, 2**31, (1, 0), (1, 1.5), (1, 2**31), triples and (); padding -1, 1.5, True, None, 2**31.
_CONV2D_COVERED = {("stride", v) for v in ("2**31", "float", "bool", "pair-2**31")} | \
    {("dilation", v) for v in ("2**31", "float", "bool", "pair-2**31")} | \
    {("padding", v) for v in ("2**31", "float", "bool")} | {("groups", "float"), ("groups", "bool")}

_INT_DEFECTS = [
    ("2**31", 2**31, ValueError),
    ("2**32+1", 2**32 + 1, ValueError),
    ("2**63", 2**63, ValueError),
    ("10**30", 10**30, ValueError),
    ("np.int64-2**40", np.int64(2**40), ValueError),
    ("np.uint64-max", np.uint64(2**64 - 1), ValueError),
    ("pair-2**31", (1, 2**31), ValueError),
    ("pair-2**63-first", (2**63, 1), ValueError),
    ("bool", True, TypeError),
    ("np.bool_", np.bool_(True), TypeError),
    ("pair-with-bool", (1, False), TypeError),
    ("float", 1.0, TypeError),
    ("np.float64", np.float64(2.0), TypeError),
    ("np.float32", np.float32(1.0), TypeError),
    ("pair-with-np.float32", (1, np.float32(1.0)), TypeError),
    ("complex", 1 + 0j, TypeError),
    ("ndarray-0d", np.array(1), TypeError),
    ("ndarray-pair", np.array([1, 1]), TypeError),
    ("inf", float("inf"), TypeError),
    ("nan", float("nan"), TypeError),
]


def _int_cases():
    for name, (_, _, _, _, params) in OPS.items():
        for param in params:
            for label, value, exc in _INT_DEFECTS:
                if name == "conv2d" and (param, label) in _CONV2D_COVERED:
                    continue
                if param in ("groups", "pool_size") and isinstance(value, (tuple, np.ndarray)) and np.ndim(value):
                    continue  # not pair parameters: tested as plain values below
                overrides = {param: value}
                if param == "output_padding":
                    overrides["stride"] = 2
                yield pytest.param(name, overrides, exc, rf"\b{param}\b", id=f"{name}-{param}-{label}")
        if "groups" in params or "pool_size" in params:
            param = "groups" if "groups" in params else "pool_size"
            yield pytest.param(name, {param: (1, 1)}, TypeError, rf"\b{param}\b", id=f"{name}-{param}-pair")


INT_CASES = list(_int_cases())


@pytest.mark.parametrize("name, overrides, exc, pattern", INT_CASES)
def test_integer_parameter_defects_raise_naming_the_parameter(name, overrides, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(name, **overrides)


@pytest.mark.parametrize("name", ["explain_conv2d", "separable_conv2d_scratch_bytes"])
@pytest.mark.parametrize("param, value, exc", [
    ("stride", 2**31, ValueError), ("dilation", True, TypeError), ("padding", 2.0, TypeError),
    ("stride", np.float32(1), TypeError), ("padding", (0, 2**63), ValueError),
])
def test_shape_only_functions_reject_bad_parameters(name, param, value, exc):
    if name == "explain_conv2d":
        fn = lambda: ops.explain_conv2d(X.shape, W.shape, **{param: value})  # noqa: E731
    else:
        fn = lambda: ops.separable_conv2d_scratch_bytes(X.shape, DW.shape, PW.shape, **{param: value})  # noqa: E731
    with pytest.raises(exc, match=rf"\b{param}\b"):
        fn()


def test_shape_only_functions_reject_bad_shapes_and_dtype():
    with pytest.raises(ValueError, match=r"\bweight\b"):
        ops.explain_conv2d(X.shape, (4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"\bpointwise_weight\b"):
        ops.separable_conv2d_scratch_bytes(X.shape, DW.shape, (4, 5, 1, 1))
    with pytest.raises(ValueError, match=r"\bdtype\b"):
        ops.separable_conv2d_scratch_bytes(X.shape, DW.shape, PW.shape, dtype=np.float16)


# ---------------------------------------------------------------------------------------------
# Array arguments: None and non-real dtypes
# ---------------------------------------------------------------------------------------------

_ARRAY_DEFECTS = [
    ("none", lambda a: None),
    ("complex64", lambda a: a.astype(np.complex64)),
    ("complex128", lambda a: a.astype(np.complex128)),
    ("object", lambda a: a.astype(object)),
    ("str", lambda a: a.astype(str)),
    ("bytes", lambda a: a.astype(np.bytes_)),
    ("datetime64", lambda a: a.astype(np.int64).astype("datetime64[s]")),
    ("timedelta64", lambda a: a.astype(np.int64).astype("timedelta64[s]")),
    ("structured", lambda a: np.zeros(a.shape, [("v", np.float32)])),
    ("void", lambda a: np.zeros(a.shape, "V4")),
    ("python-string", lambda a: "not an array"),
    ("dict", lambda a: {"x": 1}),
]
# Already covered per op in the error files (x/weight/bias complex and object, None for x).
_ARRAY_COVERED = {
    ("conv2d", "x", "complex64"), ("conv2d", "weight", "complex128"), ("conv2d", "bias", "complex64"),
    ("conv2d", "x", "object"), ("conv2d", "weight", "object"), ("conv2d", "x", "str"), ("conv2d", "weight", "none"),
    ("max_pool2d", "x", "complex64"), ("max_pool2d", "x", "object"), ("max_pool2d", "x", "str"),
    ("max_pool2d", "x", "none"), ("avg_pool2d", "x", "complex64"), ("avg_pool2d", "x", "object"),
    ("avg_pool2d", "x", "str"), ("avg_pool2d", "x", "none"),
}


def _array_cases():
    for name, (_, arrays, _, _, _) in OPS.items():
        for arg, base in arrays.items():
            for label, make in _ARRAY_DEFECTS:
                if (name, arg, label) in _ARRAY_COVERED:
                    continue
                if arg == "bias" and label == "none":
                    continue  # bias=None is valid
                yield pytest.param(name, arg, make, id=f"{name}-{arg}-{label}")


ARRAY_CASES = list(_array_cases())


@pytest.mark.parametrize("name, arg, make", ARRAY_CASES)
def test_array_argument_defects_raise_type_error_naming_the_argument(name, arg, make):
    value = make(OPS[name][1][arg])
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        call(name, **{arg: value})


def test_bias_none_is_valid_everywhere():
    for name in ("conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d"):
        assert call(name, bias=None).shape == OPS[name][3]


# ---------------------------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------------------------

def _read_only(shape, dtype=np.float32):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


def _out_defects(name):
    shape = OPS[name][3]
    yield "wrong-shape", lambda: {"out": np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32)}
    yield "unbatched-shape", lambda: {"out": np.zeros(shape[1:], np.float32)}
    yield "float64", lambda: {"out": np.zeros(shape, np.float64)}
    yield "float16", lambda: {"out": np.zeros(shape, np.float16)}
    yield "int32", lambda: {"out": np.zeros(shape, np.int32)}
    yield "strided", lambda: {"out": np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]}
    yield "fortran", lambda: {"out": np.asfortranarray(np.zeros(shape, np.float32))}
    yield "negative-stride", lambda: {"out": np.zeros(shape, np.float32)[::-1]}
    yield "read-only", lambda: {"out": _read_only(shape)}
    yield "list", lambda: {"out": np.zeros(shape, np.float32).tolist()}
    yield "memoryview", lambda: {"out": memoryview(np.zeros(shape, np.float32))}
    # out sharing memory with each input in turn
    for arg, base in OPS[name][1].items():
        def overlapping(arg=arg, base=base):
            buf = np.zeros(base.size + int(np.prod(shape)), np.float32)
            inp = buf[:base.size].reshape(base.shape)
            inp[...] = base
            out = buf[base.size - 1:base.size - 1 + int(np.prod(shape))].reshape(shape)  # shares one element
            return {arg: inp, "out": out}
        yield f"overlaps-{arg}", overlapping


# Already in the error files: conv2d (all), pools (x-overlap, shape, dtype, strided, fortran,
# read-only, list), depthwise/separable/transposed (shape, float64, strided, read-only, list, out-is-x).
_OUT_COVERED = {("max_pool2d", d) for d in ("wrong-shape", "unbatched-shape", "float64", "int32", "strided",
                                            "fortran", "read-only", "list", "overlaps-x")} | \
    {("avg_pool2d", d) for d in ("wrong-shape", "unbatched-shape", "float64", "int32", "strided",
                                 "fortran", "read-only", "list", "overlaps-x")} | \
    {(n, d) for n in ("depthwise_conv2d", "separable_conv2d", "conv_transpose2d")
     for d in ("wrong-shape", "float64", "strided", "read-only", "list")} | \
    {("conv2d", d) for d in ("wrong-shape", "unbatched-shape", "float64", "int32", "strided", "fortran",
                             "read-only", "list", "overlaps-x", "overlaps-weight", "overlaps-bias")}

OUT_CASES = [pytest.param(name, make, id=f"{name}-out-{label}")
             for name in OUT_OPS for label, make in _out_defects(name) if (name, label) not in _OUT_COVERED]


@pytest.mark.parametrize("name, make", OUT_CASES)
def test_out_defects_raise_value_error_naming_out(name, make):
    overrides = make()
    before = {k: np.array(v, copy=True) for k, v in overrides.items() if isinstance(v, np.ndarray)}
    with pytest.raises((ValueError, TypeError), match=r"\bout\b") as info:
        call(name, **overrides)
    if isinstance(overrides["out"], np.ndarray):
        assert info.type is ValueError  # the contract: a bad out= array is a ValueError
    for k, v in before.items():  # nothing was written, into out or any input
        np.testing.assert_array_equal(overrides[k], v, err_msg=k)


@pytest.mark.parametrize("name", OUT_OPS)
def test_valid_out_is_filled_and_returned(name):
    expected = call(name)
    out = np.full(OPS[name][3], np.nan, np.float32)
    result = call(name, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------
# Empty batches
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, result_dtype", [
    (np.float32, np.float32), (np.float64, np.float64), (np.float16, np.float32), (np.int32, np.float32),
    (np.uint8, np.float32), (np.bool_, np.float32),
])
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_empty_batch_gives_empty_result_of_the_right_shape_and_dtype(name, dtype, result_dtype, layout):
    fn, arrays, fixed, shape, _ = OPS[name]
    kwargs = dict(arrays)
    x = np.zeros((0,) + X.shape[1:], dtype)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
        weight_axes = {"weight": (2, 3, 1, 0), "pointwise_weight": (2, 3, 1, 0)}
        for arg in ("weight", "pointwise_weight"):
            if arg in kwargs:
                kwargs[arg] = kwargs[arg].transpose(weight_axes[arg])
        if name == "conv_transpose2d":
            kwargs["weight"] = WT.transpose(2, 3, 1, 0)        # (KH, KW, O/groups, C)
        if "depthwise" in name or "separable" in name:
            key = "weight" if name == "depthwise_conv2d" else "depthwise_weight"
            kwargs[key] = DW.reshape(3, 2, 3, 3).transpose(2, 3, 0, 1)  # (KH, KW, C, M)
    kwargs["x"] = x
    result = fn(**kwargs, **fixed, data_format=layout)
    expected_shape = (0,) + shape[1:]
    if layout == "NHWC" and len(shape) == 4:
        expected_shape = (0, shape[2], shape[3], shape[1])
    assert result.shape == expected_shape
    assert result.dtype == result_dtype
    assert result.flags.c_contiguous
    if name in OUT_OPS:
        out = np.empty(expected_shape, result_dtype)
        assert fn(**kwargs, **fixed, data_format=layout, out=out) is out


def test_empty_batch_still_validates_out():
    x = np.zeros((0, 3, 7, 7), np.float32)
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.conv2d(x, W, out=np.zeros((0, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match=r"\bout\b"):
        ops.max_pool2d(x, 3, out=np.zeros((0, 3, 2, 2), np.float64))


def test_empty_batch_still_validates_parameters():
    x = np.zeros((0, 3, 7, 7), np.float32)
    with pytest.raises(ValueError, match=r"\bstride\b"):
        ops.depthwise_conv2d(x, DW, stride=2**31)
    with pytest.raises(TypeError, match=r"\bpool_size\b"):
        ops.depth_max_pool2d(x, 1.0)


# ---------------------------------------------------------------------------------------------
# Degenerate but valid parameters: huge windows/dilations that fit must finish (no hang, no
# huge allocation) and match the small equivalent.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("op", [ops.max_pool2d, ops.avg_pool2d])
@pytest.mark.parametrize("kernel_size", [2**31 - 1, (2**31 - 1, 3), (3, 10**9)])
def test_pool_window_far_larger_than_input_with_same_padding(op, kernel_size, layout):
    """"same" padding with a window of 2**31-1 cells: every window covers the whole input, so the
    answer equals a window just larger than the input (formerly looped over all 2**62 taps)."""
    x = X if layout == "NCHW" else np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    result = op(x, kernel_size, stride=1, padding="same", data_format=layout)
    small = tuple(15 if k > 15 else k for k in np.broadcast_to(kernel_size, 2).tolist())
    expected = op(x, small, stride=1, padding="same", data_format=layout)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_max_pool_with_huge_dilation_and_same_padding_is_the_identity(layout):
    """kernel 3, dilation 2**31-1, stride 1, "same": only the centre tap lands in the input."""
    x = X if layout == "NCHW" else np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    result = ops.max_pool2d(x, 3, stride=1, dilation=2**31 - 1, padding="same", data_format=layout)
    np.testing.assert_array_equal(result, x)


# ---------------------------------------------------------------------------------------------
# Runtime controls
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, exc", [
    (0, ValueError), (-1, ValueError), (2**31, ValueError), (2**63, ValueError), (True, TypeError),
    (np.bool_(True), TypeError), (2.0, TypeError), (np.float64(2), TypeError), (None, TypeError),
    ("2", TypeError), ((1, 1), TypeError),
])
def test_set_num_threads_rejects_bad_values_and_keeps_the_setting(value, exc):
    before = pycnn.get_num_threads()
    with pytest.raises(exc, match=r"\bn\b"):
        pycnn.set_num_threads(value)
    assert pycnn.get_num_threads() == before


@pytest.mark.parametrize("value, exc", [
    ("bogus", ValueError), ("", ValueError), ("AVX2 ", ValueError), (None, TypeError), (2, TypeError),
    (b"scalar", TypeError),
])
def test_set_isa_rejects_bad_values_and_keeps_the_setting(value, exc):
    before = pycnn.get_isa()
    with pytest.raises(exc, match=r"\bisa\b"):
        pycnn.set_isa(value)
    assert pycnn.get_isa() == before


_HUGE = 2**31 - 1


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


# Valid calls whose stride or dilation is huge but cannot matter (one output row / one input row /
# a one-tap kernel). They raised MemoryError (buffers sized by the stride) before.
DEGENERATE = {
    "depthwise-stride": lambda m: m.depthwise_conv2d(X, DW, stride=_HUGE),
    "depthwise-stride-nhwc": lambda m: m.depthwise_conv2d(_nhwc(X), DW.reshape(3, 2, 3, 3).transpose(2, 3, 0, 1),
                                                          stride=(_HUGE, 1), data_format="NHWC"),
    "separable-stride": lambda m: m.separable_conv2d(X, DW, PW, stride=_HUGE, padding=1),
    "conv2d-stride": lambda m: m.conv2d(X, W, stride=(1, _HUGE)),
    "conv2d-one-tap-dilation": lambda m: m.conv2d(X, W[:, :, :1, :1], dilation=_HUGE),
    "depthwise-one-tap-dilation": lambda m: m.depthwise_conv2d(X, DW[:, :, 1:2, :], dilation=(_HUGE, 1)),
    "conv_transpose-stride-one-pixel": lambda m: m.conv_transpose2d(X[:, :, :1, :1], WT, stride=_HUGE),
    "conv_transpose-stride-one-row": lambda m: m.conv_transpose2d(X[:, :, :1, :], WT, stride=(_HUGE, 2),
                                                                  padding=1, output_padding=(5, 1)),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_huge_stride_or_dilation_that_cannot_matter_matches_reference(case):
    import pycnn.reference as ref

    result = DEGENERATE[case](ops)
    expected = DEGENERATE[case](ref)
    assert result.shape == expected.shape and result.dtype == expected.dtype
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def test_transposed_huge_dilation_with_same_padding():
    """Only the centre tap lands. The phase forms size their padded planes by the dilated kernel's
    extent (they refuse it: below); at stride 1 "auto" runs conv2d, whose im2col does not."""
    assert ops.explain_conv_transpose2d(X, WT, dilation=_HUGE, padding="same").startswith("conv2d: at stride 1")
    result = ops.conv_transpose2d(X, WT, dilation=_HUGE, padding="same")
    expected = ops.conv_transpose2d(X, WT[:, :, 1:2, 1:2])  # only the centre tap lands
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("op", ["depthwise_conv2d", "separable_conv2d"])
def test_depthwise_huge_dilation_with_same_padding(op, data_format):
    """Only the centre tap lands. The depthwise kernels size their padded planes by the dilated
    kernel's extent (a known limitation until the grouped im2col took such kernels: ValueError
    in NCHW, MemoryError in NHWC), so a kernel wider than the input runs there, out= included."""
    x, dw, pw = X, DW, PW
    if data_format == "NHWC":  # Keras: (KH, KW, C, M) and (1, 1, C*M, O)
        dw = np.ascontiguousarray(DW.reshape(3, 2, 3, 3).transpose(2, 3, 0, 1))
        x, pw = _nhwc(X), PW.transpose(2, 3, 1, 0)
    centre = dw[:, :, 1:2, 1:2] if data_format == "NCHW" else dw[1:2, 1:2]
    call = getattr(ops, op)
    weights = (dw,) if op == "depthwise_conv2d" else (dw, pw)
    expected = call(x, centre, *weights[1:], data_format=data_format)
    out = np.full_like(expected, np.nan)
    assert call(x, *weights, dilation=_HUGE, padding="same", data_format=data_format, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(call(x, *weights, dilation=_HUGE, padding="same", data_format=data_format),
                               expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups", [1, 3])
def test_conv2d_huge_dilation_with_same_padding(groups, data_format):
    """A dilation of 2**31-1 with "same" padding (only the centre tap lands): "auto" takes
    im2col, whose packing does not grow with the dilation (the direct kernels' input panel
    would take 147 GiB: MemoryError before), also for groups = channels, which otherwise runs
    the depthwise kernels (they cannot serve it, above); "direct" refuses it by name."""
    x, w = X, (W if groups == 1 else DW)
    if data_format == "NHWC":
        x, w = _nhwc(X), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    centre = w[:, :, 1:2, 1:2] if data_format == "NCHW" else w[1:2, 1:2]
    params = dict(groups=groups, data_format=data_format)
    assert ops.explain_conv2d(x, w, dilation=_HUGE, padding="same", **params).startswith(
        "im2col: a dilated kernel 4294967295 columns wide")
    result = ops.conv2d(x, w, dilation=_HUGE, padding="same", **params)
    np.testing.assert_allclose(result, ops.conv2d(x, centre, **params), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"algorithm='direct' would fill a \d+ MiB input panel per thread"):
        ops.conv2d(x, w, dilation=_HUGE, padding="same", algorithm="direct", **params)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_wide_image_keeps_the_direct_panel(data_format):
    """A 66 MiB direct panel from 4096 channels x 1400 columns, not from a dilation: "auto" does
    not send it to im2col as a dilated kernel (only the shapes are explained: nothing runs)."""
    x_shape, w_shape = ((1, 4096, 3, 1400), (8, 4096, 3, 3)) if data_format == "NCHW" else \
        ((1, 3, 1400, 4096), (3, 3, 4096, 8))
    why = ops.explain_conv2d(x_shape, w_shape, data_format=data_format)
    assert not why.startswith("im2col: a dilated kernel"), why


def test_transposed_huge_dilation_refused_by_either_algorithm():
    """32 output channels in NHWC would take the direct phase correlations, whose input panel
    spans the dilated taps: such dilations go to the per-tap GEMMs, which refuse the size,
    instead of a multi-gigabyte panel (MemoryError before). (At stride 1 "auto" runs conv2d.)"""
    x = np.ones((1, 5, 5, 4), np.float32)
    w = np.ones((3, 3, 32, 4), np.float32)
    with pytest.raises(ValueError, match="overflows 64 bits"):
        ops.conv_transpose2d(x, w, dilation=_HUGE, padding="same", data_format="NHWC", algorithm="gemm")
    with pytest.raises(ValueError, match="algorithm='direct' would build input panels mostly of zeros at this "
                                         "dilation; use algorithm='gemm' or 'auto'"):
        ops.conv_transpose2d(x, w, dilation=_HUGE, padding="same", data_format="NHWC", algorithm="direct")
    np.testing.assert_array_equal(ops.conv_transpose2d(x, w, dilation=_HUGE, padding="same", data_format="NHWC"),
                                  ops.conv_transpose2d(x, w[1:2, 1:2], data_format="NHWC"))


def test_transposed_huge_column_stride_on_the_direct_path():
    """A reduction of 768 in NHWC takes the direct phase correlations. A column stride of 10**6
    makes 10**6 column phases, one with a tap: the input panels were sized per phase (MemoryError
    for 37 GB); now only phases with taps get one, and the rest are the bias alone."""
    import pycnn.reference as ref

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 2, 768)).astype(np.float32)
    w = rng.standard_normal((1, 1, 1, 768)).astype(np.float32)
    bias = np.array([0.5], np.float32)
    result = ops.conv_transpose2d(x, w, bias, stride=(1, 10**6), data_format="NHWC")
    expected = ref.conv_transpose2d(x, w, bias, stride=(1, 10**6), data_format="NHWC")
    assert result.shape == (1, 2, 10**6 + 1, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
    assert np.all(result[:, :, 1:-1] == 0.5)  # columns between the two input columns: bias only


def test_narrow_nchw_depthwise_with_huge_dilation(isa):
    """NCHW planes of at most 14 columns run on the NHWC kernels with the vector ISAs, which skip
    the padding taps: a dilation of 2**31-1 with "same" padding leaves the centre tap, exactly.
    The scalar kernels' padded NCHW planes would overflow and say so."""
    from pycnn import _args, _core

    g = _args.depthwise_conv2d_geometry(X.shape, DW.shape, stride=1, padding_spec="same", dilation=_HUGE,
                                        layout="NCHW")
    plan, y = _core.DepthwisePlan(ops._depthwise_geometry_tuple(g), 0, 0, 0.0, False, (2, 6, 7, 7)), \
        np.empty((2, 6, 7, 7), np.float32)
    if isa == "scalar":
        with pytest.raises(ValueError, match="overflows 64 bits"):
            plan(X, DW, None, y)
    else:
        plan(X, DW, None, y)
        np.testing.assert_array_equal(y, np.repeat(X, 2, axis=1) * DW[:, 0, 1, 1][None, :, None, None])


@pytest.mark.parametrize("op", ["depthwise_conv2d", "separable_conv2d", "conv_transpose2d"])
def test_buffer_sizes_that_overflow_64_bits_raise_value_error(op):
    """Plane sizes from a dilation of 2**31-1 overflowed int64 (UBSan: signed overflow; a wrapped
    size could be small and overrun the buffer); the core now checks the products. (pycnn.ops
    sends such depthwise kernels to conv2d's im2col, above: the core's plans are called here. The
    depthwise input is 15 columns wide: narrower NCHW planes run on the NHWC kernels, above.)"""
    from pycnn import _args, _core

    g = _args.depthwise_conv2d_geometry(X.shape, DW.shape, stride=1, padding_spec="same", dilation=_HUGE,
                                        layout="NCHW")
    geometry, y = ops._depthwise_geometry_tuple(g), np.empty((2, 6, 7, 7), np.float32)
    with pytest.raises(ValueError, match="overflows 64 bits"):
        if op == "depthwise_conv2d":
            x_wide = np.zeros((2, 3, 7, 15), np.float32)
            g = _args.depthwise_conv2d_geometry(x_wide.shape, DW.shape, stride=1, padding_spec="same",
                                                dilation=_HUGE, layout="NCHW")
            _core.DepthwisePlan(ops._depthwise_geometry_tuple(g), 0, 0, 0.0, False, (2, 6, 7, 15))(
                x_wide, DW, None, np.empty((2, 6, 7, 15), np.float32))
        elif op == "separable_conv2d":
            _core.SeparablePlan(geometry, 4, 0, 0, 0.0, False, (2, 4, 7, 7))(X, DW, PW, None,
                                                                             np.empty((2, 4, 7, 7), np.float32))
        else:  # the phase forms ("auto" runs conv2d at stride 1)
            ops.conv_transpose2d(X, WT, dilation=_HUGE, padding="same", algorithm="gemm")
