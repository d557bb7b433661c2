"""Sequential and Layer/Model subclasses: building, predict() batching, summary(), weight
tracking, and batch-norm folding (folded == unfolded, and refreshed after set_weights)."""
from __future__ import annotations

import numpy as np
import pytest

from layer_reference import reference_forward
from pycnn import layers as L


@pytest.fixture(autouse=True)
def fresh_session():
    L.clear_session()
    L.set_seed(99)


def mnist_convnet():
    return L.Sequential([
        L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])


def random_batch_norms(model, rng):
    for layer in model.submodules:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 1.5, c)])


def test_submodules_lists_every_nested_layer_once():
    shared = L.Dense(4)
    block = L.Sequential([L.Dense(4), shared])
    model = L.Sequential([block, shared, L.Dense(2)])
    subs = model.submodules
    assert subs[0] is block and subs.count(shared) == 1 and model not in subs
    assert [type(s).__name__ for s in subs] == ["Sequential", "Dense", "Dense", "Dense"]


def unfused(model, x):
    """The model run one layer at a time through each layer's own call (no folding)."""
    for layer in model.layers:
        x = layer(x)
    return x


# ------------------------------------------------------------------------------ summary

MNIST_SUMMARY = """\
Model: "sequential"
__________________________________________________________________________________
Layer (type)                     Output Shape              Param #     MACs
==================================================================================
conv2d (Conv2D)                  (None, 26, 26, 32)        320         194,688
__________________________________________________________________________________
max_pooling2d (MaxPooling2D)     (None, 13, 13, 32)        0           0
__________________________________________________________________________________
conv2d_1 (Conv2D)                (None, 11, 11, 64)        18,496      2,230,272
__________________________________________________________________________________
max_pooling2d_1 (MaxPooling2D)   (None, 5, 5, 64)          0           0
__________________________________________________________________________________
conv2d_2 (Conv2D)                (None, 3, 3, 64)          36,928      331,776
__________________________________________________________________________________
flatten (Flatten)                (None, 576)               0           0
__________________________________________________________________________________
dense (Dense)                    (None, 64)                36,928      36,864
__________________________________________________________________________________
dense_1 (Dense)                  (None, 10)                650         640
==================================================================================
Total params: 93,322
Trainable params: 93,322
Non-trainable params: 0
Total MACs per image: 2,794,240
__________________________________________________________________________________"""


def test_mnist_convnet_summary_text(capsys):
    model = mnist_convnet()
    model.summary()
    assert capsys.readouterr().out == MNIST_SUMMARY + "\n"
    # the numbers, worked out: conv k*k*cin*cout + cout; dense in*out + out; MACs out_h*out_w*cout*k*k*cin
    counts = [3 * 3 * 1 * 32 + 32, 0, 3 * 3 * 32 * 64 + 64, 0, 3 * 3 * 64 * 64 + 64, 0, 576 * 64 + 64, 64 * 10 + 10]
    assert [layer.count_params() for layer in model.layers] == counts == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    assert model.count_params() == sum(counts) == 93322
    macs = [26 * 26 * 32 * 9, 0, 11 * 11 * 64 * 9 * 32, 0, 3 * 3 * 64 * 9 * 64, 0, 576 * 64, 64 * 10]
    assert [layer.macs() for layer in model.layers] == macs
    assert model.macs() == sum(macs) == 2794240


def test_summary_counts_batch_norm_statistics_as_non_trainable():
    model = L.Sequential([L.Input(shape=(8, 8, 3)), L.Conv2D(16, 3, use_bias=False), L.BatchNormalization(),
                          L.ReLU()], name="tiny")
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert 'Model: "tiny"' in text
    assert "batch_normalization (BatchNormalization)   (None, 6, 6, 16)" in text
    assert "Total params: 496\nTrainable params: 464\nNon-trainable params: 32\n" in text  # 432 + 64 | 32
    assert f"Total MACs per image: {6 * 6 * 16 * 27:,}" in text


def test_summary_needs_a_built_model():
    with pytest.raises(ValueError, match="has not been built yet"):
        L.Sequential([L.Dense(2)]).summary()


# ------------------------------------------------------------------------------ building

def test_sequential_input_forms_agree(rng):
    with_input = L.Sequential([L.Input(shape=(6, 6, 2)), L.Conv2D(3, 3), L.Flatten(), L.Dense(4)])
    with_kwarg = L.Sequential([L.Conv2D(3, 3, input_shape=(6, 6, 2)), L.Flatten(), L.Dense(4)])
    lazy = L.Sequential([L.Conv2D(3, 3), L.Flatten(), L.Dense(4)])
    assert with_input.built and with_kwarg.built and not lazy.built
    assert with_input.output_shape == with_kwarg.output_shape == (None, 4)
    with pytest.raises(AttributeError, match="has not been built"):
        lazy.output_shape
    x = rng.standard_normal((3, 6, 6, 2)).astype(np.float32)
    y = lazy(x)
    assert lazy.built and lazy.input_shape == (None, 6, 6, 2) and y.shape == (3, 4)
    lazy.set_weights(with_input.get_weights())
    np.testing.assert_array_equal(lazy(x), with_input(x))


def test_sequential_add_builds_the_new_layer():
    model = L.Sequential([L.Input(shape=(10, 10, 3))])
    model.add(L.Conv2D(8, 3, padding="same"))
    assert model.built and model.output_shape == (None, 10, 10, 8)
    model.add(L.MaxPooling2D())
    assert model.output_shape == (None, 5, 5, 8) and model.layers[-1].built
    with pytest.raises(ValueError, match="an Input must be the first element"):
        model.add(L.Input(shape=(3,)))
    with pytest.raises(TypeError, match="only layers can be added"):
        model.add("conv")
    with pytest.raises(ValueError, match="'conv2d' is there already"):
        model.add(model.layers[0])
    with pytest.raises(ValueError, match=r"layer 'conv2d_1' \(Conv2D\) height: kernel extent 7 .* larger than the "
                                         r"padded input 5"):
        model.add(L.Conv2D(2, 7))
    assert len(model.layers) == 2 and model.output_shape == (None, 5, 5, 8)  # as before the failed add
    model.add(L.Flatten())
    assert model.output_shape == (None, 200)


def test_model_call_equals_predict(rng):
    model = mnist_convnet()
    x = rng.random((5, 28, 28, 1), dtype=np.float32)
    y = model(x)
    assert y.shape == (5, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(x), y)
    np.testing.assert_allclose(y, reference_forward(model, x), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------ predict batching

@pytest.mark.parametrize("n, batch_size", [(7, 3), (7, 1), (4, 32), (6, None), (33, None), (5, 5)])
def test_predict_batches(n, batch_size, rng):
    model = mnist_convnet()
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = model.predict(x, batch_size=batch_size)
    assert y.shape == (n, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y, model(x), rtol=1e-6, atol=1e-7)


def test_predict_calls_the_model_once_per_batch(rng, monkeypatch):
    model = mnist_convnet()
    sizes = []
    original = L.Sequential.call
    monkeypatch.setattr(L.Sequential, "call", lambda self, x: (sizes.append(len(x)), original(self, x))[1])
    model.predict(rng.random((10, 28, 28, 1)), batch_size=4)
    assert sizes == [4, 4, 2]


def test_predict_empty_batch():
    y = mnist_convnet().predict(np.zeros((0, 28, 28, 1), np.float32))
    assert y.shape == (0, 10) and y.dtype == np.float32


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8", np.float64(4.0)], ids=repr)
def test_predict_rejects_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive int or None, got"):
        mnist_convnet().predict(np.zeros((2, 28, 28, 1), np.float32), batch_size=bad)


def test_predict_accepts_numpy_ints_and_other_dtypes(rng):
    model = mnist_convnet()
    x = rng.integers(0, 255, (3, 28, 28, 1)).astype(np.uint8)
    y = model.predict(x, batch_size=np.int64(2))
    # The second convolution (32->64 @13) runs Winograd on a batch of 3 or 2 and direct on the
    # last batch of 1 (too few tiles to repay the weight transform): sums in another order.
    np.testing.assert_allclose(y, model(x.astype(np.float32)), rtol=1e-4, atol=1e-6)


def test_predict_checks_the_input():
    model = mnist_convnet()
    with pytest.raises(ValueError, match=r"must have size 1 on axis 3"):
        model.predict(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match="needs a batch"):
        model.predict(np.float32(1))


# ------------------------------------------------------------------------------ batch-norm folding

FOLD_CASES = {
    "conv bn relu": lambda df, axis: [L.Conv2D(6, 3, padding="same", use_bias=False, data_format=df),
                                      L.BatchNormalization(axis=axis), L.ReLU()],
    "conv(bias) bn": lambda df, axis: [L.Conv2D(6, 3, strides=2, data_format=df), L.BatchNormalization(axis=axis)],
    "conv bn activation": lambda df, axis: [L.Conv2D(6, 1, data_format=df), L.Dropout(0.3),
                                            L.BatchNormalization(axis=axis), L.Activation("swish")],
    "depthwise bn relu6": lambda df, axis: [L.DepthwiseConv2D(3, depth_multiplier=2, padding=1, use_bias=False,
                                                              data_format=df),
                                            L.BatchNormalization(axis=axis), L.ReLU(6.0)],
    "separable bn": lambda df, axis: [L.SeparableConv2D(5, 3, padding="same", data_format=df),
                                      L.BatchNormalization(axis=axis), L.Activation("elu")],
    "transpose bn relu": lambda df, axis: [L.Conv2DTranspose(4, 4, strides=2, padding="same", data_format=df),
                                           L.BatchNormalization(axis=axis), L.ReLU()],
    "bn relu alone": lambda df, axis: [L.MaxPooling2D(2, data_format=df), L.BatchNormalization(axis=axis),
                                       L.ReLU()],
    "dense bn softmax": lambda df, axis: [L.Flatten(), L.Dense(7), L.BatchNormalization(), L.Activation("softmax")],
}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", list(FOLD_CASES))
def test_folded_batch_norm_equals_unfolded(case, data_format, rng, monkeypatch):
    axis = -1 if data_format == "channels_last" else 1
    shape = (8, 7, 4) if data_format == "channels_last" else (4, 8, 7)
    model = L.Sequential([L.Input(shape=shape), *FOLD_CASES[case](data_format, axis)])
    random_batch_norms(model, rng)
    x = rng.standard_normal((3,) + shape).astype(np.float32)
    expected = reference_forward(model, x)
    layer_by_layer = unfused(model, x)

    def not_called(self, inputs):
        raise AssertionError(f"{self.name} ran on its own: it should be folded/fused")

    monkeypatch.setattr(L.BatchNormalization, "call", not_called)
    monkeypatch.setattr(L.ReLU, "call", not_called)
    monkeypatch.setattr(L.Activation, "call", not_called)
    fused = model(x)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(fused, expected, rtol=2e-5, atol=2e-5 * scale)
    np.testing.assert_allclose(fused, layer_by_layer, rtol=2e-5, atol=2e-5 * scale)


def test_folding_follows_set_weights(rng):
    model = L.Sequential([L.Input(shape=(6, 6, 3)), L.Conv2D(4, 3, use_bias=False), L.BatchNormalization(),
                          L.ReLU()])
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    before = model(x)
    random_batch_norms(model, rng)           # new statistics...
    after = model(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, reference_forward(model, x), rtol=2e-5, atol=2e-5 * np.abs(after).max())
    conv = model.layers[0]
    conv.set_weights([rng.standard_normal(conv.kernel.shape)])  # ...and a new kernel
    np.testing.assert_allclose(model(x), reference_forward(model, x), rtol=2e-5, atol=2e-5 * np.abs(after).max())


def test_batch_norm_on_another_axis_is_not_folded(rng):
    """A channels_first convolution followed by a BatchNormalization over the last axis (width)."""
    model = L.Sequential([L.Input(shape=(3, 5, 6)), L.Conv2D(4, 1, data_format="channels_first"),
                          L.BatchNormalization(axis=-1)])
    random_batch_norms(model, rng)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference_forward(model, x), rtol=2e-5, atol=1e-5)


def test_conv_with_its_own_activation_keeps_the_batch_norm_after_it(rng):
    model = L.Sequential([L.Input(shape=(6, 6, 3)), L.Conv2D(4, 3, activation="relu"), L.BatchNormalization()])
    random_batch_norms(model, rng)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference_forward(model, x), rtol=2e-5, atol=1e-5)


# ------------------------------------------------------------------------------ subclassing

class Residual(L.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.main = [L.Conv2D(filters, 3, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU()]
        self.extra = {"out": L.Conv2D(filters, 1)}
        self.activation = L.Activation("relu")

    def call(self, inputs):
        y = inputs
        for layer in self.main:
            y = layer(y)
        return self.activation(self.extra["out"](y) + inputs)


class Scale(L.Layer):
    """A layer with its own weight and a NumPy call()."""

    def build(self, input_shape):
        self.factor = self.add_weight("factor", (input_shape[-1],), "ones")
        super().build(input_shape)

    def call(self, inputs):
        return np.asarray(inputs) * self.factor


class Net(L.Model):
    def __init__(self):
        super().__init__()
        self.block = Residual(3)
        self.scale = Scale(trainable=False)
        self.pool = L.GlobalAveragePooling2D()
        self.head = L.Dense(2)

    def call(self, inputs):
        return self.head(self.pool(self.scale(self.block(inputs))))


def test_subclassed_layers_track_sublayers_and_weights(rng):
    block = Residual(3)
    assert [type(layer).__name__ for layer in block.layers] == ["Conv2D", "BatchNormalization", "ReLU", "Conv2D",
                                                               "Activation"]
    y = block(rng.standard_normal((2, 5, 5, 3)).astype(np.float32))
    assert y.shape == (2, 5, 5, 3) and block.output_shape == (None, 5, 5, 3)
    conv_params, bn_params, out_params = 3 * 3 * 3 * 3, 4 * 3, 3 * 3 + 3
    assert block.count_params() == conv_params + bn_params + out_params
    # Keras's Layer order: trainable weights (conv, gamma, beta, 1x1 conv), then the statistics
    assert [w.shape for w in block.get_weights()] == [(3, 3, 3, 3), (3,), (3,), (1, 1, 3, 3), (3,), (3,), (3,)]
    assert len(block.trainable_weights) == 5 and len(block.non_trainable_weights) == 2


def test_subclassed_model(rng):
    model = Net()
    assert model.name == "net"
    with pytest.raises(ValueError, match="not built"):
        model.count_params()
    model.build((None, 6, 6, 3))  # Keras-style; found by tracing call(), no forward pass
    assert model.output_shape == (None, 2) and model.block.output_shape == (None, 6, 6, 3)
    block_params = 3 * 3 * 3 * 3 + 4 * 3 + 3 * 3 + 3
    assert model.count_params() == block_params + 3 + 3 * 2 + 2
    # Keras's Model order: each layer's weights in turn
    assert [w.shape for w in model.get_weights()] == [(3, 3, 3, 3), (3,), (3,), (1, 1, 3, 3), (3,), (3,), (3,), (3,),
                                                      (3, 2), (2,)]
    non_trainable = [w.shape for w in model.non_trainable_weights]
    assert non_trainable == [(3,), (3,), (3,)]  # moving mean/variance, and Scale (trainable=False)
    weights = [rng.standard_normal(w.shape) if w.ndim > 1 else rng.uniform(0.5, 1.5, w.shape)
               for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.standard_normal((3, 6, 6, 3)).astype(np.float32)
    expected = reference_forward(model, x)
    np.testing.assert_allclose(model.predict(x, batch_size=2), expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())
    lines = []
    model.summary(print_fn=lines.append)
    rows = [line.split() for line in lines[0].splitlines() if line.startswith(("residual", "scale", "dense"))]
    assert rows == [["residual", "(Residual)", "(None,", "6,", "6,", "3)", f"{block_params:,}", f"{6 * 6 * 3 * 27 + 6 * 6 * 3 * 3:,}"],
                    ["scale", "(Scale)", "(None,", "6,", "6,", "3)", "3", "0"],
                    ["dense", "(Dense)", "(None,", "2)", "8", "6"]]
    assert "Non-trainable params: 9" in lines[0]


def test_numpy_call_output_shape_from_a_zero_batch():
    layer = Scale()
    layer.build((None, 4, 4, 5))
    assert layer.output_shape == (None, 4, 4, 5) and layer.count_params() == 5


def test_forgetting_super_init_is_reported():
    class Broken(L.Layer):
        def __init__(self):
            self.conv = L.Conv2D(2, 1)

        def call(self, inputs):
            return self.conv(inputs)

    with pytest.raises(RuntimeError, match=r"Broken.__init__ must call super\(\).__init__\(\)"):
        Broken()(np.zeros((1, 2, 2, 1), np.float32))


def test_symbolic_tensors_add_and_refuse_numpy():
    x = L.Input(shape=(4, 4, 3))
    assert x.shape == (None, 4, 4, 3) and x.ndim == 4
    assert (x + x).shape == (None, 4, 4, 3)
    with pytest.raises(ValueError, match="do not match"):
        x + L.Input(shape=(4, 4, 2))
    with pytest.raises(TypeError, match="no values"):
        np.maximum(x, 0)


def test_shared_layer_with_different_shapes_shows_multiple():
    class TwoScales(L.Model):
        def __init__(self):
            super().__init__()
            self.relu = L.ReLU()
            self.pool = L.MaxPooling2D()

        def call(self, inputs):
            return self.relu(self.pool(self.relu(inputs)))

    model = TwoScales()
    model.build((None, 8, 8, 2))
    lines = []
    model.summary(print_fn=lines.append)
    assert "re_lu (ReLU)" in lines[0] and "multiple" in lines[0]
    assert model.output_shape == (None, 4, 4, 2)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_an_empty_batch_runs_through_every_layer_kind(data_format):
    df = dict(data_format=data_format)
    axis = -1 if data_format == "channels_last" else 1
    shape = (9, 9, 3) if data_format == "channels_last" else (3, 9, 9)
    model = L.Sequential([
        L.Input(shape=shape), L.ZeroPadding2D(1, **df), L.Conv2D(4, 3, use_bias=False, **df),
        L.BatchNormalization(axis=axis), L.ReLU(), L.DepthwiseConv2D(3, padding="same", **df),
        L.SeparableConv2D(5, 3, **df), L.Conv2DTranspose(3, 2, strides=2, **df), L.AveragePooling2D(2, **df),
        L.MaxPooling2D(2, padding="same", **df), L.BatchNormalization(axis=axis), L.Activation("tanh"),
        L.Flatten(), L.Dense(6), L.Dropout(0.5), L.Activation("softmax")])
    empty = np.zeros((0,) + shape, np.float32)
    for y in (model(empty), model.predict(empty), unfused(model, empty)):
        assert y.shape == (0, 6) and y.dtype == np.float32
