"""pycnn.ops.depthwise_conv2d against the float64 reference (and PyTorch where importable).

Every case runs on every ISA this CPU supports, both layouts and both dtypes. The truth is
pycnn.reference.depthwise_conv2d on float64 copies of the inputs; tolerances scale with the
reduction length KH*KW (see conftest.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import at_each_line_offset, draw_window, explicit_padding, reference_truth

LAYOUTS = ["NCHW", "NHWC"]
DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.2), "sigmoid", "tanh",
               "silu", "swish", "elu", ("elu", 0.5)]


def depthwise_truth(x, w, b, **params):
    return reference_truth("depthwise_conv2d", x, w, b, **params)


def depthwise_weight(w_nchw, layout, m=1):
    """(C*M, 1, KH, KW) -> the layout's depthwise weight: NHWC (KH, KW, C, M)."""
    if layout == "NCHW":
        return np.ascontiguousarray(w_nchw)
    cm, _, kh, kw = w_nchw.shape
    return np.ascontiguousarray(w_nchw[:, 0].transpose(1, 2, 0).reshape(kh, kw, cm // m, m))


def image(x_nchw, layout):
    return np.ascontiguousarray(x_nchw if layout == "NCHW" else x_nchw.transpose(0, 2, 3, 1))


def make_problem(rng, case, layout, dtype):
    """(x, weight, bias, params) for a case dict, in `layout` and `dtype`."""
    c, m = case["c"], case["m"]
    x = rng.standard_normal((case["n"], c, case["h"], case["w"])).astype(dtype)
    w = rng.standard_normal((c * m, 1, case["kh"], case["kw"])).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype) if case["bias"] else None
    params = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  activation=case["activation"], data_format=layout)
    return image(x, layout), depthwise_weight(w, layout, m), b, params


@pytest.fixture
def check_depthwise(assert_conv_close):
    def check(x, w, b=None, *, err_msg="", expected_dtype=None, **params):
        result = pycnn.ops.depthwise_conv2d(x, w, b, **params)
        assert isinstance(result, np.ndarray)
        if expected_dtype is None:
            kinds = [np.asarray(a).dtype for a in (x, w, b) if a is not None]
            expected_dtype = np.float64 if any(d == np.float64 for d in kinds) else np.float32
        assert result.dtype == expected_dtype, f"dtype {result.dtype}. {err_msg}"
        assert result.flags.c_contiguous
        expected, scale = depthwise_truth(x, w, b, **params)
        layout = params.get("data_format", "NCHW")
        shape = np.shape(w)
        k = shape[2] * shape[3] if layout in ("NCHW", "channels_first") else shape[0] * shape[1]
        assert_conv_close(result, expected, scale, k, err_msg=f"{err_msg} params={params}")
        return result

    return check


def _case(id, *, n=1, c, m=1, h, w, k, stride=1, padding=0, dilation=1, bias=True, activation=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    return pytest.param(dict(n=n, c=c, m=m, h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding,
                             dilation=dilation, bias=bias, activation=activation), id=id)


# Sizes 1, primes and channel counts that are not multiples of 8/16; every padding form,
# stride (incl. (2, 1)), dilation, multiplier 1..3 and every activation appear at least once.
CASES = [
    _case("all-size-1", c=1, h=1, w=1, k=1, bias=False),
    _case("c3-3x3-pad1-relu", c=3, h=7, w=7, k=3, padding=1, activation="relu"),
    _case("c17-m2-s2-pad(1,0)", c=17, m=2, h=13, w=13, k=3, stride=2, padding=(1, 0), bias=False),
    _case("c5-m3-5x5-s3-leaky", c=5, m=3, h=23, w=7, k=5, stride=3, padding=2, activation="leaky_relu"),
    _case("c33-7x7-leaky0.2", c=33, h=13, w=23, k=7, padding=3, activation=("leaky_relu", 0.2)),
    _case("1x3-s(2,1)-per-side-tanh", c=3, m=2, h=7, w=13, k=(1, 3), stride=(2, 1),
          padding=((1, 0), (2, 1)), activation="tanh"),
    _case("dil2-sigmoid", c=5, h=13, w=13, k=3, dilation=2, padding=2, bias=False, activation="sigmoid"),
    _case("valid-s2-elu", c=17, h=23, w=23, k=5, stride=2, padding="valid", activation="elu"),
    _case("same-s2-swish", c=3, h=13, w=23, k=3, stride=2, padding="same", bias=False, activation="swish"),
    _case("same-dil2-m2-silu", c=5, m=2, h=7, w=7, k=3, dilation=2, padding="same", activation="silu"),
    _case("same-s3-k5-relu6", c=3, h=23, w=13, k=5, stride=3, padding="same", activation="relu6"),
    _case("3x3-over-1x1-input", c=1, m=3, h=1, w=1, k=3, padding=1),
    _case("row-1x23", c=3, h=1, w=23, k=(1, 3), bias=False, activation="leaky_relu"),
    _case("batch2-1x1-s2", n=2, c=33, h=7, w=7, k=1, stride=2),
    _case("5x5-on-5x5", c=17, h=5, w=5, k=5, activation="tanh"),
    _case("3x1-w1", c=1, m=2, h=23, w=1, k=(3, 1), padding=(1, 0), activation="relu"),
    _case("per-side-dil(1,2)-elu", c=5, h=7, w=13, k=3, dilation=(1, 2), padding=((2, 0), (0, 3)),
          bias=False, activation="elu"),
    _case("same-s(1,2)-d(2,1)", n=2, c=9, h=13, w=13, k=3, stride=(1, 2), dilation=(2, 1), padding="same",
          activation="sigmoid"),
    # Many channels: full NV-vector channel blocks, single vectors and a masked tail (NHWC).
    _case("c40-wide-channels", c=40, h=9, w=11, k=3, padding=1, activation="relu"),
    _case("c13-m3-channels-39", c=13, m=3, h=6, w=9, k=3, stride=2, padding="same"),
    _case("c144-mobilenet-like", c=144, h=8, w=8, k=3, padding=1, activation="relu6"),
    # Wide rows: several NCHW column tiles and a partial one; taps that skip the padding.
    _case("w70-s2-k5", c=3, h=5, w=70, k=5, stride=2, padding=2),
    # Stride 2 NCHW splits rows into even/odd columns with the ISA's deinterleave: an odd left
    # padding (first column odd), vector pairs, and an odd element count at the end.
    _case("w71-s2-pad1-odd-split", c=2, h=5, w=71, k=3, stride=2, padding=1),
    _case("w70-k7-dil3", c=2, h=9, w=70, k=7, dilation=3, padding=9, activation="tanh"),
    # One image, few channels, tall: bands of output rows / channel chunks feed the threads.
    _case("c1-tall-bands", c=1, h=131, w=17, k=3, padding=1, activation="relu"),
    # Stride 2, wide rows: NCHW planes over ~32 KiB go in bands of output rows, so one buffer
    # holds rows that are data in one band and padding in the next.
    _case("c2-s2-wide-bands", c=2, h=70, w=71, k=3, stride=2, padding=1, activation="relu"),
    _case("c200-short-chunks", c=200, h=2, w=5, k=3, padding=1),
    _case("c37-m3-short-chunks", c=37, m=3, h=2, w=6, k=3, stride=(1, 2), padding="same", activation="relu"),
    _case("big-padding", c=2, h=3, w=4, k=3, padding=4, activation="elu"),
    # NHWC 3x3, strides 1 and 2: a run of interior tiles in 12-pixel strips plus a 4-pixel rest,
    # edge tiles on both sides and a partial one, a full channel vector and a masked tail.
    _case("c21-w45-3x3-runs", c=21, h=5, w=45, k=3, padding=1, activation="relu"),
    _case("c21-w69-s2-3x3-runs", c=21, h=5, w=69, k=3, stride=2, padding=1),
    # NCHW 3x3 at column stride 2 reads the rows in place and splits them in registers: the
    # last column's third tap from the shift-in load, right padding only, multipliers and the
    # out-of-line epilogue (sigmoid), rows fewer than a tile.
    _case("w66-s2-valid-3x3-shift-in", c=3, h=9, w=66, k=3, stride=2, padding="valid", activation="relu6"),
    _case("w40-m2-s2-pad-right-only", c=4, m=2, h=11, w=40, k=3, stride=2, padding=((0, 1), (0, 1)),
          activation="sigmoid"),
    # ... and at stride 1 with 8-row tiles (AVX-512) at any width: 4 full vectors and a partial
    # one, two padding columns on the left, padding rows at the bottom only, multipliers.
    _case("w70-m2-3x3-in-place-pad((0,2),(2,1))", c=3, m=2, h=11, w=70, k=3, padding=((0, 2), (2, 1)),
          activation="relu6"),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, isa, rng, check_depthwise):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            check_depthwise(x, w, b, err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_activations(activation, isa, rng, check_depthwise):
    case = dict(n=2, c=19, m=2, h=9, w=11, kh=3, kw=3, stride=1, padding=1, dilation=1, bias=True,
                activation=activation)
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            # Pre-activations spread over about [-10, 10]: every activation's regions are visited.
            w = (w * 2).astype(dtype)
            check_depthwise(x, w, b, err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


# ------------------------------------------------------------------------------ Hypothesis

@st.composite
def depthwise_problems(draw):
    kh, kw, stride, dilation, padding, hmin, wmin = draw_window(draw, st, max_kernel=5)
    return dict(
        n=draw(st.integers(1, 2)), c=draw(st.sampled_from([1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33])),
        m=draw(st.integers(1, 3)), h=draw(st.integers(hmin, hmin + 9)), w=draw(st.integers(wmin, wmin + 20)),
        kh=kh, kw=kw, stride=stride, padding=padding, dilation=dilation, bias=draw(st.booleans()),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        layout=draw(st.sampled_from(LAYOUTS + ["channels_first", "channels_last"])),
        dtype=draw(st.sampled_from(DTYPES)), unbatched=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@given(problem=depthwise_problems())
def test_hypothesis_matches_reference(problem, isa, check_depthwise):
    rng = np.random.default_rng(problem["seed"])
    layout = {"channels_first": "NCHW", "channels_last": "NHWC"}.get(problem["layout"], problem["layout"])
    x, w, b, params = make_problem(rng, problem, layout, problem["dtype"])
    params["data_format"] = problem["layout"]
    if problem["unbatched"]:
        x = x[0]
    result = check_depthwise(x, w, b, err_msg=f"isa={isa} {problem}", **params)
    assert result.ndim == x.ndim


# ------------------------------------------------------------------------------ semantics

@pytest.mark.parametrize("c", [96, 144, 100])
@pytest.mark.parametrize("stride", [1, 2])
def test_nhwc_3x3_input_off_the_vector_boundary(c, stride, isa, rng, check_depthwise):
    """NHWC 3x3 rows of 6 or more vectors whose input starts inside a vector (NumPy's large
    arrays start 16 bytes into a cache line): at stride 2 the first strip covers the channels up
    to the next vector boundary so the others load whole vectors (stride 1 takes rotated strips:
    test_nhwc_3x3_rotated_strips). Every offset of the input in a 64-byte line; 100 channels
    (pixels not whole vectors apart) take neither."""
    for dtype in DTYPES:
        x0, w, b, params = make_problem(rng, dict(n=1, c=c, m=1, h=9, w=30, kh=3, kw=3, stride=stride,
                                                  padding=1, dilation=1, bias=True, activation=None),
                                        "NHWC", dtype)
        for offset, x in at_each_line_offset(x0):
            check_depthwise(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} offset={offset}", **params)


@pytest.mark.parametrize("c", [16, 32, 144])
@pytest.mark.parametrize("padding, width", [(1, 37), (((0, 1), (2, 1)), 37), (0, 37), (0, 38)])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_nhwc_3x3_rotated_strips(c, padding, width, activation, isa, rng, check_depthwise):
    """NHWC 3x3 stride-1 rows of whole-vector pixels whose input starts inside a vector: the
    channel vectors start at the vector boundary and the last one spans two pixels, its weights
    and bias read cyclically. Every offset of the input in a 64-byte line, with bias. Padding 0
    at width 38 (36 outputs, whole 4-pixel tiles) ends the interior run at the row's end, where
    no vector may span into the next row. Batch 2 and 12 rows: one channel chunk, rows split
    between threads."""
    for dtype in DTYPES:
        x0, w, b, params = make_problem(rng, dict(n=2, c=c, m=1, h=12, w=width, kh=3, kw=3, stride=1,
                                                  padding=padding, dilation=1, bias=True, activation=activation),
                                        "NHWC", dtype)
        for offset, x in at_each_line_offset(x0):
            check_depthwise(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} offset={offset}", **params)


@pytest.mark.parametrize("pixel_bytes", [256, 512])
@pytest.mark.parametrize("width", [75, 90])
def test_nhwc_3x3_stride2_rows_in_segments(pixel_bytes, width, isa, rng, check_depthwise):
    """NHWC 3x3/2 rows whose pixels are a power of two bytes apart and whose three input rows
    pass 48 KiB run through every channel a tile group at a time: segments and a shorter last
    one, with the input aligned and 16 bytes into a line (128 float32 channels then take a lead
    strip in every segment)."""
    for dtype in DTYPES:
        c = pixel_bytes // np.dtype(dtype).itemsize
        x0, w, b, params = make_problem(rng, dict(n=1, c=c, m=1, h=7, w=width, kh=3, kw=3, stride=2,
                                                  padding=1, dilation=1, bias=True, activation=None),
                                        "NHWC", dtype)
        assert 3 * width * pixel_bytes > 48 * 1024
        for offset, x in at_each_line_offset(x0):
            if offset * x.itemsize in (0, 16):
                check_depthwise(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} offset={offset}", **params)


@pytest.mark.parametrize("c", [16, 100, 144])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("width", [16, 31, 56, 57])
def test_nhwc_3x3_edge_tiles_match_explicit_padding(c, stride, width, isa, rng, check_depthwise):
    """NHWC 3x3 tiles whose columns reach one past either end of the row (their padding columns
    known when compiled; two past takes the per-load checks) and rows of padding: the same bits
    as the image padded with zeros beforehand, where every tile is inside. Infinite weights
    where a padding column or row meets them give w * 0 = NaN in both. Widths 16 and 56 at
    stride 1 and 31 at stride 2 end in a full tile reaching past the row; both dtypes, bias and
    relu6, whole and partial vectors (100 channels), and the rotated strips (144)."""
    for dtype in DTYPES:
        for padding in (1, ((1, 0), (0, 1)), ((0, 1), (1, 0)), ((2, 1), (2, 2))):
            case = dict(n=1, c=c, m=1, h=6, w=width, kh=3, kw=3, stride=stride, padding=padding, dilation=1,
                        bias=True, activation="relu6")
            x, w, b, params = make_problem(rng, case, "NHWC", dtype)
            err = f"isa={isa} dtype={np.dtype(dtype)} padding={padding}"
            y = check_depthwise(x, w, b, err_msg=err, **params)
            (top, bottom), (left, right) = explicit_padding(padding, 6, width, 3, 3, stride, 1)
            padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
            np.testing.assert_array_equal(y, pycnn.ops.depthwise_conv2d(padded, w, b, **{**params, "padding": 0}),
                                          err_msg=err)
            w[0, 0, 1, 0] = np.inf   # channel 1, tap (0, 0): meets the top and the left padding
            w[1, 2, 2, 0] = -np.inf  # channel 2, tap (1, 2): the right padding
            w[2, 1, 3, 0] = np.inf   # channel 3, tap (2, 1): the bottom padding
            with np.errstate(invalid="ignore"):
                y = pycnn.ops.depthwise_conv2d(x, w, b, **params)
                assert np.isnan(y).any(), err
                np.testing.assert_array_equal(
                    y, pycnn.ops.depthwise_conv2d(padded, w, b, **{**params, "padding": 0}), err_msg=err)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_equals_grouped_conv2d(dtype, algorithm, isa, rng):
    """A depthwise convolution is conv2d with groups=C: the same numbers from conv2d's grouped
    GEMMs (which "auto" no longer picks for it), within float tolerance (the summation order
    differs)."""
    x = rng.standard_normal((2, 6, 11, 10)).astype(dtype)
    w = rng.standard_normal((12, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(12).astype(dtype)
    params = dict(stride=(2, 1), padding="same", dilation=(1, 2), activation="relu")
    ours = pycnn.ops.depthwise_conv2d(x, w, b, **params)
    grouped = pycnn.ops.conv2d(x, w, b, groups=6, algorithm=algorithm, **params)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours, grouped, rtol=tol, atol=tol)


@pytest.mark.parametrize("width", [2, 4, 7, 12, 28, 56, 112])
@pytest.mark.parametrize("stride", [1, (1, 2), 2])
@pytest.mark.parametrize("activation", [None, "relu6", "sigmoid"])
@pytest.mark.parametrize("height", [17, 28])
def test_nchw_3x3_half_vector_tail_takes_two_rows(width, stride, activation, height, isa, rng, check_depthwise):
    """NCHW 3x3, rows read in place: at stride 1 a last vector at most half full (56 columns
    on 16 float32 lanes: 3 vectors and 8 columns; 4 or 2 columns on AVX2's 8 and 4) holds the
    tails of two rows; at column stride 2 on AVX-512 (stride (1, 2): at 2 x 2 rows this narrow
    are streamed), of rows i and i + 7 of a whole 14-row tile (56 and 28 columns: float32 and
    float64 tails of 8 and 4). Full and partial row tiles of both heights (AVX-512: 17 output rows in a
    14-row and an 8-row tile, 28 in two 14-row ones; 8 planes, so each plane is one band), both
    dtypes, asymmetric padding; and the same bits as the rows embedded in zeros up to whole
    vectors, where every vector is full."""
    for dtype in DTYPES:
        for padding in (1, ((0, 2), (1, 1))):
            case = dict(n=2, c=4, m=2, h=height, w=width, kh=3, kw=3, stride=stride, padding=padding, dilation=1,
                        bias=True, activation=activation)
            x, w, b, params = make_problem(rng, case, "NCHW", dtype)
            y = check_depthwise(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} padding={padding}", **params)
            wide = np.zeros(x.shape[:3] + (-(-width // 16) * 16,), dtype)
            wide[..., :width] = x
            # The right padding column is a zero either way, so the first `width` columns agree.
            y_wide = pycnn.ops.depthwise_conv2d(wide, w, b, **params)
            np.testing.assert_array_equal(y, y_wide[..., :y.shape[-1]], err_msg=f"isa={isa} padding={padding}")


@pytest.mark.parametrize("width", [1, 2, 15, 16, 17, 31, 33, 64, 65, 112, 127, 129, 130, 257])
@pytest.mark.parametrize("stride", [1, 2])
def test_nchw_3x3_rows_streamed(width, stride, isa, rng, check_depthwise):
    """NCHW 3x3 at stride 1 x 1 and 2 x 2 (AVX-512: input rows streamed in order in blocks of up
    to four vectors of output columns, for rows of up to 8 float32 or 4 float64 vectors; wider
    rows and other ISAs: the in-place tiles): one or two blocks of one to four vectors, full and
    partial, and rows just past the limit, in both dtypes; padding 1, 0, 2 and asymmetric, so
    rows and columns start before the plane, at it and past its end; output rows 0 to 2 past a
    multiple of three (stride 1 goes three rows at a time); bands that start mid-plane (one
    channel of 40 rows: bands of whole tiles) and a multiplier; every activation path (none,
    relu and relu6 inline, sigmoid through the rolled store), with and without bias."""
    paddings = (1, 0, 2, ((0, 1), (1, 0)), ((2, 0), (0, 2)))
    activations = (None, "relu", "relu6", "sigmoid")
    for dtype in DTYPES:
        for i, padding in enumerate(paddings):
            left_right = padding[1] if isinstance(padding, tuple) else (padding, padding)
            if width + sum(left_right) < 3:
                continue  # the kernel is wider than the padded image
            for n, c, m, h in ((2, 3, 2, 9), (1, 1, 1, 40)):
                case = dict(n=n, c=c, m=m, h=h, w=width, kh=3, kw=3, stride=stride, padding=padding, dilation=1,
                            bias=i % 2 == 0, activation=activations[(i + h) % len(activations)])
                x, w, b, params = make_problem(rng, case, "NCHW", dtype)
                check_depthwise(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} case={case}", **params)


def at_page_offset(shape, dtype, base, offset):
    """An uninitialised array of `shape` starting `offset` bytes past `base`'s address modulo
    4 KiB."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(int(np.prod(shape)) + 2 * 4096 // itemsize, dtype)
    first = ((base.ctypes.data + offset - raw.ctypes.data) % 4096) // itemsize
    y = raw[first:first + int(np.prod(shape))].reshape(shape)
    assert (y.ctypes.data - base.ctypes.data) % 4096 == offset
    return y


@pytest.mark.parametrize("dtype,width", [(np.float32, 1024), (np.float64, 512)])
@pytest.mark.parametrize("stride", [1, (2, 1)])
def test_nchw_3x3_rows_4k_apart_in_every_column_order(dtype, width, stride, isa, rng, check_depthwise):
    """Input rows a multiple of 4 KiB apart: the in-place NCHW 3x3 kernel steps through a tile's
    vectors of columns in the order that keeps its stores off the next loads' addresses modulo
    4 KiB, by where the output starts against the input: interleaved passes with the output 0
    or 16 bytes (numpy's default for large arrays) past the input's place in a page or 32
    before it, right to left 64 and 160 bytes past, left to right 1 KiB past and before. Every
    order matches the reference and gives the same bits, with whole and partial last vectors
    (padding 1 and 0), a bias and relu6."""
    for padding in (1, 0):
        case = dict(n=1, c=2, m=1, h=20, w=width, kh=3, kw=3, stride=stride, padding=padding, dilation=1,
                    bias=True, activation="relu6")
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        y = check_depthwise(x, w, b, err_msg=f"isa={isa} padding={padding}", **params)
        for offset in (0, 16, 4064, 64, 160, 1024, 3072):
            out = at_page_offset(y.shape, dtype, x, offset)
            result = pycnn.ops.depthwise_conv2d(x, w, b, out=out, **params)
            assert result is out
            np.testing.assert_array_equal(out, y, err_msg=f"isa={isa} padding={padding} output {offset} bytes on")


@pytest.fixture
def zmm_shuffles():
    """zmm_shuffles(cheap): make the AVX-512 NCHW 3x3 kernel shift its column taps (True) or load
    them (False) whatever the CPU; restores the detected choice."""
    yield lambda cheap: pycnn._core.set_zmm_shuffles_cheap(int(cheap))
    pycnn._core.set_zmm_shuffles_cheap(-1)


@pytest.mark.parametrize("width", [1, 2, 7, 15, 16, 17, 31, 33, 56, 57, 112])
@pytest.mark.parametrize("stride", [1, (2, 1)])
def test_nchw_3x3_taps_shifted_or_loaded_give_the_same_bits(width, stride, isa, rng, check_depthwise,
                                                           zmm_shuffles):
    """The in-place NCHW 3x3 kernel at column stride 1 makes taps 0 and 2 by shifting tap 1 where
    512-bit shuffles are cheap (Zen 5) and loads them elsewhere (AVX2 and scalar always load):
    both forms match the reference and each other bit for bit, at row starts and ends inside,
    on and past a vector's edge, with one- and two-row vector tails, padding 0, 1, asymmetric
    and "same", a bias and an activation, in both dtypes."""
    assert isinstance(pycnn._core.zmm_shuffles_cheap(), bool)
    for dtype in DTYPES:
        for padding in (0, 1, ((0, 2), (2, 0)), "same"):
            case = dict(n=2, c=3, m=2, h=19, w=width, kh=3, kw=3, stride=stride, padding=padding, dilation=1,
                        bias=True, activation="relu6")
            x, w, b, params = make_problem(rng, case, "NCHW", dtype)
            if padding == 0 and width < 3:
                continue  # the kernel is wider than the image
            results = []
            for cheap in (False, True):
                zmm_shuffles(cheap)
                assert pycnn._core.zmm_shuffles_cheap() is cheap
                results.append(check_depthwise(x, w, b, err_msg=f"isa={isa} shifted={cheap} padding={padding}",
                                               **params))
            np.testing.assert_array_equal(results[0], results[1], err_msg=f"isa={isa} padding={padding}")


@pytest.mark.parametrize("width", [64, 65, 112, 129])
@pytest.mark.parametrize("stride", [2, (1, 2)])
def test_nchw_stride2_rows_prefetched_or_not_give_the_same_bits(width, stride, isa, rng, check_depthwise,
                                                               follows_rows):
    """The in-place NCHW kernel at column stride 2 (on AVX-512 at stride 2 x 2 only for rows too
    wide to stream: float64 here; so stride (1, 2) too) prefetches the next tile's rows (of 256
    bytes and more) where the hardware prefetchers do not follow them: with the hints and without, the result matches the reference, bit for bit the same,
    with tiles past the band's end into the next channel and past the last channel."""
    for dtype in DTYPES:
        case = dict(n=2, c=3, m=2, h=37, w=width, kh=3, kw=3, stride=stride, padding=1, dilation=1, bias=True,
                    activation=None)
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        results = []
        for follows in (False, True):
            follows_rows(follows)
            assert pycnn._core.hardware_follows_rows() is follows
            results.append(check_depthwise(x, w, b, err_msg=f"isa={isa} follows={follows}", **params))
        np.testing.assert_array_equal(results[0], results[1], err_msg=f"isa={isa} width={width}")


def test_hardware_follows_rows_on_amd_zen3_and_later():
    """The hardware prefetchers are taken to follow many rows side by side on AMD Zen 3 and later
    (family 0x19 on), not elsewhere."""
    families = [int(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu family")]
    zen3_on = pycnn._core.cpu_vendor() == "AuthenticAMD" and families[0] >= 0x19
    assert pycnn._core.hardware_follows_rows() is zen3_on


def test_nchw_and_nhwc_agree(isa, rng):
    c, m = 7, 3
    x = rng.standard_normal((2, c, 12, 9))
    w = rng.standard_normal((c * m, 1, 3, 5))
    b = rng.standard_normal(c * m)
    params = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), activation="tanh")
    nchw = pycnn.ops.depthwise_conv2d(x, w, b, **params)
    nhwc = pycnn.ops.depthwise_conv2d(image(x, "NHWC"), depthwise_weight(w, "NHWC", m), b, data_format="NHWC",
                                      **params)
    np.testing.assert_allclose(nhwc.transpose(0, 3, 1, 2), nchw, rtol=1e-13, atol=1e-13)


def test_output_channel_order_is_c_times_m_plus_m(rng):
    """Channel c*M + m: input channel c through multiplier m (a one-hot check)."""
    c, m = 3, 2
    x = np.zeros((1, c, 4, 4))
    for i in range(c):
        x[0, i] = i + 1  # channel i is the constant i + 1
    w = np.zeros((c * m, 1, 1, 1))
    w[:, 0, 0, 0] = np.arange(1, c * m + 1) * 10.0
    y = pycnn.ops.depthwise_conv2d(x, w)
    for oc in range(c * m):
        np.testing.assert_array_equal(y[0, oc], (oc // m + 1) * (oc + 1) * 10.0)
    keras_w = depthwise_weight(w, "NHWC", m)   # (1, 1, C, M)
    assert keras_w[0, 0, 1, 1] == w[1 * m + 1, 0, 0, 0]
    yh = pycnn.ops.depthwise_conv2d(image(x, "NHWC"), keras_w, data_format="NHWC")
    np.testing.assert_array_equal(yh.transpose(0, 3, 1, 2), y)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_and_out(layout, isa, rng, check_depthwise):
    case = dict(n=1, c=5, m=2, h=9, w=7, kh=3, kw=3, stride=2, padding="same", dilation=1, bias=True,
                activation="relu")
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, layout, dtype)
        batched = pycnn.ops.depthwise_conv2d(x, w, b, **params)
        single = check_depthwise(x[0], w, b, **params)
        assert single.shape == batched.shape[1:]
        np.testing.assert_array_equal(single, batched[0])
        out = np.full(single.shape, np.nan, dtype)
        assert pycnn.ops.depthwise_conv2d(x[0], w, b, out=out, **params) is out
        np.testing.assert_array_equal(out, single)
        out4 = np.full(batched.shape, np.nan, dtype)
        assert pycnn.ops.depthwise_conv2d(x, w, b, out=out4, **params) is out4
        np.testing.assert_array_equal(out4, batched)


@pytest.mark.parametrize(
    "x_dtype, w_dtype, b_dtype, result_dtype",
    [(np.int32, np.float32, None, np.float32), (np.uint8, np.int16, np.int8, np.float32),
     (np.float16, np.float16, None, np.float32), (np.bool_, np.float32, None, np.float32),
     (np.float32, np.float64, None, np.float64), (np.float32, np.float32, np.float64, np.float64)],
    ids=str,
)
def test_dtype_rules(x_dtype, w_dtype, b_dtype, result_dtype, rng, check_depthwise):
    x = (rng.integers(0, 4, (2, 3, 6, 5)) if np.dtype(x_dtype).kind in "biu" else
         rng.standard_normal((2, 3, 6, 5))).astype(x_dtype)
    w = (rng.integers(-2, 3, (6, 1, 3, 3)) if np.dtype(w_dtype).kind in "iu" else
         rng.standard_normal((6, 1, 3, 3))).astype(w_dtype)
    b = None if b_dtype is None else rng.integers(-3, 3, 6).astype(b_dtype)
    result = check_depthwise(x, w, b, padding=1, expected_dtype=result_dtype)
    assert result.dtype == result_dtype


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_propagates_like_reference(layout, isa, rng, assert_conv_close):
    case = dict(n=2, c=5, m=2, h=9, w=8, kh=3, kw=3, stride=2, padding=1, dilation=1, bias=True, activation=None)
    for where in ("x", "weight", "bias"):
        x, w, b, params = make_problem(rng, case, layout, np.float32)
        if where == "x":
            x[(0, 2, 3, 4) if layout == "NCHW" else (0, 3, 4, 2)] = np.nan
        elif where == "weight":
            # The centre tap never lands in the padding: the whole channel is NaN either way.
            w[(3, 0, 1, 1) if layout == "NCHW" else (1, 1, 1, 1)] = np.nan
        else:
            b[3] = np.nan
        for act in (None, "relu", "relu6", "sigmoid", "tanh", "elu"):
            params["activation"] = act
            result = pycnn.ops.depthwise_conv2d(x, w, b, **params)
            expected, scale = depthwise_truth(x, w, b, **params)
            assert np.isnan(expected).any()
            assert_conv_close(result, expected, np.nan_to_num(scale), 9, err_msg=f"{where} {act} isa={isa}")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_corner_tap_meets_the_padding(layout, bad, stride, isa, rng, assert_conv_close):
    """A corner tap that lands in the zero padding still contributes w * 0 (NaN for a NaN or
    infinite weight), in both layouts, as the reference and PyTorch compute it."""
    case = dict(n=1, c=17, m=2, h=7, w=9, kh=3, kw=3, stride=stride, padding=1, dilation=1, bias=False,
                activation=None)
    x, w, b, params = make_problem(rng, case, layout, np.float64)
    w[(5, 0, 0, 0) if layout == "NCHW" else (0, 0, 2, 1)] = bad  # channel 5 = c 2, m 1; tap (0, 0)
    result = pycnn.ops.depthwise_conv2d(x, w, b, **params)
    expected, scale = depthwise_truth(x, w, b, **params)
    assert np.isnan(expected).any()  # at least the outputs whose corner tap is padding
    assert_conv_close(result, expected, np.nan_to_num(scale), 9, err_msg=f"isa={isa}")


def test_noncontiguous_and_torch_like_inputs(rng, check_depthwise):
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    base = pycnn.ops.depthwise_conv2d(x, w, padding=1)
    big = np.zeros((2, 4, 18, 16), np.float32)
    big[:, :, ::2, ::2] = x
    np.testing.assert_array_equal(pycnn.ops.depthwise_conv2d(big[:, :, ::2, ::2], np.asfortranarray(w), padding=1),
                                  base)
    check_depthwise(x.tolist(), w, padding=1)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(threads, rng):
    x = rng.standard_normal((1, 3, 40, 37))
    w = rng.standard_normal((6, 1, 3, 3))
    before = pycnn.get_num_threads()
    try:
        results = []
        for t in (1, threads):
            pycnn.set_num_threads(t)
            results.append([pycnn.ops.depthwise_conv2d(image(x, lay), depthwise_weight(w, lay, 2), padding=1,
                                                       data_format=lay) for lay in LAYOUTS])
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)
    finally:
        pycnn.set_num_threads(before)


# ------------------------------------------------------------------------------ PyTorch

@pytest.mark.parametrize("case", CASES[:20])
def test_matches_torch(case, isa, rng, torch, assert_conv_close):
    F = torch.nn.functional
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        (t, bo), (l, r) = explicit_padding(params["padding"], x.shape[2], x.shape[3], w.shape[2], w.shape[3],
                                         params["stride"], params["dilation"])
        x64 = torch.from_numpy(x.astype(np.float64))
        w64 = torch.from_numpy(w.astype(np.float64))
        b64 = None if b is None else torch.from_numpy(b.astype(np.float64))
        conv = dict(stride=params["stride"], dilation=params["dilation"], groups=case["c"])
        expected = F.conv2d(F.pad(x64, (l, r, t, bo)), w64, b64, **conv)
        scale = F.conv2d(F.pad(x64.abs(), (l, r, t, bo)), w64.abs(), None if b is None else b64.abs(), **conv)
        act = case["activation"]
        name, param = act if isinstance(act, tuple) else (act, None)
        expected = {None: lambda y: y, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid,
                    "tanh": torch.tanh, "silu": F.silu, "swish": F.silu, "elu": F.elu,
                    "leaky_relu": lambda y: F.leaky_relu(y, 0.01 if param is None else param)}[name](expected)
        k = w.shape[2] * w.shape[3]
        for layout in LAYOUTS:
            ours = pycnn.ops.depthwise_conv2d(image(x, layout), depthwise_weight(w, layout, case["m"]), b,
                                              **{**params, "data_format": layout})
            if layout == "NHWC":
                ours = ours.transpose(0, 3, 1, 2)
            assert_conv_close(ours, expected.numpy(), scale.numpy(), k,
                              err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}")
