"""pack_conv2d_weight, pack_conv_transpose2d_weight and conv2d's cached call plans.

A packed weight must give exactly what the plain weight gives (same kernels, same order of
operations) on every ISA, algorithm, layout, dtype and group count, and be refused with a
clear message when the call does not match what it was packed for. The plan cache behind
repeated calls must never let a call skip a validation that an uncached call would do.
"""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops as ops
from pycnn import reference
from pycnn.ops import (PackedConv2dWeight, PackedConvTranspose2dWeight, pack_conv2d_weight,
                       pack_conv_transpose2d_weight)

ALGORITHMS = ["auto", "direct", "im2col"]


# (channels, output channels, size): a small layer (NCHW runs in place), and a narrow layer with
# a long reduction (NCHW reorders to NHWC on both algorithms, reading the packed HWIO copy).
SHAPES = [(8, 12, 11), (64, 40, 12)]


def _case(rng, layout, groups, dtype, c, o, size, k=3):
    x = rng.standard_normal((2, c, size, size + 2)).astype(dtype)
    w = rng.standard_normal((o, c // groups, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    return x, w, b


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_weight_gives_the_plain_weight_result(isa, rng, conv_truth, assert_conv_close, shape, algorithm,
                                                     groups, layout, dtype):
    x, w, b = _case(rng, layout, groups, dtype, *shape)
    kw = dict(stride=(1, 2), padding=1, groups=groups, activation="relu", data_format=layout, algorithm=algorithm)
    packed = pack_conv2d_weight(w, groups=groups, data_format=layout)
    plain = ops.conv2d(x, w, b, **kw)
    # Packed NCHW weights make reordering to NHWC cheaper, so on the wide shape the packed call
    # may take the NHWC route where the plain one stays in NCHW (another summation order).
    same_path = layout == "NHWC" or shape == SHAPES[0]
    for _ in range(2):  # the second call runs the cached plan
        y = ops.conv2d(x, packed, b, **kw)
        assert y.dtype == dtype and y.shape == plain.shape
        if same_path:
            np.testing.assert_array_equal(y, plain)
    expected, scale = conv_truth(x, w, b, **{k: v for k, v in kw.items() if k != "algorithm"})
    assert_conv_close(y, expected, scale, k=w.size // (w.shape[0] if layout == "NCHW" else w.shape[3]))


def test_packed_nchw_direct_reads_its_prepared_weights(rng, conv_truth, assert_conv_close):
    # A layer whose NCHW direct path reorders to NHWC: with packed weights the call must use the
    # HWIO copy made at pack time (the original is gone from reach: packing copies).
    x = rng.standard_normal((1, 16, 30, 30)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    packed = pack_conv2d_weight(w)
    expected = ops.conv2d(x, w, padding=1, algorithm="direct")
    w[...] = 0  # later changes to the source array never reach the packed copy
    np.testing.assert_array_equal(ops.conv2d(x, packed, padding=1, algorithm="direct"), expected)
    np.testing.assert_array_equal(ops.conv2d(x, packed, padding=1), ops.conv2d(x, packed, padding=1))


def test_packed_attributes_and_read_only_copy(rng):
    w = rng.standard_normal((3, 3, 4, 6))
    packed = pack_conv2d_weight(w, groups=2, data_format="channels_last")
    assert isinstance(packed, PackedConv2dWeight)
    assert packed.shape == (3, 3, 4, 6) and packed.dtype == np.float64
    assert packed.data_format == "NHWC" and packed.groups == 2
    assert repr(packed) == "PackedConv2dWeight(shape=(3, 3, 4, 6), dtype=float64, data_format='NHWC', groups=2)"
    assert not np.shares_memory(packed.weight, w)
    assert packed.weight.ctypes.data % 64 == 0 and packed.weight.flags.c_contiguous
    with pytest.raises(ValueError, match="read-only"):
        packed.weight[0, 0, 0, 0] = 1.0
    assert pack_conv2d_weight(w, data_format="NHWC", dtype=np.float32).dtype == np.float32
    assert pack_conv2d_weight(w.astype(np.int32), data_format="NHWC").dtype == np.float32


def test_packed_float32_weight_with_float64_input(rng, conv_truth, assert_conv_close):
    # The dtype rule is the plain one (float64 if any input is float64): the packed float32
    # weights are converted for such a call, and the result is float64.
    x = rng.standard_normal((1, 4, 9, 9))
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    y = ops.conv2d(x, pack_conv2d_weight(w), padding="same")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, ops.conv2d(x, w, padding="same"))


def test_explain_conv2d_counts_packed_weights(rng):
    # One output row, many weights: reordering OIHW weights per call does not pay, reordering
    # only the (small) input and output does.
    x_shape, w = (1, 128, 3, 32), np.zeros((128, 128, 3, 3), np.float32)
    assert ops.explain_conv2d(x_shape, w.shape).startswith("direct (NCHW in place)")
    assert ops.explain_conv2d(x_shape, pack_conv2d_weight(w)).startswith("direct: input reordered to NHWC")
    assert ops.explain_conv2d(x_shape, w.shape, stride=2).startswith("im2col")


@pytest.mark.parametrize("call, error, message", [
    (lambda w: pack_conv2d_weight(w[0]), ValueError, r"weight must be 4-D"),
    (lambda w: pack_conv2d_weight(w, groups=5), ValueError, r"groups=5 must divide the output channels 8"),
    (lambda w: pack_conv2d_weight(w, groups=0), ValueError, r"groups"),
    (lambda w: pack_conv2d_weight(w[:0]), ValueError, r"weight must have no zero-sized dimension"),
    (lambda w: pack_conv2d_weight(w, dtype=np.float16), TypeError, r"dtype must be float32 or float64"),
    (lambda w: pack_conv2d_weight(w.astype(np.complex64)), TypeError, r"weight must be a real"),
    (lambda w: pack_conv2d_weight(None), TypeError, r"weight must be an array"),
    (lambda w: pack_conv2d_weight(w, data_format="NCWH"), ValueError, r"data_format must be one of"),
])
def test_pack_conv2d_weight_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(np.ones((8, 4, 3, 3), np.float32))


def test_conv2d_refuses_a_weight_packed_for_another_call(rng):
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    packed = pack_conv2d_weight(rng.standard_normal((8, 4, 3, 3)), data_format="NCHW")
    with pytest.raises(ValueError, match=r"weight was packed for data_format 'NCHW'; this call has data_format 'NHWC'"):
        ops.conv2d(x.transpose(0, 2, 3, 1), packed, data_format="NHWC")
    grouped = pack_conv2d_weight(rng.standard_normal((8, 2, 3, 3)), groups=2)
    ops.conv2d(x, grouped, groups=2)
    with pytest.raises(ValueError, match=r"weight was packed for groups=2; this call has groups=1"):
        ops.conv2d(rng.standard_normal((1, 2, 8, 8)).astype(np.float32), grouped)
    with pytest.raises(ValueError, match=r"weight has 4 input channels per group but x has 6 channels"):
        ops.conv2d(rng.standard_normal((1, 6, 8, 8)).astype(np.float32), packed)


@pytest.mark.parametrize("first, then, error, message", [
    (dict(stride=1), dict(stride=1.0), TypeError, "stride"),
    (dict(stride=1), dict(stride=True), TypeError, "stride"),
    (dict(padding=(1, 1)), dict(padding=(1, 1.0)), TypeError, "padding"),
    (dict(groups=1), dict(groups=1.0), TypeError, "groups"),
    (dict(dilation=(2, 2)), dict(dilation=(2, True)), TypeError, "dilation"),
])
def test_a_cached_plan_never_skips_validation(rng, first, then, error, message):
    x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    for weight in (w, pack_conv2d_weight(w)):
        ops.conv2d(x, weight, **first)
        ops.conv2d(x, weight, **first)  # now cached
        with pytest.raises(error, match=message):
            ops.conv2d(x, weight, **then)


def test_numpy_integer_options_share_the_answer(rng):
    x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    expected = ops.conv2d(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(ops.conv2d(x, w, stride=np.int64(2), padding=np.int32(1)), expected)
    np.testing.assert_array_equal(ops.conv2d(x, w, stride=(2, 2), padding=[1, 1]), expected)


def test_cached_calls_convert_inputs_like_uncached_ones(rng):
    # A repeated call shape with a non-contiguous, read-only or integer input still converts it.
    x = rng.standard_normal((1, 3, 10, 10))
    w = rng.standard_normal((4, 3, 3, 3))
    expected = ops.conv2d(x, w)
    ops.conv2d(x, w)
    strided = np.asfortranarray(x)
    np.testing.assert_array_equal(ops.conv2d(strided, w), expected)
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(ops.conv2d(frozen, w), expected)
    xi = (x * 4).astype(np.int64)
    yi = ops.conv2d(xi, w)
    assert yi.dtype == np.float64
    np.testing.assert_array_equal(yi, ops.conv2d(xi.astype(np.float64), w))


class _Array(np.ndarray):
    """An ndarray subclass: never keyed by the C++ plan cache (its type is not exactly ndarray)."""


# Calls of one (x, weight) shape, each with its own plan: options as ints, tuples, nested tuples,
# strings and None; a bias; groups == channels (a DepthwisePlan); NHWC; an unbatched 3-D input.
CPP_CACHED_CALLS = [
    dict(),
    dict(stride=2, padding=(1, 0), dilation=(1, 2)),
    dict(padding=((1, 0), (2, 1)), activation="relu6"),
    dict(padding="same", activation=None, algorithm="im2col"),
    dict(bias=True),
    dict(groups=4, depthwise=True),
    dict(data_format="NHWC", padding="valid"),
    dict(unbatched=True, data_format="channels_last"),
    dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1, activation="relu6",
         data_format="channels_last", algorithm="direct", bias=True),  # a long key
]


def _cpp_cached_call(rng, dtype, bias=False, depthwise=False, unbatched=False, **kw):
    x = rng.standard_normal((2, 4, 9, 10)).astype(dtype)
    w = rng.standard_normal((4, 1 if depthwise else 4, 3, 3)).astype(dtype)
    if kw.get("data_format", "NCHW") != "NCHW":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    b = rng.standard_normal(4).astype(dtype) if bias else None
    return (x[1] if unbatched else x), w, b, kw


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_calls_run_the_plan_cached_in_cpp(rng, dtype):
    # Each call shape and option set gets its own entry, and its cached calls give the first call's bits.
    ops._clear_plans()
    for i, call in enumerate(CPP_CACHED_CALLS):
        x, w, b, kw = _cpp_cached_call(rng, dtype, **call)
        first = ops.conv2d(x, w, b, **kw)
        assert len(ops._CONV2D_CACHE) == i + 1, call
        assert ops._run_cached_conv2d(x, w, b, (0,)) is None  # other options: not cached
        for _ in range(2):
            y = ops.conv2d(x * 1, w, b, **kw)  # new arrays of the same shapes
            assert y.dtype == dtype and y.shape == first.shape and y.flags.c_contiguous
            np.testing.assert_array_equal(y, first)
        assert len(ops._CONV2D_CACHE) == i + 1


def test_the_cpp_cache_keys_dtypes_and_array_presence(rng):
    ops._clear_plans()
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y32 = ops.conv2d(x, w)
    y64 = ops.conv2d(x.astype(np.float64), w)  # the same shapes in another dtype: another plan
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-5, atol=1e-5)
    yb = ops.conv2d(x, w, b)  # with a bias: another plan
    np.testing.assert_allclose(yb, y32 + b[:, None, None], rtol=1e-6, atol=1e-6)
    yw = ops.conv2d(x, w.astype(np.float64))  # the weight's dtype counts too
    assert yw.dtype == np.float64
    assert len(ops._CONV2D_CACHE) == 4
    np.testing.assert_array_equal(ops.conv2d(x, w), y32)
    np.testing.assert_array_equal(ops.conv2d(x.astype(np.float64), w), y64)
    np.testing.assert_array_equal(ops.conv2d(x, w, b), yb)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("algorithm", ["winograd", "direct", "im2col"])
def test_packed_weights_in_the_cpp_cache(rng, layout, algorithm):
    # A packed weight keys by its array's shape and dtype, data_format and groups; each call reads
    # the weights (and the prepared form its plan takes) of the packed weight it is given.
    ops._clear_plans()
    x, w, b = _case(rng, layout, 1, np.float32, 16, 24, 10)
    kw = dict(padding=1, data_format=layout, algorithm=algorithm)
    packed = pack_conv2d_weight(w, data_format=layout)
    first = ops.conv2d(x, packed, b, **kw)
    assert len(ops._CONV2D_CACHE) == 1
    np.testing.assert_array_equal(ops.conv2d(x, packed, b, **kw), first)
    other_w = rng.standard_normal(w.shape).astype(np.float32)
    other = ops.conv2d(x, pack_conv2d_weight(other_w, data_format=layout), b, **kw)  # same key, other weights
    assert len(ops._CONV2D_CACHE) == 1
    ops._clear_plans()
    np.testing.assert_array_equal(other, ops.conv2d(x, pack_conv2d_weight(other_w, data_format=layout), b, **kw))
    assert not np.array_equal(other, first)
    # The plain weight and a float64 packed one are other plans.
    ops.conv2d(x, w, b, **kw)
    ops.conv2d(x, pack_conv2d_weight(w, data_format=layout, dtype=np.float64), b, **kw)
    assert len(ops._CONV2D_CACHE) == 3


def test_a_packed_weight_for_other_groups_or_layout_is_another_key(rng):
    # Weights of one shape packed for other groups or another data_format, in a call whose own
    # arguments match a cached one: refused as by an uncached call, not run on the cached plan.
    ops._clear_plans()
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    for _ in range(2):
        y = ops.conv2d(x, pack_conv2d_weight(w, groups=2), groups=2)
    np.testing.assert_array_equal(y, ops.conv2d(x, w, groups=2))
    with pytest.raises(ValueError, match=r"weight was packed for groups=1; this call has groups=2"):
        ops.conv2d(x, pack_conv2d_weight(w), groups=2)
    x3 = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w3 = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    for _ in range(2):
        ops.conv2d(x3, pack_conv2d_weight(w3))
    with pytest.raises(ValueError, match=r"weight was packed for data_format 'NHWC'; this call has data_format 'NCHW'"):
        ops.conv2d(x3, pack_conv2d_weight(w3, data_format="NHWC"))
    assert len(ops._CONV2D_CACHE) == 3  # w plain, w packed, w3 packed


def test_calls_the_cpp_cache_does_not_key_run_through_python(rng):
    # An ndarray subclass, NumPy integer or bool options, out=: no C++ entry, and the answer of the
    # plain call.
    ops._clear_plans()
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    expected = ops.conv2d(x, w, padding=1)
    ops._clear_plans()
    for _ in range(2):
        np.testing.assert_array_equal(ops.conv2d(x.view(_Array), w, padding=1), expected)
        np.testing.assert_array_equal(ops.conv2d(x, w.view(_Array), padding=1), expected)
        np.testing.assert_array_equal(ops.conv2d(x, w, padding=np.int64(1)), expected)
        np.testing.assert_array_equal(ops.conv2d(x, w, padding=(1, np.int32(1))), expected)
        out = np.empty_like(expected)
        assert ops.conv2d(x, w, padding=1, out=out) is out
        np.testing.assert_array_equal(out, expected)
    # The only C++ entries: the plain call's (made by the out= call, whose options are keyed).
    assert len(ops._CONV2D_CACHE) == 1
    with pytest.raises(TypeError, match="padding"):
        ops.conv2d(x, w, padding=True)
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding=2**70)  # past int64: not keyed, and refused
    with pytest.raises(ValueError, match="out"):
        ops.conv2d(x, w, padding=1, out=np.empty((1, 5, 7, 8), np.float32))


def test_cpp_cached_calls_convert_inputs_like_uncached_ones(rng):
    # Byte-swapped, Fortran-order and read-only arrays of a cached shape are converted, not misread.
    ops._clear_plans()
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    expected = ops.conv2d(x, w, b, stride=2)
    for xv, wv, bv in [(x.astype(">f4"), w, b), (x, w.astype(">f4"), b.astype(">f4")), (np.asfortranarray(x), w, b),
                       (x, np.asfortranarray(w), b), (x[..., ::-1].copy()[..., ::-1], w, b)]:
        assert ops._run_cached_conv2d(xv, wv, bv, (2, 0, 1, 1, None, "NCHW", "auto")) is not None
        np.testing.assert_array_equal(ops.conv2d(xv, wv, bv, stride=2), expected)
    frozen = x.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(ops.conv2d(frozen, w, b, stride=2), expected)
    assert len(ops._CONV2D_CACHE) == 1


def test_the_cpp_cache_is_bounded_and_cleared(rng):
    ops._clear_plans()
    w = np.ones((1, 1, 1, 1), np.float32)
    for width in range(1, 300):
        ops.conv2d(np.ones((1, 1, 1, width), np.float32), w)
        assert 1 <= len(ops._CONV2D_CACHE) <= 256
    ops._clear_plans()
    assert len(ops._CONV2D_CACHE) == 0 and not ops._PLANS


# ---------------------------------------------------------------------------------------------
# pack_conv_transpose2d_weight


# (N, C, O, size, kernel, stride, dilation, groups): a direct-form layer, batched (an image per
# thread) and alone (the whole batch reordered first, in NCHW, then a barrier: 64 outputs leave
# no partial panel to pack); a long reduction on the per-tap GEMMs (NCHW takes them in NHWC from
# 64 output channels per group); output channels that leave a partial weight panel (70: 64 + 6
# on AVX-512); stride 3 with dilation 2 (uneven phases); a 5x5 kernel with stride 2, dilation 2
# and groups; and NCHW with few outputs per group (its own GEMM form, which reads the plain
# weights). The first and third run Winograd with the packed weight, which carries its transform.
TRANSPOSE_SHAPES = [(2, 16, 32, 9, 4, 2, 1, 1), (1, 21, 64, 5, 4, 2, 1, 1), (2, 512, 64, 5, 4, 2, 1, 1),
                    (2, 8, 70, 7, 3, 3, 2, 1), (1, 12, 96, 6, 5, 2, 2, 2), (2, 6, 10, 9, 3, 2, 1, 2)]


def _transpose_case(rng, layout, dtype, n, c, o, size, k, groups):
    x = rng.standard_normal((n, c, size, size + 1)).astype(dtype)
    w = rng.standard_normal((c, o // groups, k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    if layout == "NHWC":
        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(2, 3, 1, 0).copy()
    return x, w, b
@pytest.mark.parametrize("shape", TRANSPOSE_SHAPES, ids=str)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_transpose_weight_gives_the_plain_weight_result(isa, rng, shape, layout, dtype, l2_cache):
    """Each form ("auto"'s pick, and direct and the GEMMs forced, which read the phase split)
    gives the plain weights' bits; "auto" with the packed weight runs Winograd where its transform
    made once pays (the first and third shapes, on a core with a 1 MiB L2), the same bits as a
    plain forced Winograd."""
    l2_cache(1 << 20)
    n, c, o, size, k, stride, dilation, groups = shape
    x, w, b = _transpose_case(rng, layout, dtype, n, c, o, size, k, groups)
    kw = dict(stride=stride, dilation=dilation, groups=groups, padding=1, activation="relu", data_format=layout)
    packed = pack_conv_transpose2d_weight(w, stride=stride, dilation=dilation, groups=groups, data_format=layout)
    expected = reference.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), b, **kw)
    for algorithm in ("auto", "direct", "gemm"):
        plain = ops.conv_transpose2d(x, w, b, algorithm=algorithm, **kw)
        np.testing.assert_allclose(plain, expected, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-3 if dtype == np.float32 else 1e-10)
        if algorithm == "auto" and shape in TRANSPOSE_SHAPES[0:3:2]:
            plain = ops.conv_transpose2d(x, w, b, algorithm="winograd", **kw)
        for _ in range(2):  # the second call runs the cached plan
            y = ops.conv_transpose2d(x, packed, b, algorithm=algorithm, **kw)
            assert y.dtype == dtype and y.shape == plain.shape
            np.testing.assert_array_equal(y, plain, err_msg=algorithm)  # the same kernels, in the same order
        assert (packed._winograd_made is not None) == (shape in TRANSPOSE_SHAPES[0:3:2])
    out = np.empty_like(plain)
    assert ops.conv_transpose2d(x, packed, b, algorithm="gemm", out=out, **kw) is out
    np.testing.assert_array_equal(out, plain)


def test_packed_transpose_weight_attributes_and_private_copy(rng):
    w = rng.standard_normal((3, 3, 4, 6))
    packed = pack_conv_transpose2d_weight(w, stride=(2, 1), dilation=2, groups=3, data_format="channels_last")
    assert isinstance(packed, PackedConvTranspose2dWeight)
    assert packed.shape == (3, 3, 4, 6) and packed.dtype == np.float64
    assert (packed.data_format, packed.groups, packed.stride, packed.dilation) == ("NHWC", 3, (2, 1), (2, 2))
    assert repr(packed) == ("PackedConvTranspose2dWeight(shape=(3, 3, 4, 6), dtype=float64, data_format='NHWC', "
                            "groups=3, stride=(2, 1), dilation=(2, 2))")
    assert not np.shares_memory(packed.weight, w)
    with pytest.raises(ValueError, match="read-only"):
        packed.weight[0, 0, 0, 0] = 1.0
    assert pack_conv_transpose2d_weight(w, data_format="NHWC", dtype=np.float32).dtype == np.float32
    # Later changes to the source array never reach the packed copy.
    x = rng.standard_normal((1, 5, 5, 6)).astype(np.float32)
    w32 = rng.standard_normal((4, 4, 32, 6)).astype(np.float32)
    packed = pack_conv_transpose2d_weight(w32, stride=2, data_format="NHWC")
    expected = ops.conv_transpose2d(x, w32, stride=2, data_format="NHWC")
    w32[...] = 0
    np.testing.assert_array_equal(ops.conv_transpose2d(x, packed, stride=2, data_format="NHWC"), expected)


def test_packed_transpose_weight_dtype_and_a_stride_that_cannot_matter(rng):
    # float32 packed weights with a float64 input: converted for the call, the result float64.
    x = rng.standard_normal((1, 8, 6, 6))
    w = rng.standard_normal((8, 40, 4, 4)).astype(np.float32)
    y = ops.conv_transpose2d(x, pack_conv_transpose2d_weight(w, stride=2), stride=2, padding=1)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, ops.conv_transpose2d(x, w, stride=2, padding=1))
    # One input row: the core drops the row stride (one phase), the packed phases are not its own.
    x1 = rng.standard_normal((1, 8, 1, 6)).astype(np.float32)
    np.testing.assert_array_equal(ops.conv_transpose2d(x1, pack_conv_transpose2d_weight(w, stride=2), stride=2),
                                  ops.conv_transpose2d(x1, w, stride=2))


@pytest.mark.parametrize("call, error, message", [
    (lambda w: pack_conv_transpose2d_weight(w[0]), ValueError, r"weight must be 4-D"),
    (lambda w: pack_conv_transpose2d_weight(w, groups=3), ValueError, r"groups=3 must divide the input channels 8"),
    (lambda w: pack_conv_transpose2d_weight(w, stride=0), ValueError, r"stride"),
    (lambda w: pack_conv_transpose2d_weight(w, dilation=(1, -1)), ValueError, r"dilation"),
    (lambda w: pack_conv_transpose2d_weight(w[:0]), ValueError, r"weight must have no zero-sized dimension"),
    (lambda w: pack_conv_transpose2d_weight(w, dtype=np.float16), TypeError, r"dtype must be float32 or float64"),
    (lambda w: pack_conv_transpose2d_weight(None), TypeError, r"weight must be an array"),
    (lambda w: pack_conv_transpose2d_weight(w, data_format="NCWH"), ValueError, r"data_format must be one of"),
])
def test_pack_conv_transpose2d_weight_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(np.ones((8, 4, 3, 3), np.float32))


def test_conv_transpose2d_refuses_a_weight_packed_for_another_call(rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    packed = pack_conv_transpose2d_weight(w, stride=2)
    ops.conv_transpose2d(x, packed, stride=2)
    for kw, message in (
            (dict(stride=2, data_format="NHWC"), r"packed for data_format 'NCHW'; this call has data_format 'NHWC'"),
            (dict(stride=1), r"weight was packed for stride=\(2, 2\); this call has stride=\(1, 1\)"),
            (dict(stride=2, dilation=2), r"packed for dilation=\(1, 1\); this call has dilation=\(2, 2\)"),
            (dict(stride=2, groups=2), r"packed for groups=1; this call has groups=2")):
        xs = x.transpose(0, 2, 3, 1) if kw.get("data_format") == "NHWC" else x
        with pytest.raises(ValueError, match=message):
            ops.conv_transpose2d(xs, packed, **kw)
    with pytest.raises(TypeError, match="weight is a PackedConv2dWeight .for conv2d.; conv_transpose2d takes"):
        ops.conv_transpose2d(x, pack_conv2d_weight(w))
    with pytest.raises(TypeError, match="weight is a PackedConvTranspose2dWeight .for conv_transpose2d.; conv2d"):
        ops.conv2d(x, packed)


def test_packed_transposed_weights_in_the_cpp_cache(rng):
    # Keyed by what they were packed for (stride and dilation too); each call reads its own weights.
    ops._clear_plans()
    x = rng.standard_normal((1, 6, 7, 8)).astype(np.float32)
    w = rng.standard_normal((6, 5, 4, 4)).astype(np.float32)
    for _ in range(2):
        y = ops.conv_transpose2d(x, pack_conv_transpose2d_weight(w, stride=2), stride=2, padding=1)
    np.testing.assert_array_equal(y, ops.conv_transpose2d(x, w, stride=2, padding=1))
    w2 = rng.standard_normal(w.shape).astype(np.float32)
    np.testing.assert_array_equal(ops.conv_transpose2d(x, pack_conv_transpose2d_weight(w2, stride=2), stride=2, padding=1),
                                  ops.conv_transpose2d(x, w2, stride=2, padding=1))
    assert len(ops._TRANSPOSE_CACHE) == 2  # packed and plain
    with pytest.raises(ValueError, match=r"weight was packed for stride=\(1, 1\)"):
        ops.conv_transpose2d(x, pack_conv_transpose2d_weight(w), stride=2, padding=1)
    with pytest.raises(ValueError, match=r"weight was packed for dilation=\(2, 2\)"):
        ops.conv_transpose2d(x, pack_conv_transpose2d_weight(w, stride=2, dilation=2), stride=2, padding=1)
