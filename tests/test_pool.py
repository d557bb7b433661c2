"""The pooling family of pycnn.ops against pycnn.reference (and PyTorch where importable).

Every case runs on every ISA this CPU supports, both layouts and both dtypes. Max pooling only
selects values, so it must match the reference exactly (NaN positions included); averages are
sums in the working dtype, compared with the float64 reference within a tolerance that scales
with the window size (see conftest.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from pycnn import _args

LAYOUTS = ["NCHW", "NHWC"]
DTYPES = [np.float32, np.float64]
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "seed_examples.json"


def to_layout(x_nchw, layout):
    """A C-contiguous copy of an NCHW batch (or CHW image) in `layout`."""
    if layout == "NCHW":
        return np.ascontiguousarray(x_nchw)
    axes = (0, 2, 3, 1) if x_nchw.ndim == 4 else (1, 2, 0)
    return np.ascontiguousarray(x_nchw.transpose(axes))


def make_input(rng, shape_nchw, dtype, layout):
    return to_layout(rng.standard_normal(shape_nchw).astype(dtype), layout)


def check_max_pool(x, **params):
    """pycnn max_pool2d equals the reference exactly (same shape, dtype, NaN positions)."""
    result = pycnn.ops.max_pool2d(x, **params)
    expected = pycnn.reference.max_pool2d(x, **params)
    assert isinstance(result, np.ndarray) and result.flags.c_contiguous
    assert result.dtype == expected.dtype, f"dtype {result.dtype} != {expected.dtype}. params={params}"
    assert result.shape == expected.shape, f"shape {result.shape} != {expected.shape}. params={params}"
    np.testing.assert_array_equal(result, expected, err_msg=f"params={params}")
    return result


def check_avg_pool(x, assert_close, **params):
    """pycnn avg_pool2d matches the float64 reference of the same inputs within tolerance."""
    result = pycnn.ops.avg_pool2d(x, **params)
    x64 = np.asarray(x).astype(np.float64)
    expected = pycnn.reference.avg_pool2d(x64, **params)
    scale = pycnn.reference.avg_pool2d(np.abs(x64), **params)
    assert isinstance(result, np.ndarray) and result.flags.c_contiguous
    assert result.dtype == _args.result_dtype(np.asarray(x)), f"dtype {result.dtype}. params={params}"
    k = int(np.prod(_args.pair(params["kernel_size"], "kernel_size")))
    assert_close(result, expected, scale, k, err_msg=f"params={params}")
    return result


# ---------------------------------------------------------------------------------------------
# Grids: sizes 1, primes and non-multiples of the vector widths (8, 16 floats); every padding
# form, stride (incl. (2, 1)), dilation, ceil_mode and count_include_pad appears.

def _case(id, *, n=1, c, h, w, k, stride=None, padding=0, dilation=1, ceil_mode=False):
    return pytest.param(dict(n=n, c=c, h=h, w=w, kernel_size=k, stride=stride, padding=padding,
                             dilation=dilation, ceil_mode=ceil_mode), id=id)


CASES = [
    _case("all-1", c=1, h=1, w=1, k=1),
    _case("2x2-default-stride", c=3, h=8, w=8, k=2),
    _case("3x3-s2-pad1-resnet", n=2, c=17, h=23, w=23, k=3, stride=2, padding=1),
    _case("3x3-s2-pad1-ceil", c=5, h=24, w=22, k=3, stride=2, padding=1, ceil_mode=True),
    _case("3x3-s1-pad1", c=33, h=13, w=37, k=3, stride=1, padding=1),
    _case("2x3-s(2,1)", c=16, h=11, w=19, k=(2, 3), stride=(2, 1)),
    _case("3x2-s(1,2)-pad(1,0)", c=7, h=13, w=17, k=(3, 2), stride=(1, 2), padding=(1, 0)),
    _case("5x5-s3-pad2-ceil", c=9, h=29, w=31, k=5, stride=3, padding=2, ceil_mode=True),
    _case("4x4-s4-pad2", c=18, h=17, w=41, k=4, stride=4, padding=2),
    _case("per-side", c=5, h=13, w=29, k=3, stride=2, padding=((1, 0), (0, 1))),
    _case("per-side-ceil", c=2, h=12, w=12, k=(3, 4), stride=(2, 3), padding=((0, 1), (2, 1)), ceil_mode=True),
    _case("same-s2", c=17, h=13, w=23, k=3, stride=2, padding="same"),
    _case("same-s3-k5", c=3, h=23, w=13, k=5, stride=3, padding="same"),
    _case("same-even-k-s1", c=5, h=7, w=9, k=2, stride=1, padding="same"),
    _case("valid-s(3,2)", c=31, h=19, w=35, k=(2, 3), stride=(3, 2), padding="valid"),
    _case("stride-larger-than-kernel", c=3, h=17, w=40, k=2, stride=5),
    _case("huge-stride-gather", c=2, h=9, w=97, k=(1, 2), stride=(1, 48)),
    _case("1x1-s2", c=65, h=9, w=9, k=1, stride=2),
    _case("kernel-covers-input", c=4, h=5, w=7, k=(5, 7)),
    _case("row-1xN", c=3, h=1, w=53, k=(1, 3), stride=(1, 2), padding=(0, 1)),
    _case("column-Nx1", c=3, h=53, w=1, k=(3, 1), stride=(2, 1), padding=(1, 0), ceil_mode=True),
    _case("wide-row-multiple-vectors", c=2, h=5, w=131, k=3, stride=2, padding=1),
    _case("many-channels", c=131, h=6, w=6, k=2, stride=2),
    # Widest lane shifts of the fused NCHW kernel (15 lanes at 16 floats) and just past them.
    _case("1x16-s1-pad8", c=2, h=3, w=37, k=(1, 16), stride=1, padding=(0, 8)),
    _case("1x17-s1", c=2, h=3, w=41, k=(1, 17), stride=1),
    _case("2x31-s2-pad15", c=2, h=4, w=70, k=(2, 31), stride=2, padding=(0, 15), ceil_mode=True),
    _case("1x33-s2", c=1, h=2, w=80, k=(1, 33), stride=(1, 2)),
]

DILATED_CASES = [
    _case("dil2", c=5, h=13, w=13, k=3, stride=1, padding=2, dilation=2),
    _case("dil(2,3)-s2-ceil", c=17, h=19, w=23, k=3, stride=2, padding=(1, 3), dilation=(2, 3), ceil_mode=True),
    _case("dil-same", c=3, h=11, w=14, k=3, stride=2, padding="same", dilation=2),
    _case("1x16-s2-dil2", c=2, h=3, w=75, k=(1, 16), stride=2, padding=(0, 15), dilation=2),
    _case("1x9-s1-dil2", c=2, h=3, w=45, k=(1, 9), stride=1, padding=(0, 8), dilation=(1, 2)),
    # A window whose every tap lies in the padding gives -inf (PyTorch does the same).
    _case("dil3-window-all-padding", c=2, h=2, w=2, k=2, padding=1, dilation=3),
]


def _problem(rng, case, layout, dtype):
    x = make_input(rng, (case["n"], case["c"], case["h"], case["w"]), dtype, layout)
    params = {k: case[k] for k in ("kernel_size", "stride", "padding")}
    return x, dict(params, ceil_mode=case["ceil_mode"], data_format=layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES + DILATED_CASES)
def test_max_pool2d_matches_reference(case, layout, dtype, isa, rng):
    x, params = _problem(rng, case, layout, dtype)
    check_max_pool(x, dilation=case["dilation"], **params)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_avg_pool2d_matches_reference(case, layout, dtype, count_include_pad, isa, rng, assert_conv_close):
    x, params = _problem(rng, case, layout, dtype)
    check_avg_pool(x, assert_conv_close, count_include_pad=count_include_pad, **params)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kernel_size, padding", [(2, 0), (2, 1), (3, 1)])
def test_nchw_stride2_rows_end_where_their_windows_do(kernel_size, padding, dtype, isa, rng, assert_conv_close):
    """NCHW stride-2 pooling splits each pair of input blocks into even and odd columns (AVX2's
    2-tap windows inside 128-bit lanes, restored to column order per output vector). Every width
    from 14 to 49, with each row's first column far above the rest: a block that read past its
    row's end would take the next row's first element into the last output's window."""
    for width in range(14, 50):
        x = rng.standard_normal((1, 3, 5, width)).astype(dtype)
        x[..., 0] = 1e6
        params = dict(kernel_size=kernel_size, stride=2, padding=padding)
        check_max_pool(x, **params)
        check_avg_pool(x, assert_conv_close, **params)


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_nchw_rows_prefetched_or_not_give_the_same_bits(kernel_size, stride, padding, isa, rng, assert_conv_close,
                                                        follows_rows):
    """The fused NCHW kernel prefetches the rows ahead of each output row unless the hardware
    prefetchers follow them and they are short (here 280 and 560 bytes) in a small input: with the
    hints and without, max and avg match the reference, bit for bit the same."""
    for dtype in DTYPES:
        x = rng.standard_normal((2, 3, 29, 70)).astype(dtype)
        params = dict(kernel_size=kernel_size, stride=stride, padding=padding)
        for check in (lambda: check_max_pool(x, **params), lambda: check_avg_pool(x, assert_conv_close, **params)):
            results = []
            for follows in (False, True):
                follows_rows(follows)
                assert pycnn._core.hardware_follows_rows() is follows
                results.append(check())
            np.testing.assert_array_equal(results[0], results[1], err_msg=f"isa={isa} params={params}")


def test_dilated_window_in_padding_is_minus_inf(isa):
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    result = pycnn.ops.max_pool2d(x, 2, padding=1, dilation=3)
    np.testing.assert_array_equal(result, [[[[-np.inf]]]])


# ---------------------------------------------------------------------------------------------
# Hypothesis: random geometry in both layouts and dtypes, on every ISA.

_SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 11, 13, 16, 17, 19, 23, 31, 33])
_CHANNELS = st.sampled_from([1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33])


@st.composite
def pool_problems(draw, avg=False):
    h, w, c, n = draw(_SIZES), draw(_SIZES), draw(_CHANNELS), draw(st.sampled_from([1, 2]))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    dilation = (1, 1) if avg else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    form = draw(st.sampled_from(["int", "pair", "sides", "same", "valid"]))
    if form == "same" or form == "valid":
        padding = form
    elif form == "int":
        padding = draw(st.integers(0, min(effective) // 2))
    elif form == "pair":
        padding = (draw(st.integers(0, effective[0] // 2)), draw(st.integers(0, effective[1] // 2)))
    else:
        padding = tuple((draw(st.integers(0, e // 2)), draw(st.integers(0, e // 2))) for e in effective)
    params = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()),
                  data_format=draw(st.sampled_from(LAYOUTS)))
    if avg:
        params["count_include_pad"] = draw(st.booleans())
    else:
        params["dilation"] = dilation
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    return (n, c, h, w), dtype, seed, params


def _valid(shape_nchw, params):
    shape = shape_nchw if params["data_format"] == "NCHW" else tuple(np.array(shape_nchw)[[0, 2, 3, 1]])
    try:
        _args.pool2d_geometry(shape, kernel_size=params["kernel_size"], stride=params["stride"],
                              padding_spec=params["padding"], dilation=params.get("dilation", 1),
                              ceil_mode=params["ceil_mode"], count_include_pad=params.get("count_include_pad", True),
                              layout=params["data_format"])
    except ValueError:
        return False
    return True


@given(problem=pool_problems())
def test_hypothesis_max_pool2d(problem, isa):
    shape, dtype, seed, params = problem
    assume(_valid(shape, params))
    x = make_input(np.random.default_rng(seed), shape, dtype, params["data_format"])
    check_max_pool(x, **params)


@given(problem=pool_problems(avg=True))
def test_hypothesis_avg_pool2d(problem, isa, assert_conv_close):
    shape, dtype, seed, params = problem
    assume(_valid(shape, params))
    x = make_input(np.random.default_rng(seed), shape, dtype, params["data_format"])
    check_avg_pool(x, assert_conv_close, **params)


# ---------------------------------------------------------------------------------------------
# Global and depth pooling.

# 213 channels: NHWC sums blocks of 8, 4 and 1 vectors and a partial one on AVX-512 float32.
GLOBAL_SHAPES = [(1, 1, 1, 1), (2, 3, 7, 7), (1, 17, 1, 31), (3, 33, 5, 3), (2, 512, 7, 7), (1, 5, 16, 16),
                 (1, 70, 13, 11), (1, 2, 64, 65), (2, 213, 3, 5)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=str)
def test_global_pools_match_reference(shape, layout, dtype, keepdims, isa, rng, assert_conv_close):
    x = make_input(rng, shape, dtype, layout)
    kw = dict(data_format=layout, keepdims=keepdims)
    n, c = shape[:2]
    expected_shape = (n, c) if not keepdims else ((n, c, 1, 1) if layout == "NCHW" else (n, 1, 1, c))

    result = pycnn.ops.global_max_pool2d(x, **kw)
    assert result.shape == expected_shape and result.dtype == dtype
    np.testing.assert_array_equal(result, pycnn.reference.global_max_pool2d(x, **kw))

    result = pycnn.ops.global_avg_pool2d(x, **kw)
    assert result.shape == expected_shape and result.dtype == dtype
    x64 = x.astype(np.float64)
    expected = pycnn.reference.global_avg_pool2d(x64, **kw)
    scale = pycnn.reference.global_avg_pool2d(np.abs(x64), **kw)
    assert_conv_close(result, expected, scale, shape[2] * shape[3])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape, pool_size", [
    ((1, 1, 1, 1), 1), ((2, 6, 5, 7), 2), ((2, 6, 5, 7), 3), ((1, 6, 5, 7), 6), ((1, 34, 3, 17), 17),
    ((3, 64, 7, 7), 4), ((1, 96, 9, 1), 32), ((1, 10, 40, 41), 5), ((2, 33, 2, 3), 11),
], ids=str)
def test_depth_max_pool2d_matches_reference(shape, pool_size, layout, dtype, isa, rng):
    x = make_input(rng, shape, dtype, layout)
    result = pycnn.ops.depth_max_pool2d(x, pool_size, data_format=layout)
    expected = pycnn.reference.depth_max_pool2d(x, pool_size, data_format=layout)
    assert result.shape == expected.shape and result.dtype == dtype and result.flags.c_contiguous
    np.testing.assert_array_equal(result, expected)


@given(n=st.integers(1, 3), h=_SIZES, w=_SIZES, groups=st.integers(1, 7), pool_size=st.integers(1, 9),
       layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_depth_and_global(n, h, w, groups, pool_size, layout, dtype, seed, isa, assert_conv_close):
    c = groups * pool_size
    x = make_input(np.random.default_rng(seed), (n, c, h, w), dtype, layout)
    np.testing.assert_array_equal(pycnn.ops.depth_max_pool2d(x, pool_size, data_format=layout),
                                  pycnn.reference.depth_max_pool2d(x, pool_size, data_format=layout))
    np.testing.assert_array_equal(pycnn.ops.global_max_pool2d(x, data_format=layout),
                                  pycnn.reference.global_max_pool2d(x, data_format=layout))
    x64 = x.astype(np.float64)
    assert_conv_close(pycnn.ops.global_avg_pool2d(x, data_format=layout),
                      pycnn.reference.global_avg_pool2d(x64, data_format=layout),
                      pycnn.reference.global_avg_pool2d(np.abs(x64), data_format=layout), h * w)


# ---------------------------------------------------------------------------------------------
# Golden examples.

def _golden(key):
    examples = json.loads(GOLDEN.read_text())[key]
    return [pytest.param(e, id=e["name"]) for e in examples]


@pytest.mark.parametrize("example", _golden("max_pool2d"))
def test_max_pool2d_golden_example(example, isa):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x = np.asarray(example["input"], dtype=dtype)
            x = x[None, None] if layout == "NCHW" else x[None, :, :, None]
            result = pycnn.ops.max_pool2d(x, example["kernel_size"], example["stride"], data_format=layout)
            expected = np.asarray(example["expected"], dtype=dtype)
            expected = expected[None, None] if layout == "NCHW" else expected[None, :, :, None]
            assert result.dtype == dtype
            np.testing.assert_array_equal(result, expected, err_msg=f"isa={isa} layout={layout} dtype={dtype}")


@pytest.mark.parametrize("example", _golden("max_pool2d"))
def test_max_pool2d_golden_example_from_lists(example):
    """The example as given (nested lists of ints, one unbatched channel): float32 result."""
    result = pycnn.ops.max_pool2d([example["input"]], example["kernel_size"], example["stride"])
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [example["expected"]])


# ---------------------------------------------------------------------------------------------
# Special values: NaN propagates from every tap position, infinities, denormals and signed
# zeros pass through max exactly.

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_in_any_window_position_propagates(layout, dtype, isa):
    h = w = 9
    for sign in (1.0, -1.0):  # a NaN with the sign bit set must propagate too
        for pos in [(0, 0), (0, 1), (1, 1), (2, 2), (4, 5), (8, 8), (8, 0), (3, 8)]:
            base = np.arange(2 * 33 * h * w, dtype=dtype).reshape(2, 33, h, w) - 500
            base[1, 32, pos[0], pos[1]] = sign * np.nan
            base[0, 0, pos[1], pos[0]] = sign * np.nan
            x = to_layout(base, layout)
            for params in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
                           dict(kernel_size=3, stride=1, dilation=2, padding=2, ceil_mode=True)):
                result = check_max_pool(x, data_format=layout, **params)
                if params.get("padding") == 1:  # these windows cover every cell
                    assert np.isnan(result[1, 32] if layout == "NCHW" else result[1, ..., 32]).any()
            np.testing.assert_array_equal(pycnn.ops.global_max_pool2d(x, data_format=layout),
                                          pycnn.reference.global_max_pool2d(x, data_format=layout))
            np.testing.assert_array_equal(pycnn.ops.depth_max_pool2d(x, 3, data_format=layout),
                                          pycnn.reference.depth_max_pool2d(x, 3, data_format=layout))
            avg = pycnn.ops.avg_pool2d(x, 3, 2, 1, data_format=layout)
            with np.errstate(invalid="ignore"):
                ref = pycnn.reference.avg_pool2d(x, 3, 2, 1, data_format=layout)
            np.testing.assert_array_equal(np.isnan(avg), np.isnan(ref))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_infinities(layout, dtype, isa, rng):
    base = rng.standard_normal((1, 20, 11, 13)).astype(dtype)
    base[0, :, 3, 4] = np.inf
    base[0, :, 7, 2] = -np.inf
    base[0, 5] = -np.inf                    # a whole plane of -inf
    base[0, 6, 0:3, 0:3] = np.inf           # +inf and -inf in one window: avg gives NaN
    base[0, 6, 1, 1] = -np.inf
    x = to_layout(base, layout)
    for params in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, ceil_mode=True)):
        check_max_pool(x, data_format=layout, **params)
        result = pycnn.ops.avg_pool2d(x, data_format=layout, **params)
        with np.errstate(invalid="ignore"):  # inf + -inf in the reference's sums
            expected = pycnn.reference.avg_pool2d(x, data_format=layout, **params)
        special = ~np.isfinite(expected)
        np.testing.assert_array_equal(result[special], expected[special])
        assert np.isfinite(result[~special]).all()
    assert (pycnn.ops.global_max_pool2d(x, data_format=layout) == np.inf).sum() == 19
    np.testing.assert_array_equal(pycnn.ops.global_max_pool2d(x, data_format=layout)[0, 5], -np.inf)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_passes_denormals_and_signed_zeros_exactly(layout, dtype, isa):
    tiny = np.finfo(dtype).smallest_subnormal
    base = np.full((1, 17, 6, 6), -1.0, dtype)
    base[0, :, 0, 0] = tiny
    base[0, :, 2, 2] = -tiny
    base[0, :, 4, 4] = -0.0
    x = to_layout(base, layout)
    result = pycnn.ops.max_pool2d(x, 2, data_format=layout)
    expected = pycnn.reference.max_pool2d(x, 2, data_format=layout)
    np.testing.assert_array_equal(result, expected)
    assert (result == tiny).any() and (result == -tiny).any()
    np.testing.assert_array_equal(np.signbit(result), np.signbit(expected))
    gmax = pycnn.ops.global_max_pool2d(x, data_format=layout)
    np.testing.assert_array_equal(gmax, np.full((1, 17), tiny, dtype))


# ---------------------------------------------------------------------------------------------
# API behaviour: dtypes, unbatched input, out=, empty batches, layouts, threads.

def test_integer_and_half_inputs_give_float32():
    for dtype in (np.int32, np.int64, np.uint8, np.bool_, np.float16):
        x = (np.arange(2 * 3 * 6 * 6) % 7).astype(dtype).reshape(2, 3, 6, 6)
        for op in (lambda a: pycnn.ops.max_pool2d(a, 2), lambda a: pycnn.ops.avg_pool2d(a, 2),
                   pycnn.ops.global_avg_pool2d, pycnn.ops.global_max_pool2d,
                   lambda a: pycnn.ops.depth_max_pool2d(a, 3)):
            assert op(x).dtype == np.float32, dtype
        np.testing.assert_array_equal(pycnn.ops.max_pool2d(x, 2), pycnn.reference.max_pool2d(x, 2))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_input_gives_unbatched_result(layout, isa, rng, assert_conv_close):
    x = make_input(rng, (1, 5, 9, 11), np.float32, layout)[0]
    result = check_max_pool(x, kernel_size=3, stride=2, padding=1, data_format=layout)
    assert result.ndim == 3
    result = check_avg_pool(x, assert_conv_close, kernel_size=3, stride=2, padding="same", data_format=layout)
    assert result.ndim == 3
    assert pycnn.ops.global_avg_pool2d(x, data_format=layout).shape == (5,)
    assert pycnn.ops.global_max_pool2d(x, data_format=layout, keepdims=True).shape == (
        (5, 1, 1) if layout == "NCHW" else (1, 1, 5))
    assert pycnn.ops.depth_max_pool2d(x, 5, data_format=layout).shape == ((1, 9, 11) if layout == "NCHW" else (9, 11, 1))


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_out_argument(op, layout, rng):
    x = make_input(rng, (2, 7, 10, 9), np.float64, layout)
    expected = getattr(pycnn.ops, op)(x, 3, 2, 1, data_format=layout)
    out = np.full(expected.shape, 7.0)
    result = getattr(pycnn.ops, op)(x, 3, 2, 1, data_format=layout, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)
    out3 = np.zeros(expected.shape[1:])
    assert getattr(pycnn.ops, op)(x[0], 3, 2, 1, data_format=layout, out=out3) is out3
    np.testing.assert_array_equal(out3, expected[0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_batch_gives_empty_result(layout):
    x = np.zeros((0, 3, 8, 8) if layout == "NCHW" else (0, 8, 8, 3), np.float32)
    assert pycnn.ops.max_pool2d(x, 2, data_format=layout).shape == pycnn.reference.max_pool2d(x, 2, data_format=layout).shape
    assert pycnn.ops.avg_pool2d(x, 3, 2, 1, data_format=layout).shape[0] == 0
    assert pycnn.ops.global_avg_pool2d(x, data_format=layout).shape == (0, 3)
    assert pycnn.ops.global_max_pool2d(x, data_format=layout, keepdims=True).shape[0] == 0
    assert pycnn.ops.depth_max_pool2d(x, 3, data_format=layout).shape == ((0, 1, 8, 8) if layout == "NCHW" else (0, 8, 8, 1))
    out = np.zeros((0, 3, 4, 4) if layout == "NCHW" else (0, 4, 4, 3), np.float32)
    assert pycnn.ops.max_pool2d(x, 2, data_format=layout, out=out) is out


def test_layout_aliases_and_noncontiguous_input(rng):
    x = rng.standard_normal((2, 9, 12, 5)).astype(np.float32)   # NHWC
    strided = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)  # NHWC view, not contiguous
    assert not strided.flags.c_contiguous
    for fmt in ("NHWC", "channels_last"):
        np.testing.assert_array_equal(pycnn.ops.max_pool2d(strided, 3, 2, 1, data_format=fmt),
                                      pycnn.reference.max_pool2d(x, 3, 2, 1, data_format="NHWC"))
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(pycnn.ops.max_pool2d(xc, 2, data_format="channels_first"),
                                  pycnn.ops.max_pool2d(xc, 2))
    np.testing.assert_array_equal(pycnn.ops.max_pool2d(x[:, ::2, ::2], 2, data_format="NHWC"),
                                  pycnn.reference.max_pool2d(x[:, ::2, ::2], 2, data_format="NHWC"))


def test_layouts_agree(rng, assert_conv_close):
    """The NHWC result is the NCHW result transposed, for every op."""
    x = rng.standard_normal((2, 19, 15, 14))
    xh = to_layout(x, "NHWC")
    for op, kw in (("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                   ("avg_pool2d", dict(kernel_size=(2, 3), stride=(2, 1), padding="same"))):
        a = getattr(pycnn.ops, op)(x, **kw)
        b = getattr(pycnn.ops, op)(xh, data_format="NHWC", **kw)
        np.testing.assert_allclose(b, a.transpose(0, 2, 3, 1), rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(pycnn.ops.depth_max_pool2d(xh, 19, data_format="NHWC"),
                                  pycnn.ops.depth_max_pool2d(x, 19).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_thread_counts_give_identical_results(layout, rng):
    """Large enough to use the whole team; every thread count must give the same bits."""
    x = make_input(rng, (2, 64, 57, 61), np.float32, layout)
    previous = pycnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            pycnn.set_num_threads(threads)
            results.append([pycnn.ops.max_pool2d(x, 3, 2, 1, data_format=layout),
                            pycnn.ops.avg_pool2d(x, 3, 2, 1, data_format=layout),
                            pycnn.ops.global_avg_pool2d(x, data_format=layout),
                            pycnn.ops.depth_max_pool2d(x, 4, data_format=layout)])
    finally:
        pycnn.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][0], pycnn.reference.max_pool2d(x, 3, 2, 1, data_format=layout))


def test_batch_images_are_independent(rng):
    x = rng.standard_normal((3, 5, 11, 11)).astype(np.float32)
    whole = pycnn.ops.max_pool2d(x, 3, 2, 1)
    for i in range(3):
        np.testing.assert_array_equal(whole[i], pycnn.ops.max_pool2d(x[i], 3, 2, 1))


# ---------------------------------------------------------------------------------------------
# PyTorch cross-check (inside PyTorch's own rule: padding <= kernel_size // 2).

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

TORCH_CASES = [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, stride=2, padding=0),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=5, stride=3, padding=2, ceil_mode=True),
    dict(kernel_size=4, stride=1, padding=2),
    dict(kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True),
]


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("params", TORCH_CASES, ids=str)
def test_matches_torch(params, dtype, isa, rng):
    F = torch.nn.functional
    for shape in [(2, 17, 13, 19), (1, 3, 8, 8), (1, 33, 21, 7)]:
        x = rng.standard_normal(shape).astype(dtype)
        x[0, 0, 1, 1] = np.nan
        t = torch.from_numpy(x)
        torch_kw = dict(params, stride=params["stride"], ceil_mode=params.get("ceil_mode", False))
        for dilation in (1, 2):
            try:
                expected = F.max_pool2d(t, dilation=dilation, **torch_kw).numpy()
            except RuntimeError:
                continue  # outside PyTorch's own limits
            np.testing.assert_array_equal(pycnn.ops.max_pool2d(x, dilation=dilation, **params), expected)
            np.testing.assert_array_equal(
                pycnn.ops.max_pool2d(to_layout(x, "NHWC"), dilation=dilation, data_format="NHWC", **params),
                expected.transpose(0, 2, 3, 1))
        x[0, 0, 1, 1] = 0.5
        t = torch.from_numpy(x)
        for cip in (True, False):
            expected = F.avg_pool2d(t, count_include_pad=cip, **torch_kw).numpy()
            rtol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(pycnn.ops.avg_pool2d(x, count_include_pad=cip, **params), expected,
                                       rtol=rtol, atol=rtol)
            np.testing.assert_allclose(
                pycnn.ops.avg_pool2d(to_layout(x, "NHWC"), count_include_pad=cip, data_format="NHWC", **params),
                expected.transpose(0, 2, 3, 1), rtol=rtol, atol=rtol)


@needs_torch
def test_global_and_depth_match_torch(rng):
    x = rng.standard_normal((2, 12, 7, 9)).astype(np.float32)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(pycnn.ops.global_avg_pool2d(x, keepdims=True),
                               torch.nn.functional.adaptive_avg_pool2d(t, 1).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pycnn.ops.global_max_pool2d(x, keepdims=True),
                                  torch.nn.functional.adaptive_max_pool2d(t, 1).numpy())
    np.testing.assert_array_equal(pycnn.ops.depth_max_pool2d(x, 4),
                                  torch.nn.functional.max_pool3d(t[:, None], (4, 1, 1))[:, 0].numpy())


@needs_torch
def test_accepts_torch_tensors():
    t = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    np.testing.assert_array_equal(pycnn.ops.max_pool2d(t, 2), torch.nn.functional.max_pool2d(t, 2).numpy())
    tc = t.contiguous(memory_format=torch.channels_last)    # NCHW-shaped tensor, NHWC memory
    np.testing.assert_array_equal(pycnn.ops.max_pool2d(tc, 2), torch.nn.functional.max_pool2d(t, 2).numpy())
