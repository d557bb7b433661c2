"""pycnn.ops.conv_transpose2d against the float64 reference, PyTorch (integer padding, groups,
output_padding, dilation) and the Keras Conv2DTranspose shape rules ("same"/"valid").

Every case runs on every ISA this CPU supports, both layouts and both dtypes.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import pycnn
import pycnn.ops
import pycnn.reference
from helpers import reference_truth, to_layout

LAYOUTS = ["NCHW", "NHWC"]
DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.2), "sigmoid", "tanh", "silu",
               "swish", "elu", ("elu", 0.5)]


def transpose_truth(x, w, b, **params):
    return reference_truth("conv_transpose2d", x, w, b, **params)


def make_problem(rng, case, layout, dtype):
    g = case["groups"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(dtype)
    w = rng.standard_normal((case["c"], case["o"] // g, case["kh"], case["kw"])).astype(dtype)
    b = rng.standard_normal(case["o"]).astype(dtype) if case["bias"] else None
    x, w = to_layout(x, w, layout)
    params = dict(stride=case["stride"], padding=case["padding"], output_padding=case["output_padding"],
                  dilation=case["dilation"], groups=g, activation=case["activation"], data_format=layout)
    return x, w, b, params


def _case(id, *, n=1, c, o, h, w, k, stride=1, padding=0, output_padding=None, dilation=1, groups=1,
          bias=True, activation=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    return pytest.param(dict(n=n, c=c, o=o, h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups, bias=bias,
                             activation=activation), id=id)


CASES = [
    _case("all-size-1", c=1, o=1, h=1, w=1, k=1, bias=False),
    _case("c3-o5-3x3-s1-pad1-relu", c=3, o=5, h=7, w=7, k=3, padding=1, activation="relu"),
    _case("4x4-s2-pad1-dcgan", c=8, o=4, h=6, w=5, k=4, stride=2, padding=1, activation="tanh"),
    _case("3x3-s2-pad1-op1", c=5, o=7, h=5, w=6, k=3, stride=2, padding=1, output_padding=1),
    _case("s(2,1)-op(1,0)-pair-pad", c=4, o=3, h=5, w=7, k=3, stride=(2, 1), padding=(1, 0),
          output_padding=(1, 0), activation="leaky_relu"),
    _case("s3-k5-op2", c=3, o=17, h=4, w=4, k=5, stride=3, padding=2, output_padding=2, activation="elu"),
    _case("dil2-op1-via-dilation", c=5, o=3, h=6, w=6, k=3, dilation=2, output_padding=1, bias=False,
          activation="sigmoid"),
    _case("groups2", c=6, o=10, h=5, w=5, k=3, stride=2, padding=1, groups=2, activation="relu6"),
    _case("groups3-op-dil", n=2, c=9, o=3, h=4, w=5, k=(2, 3), stride=(2, 3), dilation=(2, 1),
          output_padding=(1, 2), groups=3, activation="silu"),
    _case("depthwise-transpose", c=7, o=7, h=6, w=6, k=3, stride=2, padding=1, groups=7),
    _case("per-side-padding", c=3, o=4, h=6, w=7, k=4, stride=2, padding=((1, 2), (0, 3)), activation="swish"),
    _case("big-padding-crops-all-but-centre", c=2, o=3, h=5, w=5, k=5, padding=4),
    _case("valid-s2", c=4, o=6, h=5, w=7, k=3, stride=2, padding="valid", activation="relu"),
    _case("valid-k2-s3-gaps", c=3, o=2, h=4, w=3, k=2, stride=3, padding="valid"),
    _case("valid-op1", c=3, o=5, h=4, w=4, k=3, stride=2, padding="valid", output_padding=1),
    _case("same-s2", c=5, o=4, h=5, w=6, k=3, stride=2, padding="same", activation="tanh"),
    _case("same-s2-k4", c=3, o=3, h=4, w=5, k=4, stride=2, padding="same"),
    _case("same-s3-k2-dil2", c=2, o=3, h=4, w=3, k=2, stride=3, dilation=2, padding="same"),
    _case("same-op0", c=3, o=4, h=5, w=5, k=3, stride=2, padding="same", output_padding=0),
    _case("same-op1-k4", c=3, o=4, h=5, w=4, k=4, stride=2, padding="same", output_padding=1,
          activation="elu"),
    # Longer reductions (k blocks) and channel blocks / tiles of input rows.
    _case("c300-o20-k-blocks", c=300, o=20, h=4, w=5, k=3, stride=2, padding=1),
    _case("c20-o70-4x4", n=2, c=20, o=70, h=9, w=9, k=4, stride=2, padding=1, activation="relu"),
    _case("tall-image-row-tiles", c=40, o=33, h=60, w=37, k=3, stride=2, padding=1),
    # Phase reductions (taps x C/groups) past 1536 (past 768 with more than 160K phase weights per
    # group) take the per-tap GEMMs, shorter ones the direct phase correlations (in NCHW only with
    # >= 32 output channels per group): both, with groups; a dilation coprime to the stride (phase
    # dilation 3).
    _case("groups2-long-phase-k-gemm", c=800, o=6, h=5, w=6, k=4, stride=2, padding=1, groups=2, activation="relu"),
    _case("groups2-og32-direct-nchw-too", c=6, o=64, h=5, w=6, k=3, stride=2, padding=1, groups=2,
          output_padding=1, activation="relu"),
    # NCHW with >= 64 output channels per group and a long phase reduction: the NHWC GEMMs, each
    # input row transposed as it is packed and each gathered output row transposed back.
    _case("og70-long-phase-k-nchw-on-nhwc-gemm", c=400, o=70, h=5, w=6, k=4, stride=2, padding=1,
          output_padding=1, activation="relu6"),
    _case("groups2-og64-nchw-on-nhwc-gemm", n=2, c=800, o=128, h=3, w=19, k=4, stride=2, padding=(2, 1),
          groups=2, activation="sigmoid"),
    # 5x5 (25 taps, packed from (C, O/g, KH, KW) in blocks of 16) on both NCHW panel routes
    _case("k5-og40-direct-25-taps", c=6, o=40, h=5, w=4, k=5, stride=2, padding=2, output_padding=1),
    _case("k5-og64-gemm-25-taps", c=200, o=64, h=4, w=3, k=5, stride=2, padding=1, activation="relu"),
    _case("dil3-s2-phase-dilation", c=4, o=5, h=6, w=7, k=3, stride=2, dilation=3, padding=2, output_padding=1),
]


@pytest.mark.parametrize("algorithm", ["auto", "direct", "gemm"])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference(case, algorithm, isa, rng, check_transpose):
    """Every case on each form: "auto"'s pick, and the two it picks between forced on every shape
    (direct on long reductions and NCHW with few output channels, the GEMMs on short ones)."""
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            check_transpose(x, w, b, algorithm=algorithm,
                            err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}", **params)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_activations(activation, isa, rng, check_transpose):
    case = dict(n=2, c=6, o=9, h=5, w=6, kh=4, kw=4, stride=2, padding=1, output_padding=None, dilation=1,
                groups=1, bias=True, activation=activation)
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            check_transpose(x, w, b, err_msg=f"isa={isa} layout={layout}", **params)


@st.composite
def transpose_problems(draw):
    groups = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["int", "pair", "sides", "valid", "same"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    elif kind == "sides":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        padding = kind
    output_padding = None
    if draw(st.booleans()):
        output_padding = (draw(st.integers(0, max(sh, dh) - 1)), draw(st.integers(0, max(sw, dw) - 1)))
    return dict(n=draw(st.integers(1, 2)), c=groups * draw(st.integers(1, 4)), o=groups * draw(st.integers(1, 5)),
                h=draw(st.integers(1, 7)), w=draw(st.integers(1, 9)), kh=kh, kw=kw, stride=(sh, sw),
                padding=padding, output_padding=output_padding, dilation=(dh, dw), groups=groups,
                bias=draw(st.booleans()), activation=draw(st.sampled_from(ACTIVATIONS)),
                layout=draw(st.sampled_from(LAYOUTS + ["channels_first", "channels_last"])),
                dtype=draw(st.sampled_from(DTYPES)), unbatched=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


@given(problem=transpose_problems())
def test_hypothesis_matches_reference(problem, isa, check_transpose):
    rng = np.random.default_rng(problem["seed"])
    layout = {"channels_first": "NCHW", "channels_last": "NHWC"}.get(problem["layout"], problem["layout"])
    x, w, b, params = make_problem(rng, problem, layout, problem["dtype"])
    params["data_format"] = problem["layout"]
    if problem["unbatched"]:
        x = x[0]
    try:
        expected_shape = pycnn.reference.conv_transpose2d(x, w, b, **params).shape
    except ValueError:
        # An output size below 1 (heavy integer padding): pycnn must refuse it the same way.
        with pytest.raises(ValueError, match="output size"):
            pycnn.ops.conv_transpose2d(x, w, b, **params)
        return
    result = check_transpose(x, w, b, err_msg=f"isa={isa} {problem}", **params)
    assert result.shape == expected_shape and result.ndim == x.ndim


# ------------------------------------------------------------------------------ shape rules

def keras_deconv_length(size, kernel, padding, output_padding, stride, dilation):
    """keras.src.utils.conv_utils.deconv_output_length, restated."""
    kernel = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(kernel - stride, 0)
        return size * stride  # "same"
    pad = kernel // 2 if padding == "same" else 0
    return (size - 1) * stride + kernel - 2 * pad + output_padding


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_keras_shape_rules(padding):
    for size in (1, 2, 5, 8):
        for k in (1, 2, 3, 4, 5):
            for s in (1, 2, 3):
                for d in (1, 2):
                    for op in [None] + list(range(max(s, d))):
                        x = np.zeros((1, size, size + 1, 2), np.float32)
                        w = np.zeros((k, k, 3, 2), np.float32)
                        call = dict(stride=s, padding=padding, output_padding=op, dilation=d, data_format="NHWC")
                        expect = (keras_deconv_length(size, k, padding, op, s, d),
                                  keras_deconv_length(size + 1, k, padding, op, s, d))
                        if min(expect) < 1:   # Keras fails too (an empty output)
                            with pytest.raises(ValueError, match="output size"):
                                pycnn.ops.conv_transpose2d(x, w, **call)
                            continue
                        y = pycnn.ops.conv_transpose2d(x, w, **call)
                        assert y.shape == (1, *expect, 3), (size, k, s, d, op)


def test_torch_shape_rule():
    for size in (1, 3, 6):
        for k in (1, 3, 4):
            for s in (1, 2, 3):
                for d in (1, 2):
                    for p in (0, 1):
                        for op in range(max(s, d)):
                            expect = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
                            x = np.zeros((1, 2, size, size), np.float32)
                            w = np.zeros((2, 3, k, k), np.float32)
                            if expect < 1:
                                with pytest.raises(ValueError, match="output size"):
                                    pycnn.ops.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op,
                                                               dilation=d)
                                continue
                            y = pycnn.ops.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op,
                                                           dilation=d)
                            assert y.shape == (1, 3, expect, expect)


# ------------------------------------------------------------------------------ semantics

def test_is_the_input_gradient_of_conv2d(rng):
    """<conv_transpose(y, w), x> == <y, conv2d(x, w)> for the matching conv2d (adjointness)."""
    for stride, padding, dilation, groups in [(2, 1, 1, 1), ((2, 3), (1, 0), (1, 2), 2), (3, 2, 2, 1)]:
        x = rng.standard_normal((2, 4, 11, 13))
        w = rng.standard_normal((6, 4 // groups, 3, 3))   # conv2d weight (O, C/g, KH, KW)
        y = pycnn.ops.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        r = rng.standard_normal(y.shape)
        # conv_transpose weight (C_in=O, O_out/g = C/g, ...): the same tensor, grouped by O.
        out_size = []
        for i, size in enumerate(x.shape[2:]):
            s = stride if isinstance(stride, int) else stride[i]
            p = padding if isinstance(padding, int) else padding[i]
            d = dilation if isinstance(dilation, int) else dilation[i]
            full = (y.shape[2 + i] - 1) * s - 2 * p + d * 2 + 1
            out_size.append(size - full)
        back = pycnn.ops.conv_transpose2d(r, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                          output_padding=tuple(out_size))
        assert back.shape == x.shape
        np.testing.assert_allclose(np.vdot(back, x), np.vdot(r, y), rtol=1e-10)


def test_nchw_and_nhwc_agree(isa, rng):
    x = rng.standard_normal((2, 6, 5, 7))
    w = rng.standard_normal((6, 4, 3, 4))
    b = rng.standard_normal(8)
    params = dict(stride=(2, 3), padding=((1, 0), (2, 1)), output_padding=(1, 0), dilation=(1, 2), groups=2,
                  activation="tanh")
    nchw = pycnn.ops.conv_transpose2d(x, w, b, **params)
    xh, wh = to_layout(x, w, "NHWC")
    nhwc = pycnn.ops.conv_transpose2d(xh, wh, b, data_format="NHWC", **params)
    np.testing.assert_allclose(nhwc.transpose(0, 3, 1, 2), nchw, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_output_padding_cells_hold_only_the_bias(layout, rng):
    # valid, k=2, stride 3: every third output column/row gets no tap; output_padding adds more.
    x, w = to_layout(rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((2, 3, 2, 2)), layout)
    b = np.array([1.0, -2.0, 3.0])
    y = pycnn.ops.conv_transpose2d(x, w, b, stride=3, padding="valid", output_padding=2, data_format=layout,
                                   activation="relu")
    y = y if layout == "NCHW" else y.transpose(0, 3, 1, 2)
    assert y.shape == (1, 3, 10, 10)
    for row in (2, 5, 8, 9):
        np.testing.assert_array_equal(y[0, :, row, :], np.maximum(b, 0)[:, None] * np.ones(10))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unbatched_and_out(layout, isa, rng):
    case = dict(n=1, c=5, o=6, h=5, w=4, kh=3, kw=3, stride=2, padding="same", output_padding=None, dilation=1,
                groups=1, bias=True, activation="relu")
    for dtype in DTYPES:
        x, w, b, params = make_problem(rng, case, layout, dtype)
        batched = pycnn.ops.conv_transpose2d(x, w, b, **params)
        out = np.full(batched.shape[1:], np.nan, dtype)
        assert pycnn.ops.conv_transpose2d(x[0], w, b, out=out, **params) is out
        np.testing.assert_array_equal(out, batched[0])


def test_nan_propagates_like_reference(isa, rng, assert_conv_close):
    for layout in LAYOUTS:
        x, w = to_layout(rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((3, 4, 3, 3)), layout)
        x[(0, 1, 2, 2) if layout == "NCHW" else (0, 2, 2, 1)] = np.nan
        params = dict(stride=2, padding=1, data_format=layout, activation="sigmoid")
        result = pycnn.ops.conv_transpose2d(x, w, **params)
        expected, scale = transpose_truth(x, w, None, **params)
        assert np.isnan(expected).any()
        assert_conv_close(result, expected, np.nan_to_num(scale), 27, err_msg=f"isa={isa} {layout}")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(threads, rng):
    x = rng.standard_normal((1, 16, 9, 10))
    w = rng.standard_normal((16, 40, 4, 4))
    before = pycnn.get_num_threads()
    try:
        results = []
        for t in (1, threads):
            pycnn.set_num_threads(t)
            results.append([pycnn.ops.conv_transpose2d(*to_layout(x, w, lay), stride=2, padding=1, data_format=lay)
                            for lay in LAYOUTS])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    finally:
        pycnn.set_num_threads(before)


# ------------------------------------------------------------------------------ PyTorch

def _torch_act(torch, y, act):
    F = torch.nn.functional
    name, param = act if isinstance(act, tuple) else (act, None)
    return {None: lambda v: v, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "silu": F.silu, "swish": F.silu, "elu": lambda v: F.elu(v, 1.0 if param is None else param),
            "leaky_relu": lambda v: F.leaky_relu(v, 0.01 if param is None else param)}[name](y)


def _torch_transpose(torch, x, w, b, params, g):
    """PyTorch in float64. Integer padding goes straight through; per-side, "same" and "valid"
    as torch's full result (padding 0) cropped at (top, left) and zero-extended past its end."""
    F = torch.nn.functional
    tx, tw = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(w, np.float64))
    conv = dict(stride=params["stride"], dilation=params["dilation"], groups=params["groups"])
    pad = params["padding"]
    if isinstance(pad, int) or (isinstance(pad, tuple) and isinstance(pad[0], int)):
        y = F.conv_transpose2d(tx, tw, padding=pad, output_padding=params["output_padding"] or 0, **conv)
    else:
        full = F.conv_transpose2d(tx, tw, **conv)
        top, left = g.pad[0][0], g.pad[1][0]
        canvas = torch.zeros(full.shape[0], full.shape[1], max(full.shape[2], top + g.oh),
                             max(full.shape[3], left + g.ow), dtype=full.dtype)
        canvas[:, :, :full.shape[2], :full.shape[3]] = full
        y = canvas[:, :, top:top + g.oh, left:left + g.ow]
    if b is not None:
        y = y + torch.from_numpy(np.asarray(b, np.float64))[None, :, None, None]
    return y


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(case, isa, rng, torch, assert_conv_close):
    x, w, b, params = make_problem(rng, case, "NCHW", np.float64)
    g = pycnn._args.conv_transpose2d_geometry(x.shape, w.shape, stride=params["stride"],
                                              padding_spec=params["padding"],
                                              output_padding=params["output_padding"],
                                              dilation=params["dilation"], groups=params["groups"], layout="NCHW")
    k = case["c"] // case["groups"] * case["kh"] * case["kw"]
    for dtype in DTYPES:
        xd, wd = x.astype(dtype), w.astype(dtype)
        bd = None if b is None else b.astype(dtype)
        expected = _torch_act(torch, _torch_transpose(torch, xd, wd, bd, params, g), case["activation"]).numpy()
        scale = _torch_transpose(torch, np.abs(xd), np.abs(wd), None if bd is None else np.abs(bd), params, g).numpy()
        for layout in LAYOUTS:
            xl, wl = to_layout(xd, wd, layout)
            ours = pycnn.ops.conv_transpose2d(xl, wl, bd, **{**params, "data_format": layout})
            assert ours.dtype == dtype
            if layout == "NHWC":
                ours = ours.transpose(0, 3, 1, 2)
            assert_conv_close(ours, expected, scale, k, err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}")


# ---------------------------------------------------------------------------------------------
# Stride 1 as conv2d: the kernel flipped, its channel axes swapped, padded by dilation*(k-1) - pad.

STRIDE1_CASES = [
    _case("3x3-pad1", n=2, c=12, o=20, h=9, w=7, k=3, padding=1, activation="relu"),
    _case("3x3-pad0-grows", c=5, o=3, h=4, w=6, k=3, padding=0),
    _case("5x5-pad4-crops-to-centre", c=6, o=4, h=7, w=7, k=5, padding=4, activation="tanh"),
    _case("k(2,3)-per-side-pad", c=4, o=6, h=5, w=6, k=(2, 3), padding=((1, 0), (2, 1))),
    _case("3x3-dil2-op1", c=3, o=5, h=6, w=5, k=3, dilation=2, padding=1, output_padding=1, activation="silu"),
    _case("same", c=7, o=9, h=6, w=8, k=4, padding="same"),
    _case("1x1", c=16, o=24, h=5, w=5, k=1),
]


@pytest.mark.parametrize("case", STRIDE1_CASES)
def test_stride1_as_conv2d_matches_reference(case, isa, rng, check_transpose):
    for layout in LAYOUTS:
        for dtype in DTYPES:
            x, w, b, params = make_problem(rng, case, layout, dtype)
            y = check_transpose(x, w, b, algorithm="conv2d", err_msg=f"isa={isa} layout={layout}", **params)
            direct = pycnn.ops.conv_transpose2d(x, w, b, algorithm="direct", **params)
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(y, direct, rtol=tol, atol=tol * max(1.0, np.abs(direct).max()))


@pytest.mark.parametrize("kwargs, reason", [
    (dict(stride=2), "a stride other than 1"),
    (dict(groups=2, weight_shape=(4, 4, 3, 3)), "groups other than 1"),
    (dict(padding=3), "padding past the kernel's reach"),
])
def test_stride1_as_conv2d_rejects_what_it_cannot_compute(kwargs, reason):
    x = np.zeros((1, 4, 6, 6), np.float32)
    w = np.zeros(kwargs.pop("weight_shape", (4, 8, 3, 3)), np.float32)
    with pytest.raises(ValueError, match="algorithm='conv2d' needs stride 1, one group and padding within the "
                                         "kernel's reach; got " + reason):
        pycnn.ops.conv_transpose2d(x, w, algorithm="conv2d", **kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_auto_takes_conv2d_at_stride1_where_it_pays(layout, rng):
    """3x3 64->64 @56 runs conv2d's Winograd; 256->128 @28 (phase reductions of 2304, past the direct
    form) conv2d's pick; 32->16 @12 stays on the direct phase form. "auto" gives the named form's bits."""
    for c, o, h, expect in ((64, 64, 56, "conv2d"), (256, 128, 28, "conv2d"), (32, 32, 12, "direct")):
        case = dict(n=1, c=c, o=o, h=h, w=h, kh=3, kw=3, stride=1, padding=1, output_padding=None, dilation=1,
                    groups=1, bias=True, activation=None)
        x, w, b, params = make_problem(rng, case, layout, np.float32)
        why = pycnn.ops.explain_conv_transpose2d(x, w, stride=1, padding=1, data_format=layout)
        assert why.split(":")[0] == expect, why
        if expect == "conv2d":
            assert "padded by dilation*(k - 1) - padding; there " in why
        np.testing.assert_array_equal(pycnn.ops.conv_transpose2d(x, w, b, **params),
                                      pycnn.ops.conv_transpose2d(x, w, b, **{**params, "algorithm": expect}))
    why = pycnn.ops.explain_conv_transpose2d((1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert why.startswith("conv2d: at stride 1") and "there winograd: F(2x2, 3x3)" in why
