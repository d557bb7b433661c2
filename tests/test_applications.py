"""pycnn.applications: parameter counts and output shapes as Keras / torchvision give them (worked
out here from the architectures' definitions), and forward passes against the independent NumPy
reference and against the PyTorch twins of examples/torch_twins.py with the same weights, in
both data formats. Big networks are checked on small inputs (or without their top) to keep the
suite quick; their full-size shapes and counts come from building alone."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from layer_reference import reference_forward
from pycnn import applications as A
from pycnn import layers as L

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FORMATS = ["channels_last", "channels_first"]


@pytest.fixture(autouse=True)
def seeded():
    L.set_seed(2024)


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def hwc(h, w, c, data_format):
    return (h, w, c) if data_format == "channels_last" else (c, h, w)


def batch_norm_layers(model):
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, L.BatchNormalization):
            found.append(layer)
        stack.extend(layer.layers)
    return found


def randomize_batch_norms(model, rng):
    for bn in batch_norm_layers(model):
        c = bn.moving_mean.shape[0]
        bn.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                        rng.uniform(0.5, 1.5, c)])


def params(model):
    trainable = sum(w.size for w in model.trainable_weights)
    return trainable, model.count_params() - trainable


# ------------------------------------------------------------------------------ counts and shapes

@pytest.mark.parametrize("data_format", FORMATS)
def test_small_convnets(data_format):
    lenet = A.lenet5(data_format=data_format)
    expected = [conv(5, 1, 6), 0, conv(5, 6, 16), 0, conv(5, 16, 120), 0, 120 * 84 + 84, 84 * 10 + 10]
    assert [layer.count_params() for layer in lenet.layers] == expected
    assert lenet.count_params() == 61706
    assert [layer.output_shape for layer in lenet.layers][:5] == [
        (None,) + hwc(28, 28, 6, data_format), (None,) + hwc(14, 14, 6, data_format),
        (None,) + hwc(10, 10, 16, data_format), (None,) + hwc(5, 5, 16, data_format),
        (None,) + hwc(1, 1, 120, data_format)]

    mnist = A.mnist_convnet(data_format=data_format)
    assert [layer.count_params() for layer in mnist.layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    assert params(mnist) == (93322, 0)

    cats = A.cats_vs_dogs_convnet(data_format=data_format)
    expected = [conv(3, 3, 32), 0, conv(3, 32, 64), 0, conv(3, 64, 128), 0, conv(3, 128, 128), 0, 0,
                7 * 7 * 128 * 512 + 512, 512 + 1]
    assert [layer.count_params() for layer in cats.layers] == expected
    assert cats.count_params() == sum(expected) == 3453121
    sizes = [148, 74, 72, 36, 34, 17, 15, 7]
    filters = [32, 32, 64, 64, 128, 128, 128, 128]
    assert [layer.output_shape for layer in cats.layers[:8]] == [
        (None,) + hwc(s, s, f, data_format) for s, f in zip(sizes, filters)]
    assert cats.layers[8].output_shape == (None, 6272) and cats.output_shape == (None, 1)


@pytest.mark.parametrize("data_format", FORMATS)
def test_vgg16_counts_and_shapes(data_format):
    model = A.vgg16(data_format=data_format)
    expected, size, cin = [], 224, 3
    for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            expected.append((conv(3, cin, filters), (None,) + hwc(size, size, filters, data_format)))
            cin = filters
        size //= 2
        expected.append((0, (None,) + hwc(size, size, filters, data_format)))
    expected += [(0, (None, 25088)), (25088 * 4096 + 4096, (None, 4096)), (4096 * 4096 + 4096, (None, 4096)),
                 (4096 * 1000 + 1000, (None, 1000))]
    assert [(layer.count_params(), layer.output_shape) for layer in model.layers] == expected
    assert params(model) == (138357544, 0)  # keras.applications.VGG16 with the top
    assert model.layers[0].name == "block1_conv1" and model.layers[-1].name == "predictions"
    # VGG-16's well-known 15.5 G multiply-accumulates per 224x224 image
    assert model.macs() == sum(s * s * co * 9 * ci for s, ci, co in (
        (224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128), (56, 128, 256), (56, 256, 256),
        (56, 256, 256), (28, 256, 512), (28, 512, 512), (28, 512, 512), (14, 512, 512), (14, 512, 512),
        (14, 512, 512))) + 25088 * 4096 + 4096 * 4096 + 4096 * 1000


@pytest.mark.parametrize("data_format", FORMATS)
def test_resnet34_counts_and_shapes(data_format):
    model = A.resnet34(data_format=data_format)
    units = [layer for layer in model.layers if isinstance(layer, A.ResidualUnit)]
    assert len(units) == 16
    expected_shapes, expected_params, bn_channels = [], [], 64
    cin = 64
    for filters, count, size in ((64, 3, 56), (128, 4, 28), (256, 6, 14), (512, 3, 7)):
        for i in range(count):
            projection = cin != filters
            trainable = conv(3, cin, filters, False) + conv(3, filters, filters, False) + 2 * 2 * filters
            if projection:
                trainable += conv(1, cin, filters, False) + 2 * filters
            statistics = 2 * filters * (3 if projection else 2)
            bn_channels += filters * (3 if projection else 2)
            expected_params.append(trainable + statistics)
            expected_shapes.append((None,) + hwc(size, size, filters, data_format))
            cin = filters
    assert [unit.count_params() for unit in units] == expected_params
    assert [unit.output_shape for unit in units] == expected_shapes
    stem = conv(7, 3, 64, False) + 2 * 64
    fc = 512 * 1000 + 1000
    trainable = stem + fc + sum(p for p in expected_params) - 2 * (bn_channels - 64)
    assert params(model) == (trainable, 2 * bn_channels)
    assert params(model) == (21797672, 17024)  # torchvision resnet34: 21,797,672 parameters
    assert model.layers[3].output_shape == (None,) + hwc(56, 56, 64, data_format)
    assert model.output_shape == (None, 1000)
    assert [unit.shortcut is not None for unit in units] == [False] * 3 + ([True] + [False] * 3) + (
        [True] + [False] * 5) + ([True] + [False] * 2)


@pytest.mark.parametrize("data_format", FORMATS)
def test_blocks_counts_and_shapes(data_format):
    inception = A.inception_module(data_format=data_format)
    assert inception.count_params() == (conv(1, 192, 64) + conv(1, 192, 96) + conv(3, 96, 128) + conv(1, 192, 16)
                                        + conv(5, 16, 32) + conv(1, 192, 32)) == 163696
    assert inception.output_shape == (None,) + hwc(28, 28, 256, data_format)

    xception = A.xception_block(data_format=data_format)
    separable = 3 * 3 * 128 + 128 * 256, 3 * 3 * 256 + 256 * 256
    assert params(xception) == (sum(separable) + 128 * 256 + 3 * 2 * 256, 3 * 2 * 256)
    assert xception.count_params() == 137600  # Keras Xception block 3: 33,920 + 67,840 + 32,768 + 3 x 1,024
    assert xception.output_shape == (None,) + hwc(28, 28, 256, data_format)

    mobilenet = A.mobilenet_blocks(data_format=data_format)
    trainable = conv(3, 3, 32, False) + 2 * 32
    for cin, cout in ((32, 64), (64, 128), (128, 128)):
        trainable += 9 * cin + 2 * cin + cin * cout + 2 * cout
    statistics = 2 * (32 + 32 + 64 + 64 + 128 + 128 + 128)
    assert params(mobilenet) == (trainable, statistics)
    assert mobilenet.output_shape == (None,) + hwc(56, 56, 128, data_format)

    fcn = A.fcn_upsampler(data_format=data_format)
    trainable = conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + conv(1, 128, 21)
    trainable += 16 * 21 * 64 + 2 * 64 + 16 * 64 * 32 + 2 * 32 + 16 * 32 * 21 + 21
    assert params(fcn) == (trainable, 2 * (64 + 32))
    assert [layer.output_shape for layer in fcn.layers if isinstance(layer, (L.Conv2D, L.Conv2DTranspose))] == [
        (None,) + hwc(s, s, c, data_format) for s, c in ((32, 32), (16, 64), (8, 128), (8, 21), (16, 64), (32, 32),
                                                          (64, 21))]


# ------------------------------------------------------------------------------ forward passes

# name -> (builder arguments, twin arguments, a small input (H, W, C))
SMALL = {
    "lenet5": ({}, {}, (32, 32, 1)),
    "mnist_convnet": ({}, {}, (28, 28, 1)),
    "cats_vs_dogs_convnet": ({}, {}, (150, 150, 3)),
    "vgg16": ({"include_top": False}, {"include_top": False}, (32, 32, 3)),
    "resnet34": ({"classifier_activation": None}, {"softmax": False}, (32, 32, 3)),
    "inception_module": ({}, {}, (12, 12, 192)),
    "xception_block": ({}, {}, (15, 15, 128)),
    "mobilenet_blocks": ({}, {}, (32, 32, 3)),
    "fcn_upsampler": ({}, {}, (40, 40, 3)),
}


def small_model(name, data_format, rng):
    kwargs, _, (h, w, c) = SMALL[name]
    model = getattr(A, name)(input_shape=hwc(h, w, c, data_format), data_format=data_format, **kwargs)
    randomize_batch_norms(model, rng)
    x = rng.standard_normal((2,) + hwc(h, w, c, data_format)).astype(np.float32)
    return model, x


def assert_close(actual, expected, rtol=1e-4):
    """Relative to the largest output: these are deep float32 networks."""
    assert actual.shape == expected.shape
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("name", list(SMALL))
def test_forward_matches_reference(name, data_format, rng):
    model, x = small_model(name, data_format, rng)
    y = model.predict(x, batch_size=1)
    assert y.dtype == np.float32 and y.shape == (2,) + model.output_shape[1:]
    assert_close(y, reference_forward(model, x))


@pytest.fixture(scope="module")
def twins():
    pytest.importorskip("torch")
    sys.path.insert(0, str(EXAMPLES))
    try:
        import torch_twins
    finally:
        sys.path.remove(str(EXAMPLES))
    return torch_twins


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("name", list(SMALL))
def test_forward_matches_torch(name, data_format, twins, torch, rng):
    model, x = small_model(name, data_format, rng)
    twin = twins.copy_weights(model, twins.TWINS[name](**SMALL[name][1]), data_format)
    with torch.inference_mode():
        expected = twins.from_torch_output(twin(twins.to_torch_input(x, data_format)), data_format)
    assert_close(model(x), expected)


def test_copy_weights_refuses_a_different_network(twins):
    with pytest.raises(ValueError, match=r"layers do not pair up: conv2d_\d+ \(Conv2D\) vs Conv2d: shape "
                                         r"\(6, 1, 5, 5\) vs \(32, 1, 3, 3\)"):
        twins.copy_weights(A.mnist_convnet(), twins.lenet5())
    with pytest.raises(ValueError, match="pycnn has 5 weighted layers, the twin 6"):
        twins.copy_weights(A.mnist_convnet(), twins.cats_vs_dogs_convnet())

