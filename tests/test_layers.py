"""pycnn.layers, one layer at a time: Keras names, defaults, weight shapes and parameter counts
(Keras's formulas, written out here), output shapes, forward passes in both data formats
against an independent NumPy reference (tests/layer_reference.py) and PyTorch, get/set_weights
and their errors, initializers and seeds."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from layer_reference import reference_forward
from pycnn import layers as L

FORMATS = ["channels_last", "channels_first"]


@pytest.fixture(autouse=True)
def fresh_session():
    L.clear_session()
    L.set_seed(1234)


def image(rng, n, h, w, c, data_format, dtype=np.float32):
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    return x if data_format == "channels_last" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def spatial(shape, data_format):
    return tuple(shape[1:3]) if data_format == "channels_last" else tuple(shape[2:4])


def channels_axis(data_format):
    return -1 if data_format == "channels_last" else 1


def randomize(layer, rng):
    """Random values for every weight (biases included), keeping variances positive."""
    weights = []
    for value in layer.get_weights():
        weights.append(rng.uniform(0.5, 1.5, value.shape) if value.ndim == 1 else rng.standard_normal(value.shape))
    layer.set_weights(weights)


def assert_matches_reference(y, expected, rtol=2e-5):
    assert y.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * scale)


# ------------------------------------------------------------------------------ names and defaults

def test_layer_names_follow_keras():
    made = [L.Conv2D(1, 1), L.Conv2D(1, 1), L.MaxPool2D(), L.MaxPooling2D(), L.AvgPool2D(), L.ReLU(),
            L.BatchNormalization(), L.Conv2DTranspose(1, 1), L.DepthwiseConv2D(1), L.SeparableConv2D(1, 1),
            L.GlobalAveragePooling2D(), L.ZeroPadding2D(), L.Dense(1), L.Sequential()]
    assert [layer.name for layer in made] == [
        "conv2d", "conv2d_1", "max_pooling2d", "max_pooling2d_1", "average_pooling2d", "re_lu",
        "batch_normalization", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d",
        "global_average_pooling2d", "zero_padding2d", "dense", "sequential"]
    assert L.Conv2D(1, 1, name="stem").name == "stem"
    assert L.Conv2D(1, 1).name == "conv2d_2"  # a given name uses no number
    L.clear_session()
    assert L.Conv2D(1, 1).name == "conv2d"


def test_keras_defaults():
    conv = L.Conv2D(8, 3)
    assert (conv.kernel_size, conv.strides, conv.padding, conv.dilation_rate, conv.groups) == ((3, 3), (1, 1), "valid",
                                                                                               (1, 1), 1)
    assert conv.data_format == "channels_last" and conv.use_bias and conv.activation is None and conv.dtype == "float32"
    bn = L.BatchNormalization()
    assert (bn.axis, bn.epsilon, bn.momentum, bn.center, bn.scale) == (-1, 1e-3, 0.99, True, True)
    pool = L.MaxPooling2D()
    assert (pool.pool_size, pool.strides, pool.padding) == ((2, 2), (2, 2), "valid")
    assert L.MaxPooling2D(3).strides == (3, 3)
    assert L.DepthwiseConv2D(3).depth_multiplier == 1
    assert L.Conv2D(1, 1, data_format="NCHW").data_format == "channels_first"


@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv2D(0, 3), "filters must be >= 1"),
    (lambda: L.Conv2D(8, 3, padding="full"), "padding must be 'valid', 'same'"),
    (lambda: L.Conv2D(8, 3, activation="gelu"), "activation"),
    (lambda: L.Conv2D(6, 3, groups=4), "groups=4 must divide filters=6"),
    (lambda: L.Conv2D(8, 3, data_format="NHCW"), "data_format"),
    (lambda: L.Conv2D(8, 3, kernel_initializer="orthogonal"), "kernel_initializer"),
    (lambda: L.Conv2DTranspose(8, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: L.Dropout(1.5), "rate must be a number in [0, 1]"),
    (lambda: L.ReLU(negative_slope=-1), "negative_slope must be a finite number >= 0"),
    (lambda: L.BatchNormalization(epsilon=0), "epsilon must be a positive number"),
    (lambda: L.MaxPooling2D(2, padding=2), "at most half the pool_size"),
    (lambda: L.Dense(8, dtype="float16"), "dtype must be 'float32' or 'float64'"),
    (lambda: L.ZeroPadding2D("same"), "padding must be an int, (ph, pw) or ((top, bottom), (left, right))"),
])
def test_bad_construction_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make()


# ------------------------------------------------------------------------------ weights, counts, shapes

def build(layer, shape):
    layer.build((None,) + tuple(shape))
    return layer


@pytest.mark.parametrize("data_format", FORMATS)
def test_conv_family_weight_shapes_counts_and_output_shapes(data_format):
    def shape(h, w, c):
        return (h, w, c) if data_format == "channels_last" else (c, h, w)

    def out(h, w, c):
        return (None,) + shape(h, w, c)

    df = dict(data_format=data_format)
    conv = build(L.Conv2D(16, (3, 5), strides=2, padding="same", groups=2, **df), shape(31, 20, 6))
    assert [w.shape for w in conv.get_weights()] == [(3, 5, 3, 16), (16,)]
    assert conv.count_params() == 3 * 5 * 3 * 16 + 16
    assert conv.output_shape == out(16, 10, 16)
    assert conv.macs() == 16 * 10 * 16 * 3 * 5 * 3

    depthwise = build(L.DepthwiseConv2D(3, depth_multiplier=2, **df), shape(9, 9, 5))
    assert [w.shape for w in depthwise.get_weights()] == [(3, 3, 5, 2), (10,)]
    assert depthwise.count_params() == 3 * 3 * 5 * 2 + 10
    assert depthwise.output_shape == out(7, 7, 10)

    separable = build(L.SeparableConv2D(12, 3, depth_multiplier=2, padding="same", use_bias=False, **df),
                      shape(9, 9, 5))
    assert [w.shape for w in separable.get_weights()] == [(3, 3, 5, 2), (1, 1, 10, 12)]
    assert separable.count_params() == 3 * 3 * 5 * 2 + 10 * 12
    assert separable.output_shape == out(9, 9, 12)
    assert separable.macs() == 9 * 9 * 10 * 9 + 9 * 9 * 10 * 12

    transpose = build(L.Conv2DTranspose(4, 3, strides=2, **df), shape(5, 6, 7))
    assert [w.shape for w in transpose.get_weights()] == [(3, 3, 4, 7), (4,)]
    assert transpose.count_params() == 3 * 3 * 4 * 7 + 4
    assert transpose.output_shape == out(11, 13, 4)  # valid: (in - 1) * s + k
    same = build(L.Conv2DTranspose(4, 3, strides=2, padding="same", **df), shape(5, 6, 7))
    assert same.output_shape == out(10, 12, 4)  # same: in * s
    padded = build(L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=0, **df), shape(5, 6, 7))
    assert padded.output_shape == out(9, 11, 4)  # (in - 1) * s + k % 2 + output_padding


def test_dense_and_batch_norm_counts():
    dense = build(L.Dense(10), (576,))
    assert [w.shape for w in dense.get_weights()] == [(576, 10), (10,)]
    assert dense.count_params() == 5770 and dense.output_shape == (None, 10)
    sequence = build(L.Dense(3), (7, 5))  # Dense acts on the last axis
    assert sequence.output_shape == (None, 7, 3) and sequence.macs() == 7 * 5 * 3

    bn = build(L.BatchNormalization(), (8, 8, 32))
    assert [w.shape for w in bn.get_weights()] == [(32,)] * 4
    assert bn.count_params() == 128
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    np.testing.assert_array_equal(bn.get_weights()[0], np.ones(32))     # gamma
    np.testing.assert_array_equal(bn.get_weights()[3], np.ones(32))     # moving variance
    bare = build(L.BatchNormalization(axis=1, center=False, scale=False), (32, 8, 8))
    assert bare.count_params() == 64 and bare.trainable_weights == []


@pytest.mark.parametrize("data_format", FORMATS)
def test_weightless_layer_shapes(data_format):
    def shape(h, w, c):
        return (h, w, c) if data_format == "channels_last" else (c, h, w)

    df = dict(data_format=data_format)
    cases = [
        (L.MaxPooling2D(2, **df), (None,) + shape(5, 4, 3)),
        (L.MaxPooling2D(3, strides=2, padding="same", **df), (None,) + shape(6, 5, 3)),
        (L.AveragePooling2D(3, strides=1, padding=1, **df), (None,) + shape(11, 9, 3)),
        (L.GlobalAveragePooling2D(**df), (None, 3)),
        (L.GlobalMaxPooling2D(keepdims=True, **df), (None,) + shape(1, 1, 3)),
        (L.ZeroPadding2D(((1, 2), (3, 4)), **df), (None,) + shape(14, 16, 3)),
        (L.Flatten(), (None, 11 * 9 * 3)),
    ]
    for layer, expected in cases:
        assert build(layer, shape(11, 9, 3)).output_shape == expected, layer
        assert layer.count_params() == 0 and layer.get_weights() == []


def test_none_sizes_propagate():
    model = L.Sequential([L.Input(shape=(None, None, 3)), L.Conv2D(4, 3, strides=2, padding="same"),
                          L.GlobalAveragePooling2D(), L.Dense(2)])
    assert model.layers[0].output_shape == (None, None, None, 4)
    assert model.output_shape == (None, 2)
    assert model.layers[0].macs() is None
    assert model.predict(np.zeros((1, 9, 6, 3), np.float32)).shape == (1, 2)


# ------------------------------------------------------------------------------ forward passes

CONV_CASES = [
    ("conv valid relu", lambda df: L.Conv2D(6, 3, activation="relu", data_format=df)),
    ("conv same stride 2", lambda df: L.Conv2D(5, (3, 2), strides=2, padding="same", data_format=df)),
    ("conv groups dilation", lambda df: L.Conv2D(4, 3, dilation_rate=2, groups=2, activation="tanh", data_format=df)),
    ("conv explicit padding", lambda df: L.Conv2D(3, 3, strides=2, padding=((1, 0), (2, 1)), activation="elu",
                                                  data_format=df)),
    ("conv softmax no bias", lambda df: L.Conv2D(3, 1, use_bias=False, activation="softmax", data_format=df)),
    ("depthwise", lambda df: L.DepthwiseConv2D(3, depth_multiplier=3, padding="same", activation="relu6",
                                               data_format=df)),
    ("depthwise strided", lambda df: L.DepthwiseConv2D(5, strides=2, padding=2, data_format=df)),
    ("separable", lambda df: L.SeparableConv2D(7, 3, depth_multiplier=2, padding="same", activation="silu",
                                               data_format=df)),
    ("transpose valid", lambda df: L.Conv2DTranspose(3, 3, strides=2, activation="sigmoid", data_format=df)),
    ("transpose same", lambda df: L.Conv2DTranspose(5, 4, strides=2, padding="same", data_format=df)),
    ("transpose output_padding", lambda df: L.Conv2DTranspose(2, 3, strides=3, padding="same", output_padding=1,
                                                              data_format=df)),
    ("transpose leaky", lambda df: L.Conv2DTranspose(2, 3, activation="leaky_relu", data_format=df)),
    ("max pool same", lambda df: L.MaxPooling2D(3, strides=2, padding="same", data_format=df)),
    ("max pool explicit", lambda df: L.MaxPooling2D(3, strides=2, padding=1, data_format=df)),
    ("avg pool", lambda df: L.AveragePooling2D(2, data_format=df)),
    ("avg pool same", lambda df: L.AveragePooling2D(3, strides=2, padding="same", data_format=df)),
    ("global avg", lambda df: L.GlobalAveragePooling2D(data_format=df)),
    ("global max keepdims", lambda df: L.GlobalMaxPooling2D(data_format=df, keepdims=True)),
    ("zero padding", lambda df: L.ZeroPadding2D(((1, 0), (2, 3)), data_format=df)),
    ("batch norm", lambda df: L.BatchNormalization(axis=channels_axis(df))),
    ("flatten", lambda df: L.Flatten(data_format=df)),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("name, make", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_image_layer_matches_reference(name, make, data_format, rng):
    layer = make(data_format)
    x = image(rng, 2, 9, 8, 4, data_format)
    layer(x)  # builds
    randomize(layer, rng)
    y = layer(x)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape == (2,) + layer.output_shape[1:]
    assert_matches_reference(y, reference_forward(layer, x))


def test_flatten_channels_first_flattens_in_channels_last_order(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)  # NCHW
    y = L.Flatten(data_format="channels_first")(x)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1).reshape(2, -1))
    np.testing.assert_array_equal(L.Flatten()(x), x.reshape(2, -1))


@pytest.mark.parametrize("activation", [None, "relu", "relu6", "sigmoid", "tanh", "swish", "elu", "leaky_relu",
                                        ("elu", 0.5), "softmax", "linear"])
def test_dense_matches_reference(activation, rng):
    layer = L.Dense(13, activation=activation)
    x = rng.standard_normal((6, 3, 37)).astype(np.float32)
    layer(x)
    randomize(layer, rng)
    y = layer(x)
    assert y.shape == (6, 3, 13) and y.dtype == np.float32
    assert_matches_reference(y, reference_forward(layer, x))


def test_dense_on_an_empty_batch():
    assert L.Dense(4)(np.zeros((0, 3), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("layer, expected", [
    (L.ReLU(), [0, 0, 0, 0.5, 3, 7]),
    (L.ReLU(max_value=6), [0, 0, 0, 0.5, 3, 6]),
    (L.ReLU(negative_slope=0.1), [-0.4, -0.1, 0, 0.5, 3, 7]),
    (L.ReLU(max_value=5, negative_slope=0.5, threshold=1), [-2.5, -1, -0.5, -0.25, 3, 5]),
    (L.Activation("leaky_relu"), [-0.8, -0.2, 0, 0.5, 3, 7]),
    (L.Activation("linear"), [-4, -1, 0, 0.5, 3, 7]),
    (L.Activation(np.abs), [4, 1, 0, 0.5, 3, 7]),
])
def test_activation_layers(layer, expected):
    x = np.array([[-4, -1, 0, 0.5, 3, 7]], np.float32)
    np.testing.assert_allclose(layer(x), [expected], rtol=1e-6)


def test_softmax_activation_sums_to_one(rng):
    y = L.Activation("softmax")(rng.standard_normal((3, 5)).astype(np.float32) * 50)
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-6)
    assert np.all(np.isfinite(y))


def test_batch_norm_on_other_axes(rng):
    for axis, shape in ((1, (3, 5)), (-1, (2, 3, 4)), (1, (2, 3, 4)), (2, (2, 3, 4, 5))):
        bn = L.BatchNormalization(axis=axis)
        x = rng.standard_normal(shape).astype(np.float32)
        bn(x)
        randomize(bn, rng)
        assert_matches_reference(bn(x), reference_forward(bn, x))


def test_add_and_concatenate(rng):
    a, b, c = (rng.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(3))
    np.testing.assert_allclose(L.Add()([a, b, c]), a + b + c, rtol=1e-6)
    np.testing.assert_array_equal(L.Concatenate()([a, b]), np.concatenate([a, b], axis=-1))
    np.testing.assert_array_equal(L.Concatenate(axis=1)([a, b, c]), np.concatenate([a, b, c], axis=1))
    with pytest.raises(ValueError, match="list of at least 2 inputs"):
        L.Add()(a)
    with pytest.raises(ValueError, match="do not match"):
        L.Add()([a, a[:, :2]])
    with pytest.raises(ValueError, match="do not match"):
        L.Concatenate()([a, a[:, :2]])


def test_dropout_is_identity(rng):
    x = rng.standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(L.Dropout(0.5)(x), x)


@pytest.mark.parametrize("data_format", FORMATS)
def test_layers_match_torch(data_format, torch, rng):
    """The convolution family against torch.nn.functional with the same weights."""
    F = torch.nn.functional
    x = image(rng, 2, 10, 9, 6, data_format)
    xt = torch.from_numpy(x if data_format == "channels_first" else np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def compare(layer, torch_fn):
        layer(x)
        randomize(layer, rng)
        y = layer(x)
        expected = torch_fn(*[torch.from_numpy(np.ascontiguousarray(w)) for w in layer.get_weights()]).numpy()
        if data_format == "channels_last":
            expected = expected.transpose(0, 2, 3, 1)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())

    df = dict(data_format=data_format)
    compare(L.Conv2D(8, 3, strides=2, padding=1, groups=2, activation="relu", **df),
            lambda k, b: F.relu(F.conv2d(xt, k.permute(3, 2, 0, 1), b, stride=2, padding=1, groups=2)))
    compare(L.DepthwiseConv2D(3, depth_multiplier=2, padding=1, **df),
            lambda k, b: F.conv2d(xt, k.reshape(3, 3, 12).permute(2, 0, 1)[:, None], b, padding=1, groups=6))
    compare(L.SeparableConv2D(5, 3, padding=1, **df),
            lambda d, p, b: F.conv2d(F.conv2d(xt, d.reshape(3, 3, 6).permute(2, 0, 1)[:, None], padding=1, groups=6),
                                     p.permute(3, 2, 0, 1), b))
    compare(L.Conv2DTranspose(4, 4, strides=2, padding="same", **df),
            lambda k, b: F.conv_transpose2d(xt, k.permute(3, 2, 0, 1), b, stride=2, padding=1))
    compare(L.BatchNormalization(axis=channels_axis(data_format)),
            lambda g, b, m, v: F.batch_norm(xt, m, v, g, b, eps=1e-3))


def test_float64_layer_computes_in_float64(rng):
    layer = L.Conv2D(3, 3, dtype="float64")
    x = rng.standard_normal((1, 6, 6, 2))
    y = layer(x)
    assert y.dtype == np.float64 and layer.get_weights()[0].dtype == np.float64
    np.testing.assert_allclose(y, reference_forward(layer, x), rtol=1e-12, atol=1e-12)


def test_inputs_are_cast_to_the_layer_dtype(rng):
    layer = L.Conv2D(2, 1)
    x = rng.integers(0, 255, (1, 4, 4, 3)).astype(np.uint8)
    y = layer(x)
    assert y.dtype == np.float32
    assert_matches_reference(y, reference_forward(layer, x.astype(np.float32)))


def test_call_checks_the_built_input_shape(rng):
    conv = L.Conv2D(4, 3)
    conv(np.zeros((1, 8, 8, 3), np.float32))
    conv(np.zeros((2, 5, 6, 3), np.float32))  # other sizes are fine: only the channels are fixed
    with pytest.raises(ValueError, match=r"layer 'conv2d' \(Conv2D\) must have size 3 on axis 3"):
        conv(np.zeros((1, 8, 8, 4), np.float32))
    with pytest.raises(ValueError, match="must be 4-D"):
        conv(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"layer 'conv2d_1' \(Conv2D\) takes 4-D inputs"):
        L.Conv2D(4, 3)(np.zeros((8, 8, 3), np.float32))
    dense = L.Dense(2)
    dense(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match=r"layer 'dense' \(Dense\) must have size 5 on axis 1"):
        dense(np.zeros((1, 6), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        L.Conv2D(4, 5)(np.zeros((1, 3, 3, 1), np.float32))
    with pytest.raises(TypeError, match="real"):
        L.Conv2D(4, 1)(np.zeros((1, 3, 3, 1), np.complex64))


# ------------------------------------------------------------------------------ get/set_weights

def built_conv():
    conv = L.Conv2D(32, 3)
    conv.build((None, 28, 28, 1))
    return conv


def test_set_weights_round_trip_and_casts(rng):
    conv = built_conv()
    kernel, bias = rng.standard_normal((3, 3, 1, 32)), rng.standard_normal(32)
    conv.set_weights([kernel, bias.tolist()])
    got = conv.get_weights()
    assert [w.dtype for w in got] == [np.float32, np.float32]
    np.testing.assert_array_equal(got[0], kernel.astype(np.float32))
    np.testing.assert_array_equal(got[1], bias.astype(np.float32))
    got[0][...] = 0  # get_weights returns copies
    assert np.abs(conv.get_weights()[0]).max() > 0
    with pytest.raises(ValueError, match="read-only"):
        conv.kernel[0, 0, 0, 0] = 1.0


def test_set_weights_wrong_count():
    with pytest.raises(ValueError, match=r"layer 'conv2d' \(Conv2D\): set_weights expected 2 arrays "
                                         r"\[conv2d/kernel \(3, 3, 1, 32\), conv2d/bias \(32,\)\], got 1"):
        built_conv().set_weights([np.zeros((3, 3, 1, 32))])


def test_set_weights_wrong_shape_changes_nothing(rng):
    conv = built_conv()
    before = conv.get_weights()
    with pytest.raises(ValueError, match=r"layer 'conv2d' \(Conv2D\): weight 1 'conv2d/bias' must have shape "
                                         r"\(32,\), got \(31,\)"):
        conv.set_weights([rng.standard_normal((3, 3, 1, 32)), np.zeros(31)])
    for old, new in zip(before, conv.get_weights()):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(ValueError, match=r"weight 0 'conv2d/kernel' must have shape \(3, 3, 1, 32\), got "
                                         r"\(32, 1, 3, 3\)"):
        conv.set_weights([np.zeros((32, 1, 3, 3)), np.zeros(32)])


@pytest.mark.parametrize("bad", [np.zeros((3, 3, 1, 32), np.complex64), np.full((3, 3, 1, 32), "a"),
                                 np.empty((3, 3, 1, 32), object), None], ids=["complex", "str", "object", "None"])
def test_set_weights_wrong_dtype(bad):
    with pytest.raises(TypeError, match=r"layer 'conv2d' \(Conv2D\): weight 0 'conv2d/kernel' must be a "
                                        r"real-valued array"):
        built_conv().set_weights([bad, np.zeros(32)])


def test_set_weights_needs_a_list_and_a_built_layer():
    with pytest.raises(TypeError, match="set_weights takes a list of arrays, got ndarray"):
        built_conv().set_weights(np.zeros(3))
    with pytest.raises(ValueError, match=r"layer 'conv2d_1' \(Conv2D\) is not built yet"):
        L.Conv2D(2, 3).set_weights([])
    with pytest.raises(ValueError, match="is not built yet"):
        L.Dense(2).count_params()


def test_set_weights_names_the_batch_norm_weights():
    bn = build(L.BatchNormalization(), (4, 4, 3))
    with pytest.raises(ValueError, match=r"weight 3 'batch_normalization/moving_variance' must have shape \(3,\)"):
        bn.set_weights([np.ones(3), np.zeros(3), np.zeros(3), np.ones(4)])


# ------------------------------------------------------------------------------ initializers and seeds

def test_glorot_uniform_kernels_and_zero_biases():
    conv = build(L.Conv2D(64, 3), (16, 16, 32))
    kernel, bias = conv.get_weights()
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))  # Keras: fans are kernel area * channels
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.95 * limit
    np.testing.assert_allclose(kernel.std(), limit / math.sqrt(3), rtol=0.05)  # std of U(-a, a)
    np.testing.assert_array_equal(bias, np.zeros(64))
    dense_kernel = build(L.Dense(20), (30,)).get_weights()[0]
    assert np.abs(dense_kernel).max() <= math.sqrt(6 / 50)


def test_seed_makes_weights_reproducible():
    L.set_seed(7)
    first = build(L.Conv2D(4, 3), (5, 5, 2)).get_weights()[0]
    second = build(L.Conv2D(4, 3), (5, 5, 2)).get_weights()[0]
    L.set_seed(7)
    again = build(L.Conv2D(4, 3), (5, 5, 2)).get_weights()[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_other_initializers():
    ones = build(L.Dense(3, kernel_initializer="ones", bias_initializer="ones"), (2,))
    np.testing.assert_array_equal(ones.get_weights()[0], np.ones((2, 3)))
    he = build(L.Conv2D(8, 3, kernel_initializer="he_uniform"), (4, 4, 16)).get_weights()[0]
    assert np.abs(he).max() <= math.sqrt(6 / (9 * 16))
    custom = build(L.Dense(2, kernel_initializer=lambda shape, dtype: np.full(shape, 0.5, dtype)), (3,))
    np.testing.assert_array_equal(custom.get_weights()[0], np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="the initializer returned shape"):
        build(L.Dense(2, kernel_initializer=lambda shape, dtype: np.zeros(3)), (3,))


# ------------------------------------------------------------------------------ packed kernels

@pytest.mark.parametrize("data_format", FORMATS)
def test_conv2d_and_dense_pack_their_kernels_once(data_format, rng, monkeypatch):
    """Conv2D and Dense hand ops.conv2d weights packed by ops.pack_conv2d_weight, made once per
    weight version (again after set_weights), in the op layout of the data format."""
    from pycnn import ops

    packs, weights_seen = [], []
    pack, conv2d = ops.pack_conv2d_weight, ops.conv2d
    monkeypatch.setattr(ops, "pack_conv2d_weight", lambda w, **kw: (packs.append((np.shape(w), kw)), pack(w, **kw))[1])
    monkeypatch.setattr(ops, "conv2d", lambda x, w, *a, **kw: (weights_seen.append(type(w)), conv2d(x, w, *a, **kw))[1])
    conv, dense = L.Conv2D(6, 3, groups=2, data_format=data_format), L.Dense(5)
    x = image(rng, 2, 7, 7, 4, data_format)
    for _ in range(3):
        dense(conv(x).reshape(2, -1))
    expected_conv = (3, 3, 2, 6) if data_format == "channels_last" else (6, 2, 3, 3)
    layout = "NHWC" if data_format == "channels_last" else "NCHW"
    assert packs == [(expected_conv, dict(groups=2, data_format=layout, dtype=np.float32)),
                     ((1, 1, 6 * 5 * 5, 5), dict(data_format="NHWC", dtype=np.float32))]
    assert weights_seen == [ops.PackedConv2dWeight] * 6
    randomize(conv, rng)
    y = conv(x)
    assert len(packs) == 3
    assert_matches_reference(y, reference_forward(conv, x))
