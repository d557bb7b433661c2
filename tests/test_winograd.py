"""conv2d by Winograd (algorithm="winograd", and where "auto" picks it): F(2x2, 3x3) at stride 1
and, the even and odd inputs apart, at stride 2, against the float64 reference, the direct
algorithm and PyTorch where importable, on every ISA."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import to_layout

LAYOUTS = ["NCHW", "NHWC"]


def problem(rng, n, c, o, h, w, dtype=np.float32, layout="NCHW"):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    x, wt = to_layout(x, wt, layout)
    return x, wt, b


# Shapes around the edges of the tiling: odd output sizes (a partial last tile row and column),
# outputs narrower than a tile, channel counts that leave a partial GEMM panel or vector, a batch
# (tiles of a block spanning images), and padding 0, 1, 2 and TensorFlow's asymmetric "same".
CASES = [
    dict(n=1, c=16, o=16, h=8, w=8, padding=1),
    dict(n=1, c=3, o=5, h=4, w=4, padding=1),
    dict(n=1, c=32, o=64, h=13, w=13, padding=0),
    dict(n=2, c=17, o=70, h=9, w=7, padding=1),
    dict(n=3, c=20, o=33, h=5, w=6, padding=2),
    dict(n=1, c=24, o=40, h=3, w=3, padding=0),
    dict(n=1, c=40, o=24, h=12, w=11, padding="same"),
    dict(n=2, c=64, o=80, h=15, w=16, padding=((0, 2), (1, 0))),
    dict(n=1, c=129, o=20, h=6, w=9, padding=1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "{n}x{c}->{o}@{h}x{w}-p{padding}".format(**c).replace(" ", ""))
def test_winograd_matches_reference(case, dtype, layout, isa, rng, check_conv2d):
    x, w, b = problem(rng, case["n"], case["c"], case["o"], case["h"], case["w"], dtype, layout)
    for bias, activation in ((None, None), (b, "relu"), (b, "silu")):
        y = check_conv2d(x, w, bias, padding=case["padding"], activation=activation, data_format=layout,
                         algorithm="winograd", err_msg=f"isa={isa}")
        direct = pycnn.ops.conv2d(x, w, bias, padding=case["padding"], activation=activation, data_format=layout,
                                  algorithm="direct")
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, direct, rtol=tol, atol=tol * max(1.0, np.abs(direct).max()))


# Groups: a GEMM per group over its input channels' rows of V and U, writing its output
# channels. Channels per group that leave partial GEMM panels and vectors (20, 33, 5), one per
# panel, a batch and asymmetric padding, at strides 1 and 2.
GROUPED_CASES = [
    dict(n=1, c=64, o=64, h=12, w=12, groups=2, padding=1),
    dict(n=2, c=48, o=60, h=9, w=7, groups=3, padding=((0, 2), (1, 0))),
    dict(n=1, c=66, o=99, h=10, w=11, groups=3, padding=0),
    dict(n=1, c=16, o=20, h=8, w=9, groups=4, padding="same"),
    dict(n=1, c=64, o=64, h=13, w=12, groups=2, padding=1, stride=2),
    dict(n=2, c=48, o=60, h=11, w=9, groups=3, padding=((0, 2), (1, 0)), stride=2),
    dict(n=1, c=16, o=20, h=9, w=10, groups=4, padding="same", stride=2),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", GROUPED_CASES,
                         ids=lambda c: "{n}x{c}->{o}g{groups}@{h}x{w}".format(**c) + "/2" * (c.get("stride") == 2))
def test_grouped_winograd_matches_reference_and_direct(case, dtype, layout, isa, rng, check_conv2d):
    g = case["groups"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(dtype)
    w = (rng.standard_normal((case["o"], case["c"] // g, 3, 3)) / np.sqrt(9 * case["c"] // g)).astype(dtype)
    b = rng.standard_normal(case["o"]).astype(dtype)
    x, w = to_layout(x, w, layout)
    params = dict(padding=case["padding"], stride=case.get("stride", 1), groups=g, data_format=layout,
                  activation="relu")
    y = check_conv2d(x, w, b, algorithm="winograd", err_msg=f"isa={isa}", **params)
    direct = pycnn.ops.conv2d(x, w, b, algorithm="direct", **params)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, direct, rtol=tol, atol=tol * max(1.0, np.abs(direct).max()))
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout, groups=g)  # HWIO, transformed per call
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, algorithm="winograd", **params), y)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_threads_agree(threads, layout, rng, restore_threads):
    """Blocks of tiles (NHWC) and rows of tiles (NCHW) shared among threads: every split gives the
    same bits, as each tile's sums run the same way whichever thread takes it."""
    x, w, b = problem(rng, 2, 48, 72, 30, 26, layout=layout)
    pycnn.set_num_threads(1)
    one = pycnn.ops.conv2d(x, w, b, padding=1, data_format=layout, algorithm="winograd")
    pycnn.set_num_threads(threads)
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, w, b, padding=1, data_format=layout, algorithm="winograd"), one)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_winograd_packed_weights_and_out(layout, rng):
    x, w, b = problem(rng, 1, 32, 48, 20, 20, layout=layout)
    expected = pycnn.ops.conv2d(x, w, b, padding=1, data_format=layout, algorithm="winograd")
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, padding=1, data_format=layout,
                                                   algorithm="winograd"), expected)
    out = np.full_like(expected, np.nan)
    assert pycnn.ops.conv2d(x, packed, b, padding=1, data_format=layout, algorithm="winograd", out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_winograd_non_finite_values_propagate_as_direct(bad, layout, isa, rng):
    """The transforms mix a tile's inputs (inf - inf = NaN where a direct sum gives inf): a
    non-finite value makes the op recompute directly, so results equal direct's, NaN for NaN."""
    x, w, b = problem(rng, 1, 16, 16, 10, 10)
    x[0, 3, 4, 5] = bad
    w2 = w.copy()
    w2[2, 1, 1, 1] = bad
    for xi, wi in ((x, w), (np.where(np.isfinite(x), x, 0).astype(np.float32), w2)):
        xi, wi = to_layout(xi, wi, layout)
        y = pycnn.ops.conv2d(xi, wi, b, padding=1, data_format=layout, algorithm="winograd")
        direct = pycnn.ops.conv2d(xi, wi, b, padding=1, data_format=layout, algorithm="direct")
        assert not np.isfinite(direct).all()
        np.testing.assert_array_equal(y, direct)


@pytest.mark.parametrize("kwargs, reason", [
    (dict(weight_shape=(8, 4, 5, 5)), "got a 5x5 kernel"),
    (dict(stride=3), r"got stride \(3, 3\) \(1 or 2, the same both ways\)"),
    (dict(stride=(2, 1)), r"got stride \(2, 1\)"),
    (dict(dilation=2), "got a dilation other than 1"),
])
def test_winograd_rejects_what_it_cannot_compute(kwargs, reason):
    x = np.zeros((1, 4, 12, 12), np.float32)
    w = np.zeros(kwargs.pop("weight_shape", (8, 4, 3, 3)), np.float32)
    with pytest.raises(ValueError, match=r"algorithm='winograd' needs a 3x3 kernel, stride 1 or 2 and no dilation; "
                                         + reason):
        pycnn.ops.conv2d(x, w, algorithm="winograd", **kwargs)


def test_unknown_algorithm_lists_winograd():
    with pytest.raises(ValueError, match="one of 'auto', 'direct', 'im2col', 'winograd'; got 'fft'"):
        pycnn.ops.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32), algorithm="fft")


def test_auto_takes_winograd_where_it_pays():
    nhwc = dict(data_format="NHWC", padding=1)
    why = pycnn.ops.explain_conv2d((1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert why.startswith("winograd: F(2x2, 3x3)") and "(NCHW: rows of tiles go through NHWC buffers)" in why
    assert pycnn.ops.explain_conv2d((1, 56, 56, 64), (3, 3, 64, 64), **nhwc).startswith("winograd: F(2x2, 3x3), 16")
    assert pycnn.ops.explain_conv2d((8, 14, 14, 64), (3, 3, 64, 64), **nhwc).startswith("winograd")
    # Too few tiles to repay the weight transform, too few input channels, transposes too dear
    # for the work (NCHW), or not a 3x3 stride-1 kernel: not Winograd.
    assert pycnn.ops.explain_conv2d((1, 13, 13, 32), (3, 3, 32, 64), data_format="NHWC").startswith("direct")
    assert pycnn.ops.explain_conv2d((1, 7, 7, 512), (3, 3, 512, 512), **nhwc).startswith("im2col")
    assert pycnn.ops.explain_conv2d((1, 64, 64, 8), (3, 3, 8, 16), **nhwc).startswith("direct")
    assert pycnn.ops.explain_conv2d((1, 32, 28, 28), (32, 32, 3, 3), padding=1).startswith("winograd")
    assert pycnn.ops.explain_conv2d((1, 32, 14, 14), (32, 32, 3, 3), padding=1).startswith("direct")
    assert pycnn.ops.explain_conv2d((1, 32, 20, 20), (16, 32, 3, 3), padding=1).startswith("winograd")
    # Groups (a GEMM each): 32 channels a group on 100 tiles or more, 64 on 49; not 16 channels,
    # nor 32 on 49 tiles.
    why = pycnn.ops.explain_conv2d((1, 56, 56, 64), (3, 3, 32, 64), groups=2, **nhwc)
    assert why.startswith("winograd: F(2x2, 3x3)") and "(a GEMM per group)" in why, why
    assert pycnn.ops.explain_conv2d((1, 128, 28, 28), (128, 32, 3, 3), padding=1, groups=4).startswith("winograd")
    assert not pycnn.ops.explain_conv2d((1, 14, 14, 512), (3, 3, 32, 512), groups=16, **nhwc).startswith("winograd")
    assert pycnn.ops.explain_conv2d((1, 14, 14, 256), (3, 3, 64, 256), groups=4, **nhwc).startswith("winograd")
    assert not pycnn.ops.explain_conv2d((1, 28, 28, 256), (3, 3, 16, 256), groups=16, **nhwc).startswith("winograd")
    assert pycnn.ops.explain_conv2d((1, 56, 56, 16), (3, 3, 16, 16), **nhwc).startswith("winograd")
    assert pycnn.ops.explain_conv2d((1, 56, 56, 16), (3, 3, 16, 16), stride=2, **nhwc).startswith("direct")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_winograd_matches_torch(layout, rng, torch):
    x, w, b = problem(rng, 2, 32, 40, 17, 18)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                          padding=1).numpy()
    xl, wl = to_layout(x, w, layout)
    y = pycnn.ops.conv2d(xl, wl, b, padding=1, data_format=layout, algorithm="winograd")
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_packed_weights_carry_the_transform(dtype, layout, isa, rng, check_conv2d):
    """pack_conv2d_weight transforms a 3x3 one-group weight once; a Winograd call with it skips the
    transform (same bits as one that transforms), and "auto" then takes Winograd from fewer tiles
    (MNIST's 32->64 @13, 36 tiles). Other calls with the same packed weight ignore the transform."""
    x, w, b = problem(rng, 1, 32, 64, 13, 13, dtype, layout)
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    assert pycnn.ops.explain_conv2d(x, w, data_format=layout).startswith("direct")
    assert pycnn.ops.explain_conv2d(x, packed, data_format=layout).startswith("winograd")
    assert packed._winograd_made is None  # made by the first call that runs Winograd, not by explain
    expected = check_conv2d(x, w, b, data_format=layout, algorithm="winograd", err_msg=f"isa={isa}")
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, data_format=layout), expected)
    u = packed._winograd_made
    assert u.shape == (16, 32, 64) and u.dtype == dtype and not u.flags.writeable and u.ctypes.data % 64 == 0
    # Another packed copy of the weight reuses the cached plan, which reads its transform: made then.
    again = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, again, b, data_format=layout), expected)
    assert again._winograd_made is not None and again._winograd_made is not u
    for kwargs in (dict(stride=2), dict(algorithm="direct"), dict(padding=2, dilation=2)):
        # (the same algorithm, but an NCHW packed weight's HWIO copy may choose another reorder)
        expected = check_conv2d(x, w, b, data_format=layout, err_msg=str(kwargs), **kwargs)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(pycnn.ops.conv2d(x, packed, b, data_format=layout, **kwargs), expected,
                                   rtol=tol, atol=tol)
    # x of the other dtype: the weights convert on the call and the transform goes unused.
    other = x.astype(np.float64) if dtype == np.float32 else x.astype(np.float32)
    y = pycnn.ops.conv2d(other, packed, b, data_format=layout)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected_other := pycnn.ops.conv2d(other, w.astype(np.float64), b,
                                                                     data_format=layout), rtol=1e-5, atol=1e-5)
    assert expected_other.dtype == np.float64


def test_packed_weights_transform_only_3x3_single_group(rng):
    packed = pycnn.ops.pack_conv2d_weight(np.ones((1, 1, 3, 3), np.float32))
    pycnn.ops.conv2d(np.ones((1, 1, 8, 8), np.float32), packed)  # direct: nothing transformed
    pycnn.ops.conv2d(np.ones((1, 1, 8, 8), np.float32), packed, stride=2)
    assert packed._winograd_made is None and packed._winograd_strided_made is None
    assert pycnn.ops.pack_conv2d_weight(np.ones((8, 4, 5, 5), np.float32))._winograd is None
    assert pycnn.ops.pack_conv2d_weight(np.ones((8, 2, 3, 3), np.float32), groups=2)._winograd is None
    assert pycnn.ops.pack_conv2d_weight(np.ones((3, 3, 4, 70), np.float32), data_format="NHWC")._winograd.shape == (
        16, 4, 128)


def test_core_refuses_winograd_weights_for_another_algorithm():
    x, w = np.zeros((1, 4, 8, 8), np.float32), np.zeros((8, 4, 3, 3), np.float32)
    u = np.zeros((16, 4, 64), np.float32)
    geometry = (1, 4, 8, 8, 8, 3, 3, 6, 6, 1, 1, 1, 1, 0, 0, 1)
    plan = pycnn._core.Conv2dPlan(geometry, 0, 0, 0.0, 1, weight_winograd_given=True, result_shape=(1, 8, 6, 6))
    with pytest.raises(ValueError, match="Winograd weights given to a call that does not run Winograd"):
        plan(x, w, None, None, u)
    with pytest.raises(ValueError, match="weight_hwio: has 64 elements, expected 4096"):
        pycnn._core.Conv2dPlan(geometry, 0, 0, 0.0, 3, weight_winograd_given=True, result_shape=(1, 8, 6, 6))(
            x, w, None, None, u[:1, :1])
    with pytest.raises(ValueError, match="HWIO or Winograd-transformed, not both"):
        pycnn._core.Conv2dPlan(geometry, 0, 0, 0.0, 3, True, weight_winograd_given=True)
    grouped = geometry[:-1] + (2,)  # Winograd runs groups, but only from weights it transforms itself
    with pytest.raises(ValueError, match="Winograd weights are for one group"):
        pycnn._core.Conv2dPlan(grouped, 0, 0, 0.0, 3, weight_winograd_given=True, result_shape=(1, 8, 6, 6))(
            x, np.zeros((8, 2, 3, 3), np.float32), None, None, u)


# Stride 2: tiles of 2x2 outputs from 5x5 input patches every 4 pixels. Odd and even output
# sizes (partial tile rows and columns), one output row or column (its stride counts as 1 in the
# call's geometry; Winograd runs it at 2), odd and even inputs, paddings 0 to 2 (patches that
# start inside, on and past the padding), TensorFlow's asymmetric "same", one output pixel,
# partial GEMM panels and vectors, and batches.
STRIDED_CASES = [
    dict(n=1, c=16, o=64, h=12, w=12, padding=1),
    dict(n=1, c=3, o=5, h=5, w=5, padding=1),
    dict(n=2, c=17, o=70, h=13, w=16, padding=0),
    dict(n=1, c=24, o=40, h=4, w=12, padding=0),
    dict(n=2, c=18, o=16, h=12, w=4, padding="valid"),
    dict(n=3, c=20, o=33, h=9, w=14, padding=2),
    dict(n=1, c=40, o=24, h=16, w=11, padding="same"),
    dict(n=2, c=32, o=80, h=15, w=20, padding=((0, 2), (1, 0))),
    dict(n=1, c=129, o=20, h=7, w=19, padding=((2, 1), (0, 1))),
    dict(n=1, c=64, o=128, h=28, w=28, padding=1),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", STRIDED_CASES,
                         ids=lambda c: "{n}x{c}->{o}@{h}x{w}-p{padding}".format(**c).replace(" ", ""))
def test_strided_winograd_matches_reference(case, dtype, layout, isa, rng, check_conv2d):
    x, w, b = problem(rng, case["n"], case["c"], case["o"], case["h"], case["w"], dtype, layout)
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    for bias, activation in ((None, None), (b, "relu"), (b, "silu")):
        kwargs = dict(stride=2, padding=case["padding"], activation=activation, data_format=layout)
        y = check_conv2d(x, w, bias, algorithm="winograd", err_msg=f"isa={isa}", **kwargs)
        direct = pycnn.ops.conv2d(x, w, bias, algorithm="direct", **kwargs)
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, direct, rtol=tol, atol=tol * max(1.0, np.abs(direct).max()))
        # The packed transform gives the same bits as the per-call one.
        np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, bias, algorithm="winograd", **kwargs), y)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threads", [2, 3])
def test_strided_winograd_threads_agree(threads, layout, rng, restore_threads):
    x, w, b = problem(rng, 2, 48, 72, 61, 50, layout=layout)
    pycnn.set_num_threads(1)
    one = pycnn.ops.conv2d(x, w, b, stride=2, padding=1, data_format=layout, algorithm="winograd")
    pycnn.set_num_threads(threads)
    np.testing.assert_array_equal(
        pycnn.ops.conv2d(x, w, b, stride=2, padding=1, data_format=layout, algorithm="winograd"), one)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_packed_weights_carry_a_transform_per_stride(dtype, layout, rng, check_conv2d):
    """A packed 3x3 weight makes the stride-2 transform (16 planes, as at stride 1, of other
    values) on the first stride-2 call that runs Winograd, next to the stride-1 one, and an
    output written to out= is the same."""
    x, w, b = problem(rng, 1, 64, 128, 56, 56, dtype, layout)
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    kwargs = dict(stride=2, padding=1, data_format=layout)
    for weight in (w, packed):
        why = pycnn.ops.explain_conv2d(x, weight, **kwargs)
        assert why.startswith("winograd: F(2x2, 3x3) at stride 2, the even and odd inputs apart, 25 multiplies"), why
        assert why.endswith("direct and im2col rejected: 1.44x the multiply-adds")
    assert packed._winograd_strided_made is None
    expected = check_conv2d(x, w, b, algorithm="winograd", **kwargs)
    np.testing.assert_array_equal(pycnn.ops.conv2d(x, packed, b, **kwargs), expected)
    u = packed._winograd_strided_made
    assert packed._winograd_made is None
    assert u.shape == (16, 64, 128) and u.dtype == dtype and not u.flags.writeable and u.ctypes.data % 64 == 0
    out = np.full_like(expected, np.nan)
    assert pycnn.ops.conv2d(x, packed, b, out=out, **kwargs) is out
    np.testing.assert_array_equal(out, expected)
    # Stride 1 with the same packed weight: its own transform, and the stride-2 one is kept.
    one = pycnn.ops.conv2d(x, packed, b, padding=1, data_format=layout, algorithm="winograd")
    np.testing.assert_array_equal(one, pycnn.ops.conv2d(x, w, b, padding=1, data_format=layout, algorithm="winograd"))
    assert packed._winograd_strided_made is u and packed._winograd_made.shape == (16, 64, 128)
    assert not np.array_equal(packed._winograd_made, u)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_auto_strided_winograd_with_a_large_u_matches_direct(layout, isa, rng, l2_cache, check_conv2d):
    """256 -> 320 channels (81920 pairs, a U of 5 MiB) on 144 tiles: "auto" takes Winograd with
    packed weights on a 1 MiB L2, and its result is the direct algorithm's (checked against the
    reference)."""
    l2_cache(1 << 20)
    x, w, b = problem(rng, 1, 256, 320, 48, 48, np.float32, layout)
    packed = pycnn.ops.pack_conv2d_weight(w, data_format=layout)
    kwargs = dict(stride=2, padding=1, data_format=layout)
    assert pycnn.ops.explain_conv2d(x, packed, **kwargs).startswith("winograd: F(2x2, 3x3) at stride 2")
    assert not pycnn.ops.explain_conv2d(x, w, **kwargs).startswith("winograd")
    direct = check_conv2d(x, w, b, activation="relu", algorithm="direct", **kwargs)
    y = pycnn.ops.conv2d(x, packed, b, activation="relu", **kwargs)
    assert packed._winograd_strided_made is not None and packed._winograd_strided_made.shape == (16, 256, 320)
    assert y.dtype == np.float32 and y.shape == direct.shape
    np.testing.assert_allclose(y, direct, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_strided_winograd_non_finite_values_propagate_as_direct(bad, layout, isa, rng):
    """As at stride 1, with the per-call and the packed transform, the bad value inside a tile, on
    the row and column two tiles share, and in the last row and column."""
    x, w, b = problem(rng, 1, 16, 64, 14, 14)
    for where in ((0, 3, 4, 5), (0, 3, 7, 7), (0, 0, 13, 13)):
        xi = x.copy()
        xi[where] = bad
        w2 = w.copy()
        w2[2, 1, 2, 1] = bad
        for xa, wa in ((xi, w), (x, w2)):
            xa, wa = to_layout(xa, wa, layout)
            direct = pycnn.ops.conv2d(xa, wa, b, stride=2, padding=1, data_format=layout, algorithm="direct")
            assert not np.isfinite(direct).all()
            for weight in (wa, pycnn.ops.pack_conv2d_weight(wa, data_format=layout)):
                y = pycnn.ops.conv2d(xa, weight, b, stride=2, padding=1, data_format=layout, algorithm="winograd")
                np.testing.assert_array_equal(y, direct, err_msg=str(where))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_strided_winograd_matches_torch(layout, rng, torch):
    x, w, b = problem(rng, 2, 32, 64, 29, 30)
    expected = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                          stride=2, padding=1).numpy()
    xl, wl = to_layout(x, w, layout)
    y = pycnn.ops.conv2d(xl, pycnn.ops.pack_conv2d_weight(wl, data_format=layout), b, stride=2, padding=1,
                         data_format=layout, algorithm="winograd")
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("packed", [False, True])
def test_auto_takes_strided_winograd_where_it_pays(packed, l2_cache):
    def explain(x_shape, c, o, **kwargs):
        w = np.zeros((3, 3, c, o), np.float32)
        w = pycnn.ops.pack_conv2d_weight(w, data_format="NHWC") if packed else w
        return pycnn.ops.explain_conv2d(x_shape, w, stride=2, padding=1, data_format="NHWC", **kwargs)

    # U (16/9 of the weights) stays in the L3 whatever the L2 (measured on a 512 KiB one).
    for l2 in (512 << 10, 1 << 20):
        l2_cache(l2)
        assert explain((1, 56, 56, 128), 128, 256).startswith("winograd: F(2x2, 3x3) at stride 2")
        assert explain((1, 112, 112, 32), 32, 64).startswith("winograd")
        assert explain((8, 28, 28, 64), 64, 128).startswith("winograd")
        assert explain((1, 28, 28, 128), 128, 128).startswith("winograd")  # 49 tiles
        assert explain((1, 56, 56, 32), 32, 32).startswith("winograd")
    # Few tiles (36), 16 input or output channels, groups, or a stride other than 2 both ways: not
    # Winograd.
    assert not explain((1, 24, 24, 128), 128, 128).startswith("winograd")
    assert not explain((1, 64, 64, 16), 16, 32).startswith("winograd")
    assert not explain((1, 64, 64, 32), 32, 16).startswith("winograd")
    assert not explain((1, 56, 56, 8), 8, 64).startswith("winograd")
    # A U of up to 8 MiB (131072 channel pairs) from 128 tiles: with packed weights where the L2
    # is 1 MiB or more (U then stays in the L3), else not.
    for l2 in (512 << 10, 1 << 20):
        l2_cache(l2)
        large_u = packed and l2 >= 1 << 20
        assert explain((1, 56, 56, 256), 256, 256).startswith("winograd") == large_u  # 14x14 tiles
        assert explain((1, 56, 56, 256), 256, 512).startswith("winograd") == large_u  # 131072 pairs
        assert explain((1, 32, 64, 256), 256, 256).startswith("winograd") == large_u  # 8x16 = 128 tiles
        assert not explain((1, 36, 56, 256), 256, 256).startswith("winograd")  # 9x14 = 126 tiles
        assert not explain((1, 56, 56, 256), 256, 513).startswith("winograd")  # 131328 pairs
        assert not explain((1, 56, 56, 384), 384, 384).startswith("winograd")  # a U over 8 MiB
    assert not pycnn.ops.explain_conv2d((1, 56, 56, 128), (3, 3, 64, 256), groups=2, stride=2, padding=1,
                                        data_format="NHWC").startswith("winograd")
    w = np.zeros((3, 3, 128, 256), np.float32)
    w = pycnn.ops.pack_conv2d_weight(w, data_format="NHWC") if packed else w
    assert not pycnn.ops.explain_conv2d((1, 56, 56, 128), w, stride=(2, 1), padding=1,
                                        data_format="NHWC").startswith("winograd")


def test_core_winograd_weights_take_stride_1_or_2():
    w = np.zeros((8, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="conv2d_winograd_weights: stride must be 1 or 2"):
        pycnn._core.conv2d_winograd_weights(w, 0, 3, np.zeros((16, 36, 64), np.float32))
    with pytest.raises(ValueError, match="u: has 16384 elements, expected 4096"):
        pycnn._core.conv2d_winograd_weights(w, 0, 2, np.zeros((16, 16, 64), np.float32))


@st.composite
def winograd_problems(draw):
    stride = draw(st.sampled_from([1, 2]))
    kind = draw(st.sampled_from(["int", "sides", "valid", "same"]))
    if kind == "int":
        padding = draw(st.integers(0, 3))
    elif kind == "sides":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    else:
        padding = kind
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 20)), o=draw(st.integers(1, 70)),
                h=draw(st.integers(1, 16)), w=draw(st.integers(1, 16)), stride=stride, padding=padding,
                activation=draw(st.sampled_from([None, "relu", "sigmoid"])), layout=draw(st.sampled_from(LAYOUTS)),
                dtype=draw(st.sampled_from([np.float32, np.float64])), bias=draw(st.booleans()),
                packed=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@given(problem=winograd_problems())
def test_hypothesis_winograd_matches_reference(problem, isa, check_conv2d):
    """Any size, padding and channel count at strides 1 and 2, plain or packed weights."""
    p = problem
    x, w, b = problem_of(np.random.default_rng(p["seed"]), p)
    params = dict(stride=p["stride"], padding=p["padding"], activation=p["activation"], data_format=p["layout"])
    try:
        pycnn.reference.conv2d(x, w, b, **params)
    except ValueError:  # a kernel larger than the padded input: refused alike
        with pytest.raises(ValueError, match="kernel"):
            pycnn.ops.conv2d(x, w, b, algorithm="winograd", **params)
        return
    weight = pycnn.ops.pack_conv2d_weight(w, data_format=p["layout"]) if p["packed"] else w
    y = pycnn.ops.conv2d(x, weight, b, algorithm="winograd", **params)
    np.testing.assert_array_equal(check_conv2d(x, w, b, algorithm="winograd", err_msg=f"isa={isa} {p}", **params), y)


def problem_of(rng, p):
    x, w, b = problem(rng, p["n"], p["c"], p["o"], p["h"], p["w"], p["dtype"], p["layout"])
    return x, w, b if p["bias"] else None
