"""pycnn.ops.separable_conv2d (fused depthwise + 1x1) against the float64 reference, the
two-call composition, and PyTorch where importable. Every case runs on every ISA.

The reference keeps the depthwise result in float64; pycnn keeps it in the result dtype, so the
tolerance's reduction length is KH*KW + C*M and its scale is the whole chain on |inputs|.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import reference_truth

LAYOUTS = ["NCHW", "NHWC"]
DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.2), "sigmoid", "tanh", "silu",
               "swish", "elu"]


def separable_truth(x, dw, pw, b, **params):
    return reference_truth("separable_conv2d", x, dw, pw, b, **params)


def image(x_nchw, layout):
    return np.ascontiguousarray(x_nchw if layout == "NCHW" else x_nchw.transpose(0, 2, 3, 1))


def make_problem(rng, case, layout, dtype):
    """(x, depthwise_weight, pointwise_weight, bias, params) in `layout` and `dtype`."""
    c, m, o, kh, kw = case["c"], case["m"], case["o"], case["kh"], case["kw"]
    x = rng.standard_normal((case["n"], c, case["h"], case["w"])).astype(dtype)
    dw = rng.standard_normal((c * m, 1, kh, kw)).astype(dtype)
    pw = (rng.standard_normal((o, c * m, 1, 1)) / np.sqrt(c * m)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if case["bias"] else None
    if layout == "NHWC":
        dw = np.ascontiguousarray(dw[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, m))
        pw = np.ascontiguousarray(pw.transpose(2, 3, 1, 0))
    params = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                  activation=case["activation"], data_format=layout)
    return image(x, layout), dw, pw, b, params


@pytest.fixture
def check_separable(assert_conv_close):
    def check(x, dw, pw, b=None, *, err_msg="", **params):
        result = pycnn.ops.separable_conv2d(x, dw, pw, b, **params)
        kinds = [np.asarray(a).dtype for a in (x, dw, pw, b) if a is not None]
        assert result.dtype == (np.float64 if any(d == np.float64 for d in kinds) else np.float32)
        assert result.flags.c_contiguous
        expected, scale = separable_truth(x, dw, pw, b, **params)
        nhwc = params.get("data_format", "NCHW") in ("NHWC", "channels_last")
        taps = np.shape(dw)[0] * np.shape(dw)[1] if nhwc else np.shape(dw)[2] * np.shape(dw)[3]
        cm = np.shape(pw)[2] if nhwc else np.shape(pw)[1]
        assert_conv_close(result, expected, scale, taps + cm, err_msg=f"{err_msg} params={params}")
        return result

    return check


def _case(id, *, n=1, c, m=1, o, h, w, k, stride=1, padding=0, dilation=1, bias=True, activation=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    return pytest.param(dict(n=n, c=c, m=m, o=o, h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding,
                             dilation=dilation, bias=bias, activation=activation), id=id)


CASES = [
    _case("all-size-1", c=1, o=1, h=1, w=1, k=1, bias=False),
    _case("c3-o5-3x3-pad1-relu", c=3, o=5, h=7, w=7, k=3, padding=1, activation="relu"),
    _case("c17-m2-o33-s2", c=17, m=2, o=33, h=13, w=13, k=3, stride=2, padding=(1, 0), bias=False),
    _case("c5-m3-o17-5x5-s3-leaky", c=5, m=3, o=17, h=23, w=7, k=5, stride=3, padding=2,
          activation="leaky_relu"),
    _case("1x3-s(2,1)-per-side-tanh", c=3, m=2, o=7, h=7, w=13, k=(1, 3), stride=(2, 1),
          padding=((1, 0), (2, 1)), activation="tanh"),
    _case("dil2-sigmoid", c=5, o=3, h=13, w=13, k=3, dilation=2, padding=2, activation="sigmoid"),
    _case("valid-s2-elu", c=17, o=19, h=23, w=23, k=5, stride=2, padding="valid", activation="elu"),
    _case("same-s2-swish", c=3, o=40, h=13, w=23, k=3, stride=2, padding="same", activation="swish"),
    _case("same-dil(2,1)-silu", c=5, m=2, o=3, h=7, w=7, k=3, dilation=(2, 1), padding="same",
          activation="silu"),
    _case("same-s3-relu6", c=3, o=5, h=23, w=13, k=5, stride=3, padding="same", activation="relu6"),
    _case("batch3-1x1", n=3, c=33, o=31, h=7, w=5, k=1),
    # Reductions longer than one GEMM k-block (C*M = 800: 2 x 400 floats, 272 + 272 + 256
    # doubles) and many bands.
    _case("cm800-k-blocks", c=400, m=2, o=29, h=9, w=11, k=3, padding=1, activation="relu"),
    _case("tall-many-bands", c=8, o=16, h=97, w=21, k=3, padding=1),
    _case("wide-o70", n=2, c=40, o=70, h=12, w=12, k=3, padding="same", activation="relu"),
]


@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, isa, rng, check_separable):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, dw, pw, b, params = make_problem(rng, case, layout, dtype)
            check_separable(x, dw, pw, b, err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_uneven_bands_across_threads(layout, isa, rng, check_separable, restore_threads):
    """One image whose bands of output rows do not divide among the threads (40 rows of a
    64-channel, 112-wide map: 5 bands of 8 in NCHW): the last round of bands is cut into one
    piece per thread (2 threads: 4 + 4 rows; 3 threads: 16 rows as 6 + 6 + 4). Every thread
    count gives the reference's result, and the same result."""
    case = dict(n=1, c=64, m=1, o=8, h=40, w=112, kh=3, kw=3, stride=1, padding=1, dilation=1, bias=True,
                activation="relu")
    x, dw, pw, b, params = make_problem(rng, case, layout, np.float32)
    results = []
    for threads in (1, 2, 3):
        pycnn.set_num_threads(threads)
        results.append(check_separable(x, dw, pw, b, err_msg=f"isa={isa} threads={threads}", **params))
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_activations(activation, isa, rng, check_separable):
    case = dict(n=2, c=6, m=2, o=9, h=8, w=9, kh=3, kw=3, stride=1, padding=1, dilation=1, bias=True,
                activation=activation)
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, dw, pw, b, params = make_problem(rng, case, layout, dtype)
            pw = (pw * 4).astype(dtype)
            check_separable(x, dw, pw, b, err_msg=f"isa={isa} layout={layout}", **params)


@st.composite
def separable_problems(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["int", "sides", "valid", "same"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
        sides = ((padding, padding),) * 2
    elif kind == "sides":
        sides = padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        padding, sides = kind, ((0, 0), (0, 0))
    hmin = 1 if kind == "same" else max(1, dh * (kh - 1) + 1 - sum(sides[0]))
    wmin = 1 if kind == "same" else max(1, dw * (kw - 1) + 1 - sum(sides[1]))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.sampled_from([1, 2, 3, 7, 16, 17])), m=draw(st.integers(1, 3)),
                o=draw(st.sampled_from([1, 3, 8, 13, 33])), h=draw(st.integers(hmin, hmin + 8)),
                w=draw(st.integers(wmin, wmin + 12)), kh=kh, kw=kw, stride=(sh, sw), padding=padding,
                dilation=(dh, dw), bias=draw(st.booleans()), activation=draw(st.sampled_from(ACTIVATIONS)),
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from(DTYPES)),
                unbatched=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


@given(problem=separable_problems())
def test_hypothesis_matches_reference(problem, isa, check_separable):
    rng = np.random.default_rng(problem["seed"])
    x, dw, pw, b, params = make_problem(rng, problem, problem["layout"], problem["dtype"])
    if problem["unbatched"]:
        x = x[0]
    result = check_separable(x, dw, pw, b, err_msg=f"isa={isa} {problem}", **params)
    assert result.ndim == x.ndim


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fused_equals_two_calls(layout, isa, rng):
    """Depthwise then a 1x1 conv2d with bias/activation: the same numbers as the fused op."""
    case = dict(n=2, c=12, m=2, o=10, h=15, w=14, kh=3, kw=3, stride=(1, 2), padding="same", dilation=1,
                bias=True, activation="relu6")
    x, dw, pw, b, params = make_problem(rng, case, layout, np.float64)
    fused = pycnn.ops.separable_conv2d(x, dw, pw, b, **params)
    act = params.pop("activation")
    mid = pycnn.ops.depthwise_conv2d(x, dw, **params)
    two = pycnn.ops.conv2d(mid, pw, b, activation=act, data_format=layout)
    np.testing.assert_allclose(fused, two, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_and_out(layout, isa, rng):
    case = dict(n=1, c=5, m=1, o=6, h=9, w=7, kh=3, kw=3, stride=2, padding="same", dilation=1, bias=True,
                activation="tanh")
    for dtype in DTYPES:
        x, dw, pw, b, params = make_problem(rng, case, layout, dtype)
        batched = pycnn.ops.separable_conv2d(x, dw, pw, b, **params)
        out = np.full(batched.shape[1:], np.nan, dtype)
        assert pycnn.ops.separable_conv2d(x[0], dw, pw, b, out=out, **params) is out
        np.testing.assert_array_equal(out, batched[0])


def test_scratch_is_smaller_than_the_intermediate():
    """The fused op's per-thread band scratch vs the depthwise result a two-call approach stores."""
    for layout in LAYOUTS:
        x_shape = (1, 128, 56, 56) if layout == "NCHW" else (1, 56, 56, 128)
        dw_shape = (128, 1, 3, 3) if layout == "NCHW" else (3, 3, 128, 1)
        pw_shape = (128, 128, 1, 1) if layout == "NCHW" else (1, 1, 128, 128)
        info = pycnn.ops.separable_conv2d_scratch_bytes(x_shape, dw_shape, pw_shape, padding=1, data_format=layout)
        assert info["intermediate_bytes"] == 128 * 56 * 56 * 4
        assert 0 < info["scratch_bytes"] < info["intermediate_bytes"]


@pytest.mark.parametrize("case", [c for c in CASES if not isinstance(c.values[0]["padding"], str)])
def test_matches_torch(case, rng, torch, assert_conv_close):
    F = torch.nn.functional
    x, dw, pw, b, params = make_problem(rng, case, "NCHW", np.float64)
    pad = params["padding"]
    (t, bo), (l, r) = (((pad, pad), (pad, pad)) if isinstance(pad, int) else
                       ((pad[0],) * 2, (pad[1],) * 2) if isinstance(pad[0], int) else pad)
    tx = F.pad(torch.from_numpy(x), (l, r, t, bo))
    mid = F.conv2d(tx, torch.from_numpy(dw), stride=params["stride"], dilation=params["dilation"], groups=case["c"])
    y = F.conv2d(mid, torch.from_numpy(pw), None if b is None else torch.from_numpy(b))
    act = case["activation"]
    name, param = act if isinstance(act, tuple) else (act, None)
    y = {None: lambda v: v, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
         "silu": F.silu, "swish": F.silu, "elu": F.elu,
         "leaky_relu": lambda v: F.leaky_relu(v, 0.01 if param is None else param)}[name](y)
    ours = pycnn.ops.separable_conv2d(x, dw, pw, b, **params)
    _, scale = separable_truth(x, dw, pw, b, **params)
    assert_conv_close(ours, y.numpy(), scale, case["kh"] * case["kw"] + case["c"] * case["m"])
