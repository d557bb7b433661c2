"""conv_transpose2d by Winograd F(3x3, 2x2) on every stride phase (algorithm="winograd", and where
"auto" picks it) against the float64 reference, the direct form and PyTorch where importable, on
every ISA."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import to_layout

LAYOUTS = ["NCHW", "NHWC"]


def problem(rng, n, c, o, h, w, stride=(2, 2), dtype=np.float32, layout="NCHW"):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((c, o, 2 * sh, 2 * sw)) / np.sqrt(4 * c)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    x, wt = to_layout(x, wt, layout)
    return x, wt, b


# Around the edges of the tiling (a tile: 3 phase cells, 3*stride outputs, starting pad % stride
# above the output): padding 0 to past the stride, output_padding (cells only the bias reaches),
# Keras "same" and per-side padding, unequal strides (stride 1: one phase, a 2x2 kernel), outputs
# narrower than a tile, output channels whose phases split GEMM panels and vectors (the columns
# are phase-major), an input channel count past a vector, and a batch.
CASES = [
    dict(n=1, c=16, o=8, h=6, w=7, stride=2, padding=1),
    dict(n=1, c=5, o=3, h=4, w=4, stride=2, padding=0, output_padding=1),
    dict(n=2, c=17, o=33, h=5, w=9, stride=2, padding=2),
    dict(n=1, c=8, o=5, h=3, w=5, stride=2, padding=3, output_padding=1),
    dict(n=1, c=6, o=7, h=5, w=4, stride=3, padding=1),
    dict(n=1, c=9, o=4, h=4, w=6, stride=(2, 1), padding=(1, 0)),
    dict(n=1, c=7, o=6, h=5, w=3, stride=(1, 3), padding=(0, 2), output_padding=(0, 1)),
    dict(n=1, c=12, o=10, h=7, w=6, stride=1, padding=0),
    dict(n=1, c=3, o=2, h=1, w=1, stride=2, padding=0),
    dict(n=3, c=129, o=20, h=4, w=5, stride=2, padding=1),
    dict(n=1, c=20, o=24, h=5, w=6, stride=2, padding="same"),
    dict(n=1, c=10, o=9, h=6, w=5, stride=2, padding=((1, 2), (0, 3))),
]


def case_id(c):
    return "{n}x{c}->{o}@{h}x{w}-s{stride}-p{padding}-op{op}".format(op=c.get("output_padding"), **c).replace(" ", "")


def params_of(case, layout):
    return dict(stride=case["stride"], padding=case["padding"], output_padding=case.get("output_padding"),
                data_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_winograd_matches_reference(case, dtype, layout, isa, rng, check_transpose):
    x, w, b = problem(rng, case["n"], case["c"], case["o"], case["h"], case["w"], case["stride"], dtype, layout)
    params = params_of(case, layout)
    for bias, activation in ((None, None), (b, "relu"), (b, "tanh")):
        y = check_transpose(x, w, bias, activation=activation, algorithm="winograd", err_msg=f"isa={isa}", **params)
        direct = pycnn.ops.conv_transpose2d(x, w, bias, activation=activation, algorithm="direct", **params)
        assert y.shape == direct.shape
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(y, direct, rtol=tol, atol=tol * max(1.0, np.abs(direct).max()))


@st.composite
def winograd_problems(draw):
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["int", "sides", "valid", "same"]))
    if kind == "int":
        padding = draw(st.integers(0, 2 * min(sh, sw)))
    elif kind == "sides":
        padding = ((draw(st.integers(0, 2 * sh)), draw(st.integers(0, 2 * sh))),
                   (draw(st.integers(0, 2 * sw)), draw(st.integers(0, 2 * sw))))
    else:
        padding = kind
    output_padding = (draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))) if draw(st.booleans()) else None
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 20)), o=draw(st.integers(1, 40)),
                h=draw(st.integers(1, 9)), w=draw(st.integers(1, 9)), stride=(sh, sw), padding=padding,
                output_padding=output_padding, activation=draw(st.sampled_from([None, "relu", "sigmoid"])),
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from([np.float32, np.float64])),
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@given(problem=winograd_problems())
def test_hypothesis_winograd_matches_reference(problem, isa, check_transpose):
    rng = np.random.default_rng(problem["seed"])
    x, w, b = problem_of(rng, problem)
    params = dict(stride=problem["stride"], padding=problem["padding"], output_padding=problem["output_padding"],
                  activation=problem["activation"], data_format=problem["layout"])
    try:
        pycnn.reference.conv_transpose2d(x, w, b, **params)
    except ValueError:  # an output size below 1 (padding past the full result): refused alike
        with pytest.raises(ValueError, match="output size"):
            pycnn.ops.conv_transpose2d(x, w, b, algorithm="winograd", **params)
        return
    check_transpose(x, w, b, algorithm="winograd", err_msg=f"isa={isa} {problem}", **params)


def problem_of(rng, p):
    x, w, b = problem(rng, p["n"], p["c"], p["o"], p["h"], p["w"], p["stride"], p["dtype"], p["layout"])
    return x, w, b if p["bias"] else None


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_threads_agree(threads, layout, rng, restore_threads):
    """Blocks of tiles (NHWC) and rows of tiles (NCHW) shared among threads, the weight transform
    split by channels: every split gives the same bits."""
    x, w, b = problem(rng, 2, 40, 24, 19, 17, layout=layout)
    pycnn.set_num_threads(1)
    one = pycnn.ops.conv_transpose2d(x, w, b, stride=2, padding=1, data_format=layout, algorithm="winograd")
    pycnn.set_num_threads(threads)
    np.testing.assert_array_equal(
        pycnn.ops.conv_transpose2d(x, w, b, stride=2, padding=1, data_format=layout, algorithm="winograd"), one)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_packed_weights_carry_the_transform(dtype, layout, isa, rng, check_transpose):
    """A packed weight with a kernel twice its stride makes its Winograd transform on the first call
    that runs Winograd (same bits as a call that transforms), and "auto" then takes Winograd from
    fewer tiles; a call that runs another form leaves it unmade and reads the phase split."""
    x, w, b = problem(rng, 1, 32, 32, 8, 8, dtype=dtype, layout=layout)
    params = dict(stride=2, padding=1, data_format=layout)
    packed = pycnn.ops.pack_conv_transpose2d_weight(w, stride=2, data_format=layout)
    assert packed._winograd_able and packed._winograd_made is None
    direct = pycnn.ops.conv_transpose2d(x, packed, b, algorithm="direct", **params)
    np.testing.assert_array_equal(direct, pycnn.ops.conv_transpose2d(x, w, b, algorithm="direct", **params))
    assert packed._winograd_made is None
    expected = check_transpose(x, w, b, algorithm="winograd", err_msg=f"isa={isa}", **params)
    # 9 tiles: too few for "auto" to transform the weights per call, enough with them made once.
    np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, w, b, **params), direct)
    np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, packed, b, **params), expected)
    u = packed._winograd_made
    assert u.shape == (16, 32, 128) and u.dtype == dtype and not u.flags.writeable and u.ctypes.data % 64 == 0
    out = np.full_like(expected, np.nan)
    assert pycnn.ops.conv_transpose2d(x, packed, b, out=out, **params) is out
    np.testing.assert_array_equal(out, expected)
    # Another packed copy reuses the cached plan, which reads its transform: made then.
    again = pycnn.ops.pack_conv_transpose2d_weight(w, stride=2, data_format=layout)
    np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, again, b, **params), expected)
    assert again._winograd_made is not None and again._winograd_made is not u


def test_packed_weights_transform_only_kernels_twice_the_stride():
    def packed(shape, **kwargs):
        return pycnn.ops.pack_conv_transpose2d_weight(np.ones(shape, np.float32), **kwargs)

    assert packed((4, 8, 3, 3), stride=2)._winograd is None
    assert packed((4, 8, 4, 4), stride=2, dilation=2)._winograd is None
    assert packed((4, 4, 4, 4), stride=2, groups=2)._winograd is None
    assert packed((4, 8, 4, 4))._winograd is None  # stride 1
    assert packed((6, 2, 30, 7), stride=(3, 1), data_format="NHWC")._winograd.shape == (16, 7, 128)  # 3 phases x 30


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("pack", [False, True], ids=["plain", "packed"])
def test_winograd_non_finite_values_propagate_as_direct(bad, pack, layout, isa, rng):
    """A non-finite value makes the op recompute by the direct form (from the plain weights when
    the packed transform was given), so results equal direct's, NaN for NaN."""
    x, w, b = problem(rng, 1, 16, 32, 6, 6)
    x[0, 3, 2, 4] = bad
    w2 = w.copy()
    w2[2, 1, 1, 3] = bad
    for xi, wi in ((x, w), (np.where(np.isfinite(x), x, 0).astype(np.float32), w2)):
        xi, wi = to_layout(xi, wi, layout)
        params = dict(stride=2, padding=1, data_format=layout)
        weight = pycnn.ops.pack_conv_transpose2d_weight(wi, stride=2, data_format=layout) if pack else wi
        y = pycnn.ops.conv_transpose2d(xi, weight, b, algorithm="winograd", **params)
        direct = pycnn.ops.conv_transpose2d(xi, wi, b, algorithm="direct", **params)
        assert not np.isfinite(direct).all()
        np.testing.assert_array_equal(y, direct)


@pytest.mark.parametrize("kwargs, reason", [
    (dict(weight_shape=(4, 8, 3, 3), stride=2), r"got a 3x3 kernel at stride \(2, 2\)"),
    (dict(stride=1), r"got a 4x4 kernel at stride \(1, 1\)"),
    (dict(stride=2, dilation=2), "got a dilation other than 1"),
    (dict(weight_shape=(4, 4, 4, 4), stride=2, groups=2), "got groups other than 1"),
])
def test_winograd_rejects_what_it_cannot_compute(kwargs, reason):
    """Each reason, in the core's words; a one-row input's stride counts as 1 (and says so)."""
    x = np.zeros((1, 4, 6, 6), np.float32)
    w = np.zeros(kwargs.pop("weight_shape", (4, 8, 4, 4)), np.float32)
    with pytest.raises(ValueError, match="algorithm='winograd' needs a kernel twice the stride, no dilation and one "
                                         "group; " + reason):
        pycnn.ops.conv_transpose2d(x, w, algorithm="winograd", **kwargs)
    with pytest.raises(ValueError, match=r"got a 3x3 kernel at stride \(1, 2\) \(a stride over one input row or "
                                         r"column counts as 1\)"):
        pycnn.ops.conv_transpose2d(np.zeros((1, 4, 1, 6), np.float32), np.zeros((4, 8, 3, 3), np.float32), stride=2,
                                   algorithm="winograd")


@pytest.mark.parametrize("algorithm", ["im2col", "fft", None])
def test_unknown_algorithm_lists_the_choices(algorithm):
    with pytest.raises(ValueError, match=f"one of 'auto', 'direct', 'gemm', 'winograd', 'conv2d'; got {algorithm!r}"):
        pycnn.ops.conv_transpose2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 4, 4), np.float32),
                                   stride=2, algorithm=algorithm)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_auto_takes_winograd_where_it_pays(layout, rng):
    """explain_conv_transpose2d names the form "auto" runs, and "auto" gives that form's bits: a
    DCGAN layer (64->32 @32, 121 tiles) by Winograd; too few input channels (8->8: the GEMMs in
    NCHW, with fewer than 32 output channels, else direct) or tiles (128->64 @16, 36) by another."""
    gemm_in_nchw = "gemm" if layout == "NCHW" else "direct"
    for c, o, h, expect in ((64, 32, 32, "winograd"), (8, 8, 32, gemm_in_nchw), (128, 64, 16, "direct")):
        x, w, b = problem(rng, 1, c, o, h, h, layout=layout)
        params = dict(stride=2, padding=1, data_format=layout)
        why = pycnn.ops.explain_conv_transpose2d(x, w, **params)
        assert why.split(":")[0] == expect, why
        if expect != "winograd":
            assert "winograd rejected: too few tiles or channels" in why
        auto = pycnn.ops.conv_transpose2d(x, w, b, **params)
        np.testing.assert_array_equal(auto, pycnn.ops.conv_transpose2d(x, w, b, algorithm=expect, **params))


def test_explain_names_each_rejection(l2_cache):
    l2_cache(1 << 20)
    nchw = dict(stride=2, padding=1)
    why = pycnn.ops.explain_conv_transpose2d((1, 64, 64, 64), (64, 32, 4, 4), **nchw)
    assert why.startswith("winograd: F(3x3, 2x2) on each of the 4 stride phases")
    assert why.endswith("(NCHW: rows of tiles go through NHWC buffers); direct and gemm rejected: 2.25x the "
                        "multiply-adds")
    assert pycnn.ops.explain_conv_transpose2d((1, 32, 32, 64), (6, 6, 32, 64), stride=3, padding=1,
                                              data_format="NHWC").startswith("winograd: F(3x3, 2x2) on each of the 9")
    why = pycnn.ops.explain_conv_transpose2d((1, 64, 64, 64), (64, 32, 4, 4), dilation=2, **nchw)
    assert why.startswith("direct: each stride phase") and why.endswith("winograd rejected: a dilation other than 1")
    why = pycnn.ops.explain_conv_transpose2d((1, 8, 32, 32), (8, 8, 4, 4), **nchw)
    assert why.startswith("gemm: one GEMM per kernel tap") and ("direct rejected: NCHW with fewer than 32 output "
                                                                "channels per group") in why
    why = pycnn.ops.explain_conv_transpose2d((1, 5, 5, 800), (4, 4, 70, 800), data_format="NHWC", **nchw)
    assert "direct rejected: a phase reduction of 3200" in why
    # Too few tiles to repay a per-call weight transform, enough with a packed weight's.
    w = np.zeros((256, 128, 4, 4), np.float32)
    why = pycnn.ops.explain_conv_transpose2d((1, 256, 14, 14), w, **nchw)
    assert why.endswith("winograd rejected: too few tiles or channels to repay its transforms (a packed weight, "
                        "which carries its weight transform, would take it)")
    packed = pycnn.ops.pack_conv_transpose2d_weight(w, stride=2)
    assert pycnn.ops.explain_conv_transpose2d((1, 256, 14, 14), packed, **nchw).startswith("winograd")
    assert packed._winograd_made is None  # explain makes nothing
    with pytest.raises(ValueError, match="weight was packed for stride=\\(2, 2\\); this call has stride=\\(1, 1\\)"):
        pycnn.ops.explain_conv_transpose2d((1, 256, 14, 14), packed, padding=1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_auto_needs_more_tiles_with_a_small_l2(layout, rng, l2_cache):
    """With an L2 under 1 MiB U streams from DRAM, and "auto" takes Winograd only with 8x the
    tiles per element of U: a packed 256->128 @14 (25 tiles, 5243 per tile) goes direct, with
    no hint that a packed weight would take Winograd; @28 (100 tiles) and 128->64 @14 stay on
    Winograd. The L2 a call sees decides, and "auto" gives the bits of the form it names."""
    def explain(c, o, h, packed=True):
        shape = (1, c, h, h) if layout == "NCHW" else (1, h, h, c)
        w = np.zeros((c, o, 4, 4) if layout == "NCHW" else (4, 4, o, c), np.float32)
        if packed:
            w = pycnn.ops.pack_conv_transpose2d_weight(w, stride=2, data_format=layout)
        return pycnn.ops.explain_conv_transpose2d(shape, w, stride=2, padding=1, data_format=layout)

    l2_cache(512 << 10)
    assert explain(256, 128, 14).startswith("direct"), explain(256, 128, 14)
    assert explain(256, 128, 14, packed=False).endswith("winograd rejected: too few tiles or channels to repay its "
                                                        "transforms")
    assert explain(256, 128, 28).startswith("winograd")
    assert explain(128, 64, 14).startswith("winograd")
    x, w, b = problem(rng, 1, 256, 128, 14, 14, layout=layout)
    packed = pycnn.ops.pack_conv_transpose2d_weight(w, stride=2, data_format=layout)
    params = dict(stride=2, padding=1, data_format=layout)
    np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, packed, b, **params),
                                  pycnn.ops.conv_transpose2d(x, w, b, algorithm="direct", **params))
    l2_cache(1 << 20)
    assert explain(256, 128, 14).startswith("winograd")
    np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, packed, b, **params),
                                  pycnn.ops.conv_transpose2d(x, packed, b, algorithm="winograd", **params))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_winograd_matches_torch(layout, rng, torch):
    x, w, b = problem(rng, 2, 24, 20, 11, 9)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                                    stride=2, padding=1, output_padding=1).numpy()
    xl, wl = to_layout(x, w, layout)
    y = pycnn.ops.conv_transpose2d(xl, wl, b, stride=2, padding=1, output_padding=1, data_format=layout,
                                   algorithm="winograd")
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_core_refuses_winograd_weights_for_another_algorithm():
    x, w = np.zeros((1, 4, 5, 5), np.float32), np.zeros((4, 8, 4, 4), np.float32)
    u = np.zeros((16, 4, 64), np.float32)
    geometry = (1, 4, 5, 5, 8, 4, 4, 10, 10, 2, 2, 1, 1, 1, 1, 1)
    plan = pycnn._core.ConvTranspose2dPlan(geometry, 0, 0, 0.0, False, (1, 8, 10, 10), algorithm=1,
                                           weight_winograd_given=True)
    with pytest.raises(ValueError, match="Winograd weights given to a call that does not run Winograd"):
        plan(x, w, None, None, u)
    plan = pycnn._core.ConvTranspose2dPlan(geometry, 0, 0, 0.0, False, (1, 8, 10, 10), algorithm=3,
                                           weight_winograd_given=True)
    with pytest.raises(ValueError, match="weight_phases: has 64 elements, expected 4096"):
        plan(x, w, None, None, u[:1, :1])
    with pytest.raises(ValueError, match="weight_winograd_given without Winograd weights"):
        plan(x, w, None, None, None)
    with pytest.raises(ValueError, match="the kernel must be twice the stride"):
        pycnn._core.conv_transpose2d_winograd_weights(w, 0, 1, 1, u)
