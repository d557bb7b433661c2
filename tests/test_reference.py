"""The NumPy references themselves: against PyTorch where importable, the golden examples, and
the Keras/TensorFlow shape rules (checked by hand: TensorFlow is not a test dependency)."""
from __future__ import annotations

import itertools
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from pycnn import _args
from pycnn import reference as R

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "seed_examples.json"

DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", ("leaky_relu", 0.2), "sigmoid", "tanh", "silu", "swish",
               "elu", ("elu", 0.5)]


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _close(actual, expected, dtype, reduction=1):
    """Shapes and dtype exact; values to a tolerance that scales with the reduction length."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.dtype(dtype)
    eps = np.finfo(dtype).eps
    tol = 8 * eps * max(reduction, 1) ** 0.5 * 4
    np.testing.assert_allclose(actual, expected.astype(np.float64), rtol=tol, atol=tol)


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _tf_same(size, kernel, stride, dilation=1):
    """TensorFlow 'same' split, written out independently of _args (for padding torch inputs)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------

def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _torch_activation(F, y, spec):
    if spec is None:
        return y
    name, param = spec if isinstance(spec, tuple) else (spec, None)
    import torch
    return {
        "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "silu": F.silu, "swish": F.silu,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.01 if param is None else param),
        "elu": lambda t: F.elu(t, 1.0 if param is None else param),
    }[name](y)


CONV_CASES = [
    # (C, O, groups, kernel, stride, padding, dilation)
    (1, 1, 1, 3, 1, 0, 1),
    (3, 5, 1, 3, 1, 1, 1),
    (3, 4, 1, 1, 1, 0, 1),
    (4, 6, 2, 3, 2, 1, 1),
    (6, 6, 3, (2, 3), (1, 2), (1, 0), (2, 1)),
    (8, 8, 8, 3, 1, "same", 2),
    (4, 8, 4, 5, 3, 2, 1),
    (3, 2, 1, 4, 1, "same", 1),
    (2, 3, 1, 3, 2, "valid", 1),
    (5, 7, 1, 3, 1, ((0, 2), (1, 3)), 1),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch: even kernels copy the input
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case, dtype):
    torch, F = _torch()
    c, o, groups, k, stride, padding, dilation = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = _rng("conv2d", case, dtype)
    x = rng.standard_normal((2, c, 9, 8)).astype(dtype)
    w = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        (t, bo), (le, ri) = padding
        tx, tpad = F.pad(torch.from_numpy(x), (le, ri, t, bo)), 0
    else:
        tx, tpad = torch.from_numpy(x), padding
    act = ACTIVATIONS[CONV_CASES.index(case) % len(ACTIVATIONS)]
    expected = _torch_activation(F, F.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), stride=stride,
                                              padding=tpad, dilation=dilation, groups=groups), act).numpy()
    reduction = c // groups * kh * kw
    y = R.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, activation=act)
    _close(y, expected, dtype, reduction)
    # NHWC with the Keras kernel layout (KH, KW, C/groups, O)
    y = R.conv2d(_nhwc(x), w.transpose(2, 3, 1, 0), b, stride=stride, padding=padding, dilation=dilation,
                 groups=groups, activation=act, data_format="channels_last")
    _close(_nchw(y), expected, dtype, reduction)
    # one unbatched image
    y = R.conv2d(x[1], w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, activation=act)
    _close(y, expected[1], dtype, reduction)


@pytest.mark.parametrize("size,kernel,stride,dilation", [(13, 6, 5, 1), (7, 3, 2, 1), (8, 3, 2, 1), (9, 4, 3, 2)])
def test_conv2d_same_strided_matches_torch_on_tf_padding(size, kernel, stride, dilation):
    torch, F = _torch()
    rng = _rng("same", size, kernel, stride, dilation)
    x = rng.standard_normal((1, 2, size, size + 1))
    w = rng.standard_normal((3, 2, kernel, kernel))
    ph = _tf_same(size, kernel, stride, dilation)
    pw = _tf_same(size + 1, kernel, stride, dilation)
    expected = F.conv2d(F.pad(torch.from_numpy(x), (*pw, *ph)), torch.from_numpy(w), stride=stride,
                        dilation=dilation).numpy()
    y = R.conv2d(x, w, stride=stride, padding="same", dilation=dilation)
    assert y.shape[2:] == (-(-size // stride), -(-(size + 1) // stride))
    _close(y, expected, np.float64, 2 * kernel * kernel)


DEPTHWISE_CASES = [
    # (C, M, kernel, stride, padding, dilation)
    (3, 1, 3, 1, 1, 1),
    (3, 2, 3, 2, 1, 1),
    (4, 3, (3, 5), 1, "same", 2),
    (1, 4, 3, 1, 0, 1),
    (5, 2, 2, 2, "valid", 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_and_separable_match_torch(case, dtype):
    torch, F = _torch()
    c, m, k, stride, padding, dilation = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = _rng("depthwise", case, dtype)
    x = rng.standard_normal((2, c, 9, 8)).astype(dtype)
    w = rng.standard_normal((c * m, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    if padding == "same":
        tx, tpad = F.pad(torch.from_numpy(x), (*_tf_same(8, kw, stride, dilation), *_tf_same(9, kh, stride, dilation))), 0
    else:
        tx, tpad = torch.from_numpy(x), 0 if padding == "valid" else padding
    expected = F.conv2d(tx, torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=tpad,
                        dilation=dilation, groups=c).numpy()
    _close(R.depthwise_conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation), expected, dtype, kh * kw)
    w_keras = w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1)  # (KH, KW, C, M): channel c*M + m
    y = R.depthwise_conv2d(_nhwc(x), w_keras, b, stride=stride, padding=padding, dilation=dilation,
                           data_format="NHWC")
    _close(_nchw(y), expected, dtype, kh * kw)

    o = 5
    pw = rng.standard_normal((o, c * m, 1, 1)).astype(dtype)
    b2 = rng.standard_normal(o).astype(dtype)
    mid = F.conv2d(tx, torch.from_numpy(w), None, stride=stride, padding=tpad, dilation=dilation, groups=c)
    expected = F.silu(F.conv2d(mid, torch.from_numpy(pw), torch.from_numpy(b2))).numpy()
    y = R.separable_conv2d(x, w, pw, b2, stride=stride, padding=padding, dilation=dilation, activation="silu")
    _close(y, expected, dtype, kh * kw * c * m)
    y = R.separable_conv2d(_nhwc(x), w_keras, pw.transpose(2, 3, 1, 0), b2, stride=stride, padding=padding,
                           dilation=dilation, activation="silu", data_format="NHWC")
    _close(_nchw(y), expected, dtype, kh * kw * c * m)


TRANSPOSED_CASES = [
    # (C, O, groups, kernel, stride, padding, output_padding, dilation)
    (1, 1, 1, 3, 1, 0, 0, 1),
    (3, 4, 1, 3, 2, 1, 1, 1),
    (3, 4, 1, 3, 2, 0, 0, 1),
    (4, 6, 2, 4, 3, 1, 2, 1),
    (6, 3, 3, 3, 1, 1, 1, 2),
    (4, 4, 2, 3, 2, 2, 1, 2),
    (2, 2, 1, (2, 3), (2, 1), (0, 1), (1, 0), (1, 2)),
    (2, 3, 1, 1, 3, 0, 2, 1),
    (3, 2, 1, 5, 2, 2, 0, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_conv_transpose2d_matches_torch(case, dtype):
    torch, F = _torch()
    c, o, groups, k, stride, padding, output_padding, dilation = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = _rng("transposed", case, dtype)
    x = rng.standard_normal((2, c, 5, 4)).astype(dtype)
    w = rng.standard_normal((c, o // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    act = ACTIVATIONS[TRANSPOSED_CASES.index(case) % len(ACTIVATIONS)]
    expected = _torch_activation(F, F.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation), act).numpy()
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                  dilation=dilation, activation=act)
    reduction = c // groups * kh * kw
    _close(R.conv_transpose2d(x, w, b, **kwargs), expected, dtype, reduction)
    # NHWC with the Keras kernel layout (KH, KW, O/groups, C)
    y = R.conv_transpose2d(_nhwc(x), w.transpose(2, 3, 1, 0), b, data_format="NHWC", **kwargs)
    _close(_nchw(y), expected, dtype, reduction)
    _close(R.conv_transpose2d(x[0], w, b, **kwargs), expected[0], dtype, reduction)
    if output_padding == 0:
        del kwargs["output_padding"]  # omitted = 0 for integer padding
        _close(R.conv_transpose2d(x, w, b, **kwargs), expected, dtype, reduction)


def test_conv_transpose2d_output_past_every_tap_is_bias_only():
    torch, F = _torch()
    x, w, b = np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), np.array([0.5])
    expected = F.conv_transpose2d(*map(torch.from_numpy, (x, w, b)), stride=4, padding=1, output_padding=3)
    y = R.conv_transpose2d(x, w, b, stride=4, padding=1, output_padding=3)
    np.testing.assert_array_equal(y, expected.numpy())


POOL_CASES = [
    # (kernel, stride, padding, dilation, ceil_mode)
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    (3, 2, 0, 1, True),
    (2, 1, 1, 1, True),
    (3, 3, 1, 2, True),
    ((2, 3), (1, 2), (1, 1), (1, 2), True),
    (4, 3, 2, 1, True),
    (5, 2, 2, 1, True),
    (3, 2, "valid", 1, True),
]


@pytest.mark.parametrize("size", [(7, 9), (6, 6), (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_matches_torch(case, dtype, size):
    torch, F = _torch()
    k, stride, padding, dilation, ceil_mode = case
    rng = _rng("maxpool", case, dtype, size)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    x[0, 0, 0, 0] = np.nan  # NaN propagates
    x[1, 1] -= 100.0        # all-negative: padded cells never win
    tpad = 0 if padding == "valid" else padding
    try:
        expected = F.max_pool2d(torch.from_numpy(x), k, stride, tpad, dilation, ceil_mode=ceil_mode).numpy()
    except RuntimeError:
        with pytest.raises(ValueError):
            R.max_pool2d(x, k, stride, padding, dilation, ceil_mode)
        return
    y = R.max_pool2d(x, k, stride, padding, dilation, ceil_mode)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, expected)
    y = R.max_pool2d(_nhwc(x), k, stride, padding, dilation, ceil_mode, data_format="NHWC")
    np.testing.assert_array_equal(_nchw(y), expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("size", [(7, 9), (6, 6), (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in POOL_CASES if c[3] == 1])
def test_avg_pool2d_matches_torch(case, dtype, size, count_include_pad):
    torch, F = _torch()
    k, stride, padding, _, ceil_mode = case
    rng = _rng("avgpool", case, dtype, size)
    x = rng.standard_normal((2, 3, *size)).astype(dtype)
    tpad = 0 if padding == "valid" else padding
    try:
        expected = F.avg_pool2d(torch.from_numpy(x), k, stride, tpad, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad).numpy()
    except RuntimeError:
        with pytest.raises(ValueError):
            R.avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad)
        return
    kh, kw = (k, k) if isinstance(k, int) else k
    y = R.avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad)
    _close(y, expected, dtype, kh * kw)
    y = R.avg_pool2d(_nhwc(x), k, stride, padding, ceil_mode, count_include_pad, data_format="NHWC")
    _close(_nchw(y), expected, dtype, kh * kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_and_depth_pools_match_torch(dtype):
    torch, F = _torch()
    x = _rng("global", dtype).standard_normal((2, 6, 5, 7)).astype(dtype)
    x[1, 2, 3, 4] = np.nan
    t = torch.from_numpy(x)
    _close(R.global_avg_pool2d(x), t.mean((2, 3)).numpy(), dtype, 35)
    _close(R.global_avg_pool2d(_nhwc(x), data_format="NHWC", keepdims=True),
           _nhwc(t.mean((2, 3), keepdim=True).numpy()), dtype, 35)
    np.testing.assert_array_equal(R.global_max_pool2d(x, keepdims=True), t.amax((2, 3), keepdim=True).numpy())
    np.testing.assert_array_equal(R.global_max_pool2d(_nhwc(x), data_format="NHWC"), t.amax((2, 3)).numpy())
    assert R.global_max_pool2d(x[0]).shape == (6,)
    assert R.global_avg_pool2d(x[0], keepdims=True).shape == (6, 1, 1)
    for pool in (1, 2, 3, 6):
        expected = F.max_pool3d(t[:, None], (pool, 1, 1))[:, 0].numpy()
        y = R.depth_max_pool2d(x, pool)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, expected)
        np.testing.assert_array_equal(_nchw(R.depth_max_pool2d(_nhwc(x), pool, data_format="NHWC")), expected)


def test_reference_accepts_torch_tensors():
    torch, F = _torch()
    x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    y = R.conv2d(x, w, padding=1)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    _close(y, F.conv2d(x, w, padding=1).numpy(), np.float32, 18)


# ---------------------------------------------------------------------------------------------
# Golden examples (teaching material, single channel)
# ---------------------------------------------------------------------------------------------

def _golden(section):
    cases = json.loads(GOLDEN.read_text())[section]
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


@_golden("conv2d")
@pytest.mark.parametrize("dtype", DTYPES)
def test_golden_conv2d(case, dtype):
    x = np.array(case["input"], dtype)[None, None]
    w = np.array(case["kernel"], dtype)[None, None]
    y = R.conv2d(x, w, stride=case["stride"], padding=case["padding"])
    assert y.dtype == dtype
    np.testing.assert_array_equal(y[0, 0], np.array(case["expected"], dtype))
    # and as one unbatched NHWC image with a Keras kernel
    y = R.conv2d(x[0].transpose(1, 2, 0), w.transpose(2, 3, 1, 0), stride=case["stride"],
                 padding=case["padding"], data_format="NHWC")
    np.testing.assert_array_equal(y[..., 0], np.array(case["expected"], dtype))


@_golden("max_pool2d")
def test_golden_max_pool2d(case):
    y = R.max_pool2d(np.array(case["input"], np.float32)[None], case["kernel_size"], case["stride"])
    np.testing.assert_array_equal(y[0], np.array(case["expected"], np.float32))


@_golden("output_size")
def test_golden_output_size(case):
    n, k = case["in"], case["kernel"]
    y = R.conv2d(np.zeros((1, 1, n, n)), np.zeros((1, 1, k, k)), stride=case["stride"], padding=case["padding"])
    assert y.shape == (1, 1, case["out"], case["out"])


# ---------------------------------------------------------------------------------------------
# Keras rules: transposed convolution "valid"/"same"
# ---------------------------------------------------------------------------------------------

def _keras_transposed_output(size, kernel, stride, dilation, padding, output_padding):
    """Keras deconv_output_length, with the dilated kernel size."""
    k_eff = (kernel - 1) * dilation + 1
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(k_eff - stride, 0)
        return size * stride
    pad = 0 if padding == "valid" else k_eff // 2
    return (size - 1) * stride + k_eff - 2 * pad + output_padding


def _keras_jax_conv_transpose(x, w, stride, dilation, padding, output_padding):
    """Keras' JAX-backend construction, one channel: dilate the input by the stride, pad it
    (left, right), correlate with the flipped, dilated kernel. Independent of pycnn._args."""
    k = w.shape[0]
    k_eff = (k - 1) * dilation + 1
    if padding == "valid":
        op = max(k_eff, stride) - k_eff if output_padding is None else output_padding
        left, right = k_eff - 1, k_eff - 1 + op
    else:
        pad_len = stride + k_eff - 2 if output_padding is None else k_eff + k_eff % 2 - 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
        right = pad_len - left
    n = x.shape[0]
    dilated = np.zeros(((n - 1) * stride + 1,) * 2)
    dilated[::stride, ::stride] = x
    padded = np.pad(dilated, ((left, right), (left, right)))
    size = padded.shape[0] - k_eff + 1
    flipped = w[::-1, ::-1]
    y = np.zeros((size, size))
    for i, j in itertools.product(range(k), range(k)):
        y += flipped[i, j] * padded[i * dilation:i * dilation + size, j * dilation:j * dilation + size]
    return y


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("size,kernel,stride,dilation",
                         list(itertools.product((1, 4, 5), (1, 2, 3, 4), (1, 2, 3), (1, 2))))
def test_conv_transpose2d_keras_rules(padding, size, kernel, stride, dilation):
    rng = _rng("keras-transposed", padding, size, kernel, stride, dilation)
    x = rng.standard_normal((size, size))
    w = rng.standard_normal((kernel, kernel))
    for output_padding in [None, *range(max(stride, dilation))]:
        expected_size = _keras_transposed_output(size, kernel, stride, dilation, padding, output_padding)
        if expected_size < 1:
            with pytest.raises(ValueError):
                R.conv_transpose2d(x[None, None], w[None, None], stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation)
            continue
        y = R.conv_transpose2d(x[None, None], w[None, None], stride=stride, padding=padding,
                               output_padding=output_padding, dilation=dilation)
        assert y.shape == (1, 1, expected_size, expected_size)
        g = _args.conv_transpose2d_geometry((1, 1, size, size), (1, 1, kernel, kernel), stride=stride,
                                            padding_spec=padding, output_padding=output_padding,
                                            dilation=dilation, groups=1, layout="NCHW")
        assert (g.oh, g.ow) == (expected_size, expected_size)
        expected = _keras_jax_conv_transpose(x, w, stride, dilation, padding, output_padding)
        _close(y[0, 0], expected, np.float64, kernel * kernel)
        y = R.conv_transpose2d(x[..., None], w[:, :, None, None], stride=stride, padding=padding,
                               output_padding=output_padding, dilation=dilation, data_format="NHWC")
        _close(y[..., 0], expected, np.float64, kernel * kernel)


def test_conv_transpose2d_keras_worked_examples():
    # stride 2, kernel 3, "same": out = 2*in; before = max((in-1)*2 + 3 - 2*in, 0) // 2 = 0
    x = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y = R.conv_transpose2d(x, np.ones((1, 1, 3, 3)), stride=2, padding="same")
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(y[0, 0], [[1, 1, 3, 2], [1, 1, 3, 2], [4, 4, 10, 6], [3, 3, 7, 4]])
    # "valid": out = (in-1)*s + max(k, s): kernel 1 stride 3 leaves gaps of zeros
    y = R.conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), stride=3, padding="valid")
    assert y.shape == (1, 1, 6, 6)
    np.testing.assert_array_equal(y[0, 0, 0], [1, 0, 0, 1, 0, 0])
    # "same" with an explicit output_padding: (in-1)*s + k%2 + op
    y = R.conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4)), stride=2, padding="same", output_padding=1)
    assert y.shape == (1, 1, 5, 5)


@pytest.mark.parametrize("padding", [0, 1, "same", "valid"])
def test_conv_transpose2d_output_padding_must_be_below_stride_or_dilation(padding):
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        R.conv_transpose2d(x, w, stride=2, padding=padding, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        R.conv_transpose2d(x, w, stride=2, dilation=2, padding=padding, output_padding=(0, 2))
    # smaller than the dilation is enough (PyTorch)
    R.conv_transpose2d(x, w, stride=1, dilation=3, padding=padding, output_padding=2)


# ---------------------------------------------------------------------------------------------
# Pooling rules: "same" (TensorFlow) and PyTorch's integer padding
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 2), (8, 3, 2), (6, 2, 2), (5, 4, 3), (13, 6, 5), (4, 1, 2), (3, 5, 1)])
def test_pool_same_shapes_and_padding_never_counts(size, kernel, stride):
    rng = _rng("pool-same", size, kernel, stride)
    x = rng.standard_normal((1, 2, size, size + 1)) - 10.0  # all negative: a zero pad would win a max
    out = (-(-size // stride), -(-(size + 1) // stride))
    top, _ = _tf_same(size, kernel, stride)
    left, _ = _tf_same(size + 1, kernel, stride)
    for count_include_pad in (True, False):  # "same" never counts padded cells, whatever the flag
        y_avg = R.avg_pool2d(x, kernel, stride, "same", count_include_pad=count_include_pad)
        assert y_avg.shape == (1, 2, *out)
    y_max = R.max_pool2d(x, kernel, stride, "same")
    assert y_max.shape == (1, 2, *out)
    for i, j in itertools.product(range(out[0]), range(out[1])):
        r0, c0 = i * stride - top, j * stride - left
        window = x[:, :, max(r0, 0):max(r0 + kernel, 0), max(c0, 0):max(c0 + kernel, 0)]
        np.testing.assert_allclose(y_avg[:, :, i, j], window.mean(axis=(2, 3)), rtol=1e-13)
        np.testing.assert_array_equal(y_max[:, :, i, j], window.max(axis=(2, 3)))
    # ceil_mode changes nothing for "same"
    np.testing.assert_array_equal(R.max_pool2d(x, kernel, stride, "same", ceil_mode=True), y_max)


def test_avg_pool_same_worked_example():
    # 3x3 of ones and a 3x3 window at stride 1, "same": every mean is 1 (zeros would pull edges down)
    y = R.avg_pool2d(np.ones((1, 1, 3, 3)), 3, 1, "same")
    np.testing.assert_array_equal(y, np.ones((1, 1, 3, 3)))
    # integer padding 1 with count_include_pad divides by 9 everywhere: a corner sees 4 ones
    y = R.avg_pool2d(np.ones((1, 1, 3, 3)), 3, 1, 1)
    assert y[0, 0, 0, 0] == pytest.approx(4 / 9)
    y = R.avg_pool2d(np.ones((1, 1, 3, 3)), 3, 1, 1, count_include_pad=False)
    np.testing.assert_array_equal(y, np.ones((1, 1, 3, 3)))


def test_pool_integer_padding_rules():
    x = np.zeros((1, 1, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        R.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="padding"):
        R.avg_pool2d(x, 4, padding=((0, 3), (0, 0)))
    # half the *effective* kernel: kernel 3, dilation 2 spans 5, so padding 2 is allowed
    assert R.max_pool2d(x, 3, 1, 2, dilation=2).shape == (1, 1, 8, 8)
    # ceil_mode: 8 -> (8 + 2 - 3 + 1) // 2 + 1 = 5 windows, the last starts inside the input
    assert R.max_pool2d(x, 3, 2, 1, ceil_mode=True).shape == (1, 1, 5, 5)
    # 5 -> floor((5 + 2 - 3 + 1) / 2) + 1 = 3: a 4th window would start in the right padding
    assert R.max_pool2d(np.zeros((1, 1, 5, 5)), 3, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert R.max_pool2d(np.zeros((1, 1, 6, 6)), 3, 2, 1, ceil_mode=True).shape == (1, 1, 4, 4)
    # stride defaults to kernel_size
    assert R.avg_pool2d(x, 2).shape == (1, 1, 4, 4)
    assert R.avg_pool2d(x, (2, 4)).shape == (1, 1, 4, 2)


# ---------------------------------------------------------------------------------------------
# dtypes, out=, activations, errors
# ---------------------------------------------------------------------------------------------

def test_result_dtype_rules():
    x64 = np.ones((1, 1, 3, 3))
    w16 = np.ones((1, 1, 2, 2), np.float16)
    assert R.conv2d(x64.astype(np.int64), w16).dtype == np.float32
    assert R.conv2d(x64.astype(bool), w16).dtype == np.float32
    assert R.conv2d(x64.astype(np.float32), w16, np.ones(1)).dtype == np.float64
    assert R.max_pool2d(x64.astype(np.int32), 2).dtype == np.float32
    assert R.depth_max_pool2d(np.ones((1, 2, 2, 2), np.uint8), 2).dtype == np.float32
    with pytest.raises(TypeError):
        R.conv2d(x64.astype(complex), w16)
    with pytest.raises(TypeError):
        R.avg_pool2d(x64.astype(object), 2)


def test_out_argument():
    x = np.ones((1, 2, 4, 4), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    out = np.empty((1, 3, 2, 2), np.float32)
    assert R.conv2d(x, w, out=out) is out
    np.testing.assert_array_equal(out, 18)
    out = np.empty((3, 2, 2), np.float32)
    assert R.conv2d(x[0], w, out=out) is out
    pool_out = np.empty((1, 2, 2, 2), np.float32)
    assert R.max_pool2d(x, 2, out=pool_out) is pool_out
    assert R.avg_pool2d(x, 2, out=pool_out) is pool_out
    bad = [
        np.empty((1, 3, 2, 2), np.float64),               # dtype
        np.empty((1, 3, 2, 3), np.float32),               # shape
        np.empty((1, 3, 2, 4), np.float32)[..., ::2],     # not contiguous
        [[0.0]],                                          # not an array
    ]
    readonly = np.empty((1, 3, 2, 2), np.float32)
    readonly.flags.writeable = False
    for o in bad + [readonly]:
        with pytest.raises(ValueError, match="out"):
            R.conv2d(x, w, out=o)
    shared = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        R.conv2d(shared, np.ones((2, 2, 1, 1), np.float32), out=shared)
    with pytest.raises(ValueError, match="overlap"):
        R.max_pool2d(shared, 1, out=shared)


def test_activations():
    y = np.array([-1000.0, -2.0, -0.5, 0.0, 0.5, 2.0, 7.0, 1000.0])
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-y))  # exp(1000) = inf gives the right limit, 0
    expected = {
        "relu": np.maximum(y, 0),
        "relu6": np.clip(y, 0, 6),
        "leaky_relu": np.where(y > 0, y, 0.01 * y),
        ("leaky_relu", 0.3): np.where(y > 0, y, 0.3 * y),
        "sigmoid": sig,
        "tanh": np.tanh(y),
        "silu": y * sig,
        "swish": y * sig,
        "elu": np.where(y > 0, y, np.expm1(np.minimum(y, 0))),
        ("elu", 0.5): np.where(y > 0, y, 0.5 * np.expm1(np.minimum(y, 0))),
    }
    for spec, want in expected.items():
        for dtype in DTYPES:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                got = R.apply_activation(y.astype(dtype), spec)
            assert got.dtype == dtype, spec
            np.testing.assert_allclose(got, want.astype(dtype), rtol=4 * np.finfo(dtype).eps, atol=0, err_msg=str(spec))
    np.testing.assert_array_equal(R.apply_activation(y, None), y)
    assert np.isnan(R.apply_activation(np.array([np.nan]), "relu")[0])
    with pytest.raises(ValueError, match="activation"):
        R.apply_activation(y, "gelu")
    # the activation follows the bias
    x = np.zeros((1, 1, 2, 2))
    np.testing.assert_array_equal(R.conv2d(x, np.ones((1, 1, 1, 1)), np.array([-3.0]), activation="relu"), 0)
    np.testing.assert_array_equal(R.conv2d(x, np.ones((1, 1, 1, 1)), np.array([9.0]), activation="relu6"), 6)


@pytest.mark.parametrize("call,match", [
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), np.ones(7)), "bias"),
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), groups=3), "groups"),
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), stride=0), "stride"),
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), padding="full"), "padding"),
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), data_format="NCWH"), "data_format"),
    (lambda: R.conv2d(np.ones((6, 6)), np.ones((8, 4, 3, 3))), "x"),
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 7, 7))), "kernel"),
    (lambda: R.depthwise_conv2d(np.ones((1, 4, 6, 6)), np.ones((6, 1, 3, 3))), "weight"),
    (lambda: R.depthwise_conv2d(np.ones((1, 6, 6, 4)), np.ones((3, 3, 3, 2)), data_format="NHWC"), "weight"),
    (lambda: R.separable_conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 1, 3, 3)), np.ones((5, 8, 3, 3))), "pointwise_weight"),
    (lambda: R.separable_conv2d(np.ones((1, 4, 6, 6)), np.ones((7, 1, 3, 3)), np.ones((5, 7, 1, 1))), "depthwise_weight"),
    (lambda: R.conv_transpose2d(np.ones((1, 4, 6, 6)), np.ones((3, 2, 3, 3))), "weight"),
    (lambda: R.conv_transpose2d(np.ones((1, 4, 6, 6)), np.ones((4, 2, 3, 3)), output_padding=-1), "output_padding"),
    (lambda: R.conv_transpose2d(np.ones((1, 4, 1, 1)), np.ones((4, 2, 1, 1)), padding=1), "output size"),
    (lambda: R.max_pool2d(np.ones((1, 1, 6, 6)), 0), "kernel_size"),
    (lambda: R.max_pool2d(np.ones((1, 1, 6, 6)), 7), "output size"),
    (lambda: R.depth_max_pool2d(np.ones((1, 4, 2, 2)), 3), "pool_size"),
])
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: R.conv2d(np.ones((1, 4, 6, 6)), np.ones((8, 4, 3, 3)), stride=1.5), "stride"),
    (lambda: R.max_pool2d(np.ones((1, 1, 6, 6)), 2, ceil_mode="yes"), "ceil_mode"),
    (lambda: R.avg_pool2d(np.ones((1, 1, 6, 6)), 2, count_include_pad=None), "count_include_pad"),
    (lambda: R.global_avg_pool2d(np.ones((1, 1, 6, 6)), keepdims=1), "keepdims"),
    (lambda: R.depth_max_pool2d(np.ones((1, 4, 2, 2)), 2.0), "pool_size"),
])
def test_type_errors_name_the_argument(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_empty_batch():
    assert R.conv2d(np.ones((0, 4, 6, 6)), np.ones((8, 4, 3, 3))).shape == (0, 8, 4, 4)
    assert R.conv_transpose2d(np.ones((0, 4, 3, 3)), np.ones((4, 2, 3, 3))).shape == (0, 2, 5, 5)
    assert R.max_pool2d(np.ones((0, 3, 4, 4)), 2).shape == (0, 3, 2, 2)
    assert R.avg_pool2d(np.ones((0, 3, 4, 4)), 2).shape == (0, 3, 2, 2)
