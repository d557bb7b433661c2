"""pycnn.ops.conv2d against the float64 reference (and PyTorch where importable).

Every case runs on every ISA this CPU supports, every algorithm, both layouts and both dtypes.
The truth is pycnn.reference.conv2d on float64 copies of the same inputs; tolerances scale with
the reduction length (see conftest.py).
"""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import at_line_offset, draw_window, explicit_padding, to_layout

ALGORITHMS = ["direct", "im2col", "auto"]
LAYOUTS = ["NCHW", "NHWC"]
DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.2), "sigmoid", "tanh",
               "silu", "swish", "elu"]


def _case(id, *, n=1, c, h, w, o, k, stride=1, padding=0, dilation=1, groups=1, bias=True,
          activation=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    return pytest.param(dict(n=n, c=c, h=h, w=w, o=o, kh=kh, kw=kw, stride=stride,
                             padding=padding, dilation=dilation, groups=groups, bias=bias,
                             activation=activation), id=id)


# Sizes 1, primes and non-multiples of the vector width; every padding form, stride, dilation,
# group count and activation appears at least once.
CASES = [
    _case("all-size-1", c=1, h=1, w=1, o=1, k=1, bias=False),
    _case("c3-o5-3x3-pad1-relu", c=3, h=7, w=7, o=5, k=3, padding=1, activation="relu"),
    _case("c17-o33-s2-pad(1,0)", c=17, h=13, w=13, o=33, k=3, stride=2, padding=(1, 0), bias=False),
    _case("c5-o17-5x5-s3-leaky", c=5, h=23, w=7, o=17, k=5, stride=3, padding=2, activation="leaky_relu"),
    _case("c33-o3-7x7-leaky0.2", c=33, h=13, w=23, o=3, k=7, padding=3, activation=("leaky_relu", 0.2)),
    _case("1x3-s(2,1)-per-side-tanh", c=3, h=7, w=13, o=17, k=(1, 3), stride=(2, 1),
          padding=((1, 0), (2, 1)), activation="tanh"),
    _case("dil2-sigmoid", c=5, h=13, w=13, o=5, k=3, dilation=2, padding=2, bias=False, activation="sigmoid"),
    _case("valid-s2-elu", c=17, h=23, w=23, o=5, k=5, stride=2, padding="valid", activation="elu"),
    _case("same-s2-swish", c=3, h=13, w=23, o=17, k=3, stride=2, padding="same", bias=False, activation="swish"),
    _case("same-dil2-silu", c=5, h=7, w=7, o=3, k=3, dilation=2, padding="same", activation="silu"),
    _case("same-s3-k5-relu6", c=3, h=23, w=13, o=5, k=5, stride=3, padding="same", activation="relu6"),
    _case("groups2", c=34, h=7, w=7, o=66, k=3, padding=1, groups=2, activation="relu"),
    _case("depthwise-s2", c=17, h=13, w=13, o=17, k=3, stride=2, padding=1, groups=17, activation="relu"),
    _case("depthwise-x2-same-dil2", c=5, h=13, w=7, o=10, k=5, dilation=2, padding="same", groups=5, bias=False),
    _case("3x3-over-1x1-input", c=1, h=1, w=1, o=3, k=3, padding=1),
    _case("row-1x23", c=3, h=1, w=23, o=5, k=(1, 3), bias=False, activation="leaky_relu"),
    _case("batch2-1x1-s2", n=2, c=33, h=7, w=7, o=33, k=1, stride=2),
    _case("stem-7x7-s2-pad3", c=3, h=23, w=23, o=17, k=7, stride=2, padding=3, activation="relu"),
    # LeNet's second layer: small enough for L1, so NCHW reorders to NHWC on AVX-512.
    _case("lenet-5x5-c6-o16", c=6, h=14, w=14, o=16, k=5, activation="relu"),
    _case("per-side-dil(1,2)-elu", c=5, h=7, w=13, o=5, k=3, dilation=(1, 2), padding=((2, 0), (0, 3)),
          bias=False, activation="elu"),
    _case("groups3-same-s(1,2)-d(2,1)", n=2, c=9, h=13, w=13, o=3, k=3, stride=(1, 2), dilation=(2, 1),
          padding="same", groups=3, activation="sigmoid"),
    _case("5x5-on-5x5", c=17, h=5, w=5, o=17, k=5, activation="tanh"),
    _case("3x1-w1", c=1, h=23, w=1, o=33, k=(3, 1), padding=(1, 0), activation="relu"),
    # NCHW in place, two groups of 35 output channels: each group ends in a partial block of
    # channels, which the kernel reads from a per-group copy.
    _case("in-place-groups-partial-blocks", c=40, h=3, w=5, o=70, k=3, padding=1, groups=2),
]


def make_problem(rng, case, layout, dtype):
    """(x, weight, bias, params) for a case dict, in `layout` and `dtype`."""
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["o"], case["c"] // case["groups"], case["kh"], case["kw"]))
    b = rng.standard_normal(case["o"]) if case["bias"] else None
    x, w = to_layout(x.astype(dtype), w.astype(dtype), layout)
    b = None if b is None else b.astype(dtype)
    params = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  groups=case["groups"], activation=case["activation"], data_format=layout)
    return x, w, b, params


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, algorithm, isa, rng, check_conv2d):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            check_conv2d(x, w, b, algorithm=algorithm,
                         err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


# Shapes where the work dwarfs the input and weights, so "direct" in NCHW takes its reorder path
# (input to NHWC, weights to HWIO, tiles written back transposed) and auto may pick it; plus a
# long-reduction, narrow-row shape where auto picks im2col. Each crosses several register tiles.
WIDE_CASES = [
    _case("wide-3x3-pad1-relu", n=2, c=32, h=26, w=29, o=48, k=3, padding=1, activation="relu"),
    _case("wide-s2-dil2-same", c=64, h=33, w=33, o=64, k=3, stride=2, dilation=2, padding="same"),
    _case("wide-groups2-per-side", c=36, h=20, w=37, o=70, k=3, groups=2,
          padding=((2, 0), (1, 1)), activation="elu", bias=False),
    _case("wide-5x5-s(1,2)", c=20, h=19, w=45, o=37, k=5, stride=(1, 2), padding=2),
    _case("narrow-long-k", c=96, h=9, w=9, o=40, k=3, padding=1, activation="sigmoid"),
    # weights past L2 (2.1 MiB float32) with the pixels split: one pixel tile per thread
    _case("weights-past-l2", c=256, h=12, w=12, o=232, k=3, padding=1, activation="relu"),
    # NCHW 1x1: B panels read from the input planes in place, a partial last panel packed; pixel
    # tiles, K blocks (800 = 2 x 400 float32, 272 + 272 + 256 float64), groups; and with many
    # outputs on wide planes, every panel packed
    _case("pointwise-tiles-k-blocks", n=2, c=800, h=23, w=21, o=70, k=1, activation="relu"),
    _case("pointwise-groups2", c=40, h=9, w=15, o=50, k=1, groups=2, bias=False),
    _case("pointwise-many-outputs-wide-planes", c=8, h=33, w=33, o=200, k=1, activation="relu6"),
    # an RGB batch: its 3 planes are interleaved into pixels a vector at a time, then the tail
    _case("rgb-stem-7x7-s2", n=2, c=3, h=45, w=38, o=24, k=7, stride=2, padding=3, activation="relu"),
    # many output channels on few pixels: the GEMM splits channels before pixels
    _case("small-image-many-channels", c=64, h=5, w=6, o=160, k=3, padding=1, activation="relu"),
    # large enough (>= 1e7 flops, >= 256 pixels) for packed weight panels: 3 groups of 37
    # channels each end in a zero-padded partial panel (from OIHW in NCHW, from HWIO in NHWC)
    _case("packed-panels-groups3", c=48, h=20, w=21, o=111, k=3, groups=3, padding=1, activation="relu"),
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", WIDE_CASES)
def test_matches_reference_wide(case, algorithm, isa, rng, check_conv2d):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            check_conv2d(x, w, b, algorithm=algorithm,
                         err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("pixels", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_shaped_call_with_megabytes_of_weights(pixels, dtype, isa, rng, check_conv2d, restore_threads):
    # A Dense layer on one image (pointwise, a few pixels, weights past 4 MiB) is split along the
    # reduction across threads and the partial sums are added before bias and activation.
    pycnn.set_num_threads(2)
    x = rng.standard_normal((1, 1, pixels, 2048)).astype(dtype)
    w = (rng.standard_normal((1, 1, 2048, 1100)) / 45).astype(dtype)
    b = rng.standard_normal(1100).astype(dtype)
    y = check_conv2d(x, w, b, activation="relu", data_format="NHWC")  # against the float64 truth
    packed = pycnn.ops.pack_conv2d_weight(w, data_format="NHWC")
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, activation="relu", data_format="NHWC"), y)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 1, 1, 70), (3, 2, 7, 33)], ids=["dense-batch5", "batch3-2x7"])
def test_pointwise_nhwc_batch_is_one_gemm(shape, dtype, algorithm, isa, rng, check_conv2d):
    # NHWC 1x1: the batch is folded into one image of N*H rows, so every image must come out
    # (not just the first) and in its own place; narrow rows take the GEMM.
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((1, 1, shape[3], 37)).astype(dtype)
    b = rng.standard_normal(37).astype(dtype)
    check_conv2d(x, w, b, activation="relu", data_format="NHWC", algorithm=algorithm)
    assert pycnn.ops.explain_conv2d(shape, w.shape, data_format="NHWC").startswith(
        "im2col: a 1x1 kernel on narrow rows is one GEMM over the pixels of the whole batch")


def test_explain_names_the_choice():
    assert pycnn.ops.explain_conv2d((1, 256, 56, 56), (64, 256, 1, 1)).startswith("im2col")
    # 3x3 stride 1 (and 2) on large images: Winograd (test_winograd.py); dilated, direct.
    assert pycnn.ops.explain_conv2d((1, 64, 56, 56), (64, 64, 3, 3), padding=1).startswith("winograd")
    assert pycnn.ops.explain_conv2d((1, 64, 56, 56), (64, 64, 3, 3), padding=2, dilation=2).startswith("direct")
    assert pycnn.ops.explain_conv2d((1, 56, 56, 64), (3, 3, 64, 64), padding=2, dilation=2,
                                    data_format="NHWC").startswith("direct")
    why = pycnn.ops.explain_conv2d((1, 256, 14, 14), (256, 256, 3, 3), padding=2, dilation=2)
    assert why.startswith("im2col") and "the GEMM runs on NHWC" in why
    assert "NHWC" not in pycnn.ops.explain_conv2d((1, 14, 14, 256), (3, 3, 256, 256), padding=2, dilation=2,
                                                  data_format="NHWC").split(";")[0]
    # A reduction of 1152: direct while the weights stay in L2 (576 KiB), the GEMM past that.
    assert pycnn.ops.explain_conv2d((1, 112, 112, 128), (3, 3, 128, 128), padding=2, dilation=2,
                                    data_format="NHWC").startswith("direct")
    why = pycnn.ops.explain_conv2d((1, 56, 56, 128), (3, 3, 128, 256), stride=2, padding=2, dilation=2,
                                   data_format="NHWC")  # (undilated: Winograd, test_winograd.py)
    assert why.startswith("im2col: a long reduction (C/groups*KH*KW = 1152, 1152 KiB of float32 weights")
    # The arrays themselves may stand for their shapes.
    x, w = np.zeros((2, 64, 56, 56), np.float32), np.zeros((64, 64, 3, 3), np.float32)
    assert pycnn.ops.explain_conv2d(x, w, padding=1) == pycnn.ops.explain_conv2d(x.shape, w.shape, padding=1)


def test_explain_small_nchw_layers(isa):
    # Input, weights and output fit L1: NCHW reorders to NHWC when the in-place tiles would do at
    # least twice the work (AVX-512: LeNet's 16 output channels in 12-channel tiles, 10 of 16
    # lanes), and stays in place when they would not (3->32 @32, 32 columns) or the output is large.
    lenet = pycnn.ops.explain_conv2d((1, 6, 14, 14), (16, 6, 5, 5))
    if isa == "avx512":
        assert lenet.startswith("direct: input reordered to NHWC") and "a small layer, all in L1" in lenet
    else:  # narrower vectors: the in-place tiles waste less
        assert lenet.startswith("direct (NCHW in place)")
    assert pycnn.ops.explain_conv2d((1, 3, 32, 32), (32, 3, 3, 3), padding=1).startswith("direct (NCHW in place)")
    assert pycnn.ops.explain_conv2d((1, 6, 20, 20), (32, 6, 3, 3)).startswith("direct (NCHW in place)")
    # Past L1, with >= 40 multiply-adds per element reordered, 1.25x the work is enough: 32->16 @18
    # (79 KiB) reorders on every ISA (@20, 100 tiles of 2x2, takes Winograd: test_winograd.py).
    assert pycnn.ops.explain_conv2d((1, 32, 18, 18), (16, 32, 3, 3), padding=1).startswith(
        "direct: input reordered to NHWC")


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_activations(activation, isa, rng, check_conv2d):
    # Pre-activations spread over roughly [-10, 10] so every activation's regions are visited
    # (sigmoid/tanh saturation, elu's exponential side, relu6's upper clamp).
    case = dict(n=2, c=5, h=9, w=11, o=17, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation=activation)
    for algorithm in ALGORITHMS:
        for layout in LAYOUTS:
            for dtype in DTYPES:
                x, w, b, params = make_problem(rng, case, layout, dtype)
                w = (w * 0.5).astype(dtype)
                check_conv2d(x, w, b, algorithm=algorithm,
                             err_msg=f"isa={isa} algorithm={algorithm} layout={layout} dtype={np.dtype(dtype)}",
                             **params)


# ------------------------------------------------------------------------------ Hypothesis

@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 4))
    o = groups * draw(st.integers(1, 4))
    kh, kw, stride, dilation, padding, hmin, wmin = draw_window(draw, st, max_kernel=4)
    h = draw(st.integers(hmin, hmin + 8))
    w = draw(st.integers(wmin, wmin + 8))
    return dict(
        n=draw(st.integers(1, 2)), c=c, h=h, w=w, o=o, kh=kh, kw=kw, stride=stride, padding=padding,
        dilation=dilation, groups=groups, bias=draw(st.booleans()),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        layout=draw(st.sampled_from(LAYOUTS + ["channels_first", "channels_last"])),
        dtype=draw(st.sampled_from(DTYPES)),
        algorithm=draw(st.sampled_from(ALGORITHMS)),
        unbatched=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@given(problem=conv_problems())
def test_hypothesis_matches_reference(problem, isa, check_conv2d):
    rng = np.random.default_rng(problem["seed"])
    layout = {"channels_first": "NCHW", "channels_last": "NHWC"}.get(problem["layout"], problem["layout"])
    x, w, b, params = make_problem(rng, problem, layout, problem["dtype"])
    params["data_format"] = problem["layout"]
    if problem["unbatched"]:
        x = x[0]
    result = check_conv2d(x, w, b, algorithm=problem["algorithm"], err_msg=f"isa={isa} {problem}", **params)
    assert result.ndim == x.ndim


# ------------------------------------------------------------------------------ shapes, batches

@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_input_gives_unbatched_result(layout, isa, rng, check_conv2d):
    case = dict(n=1, c=5, h=9, w=7, o=3, kh=3, kw=3, stride=2, padding="same", dilation=1, groups=1,
                bias=True, activation="relu")
    x, w, b, params = make_problem(rng, case, layout, np.float32)
    batched = pycnn.ops.conv2d(x, w, b, **params)
    single = check_conv2d(x[0], w, b, **params)
    assert single.ndim == 3
    assert single.shape == batched.shape[1:]
    np.testing.assert_allclose(single, batched[0], rtol=1e-6, atol=1e-6)

    out = np.full(single.shape, np.nan, np.float32)
    assert pycnn.ops.conv2d(x[0], w, b, out=out, **params) is out
    np.testing.assert_allclose(out, single, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_batch_images_are_independent(layout, algorithm, isa, rng, check_conv2d):
    case = dict(n=5, c=3, h=11, w=13, o=7, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation=None)
    x, w, b, params = make_problem(rng, case, layout, np.float64)
    result = check_conv2d(x, w, b, algorithm=algorithm, **params)
    for i in range(x.shape[0]):
        one = pycnn.ops.conv2d(x[i:i + 1], w, b, algorithm=algorithm, **params)
        np.testing.assert_allclose(result[i:i + 1], one, rtol=1e-13, atol=1e-13, err_msg=f"image {i}")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_output_channels_across_register_tiles(algorithm, layout, isa, rng, check_conv2d):
    case = dict(n=3, c=40, h=20, w=20, o=70, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation="relu")
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, layout, dtype)
        check_conv2d(x, w, b, algorithm=algorithm, err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("o", [1, 4, 8, 16])
def test_single_vector_tile(o, algorithm, layout, isa, rng, check_conv2d):
    """Output channels that fit one vector take the single-vector tile (12 rows x W pixels or
    channels; W = 16/8 float32/float64 on AVX-512, 8/4 on AVX2, 1 scalar): NHWC direct rows of
    29, 28 and 16 pixels run as 10 + 10 + 9, 10 + 9 + 9 and 8 + 8 (the MR-2, MR-3 and MR-4
    kernels), 13 as 12 + a partial tile of 1, and channel counts below W fill partial vectors. An
    NCHW GEMM puts output channels on the tile's rows and pixels on its vector, so it takes the
    tile when the image fits one vector: 3 x 5 pixels on AVX-512 float32, 1 x 1 on every ISA."""
    for h, w in ((29, 29), (3, 28), (2, 16), (3, 13), (3, 5), (1, 1)):
        case = dict(n=2, c=7, h=h, w=w, o=o, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                    bias=True, activation="relu")
        for dtype in DTYPES:
            x, wt, b, params = make_problem(rng, case, layout, dtype)
            check_conv2d(x, wt, b, algorithm=algorithm, err_msg=f"isa={isa} dtype={np.dtype(dtype)} h={h}",
                         **params)


@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("ow", [28, 27, 26, 23, 21, 19, 15, 14, 13, 12, 10, 5])
def test_two_vector_pixel_tiles(ow, stride, dilation, isa, rng, check_conv2d):
    """Two vectors of output channels (32 float32 / 16 float64 on AVX-512) take the NHWC direct
    kernel's longest tile: 14 pixels on AVX-512, whose 14 pixel addresses are four-pixel base
    pointers plus 0-3 pixel steps. Rows of 28, 27, 26, 23 and 21 pixels split into two tiles of
    14, 13, 12, 11 or 10 (the MR and MR-1 ... MR-4 kernels); 19 and 15 into 14 + a partial tile;
    5, 10 and 12 take one partial or short tile.
    Strides and dilations change the pixel step and the taps' layout in the panel."""
    w_in = (ow - 1) * stride + 2 * dilation + 1 - 2  # 3x3, padding 1
    for dtype, o in ((np.float32, 32), (np.float64, 16)):
        case = dict(n=1, c=3, h=6, w=w_in, o=o, kh=3, kw=3, stride=stride, padding=1, dilation=dilation,
                    groups=1, bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, "NHWC", dtype)
        result = check_conv2d(x, w, b, algorithm="direct", err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)
        assert result.shape[2] == ow


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("c, h, w, o", [(32, 13, 13, 64), (24, 4, 41, 70), (16, 2, 30, 40)])
def test_few_rows_split_into_tile_parts(c, h, w, o, layout, isa, rng, check_conv2d):
    """Fewer than 8 output rows per thread: the NHWC direct kernel's rows go out in parts of their
    (channel panel, pixel tile) units, and in NCHW each part's columns are transposed back on
    their own. MNIST's 32->64 @13, a 4-row image of 70 channels (two panels, partial), a
    2-row one."""
    case = dict(n=1, c=c, h=h, w=w, o=o, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation="relu")
    for dtype in DTYPES:
        x, wt, b, params = make_problem(rng, case, layout, dtype)
        check_conv2d(x, wt, b, algorithm="direct", err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("dtype, c, side", [(np.float32, 3, 40), (np.float32, 3, 320), (np.float64, 2, 280)])
def test_nchw_in_place_padded_image_and_row_panels(dtype, c, side, isa, rng, check_conv2d):
    """NCHW in place at stride 1 reads a padded copy of the whole image (one per thread) up to
    1 MiB, and copies each output row's input rows into a panel past that: a small image, and
    one of each dtype over the bound. Batch 2, so a thread pads a second image; the bottom
    padding row is 2 (asymmetric) and the rows are strided by 2 in the second pass."""
    for stride in (1, (2, 1)):
        case = dict(n=2, c=c, h=side, w=side, o=5, kh=3, kw=3, stride=stride, padding=((1, 2), (1, 1)),
                    dilation=1, groups=1, bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        assert pycnn.ops.explain_conv2d(x, w, stride=stride, padding=case["padding"]).startswith(
            "direct (NCHW in place)")
        check_conv2d(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)} stride={stride}", **params)


# Strided NCHW layers with little work next to their data (past L1, under 40 multiply-adds per
# element a reorder would touch, so no ISA reorders them): overlapping windows run in place,
# windows that do not overlap take im2col, whose packing then copies each element at most once.
# In place, a thread pads each group's planes once, every row split into its column phases,
# where every input row is read (undilated, stride_h <= KH), and per-row panels elsewhere (the
# dilated and the 1x3 case).
STRIDED_OVERLAPPING = [
    pytest.param((2, 8, 23, 31), (16, 4, 3, 3), dict(stride=(1, 2), padding=((0, 2), (1, 0)), groups=2),
                 id="3x3-s(1,2)-groups2-asymmetric"),
    pytest.param((1, 3, 67, 45), (32, 3, 3, 3), dict(stride=2, padding=1), id="3x3-s2-c3-o32"),
    pytest.param((1, 64, 15, 15), (64, 2, 3, 3), dict(stride=2, padding=1, groups=32), id="3x3-s2-groups32"),
    pytest.param((2, 6, 40, 40), (8, 6, 5, 5), dict(stride=2, padding=2), id="5x5-s2-batch2"),
    pytest.param((1, 3, 50, 50), (8, 3, 5, 5), dict(stride=3, padding=2), id="5x5-s3"),
    pytest.param((1, 4, 40, 40), (8, 4, 2, 2), dict(stride=2, dilation=2), id="2x2-s2-dil2"),
    pytest.param((1, 4, 33, 37), (8, 4, 1, 3), dict(stride=2, padding=(0, 1)), id="1x3-s2"),
]
STRIDED_DISJOINT = [
    pytest.param((1, 3, 64, 64), (96, 3, 4, 4), dict(stride=4), id="4x4-s4"),
    pytest.param((1, 3, 48, 48), (8, 3, 2, 2), dict(stride=2), id="2x2-s2"),
    pytest.param((1, 8, 60, 60), (8, 8, 3, 3), dict(stride=3), id="3x3-s3"),
]


@pytest.mark.parametrize("x_shape, w_shape, params", STRIDED_OVERLAPPING)
def test_nchw_strided_overlapping_windows_run_in_place(x_shape, w_shape, params, isa, rng, check_conv2d):
    why = pycnn.ops.explain_conv2d(x_shape, w_shape, **params)
    assert why.startswith("direct (NCHW in place)") and "where strided windows overlap" in why, why
    for dtype in DTYPES:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(w_shape[0]).astype(dtype)
        y = check_conv2d(x, w, b, activation="relu", err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)
        np.testing.assert_array_equal(y, pycnn.ops.conv2d(x, w, b, activation="relu", algorithm="direct", **params))


@pytest.mark.parametrize("x_shape, w_shape, params", STRIDED_DISJOINT)
def test_nchw_strided_disjoint_windows_take_im2col(x_shape, w_shape, params, isa, rng, check_conv2d):
    why = pycnn.ops.explain_conv2d(x_shape, w_shape, **params)
    assert why.startswith("im2col: the data is large next to the work"), why
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    check_conv2d(x, w, err_msg=f"isa={isa}", **params)


# NHWC groups of at most half a vector's output channels (AVX2: 4 float32), or as few outputs in
# one group: the NHWC tiles would leave most lanes idle, so the vector ISAs reorder to NCHW and
# run the in-place kernel; the scalar kernels' tiles are a few lanes wide and stay NHWC. A
# pointwise batch runs as one image.
NHWC_SMALL_GROUPS = [
    pytest.param((1, 56, 56, 64), (3, 3, 4, 64), dict(padding=1, groups=16), id="3x3-groups16-of-4"),
    pytest.param((2, 20, 40, 32), (3, 3, 2, 32), dict(stride=(2, 1), padding=1, groups=16), id="3x3-s(2,1)-of-2"),
    pytest.param((1, 30, 44, 24), (3, 3, 4, 24), dict(padding="same", dilation=2, groups=6), id="dil2-same-of-4"),
    pytest.param((3, 9, 56, 64), (1, 1, 4, 64), dict(groups=16), id="1x1-batch3-of-4"),
    pytest.param((1, 30, 50, 16), (3, 3, 16, 2), dict(padding=1), id="one-group-of-2"),
]


@pytest.mark.parametrize("x_shape, w_shape, params", NHWC_SMALL_GROUPS)
def test_nhwc_small_groups_run_in_place_nchw(x_shape, w_shape, params, isa, rng, check_conv2d):
    why = pycnn.ops.explain_conv2d(x_shape, w_shape, data_format="NHWC", **params)
    if isa == "scalar":
        assert why.startswith("direct: row panels feed pixel x channel tiles"), why
    else:
        groups = params.get("groups", 1)
        assert why.startswith("direct (NCHW in place, input and result reordered): " +
                              ("groups of " if groups > 1 else "") + f"{w_shape[3] // groups} output channels"), why
    for dtype in DTYPES:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal(w_shape).astype(dtype)
        b = rng.standard_normal(w_shape[3]).astype(dtype)
        y = check_conv2d(x, w, b, activation="relu6", data_format="NHWC",
                         err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)
        assert y.flags.c_contiguous
        np.testing.assert_array_equal(
            y, pycnn.ops.conv2d(x, w, b, activation="relu6", data_format="NHWC", algorithm="direct", **params))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n, c, side, groups, params", [
    (2, 64, 28, 8, dict(padding=1)),
    (2, 64, 29, 8, dict(stride=2, padding=((0, 2), (1, 1)))),
    (1, 48, 20, 6, dict(dilation=2, padding="same")),
    (1, 64, 48, 2, dict(padding=1)),  # NHWC: 32-channel groups past kGroupImageBytes: row panels
])
def test_grouped_direct_pads_each_group_once(n, c, side, groups, params, layout, isa, rng, check_conv2d,
                                              restore_threads):
    """Grouped direct convolutions pad each (image, group) once per thread and read every output
    row from that copy (NHWC: a group image up to 256 KiB, per-row panels past it; NCHW in place:
    the group's planes at stride 1). Batch 2 and both thread counts, so threads move between
    images and groups; strided, dilated and asymmetrically padded rows."""
    for threads in (1, 2):
        pycnn.set_num_threads(threads)
        for dtype in DTYPES:
            x = rng.standard_normal((n, side, side, c) if layout == "NHWC" else (n, c, side, side)).astype(dtype)
            wt = rng.standard_normal((c, c // groups, 3, 3)).astype(dtype)
            if layout == "NHWC":
                wt = np.ascontiguousarray(wt.transpose(2, 3, 1, 0))
            b = rng.standard_normal(c).astype(dtype)
            check_conv2d(x, wt, b, algorithm="direct", groups=groups, data_format=layout, activation="relu",
                         err_msg=f"isa={isa} dtype={np.dtype(dtype)} threads={threads}", **params)


@pytest.mark.parametrize("dtype, side", [(np.float32, 128), (np.float64, 96)])
def test_nchw_in_place_pads_a_group_past_the_image_bound(dtype, side, isa, rng, check_conv2d):
    """NCHW in place with groups: the whole padded image is past 1 MiB, one group's four planes
    are not, so each thread pads the group it works on (batch 2: again for the second image)."""
    x = rng.standard_normal((2, 32, side, side)).astype(dtype)
    w = rng.standard_normal((32, 4, 3, 3)).astype(dtype)
    assert 32 * (side + 2) * side * np.dtype(dtype).itemsize > 1 << 20
    assert pycnn.ops.explain_conv2d(x, w, padding=1, groups=8).startswith("direct (NCHW in place)")
    check_conv2d(x, w, None, padding=1, groups=8, err_msg=f"isa={isa} dtype={np.dtype(dtype)}")


@pytest.mark.parametrize("groups, o", [(1, o) for o in (4, 8, 16, 20, 28, 32, 40)] +
                         [(2, o) for o in (4, 8, 20, 28, 32, 40)])  # 2 groups of 16 reorder
def test_nchw_in_place_last_channel_blocks(o, groups, isa, rng, check_conv2d):
    """NCHW in place, output channels per group whose last block is 4 or 8 rows short of a tile
    (12-row tiles: 16 = 12 + 4, 32 = 12 + 12 + 8) run a kernel of exactly those rows on the
    weights in place; other remainders still read a zero-padded copy. (Two groups take two input
    channels each, with one they are a depthwise convolution, and 15 columns, where every ISA
    still chooses the in-place kernel.)"""
    for dtype in DTYPES:
        c, w = (1, 11) if groups == 1 else (2 * groups, 15)
        case = dict(n=1, c=c, h=9, w=w, o=o * groups, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=groups,
                    bias=True, activation="relu")
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        assert pycnn.ops.explain_conv2d(x, w, padding=1, groups=groups).startswith("direct (NCHW in place)")
        check_conv2d(x, w, b, err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("m", [1, 3])
def test_one_channel_per_group_runs_the_depthwise_kernels(layout, m, isa, rng, check_conv2d):
    """conv2d with groups = channels (PyTorch's depthwise) is depthwise_conv2d under "auto": the
    explanation says so, and raw, packed and out= calls, first and cached, give its exact numbers
    (NHWC's (KH, KW, 1, C*M) weight read as (KH, KW, C, M)) and match the reference."""
    c = 19
    geometry = dict(stride=(2, 1), padding="same", dilation=(1, 2), data_format=layout)
    params = dict(geometry, groups=c, activation="relu6")
    for dtype in DTYPES:
        x, w = to_layout(rng.standard_normal((2, c, 13, 10)).astype(dtype),
                         rng.standard_normal((c * m, 1, 3, 3)).astype(dtype), layout)
        b = rng.standard_normal(c * m).astype(dtype)
        assert pycnn.ops.explain_conv2d(x, w, groups=c, **geometry).startswith(
            f"depthwise: groups = channels = {c}, one input channel per group")
        expected = pycnn.ops.depthwise_conv2d(x, w if layout == "NCHW" else w.reshape(3, 3, c, m), b,
                                              activation="relu6", **geometry)
        packed = pycnn.ops.pack_conv2d_weight(w, groups=c, data_format=layout)
        for call in range(2):  # the first call makes the plan, the second runs it from the cache
            err = f"isa={isa} dtype={np.dtype(dtype)} call={call}"
            np.testing.assert_array_equal(check_conv2d(x, w, b, err_msg=err, **params), expected, err_msg=err)
            np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, **params), expected, err_msg=err)
            for weight in (w, packed):
                out = np.full_like(expected, np.nan)
                assert pycnn.ops.conv2d(x, weight, b, out=out, **params) is out
                np.testing.assert_array_equal(out, expected, err_msg=err)


@pytest.mark.parametrize("offset", [0, 16, 48])
def test_pointwise_nchw_input_at_any_alignment(offset, isa, rng, check_conv2d):
    """A 1x1 NCHW GEMM reads its input planes in place from 64-byte boundaries, and otherwise
    packs them (Intel) or still reads them in place (AMD, where split-line loads are cheap): the
    same results from an input `offset` bytes past a cache line, on planes of whole cache lines
    (32x32) and not (14x14)."""
    for dtype in DTYPES:
        for side in (32, 14):
            case = dict(n=1, c=40, h=side, w=side, o=48, kh=1, kw=1, stride=1, padding=0, dilation=1, groups=1,
                        bias=True, activation="relu")
            x, w, b, params = make_problem(rng, case, "NCHW", dtype)
            y = check_conv2d(at_line_offset(x, offset), w, b,
                             err_msg=f"isa={isa} dtype={np.dtype(dtype)} side={side}", **params)
            np.testing.assert_array_equal(y, pycnn.ops.conv2d(x, w, b, **params))


@pytest.mark.parametrize("c, side, o, k, stride", [(64, 23, 70, 1, 1), (128, 32, 22, 1, 1), (96, 24, 17, 1, 1),
                                                   (160, 23, 17, 1, 1), (64, 47, 17, 3, 2)])
def test_nchw_gemm_with_long_b_panels(c, side, o, k, stride, isa, rng, check_conv2d):
    """An NCHW GEMM whose B panels (input channels x pixels) pass 8 KiB, on 512 pixels or more,
    takes a register tile at least 6 output channels deep (ops/tiles.h, pick_channel_rows_tile:
    AVX2's 6x2 over its 3x4, the scalar 8x2 at long reductions): channel counts that leave a
    partial last tile, pixel counts that leave a partial last panel (529, 576) or none (1024),
    the input read in place (1x1 up to 128 channels), packed because the 6x2's one-line panel
    rows would straddle cache lines over more than 128 planes (1x1, 160 channels on 529-pixel
    planes, AVX2), or packed as im2col (3x3/2, asked for: "auto" runs its overlapping windows
    in place)."""
    for dtype in DTYPES:
        case = dict(n=1, c=c, h=side, w=side, o=o, kh=k, kw=k, stride=stride, padding=k // 2, dilation=1,
                    groups=1, bias=True, activation="relu")
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        explained = pycnn.ops.explain_conv2d(x, w, stride=stride, padding=k // 2)
        if k == 1:
            assert explained.startswith("im2col") and "reordered" not in explained, explained
        else:
            assert explained.startswith("direct (NCHW in place)"), explained
        check_conv2d(x, w, b, algorithm="im2col", err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("offset", [0, 16, 48])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_large_nhwc_call_weights_at_any_alignment(offset, algorithm, isa, rng, check_conv2d):
    """A call large enough to pack its HWIO weights packs them when they are off a 64-byte
    boundary or their panels are narrow, and reads them in place otherwise: the same results
    from weights starting `offset` bytes past a cache line, 64 output channels (one 64-wide GEMM
    panel, or two 32-wide direct ones), on 576 pixels and on 81 (where the GEMM packs only
    weights off a 64-byte boundary)."""
    for dtype, (c, side) in itertools.product(DTYPES, ((32, 24), (128, 9))):
        case = dict(n=1, c=c, h=side, w=side, o=64, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                    bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, "NHWC", dtype)
        y = check_conv2d(x, at_line_offset(w, offset), b, algorithm=algorithm,
                         err_msg=f"isa={isa} dtype={np.dtype(dtype)}", **params)
        np.testing.assert_array_equal(y, pycnn.ops.conv2d(x, w.copy(), b, algorithm=algorithm, **params))


@pytest.mark.parametrize("threads", [2, 3])
def test_nchw_single_image_transposed_by_every_thread(threads, isa, rng, restore_threads, check_conv2d):
    """A single NCHW image of up to 256 KiB on the NHWC kernels (reordered direct conv2d, direct
    conv_transpose2d) is transposed whole by every thread into its own buffer, with no barrier
    before the rows; a larger one once, shared. Both sides of the bound (64 x 32 x 32 float32
    is 256 KiB; 65 channels are over it), against the reference and against one thread."""
    for c, side in ((32, 10), (64, 32), (65, 32)):
        case = dict(n=1, c=c, h=side, w=side, o=64, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                    bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, "NCHW", np.float32)
        # "auto" takes Winograd for the larger two (test_winograd.py); direct still reorders them.
        params["algorithm"] = "direct"
        pycnn.set_num_threads(threads)
        y = check_conv2d(x, w, b, err_msg=f"isa={isa} threads={threads} c={c}", **params)
        wt = rng.standard_normal((c, 24, 4, 4)).astype(np.float32)
        yt = pycnn.ops.conv_transpose2d(x, wt, stride=2, padding=1)
        pycnn.set_num_threads(1)
        np.testing.assert_allclose(y, pycnn.ops.conv2d(x, w, b, **params), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(yt, pycnn.ops.conv_transpose2d(x, wt, stride=2, padding=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_weights_packed_by_every_thread_or_shared(threads, layout, isa, rng, restore_threads, check_conv2d):
    """Direct conv2d with no shared input transpose to wait for (NHWC, or one small NCHW image)
    has weights of up to 256 KiB that need copying (OIHW reordered, a partial last panel, or
    packed) packed by every thread into its own copy, and larger ones once, shared: both sides,
    with groups and partial panels, against the reference and bit for bit against one thread."""
    cases = [dict(c=32, side=11, o=64, groups=1), dict(c=24, side=9, o=2 * 37, groups=2),
             dict(c=128, side=9, o=160, groups=1)]  # the last: 720 KiB of float32 weights
    for case in cases:
        problem = dict(n=1, c=case["c"], h=case["side"], w=case["side"], o=case["o"], kh=3, kw=3, stride=1,
                       padding=1, dilation=1, groups=case["groups"], bias=True, activation="relu")
        x, w, b, params = make_problem(rng, problem, layout, np.float32)
        pycnn.set_num_threads(threads)
        y = check_conv2d(x, w, b, algorithm="direct", err_msg=f"isa={isa} threads={threads} {case}", **params)
        pycnn.set_num_threads(1)
        np.testing.assert_array_equal(y, pycnn.ops.conv2d(x, w, b, algorithm="direct", **params))


# ------------------------------------------------------------------------------ dtypes

def _values(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -3
        return rng.integers(lo, 4, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    "x_dtype, w_dtype, b_dtype, result_dtype",
    [
        (np.int32, np.float32, None, np.float32),
        (np.int64, np.int64, None, np.float32),
        (np.int8, np.int16, np.int32, np.float32),
        (np.uint8, np.float32, np.float32, np.float32),
        (np.bool_, np.float32, None, np.float32),
        (np.float16, np.float16, None, np.float32),
        (np.float16, np.float32, np.float16, np.float32),
        (np.float32, np.float64, None, np.float64),
        (np.float64, np.float32, None, np.float64),
        (np.float32, np.float32, np.float64, np.float64),
        (np.int32, np.float64, None, np.float64),
        (np.float16, np.float16, np.float64, np.float64),
        (np.float64, np.float64, np.float64, np.float64),
    ],
    ids=str,
)
def test_dtype_rules(x_dtype, w_dtype, b_dtype, result_dtype, rng, check_conv2d):
    x = _values(rng, (2, 3, 6, 5), x_dtype)
    w = _values(rng, (4, 3, 3, 3), w_dtype)
    b = None if b_dtype is None else _values(rng, (4,), b_dtype)
    result = check_conv2d(x, w, b, padding=1, expected_dtype=result_dtype)
    assert result.dtype == result_dtype


def test_python_lists_are_accepted(rng, check_conv2d):
    x = rng.integers(-3, 4, size=(1, 2, 5, 5))
    w = rng.integers(-3, 4, size=(3, 2, 3, 3))
    result = check_conv2d(x.tolist(), w.tolist(), [1, 2, 3], expected_dtype=np.float32)
    expected = pycnn.reference.conv2d(x.astype(np.float64), w.astype(np.float64), np.array([1.0, 2.0, 3.0]))
    # Small integers: every float32 partial sum is exact.
    np.testing.assert_array_equal(result, expected)


def test_numpy_integer_and_list_parameters(rng, check_conv2d):
    x = rng.standard_normal((1, 4, 9, 9))
    w = rng.standard_normal((6, 2, 3, 3))
    a = check_conv2d(x, w, stride=np.int64(2), padding=[np.int32(1), 2], dilation=(np.int16(1), 2),
                     groups=np.int64(2))
    b = pycnn.ops.conv2d(x, w, stride=2, padding=(1, 2), dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(a, b)
    c = pycnn.ops.conv2d(x, w, stride=[2, 2], padding=[[1, 1], [2, 2]], dilation=[1, 2], groups=2)
    np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------------------ out=

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_out_is_written_and_returned(algorithm, layout, isa, rng, check_conv2d):
    case = dict(n=2, c=5, h=9, w=10, o=17, kh=3, kw=3, stride=(2, 1), padding="same", dilation=1,
                groups=1, bias=True, activation="silu")
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, layout, dtype)
        expected = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
        out = np.full(expected.shape, np.nan, dtype)
        result = check_conv2d(x, w, b, algorithm=algorithm, out=out, **params)
        assert result is out
        np.testing.assert_array_equal(out, expected)


# ------------------------------------------------------------------------------ layouts

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nchw_and_nhwc_agree(algorithm, dtype, isa, rng, conv_truth, assert_conv_close):
    x = rng.standard_normal((2, 7, 11, 9)).astype(dtype)              # NCHW
    w = rng.standard_normal((13, 7, 3, 5)).astype(dtype)              # OIHW
    b = rng.standard_normal(13).astype(dtype)
    params = dict(stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2), activation="tanh")
    nchw = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
    nhwc = pycnn.ops.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                            np.ascontiguousarray(w.transpose(2, 3, 1, 0)),      # HWIO
                            b, algorithm=algorithm, data_format="NHWC", **params)
    assert nhwc.shape == (nchw.shape[0], nchw.shape[2], nchw.shape[3], nchw.shape[1])
    expected, scale = conv_truth(x, w, b, **params)
    k = 7 * 3 * 5
    assert_conv_close(nchw, expected, scale, k)
    assert_conv_close(nhwc.transpose(0, 3, 1, 2), expected, scale, k, err_msg="NHWC transposed")


@pytest.mark.parametrize("alias, layout", [("channels_first", "NCHW"), ("channels_last", "NHWC")])
def test_data_format_aliases(alias, layout, rng):
    case = dict(n=2, c=3, h=8, w=7, o=5, kh=3, kw=2, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation=None)
    x, w, b, params = make_problem(rng, case, layout, np.float32)
    a = pycnn.ops.conv2d(x, w, b, **params)
    params["data_format"] = alias
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, w, b, **params), a)


# ------------------------------------------------------------------------------ memory layouts

def _strided_variants(a):
    """Views of arrays equal to `a` with other memory layouts (values identical to `a`)."""
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    yield "every-other", view
    rev = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    yield "negative-strides", rev
    perm = tuple(reversed(range(a.ndim)))
    yield "transposed-view", np.ascontiguousarray(a.transpose(perm)).transpose(perm)


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_noncontiguous_inputs(layout, algorithm, isa, rng, check_conv2d):
    case = dict(n=2, c=6, h=9, w=8, o=10, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=2,
                bias=True, activation="relu")
    x, w, b, params = make_problem(rng, case, layout, np.float32)
    reference = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
    for which in ("x", "weight", "bias"):
        base = dict(x=x, weight=w, bias=b)[which]
        for name, variant in _strided_variants(base):
            np.testing.assert_array_equal(variant, base)
            args = dict(x=x, weight=w, bias=b)
            args[which] = variant
            before = variant.copy()
            result = check_conv2d(args["x"], args["weight"], args["bias"], algorithm=algorithm,
                                  err_msg=f"{which} {name}", **params)
            np.testing.assert_allclose(result, reference, rtol=1e-6, atol=1e-6, err_msg=f"{which} {name}")
            np.testing.assert_array_equal(variant, before, err_msg=f"{which} {name} was modified")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_result_is_new_contiguous_array(layout, isa, rng):
    # A 1x1 identity convolution is the case where returning (a view of) the input is tempting.
    c = 8
    x = rng.standard_normal((2, c, 5, 5)).astype(np.float32)
    w = np.eye(c, dtype=np.float32)[:, :, None, None]
    x, w = to_layout(x, w, layout)
    b = np.zeros(c, np.float32)
    copies = [a.copy() for a in (x, w, b)]
    for bias in (None, b):
        for algorithm in ALGORITHMS:
            result = pycnn.ops.conv2d(x, w, bias, data_format=layout, algorithm=algorithm)
            np.testing.assert_array_equal(result, x)
            assert result.flags.c_contiguous and result.flags.writeable
            for a in (x, w, b):
                assert not np.shares_memory(result, a)
            result[...] = 7.0
            for a, copy in zip((x, w, b), copies):
                np.testing.assert_array_equal(a, copy)


# ------------------------------------------------------------------------------ NaN and Inf

def cell(layout, n, c, h, w):
    """Index of image cell (n, c, h, w) in an array of `layout`."""
    return (n, c, h, w) if layout == "NCHW" else (n, h, w, c)


@pytest.mark.parametrize("where", ["x", "weight", "bias"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_propagates_like_reference(where, algorithm, isa, rng, conv_truth, assert_conv_close):
    acts = [None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "elu"]
    for layout in LAYOUTS:
        case = dict(n=2, c=5, h=9, w=8, o=7, kh=3, kw=3, stride=2, padding=1, dilation=1, groups=1,
                    bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, layout, np.float32)
        if where == "x":
            x[cell(layout, 0, 2, 3, 4)] = np.nan
            x[cell(layout, 1, 0, 0, 0)] = np.nan
        elif where == "weight":
            # The centre tap of a 3x3 kernel with padding 1 never lands in the padding, so the
            # whole output channel is NaN whether or not an algorithm multiplies padded zeros.
            w[(1, 0, 1, 1) if layout == "NCHW" else (1, 1, 0, 1)] = np.nan
        else:
            b[3] = np.nan
        k = 5 * 9
        for act in acts:
            params["activation"] = act
            result = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
            expected, scale = conv_truth(x, w, b, **params)
            assert np.isnan(expected).any()
            assert_conv_close(result, expected, np.nan_to_num(scale), k,
                              err_msg=f"isa={isa} layout={layout} activation={act}")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_infinities_propagate_like_reference(layout, algorithm, isa, rng, conv_truth, assert_conv_close):
    case = dict(n=1, c=3, h=12, w=12, o=4, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation=None)
    x, w, b, params = make_problem(rng, case, layout, np.float64)
    x[cell(layout, 0, 1, 2, 2)] = np.inf
    x[cell(layout, 0, 2, 8, 9)] = -np.inf
    for act in (None, "relu", "relu6", "sigmoid", "tanh"):
        params["activation"] = act
        result = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
        expected, scale = conv_truth(x, w, b, **params)
        if act is None:
            assert np.isinf(expected).any()
        finite_scale = np.where(np.isfinite(scale), scale, 0.0)
        assert_conv_close(result, expected, finite_scale, 27, err_msg=f"activation={act}")


# ------------------------------------------------------------------------------ threads

@pytest.mark.parametrize("layout", LAYOUTS)
def test_thread_counts_agree(layout, isa, rng, restore_threads, check_conv2d):
    case = dict(n=3, c=16, h=24, w=24, o=24, kh=3, kw=3, stride=1, padding=1, dilation=1, groups=1,
                bias=True, activation=None)
    x, w, b, params = make_problem(rng, case, layout, np.float32)
    results = []
    for threads in (1, 2, 3):
        pycnn.set_num_threads(threads)
        results.append(check_conv2d(x, w, b, err_msg=f"threads={threads}", **params))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-5, atol=1e-5)


def test_concurrent_calls_from_python_threads(rng):
    """The binding releases the GIL: calls from several Python threads must not interfere."""
    problems = []
    for i in range(4):
        layout = LAYOUTS[i % 2]
        case = dict(n=2, c=3 + i, h=15, w=13, o=9, kh=3, kw=3, stride=1 + i % 2, padding="same",
                    dilation=1, groups=1, bias=True, activation="relu")
        problems.append(make_problem(rng, case, layout, np.float32))
    expected = [pycnn.ops.conv2d(x, w, b, **p) for x, w, b, p in problems]
    errors = []

    def work(i):
        x, w, b, p = problems[i]
        try:
            for _ in range(20):
                np.testing.assert_array_equal(pycnn.ops.conv2d(x, w, b, **p), expected[i])
        except BaseException as e:  # noqa: BLE001 (reported in the main thread)
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# ------------------------------------------------------------------------------ PyTorch

def torch_conv2d(torch, x_nchw, w_oihw, b, *, stride, padding, dilation, groups, activation):
    """PyTorch in float64 on NCHW/OIHW arrays; padding applied with F.pad."""
    F = torch.nn.functional
    (t, bo), (l, r) = explicit_padding(padding, x_nchw.shape[2], x_nchw.shape[3], w_oihw.shape[2],
                                       w_oihw.shape[3], stride, dilation)
    xt = F.pad(torch.from_numpy(np.asarray(x_nchw, np.float64)), (l, r, t, bo))
    y = F.conv2d(xt, torch.from_numpy(np.asarray(w_oihw, np.float64)),
                 None if b is None else torch.from_numpy(np.asarray(b, np.float64)),
                 stride=stride, dilation=dilation, groups=groups)
    name, param = (activation if isinstance(activation, tuple) else (activation, None))
    if name == "relu":
        y = F.relu(y)
    elif name == "relu6":
        y = F.relu6(y)
    elif name == "leaky_relu":
        y = F.leaky_relu(y, 0.01 if param is None else param)
    elif name == "sigmoid":
        y = torch.sigmoid(y)
    elif name == "tanh":
        y = torch.tanh(y)
    elif name in ("silu", "swish"):
        y = F.silu(y)
    elif name == "elu":
        y = F.elu(y, alpha=1.0)
    else:
        assert name is None
    return y.numpy()


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case, isa, rng, torch, assert_conv_close):
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, "NCHW", dtype)
        conv = {k: params[k] for k in ("stride", "padding", "dilation", "groups", "activation")}
        expected = torch_conv2d(torch, x, w, b, **conv)
        scale = torch_conv2d(torch, np.abs(x), np.abs(w), None if b is None else np.abs(b),
                             **{**conv, "activation": None})
        k = w.shape[1] * w.shape[2] * w.shape[3]
        for algorithm in ALGORITHMS:
            ours = pycnn.ops.conv2d(x, w, b, algorithm=algorithm, **params)
            assert ours.dtype == dtype
            msg = f"isa={isa} algorithm={algorithm} dtype={np.dtype(dtype)}"
            assert_conv_close(ours, expected, scale, k, err_msg=msg + " NCHW")
            xh, wh = to_layout(x, w, "NHWC")
            ours = pycnn.ops.conv2d(xh, wh, b, algorithm=algorithm, **{**params, "data_format": "NHWC"})
            assert_conv_close(ours.transpose(0, 3, 1, 2), expected, scale, k, err_msg=msg + " NHWC")


def test_torch_tensors_are_accepted(torch, rng, check_conv2d):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    result = check_conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1,
                          expected_dtype=np.float32)
    np.testing.assert_array_equal(result, pycnn.ops.conv2d(x, w, b, padding=1))
    # A non-contiguous tensor (channels_last memory format) is accepted too.
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(pycnn.ops.conv2d(xt, w, b, padding=1), result, rtol=1e-6, atol=1e-6)
