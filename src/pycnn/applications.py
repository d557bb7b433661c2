"""Classic CNN architectures built from pycnn.layers, with random weights (like
keras.applications with weights=None): the networks of the examples and the tests, and worked
examples of writing blocks as Layer subclasses.

    from pycnn import applications
    model = applications.resnet34()          # 224x224x3, channels_last
    model.summary()

input_shape follows the data format, as in Keras: (H, W, C) for channels_last, (C, H, W) for
channels_first. Where a PyTorch model is the usual reference (ResNet-34, MobileNet) the
convolutions pad like PyTorch (explicit padding=1 on both sides, see pycnn.layers) so that the
same weights give the same outputs as torchvision's layers.
"""
from __future__ import annotations

import numpy as np

from .layers import (AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Conv2DTranspose, Dense,
                     DepthwiseConv2D, Flatten, GlobalAveragePooling2D, Input, Layer, MaxPooling2D, ReLU,
                     SeparableConv2D, Sequential)
from .layers._base import keras_data_format

__all__ = [
    "ResidualUnit", "InceptionModule", "XceptionBlock",
    "lenet5", "mnist_convnet", "cats_vs_dogs_convnet", "vgg16", "resnet34", "inception_module",
    "xception_block", "mobilenet_blocks", "fcn_upsampler",
]


def _input(input_shape, default_size, default_channels, data_format):
    """Input of `input_shape`, or of the default image size in the data format's order."""
    if input_shape is None:
        h, w = default_size
        input_shape = (h, w, default_channels) if data_format == "channels_last" else (default_channels, h, w)
    return Input(shape=input_shape)


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


# ---------------------------------------------------------------------------------------------
# Blocks, written as Keras users write them
# ---------------------------------------------------------------------------------------------

class ResidualUnit(Layer):
    """ResNet's basic residual unit (torchvision BasicBlock): 3x3 conv - BN - ReLU - 3x3 conv -
    BN, plus the input, then ReLU. When the unit changes the size or the channel count, the
    shortcut is a strided 1x1 convolution with BN (a projection shortcut)."""

    def __init__(self, filters, strides=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = filters, strides
        self.data_format = keras_data_format(data_format)
        axis = _channel_axis(self.data_format)
        self.main = Sequential([
            Conv2D(filters, 3, strides=strides, padding=1, use_bias=False, data_format=self.data_format),
            BatchNormalization(axis=axis),
            ReLU(),
            Conv2D(filters, 3, padding=1, use_bias=False, data_format=self.data_format),
            BatchNormalization(axis=axis),
        ])
        self.activation = ReLU()

    def build(self, input_shape):
        channels = input_shape[_channel_axis(self.data_format)]
        if self.strides != 1 or channels != self.filters:
            self.shortcut = Sequential([
                Conv2D(self.filters, 1, strides=self.strides, use_bias=False, data_format=self.data_format),
                BatchNormalization(axis=_channel_axis(self.data_format)),
            ])
        else:
            self.shortcut = None
        super().build(input_shape)

    def call(self, inputs):
        shortcut = inputs if self.shortcut is None else self.shortcut(inputs)
        y = self.main(inputs)
        if isinstance(y, np.ndarray) and y is not inputs and y.dtype == np.result_type(y, shortcut):
            # y is this call's own new array: add the shortcut and apply the ReLU in place,
            # sparing two temporaries per unit
            np.add(y, shortcut, out=y)
            return np.maximum(y, y.dtype.type(0), out=y)
        return self.activation(y + shortcut)


class InceptionModule(Layer):
    """GoogLeNet's inception module: a 1x1 branch, 1x1 -> 3x3, 1x1 -> 5x5, and 3x3 max pool
    -> 1x1, each convolution with ReLU, joined along the channels."""

    def __init__(self, filters_1x1, filters_3x3_reduce, filters_3x3, filters_5x5_reduce, filters_5x5,
                 filters_pool_proj, data_format=None, **kwargs):
        super().__init__(**kwargs)
        df = keras_data_format(data_format)

        def conv(filters, size):
            return Conv2D(filters, size, padding="same", activation="relu", data_format=df)

        self.branch_1x1 = conv(filters_1x1, 1)
        self.branch_3x3_reduce = conv(filters_3x3_reduce, 1)
        self.branch_3x3 = conv(filters_3x3, 3)
        self.branch_5x5_reduce = conv(filters_5x5_reduce, 1)
        self.branch_5x5 = conv(filters_5x5, 5)
        self.branch_pool = MaxPooling2D(3, strides=1, padding="same", data_format=df)
        self.branch_pool_proj = conv(filters_pool_proj, 1)
        self.concatenate = Concatenate(axis=_channel_axis(df))

    def call(self, inputs):
        return self.concatenate([
            self.branch_1x1(inputs),
            self.branch_3x3(self.branch_3x3_reduce(inputs)),
            self.branch_5x5(self.branch_5x5_reduce(inputs)),
            self.branch_pool_proj(self.branch_pool(inputs)),
        ])


class XceptionBlock(Layer):
    """Xception's entry-flow block: ReLU - separable 3x3 - BN, twice, then a 3x3/2 max pool;
    the shortcut is a 1x1/2 convolution with BN (Keras's Xception, blocks 3 and 4)."""

    def __init__(self, filters, data_format=None, **kwargs):
        super().__init__(**kwargs)
        df = keras_data_format(data_format)
        axis = _channel_axis(df)
        self.main = Sequential([
            ReLU(),
            SeparableConv2D(filters, 3, padding="same", use_bias=False, data_format=df),
            BatchNormalization(axis=axis),
            ReLU(),
            SeparableConv2D(filters, 3, padding="same", use_bias=False, data_format=df),
            BatchNormalization(axis=axis),
            MaxPooling2D(3, strides=2, padding="same", data_format=df),
        ])
        self.shortcut = Sequential([
            Conv2D(filters, 1, strides=2, padding="same", use_bias=False, data_format=df),
            BatchNormalization(axis=axis),
        ])

    def call(self, inputs):
        return self.main(inputs) + self.shortcut(inputs)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

def lenet5(input_shape=None, classes=10, data_format=None) -> Sequential:
    """LeNet-5 (LeCun et al. 1998) in its common modern form: 32x32x1 input, tanh, average
    pooling, C5 as a 5x5 convolution to 1x1, F6 of 84 units, softmax output."""
    df = keras_data_format(data_format)
    return Sequential([
        _input(input_shape, (32, 32), 1, df),
        Conv2D(6, 5, activation="tanh", data_format=df),
        AveragePooling2D(2, data_format=df),
        Conv2D(16, 5, activation="tanh", data_format=df),
        AveragePooling2D(2, data_format=df),
        Conv2D(120, 5, activation="tanh", data_format=df),
        Flatten(),
        Dense(84, activation="tanh"),
        Dense(classes, activation="softmax"),
    ], name="lenet5")


def mnist_convnet(input_shape=None, classes=10, data_format=None) -> Sequential:
    """The classic Keras MNIST convnet (Chollet, Deep Learning with Python, 5.1): 93,322 params."""
    df = keras_data_format(data_format)
    return Sequential([
        _input(input_shape, (28, 28), 1, df),
        Conv2D(32, 3, activation="relu", data_format=df),
        MaxPooling2D(2, data_format=df),
        Conv2D(64, 3, activation="relu", data_format=df),
        MaxPooling2D(2, data_format=df),
        Conv2D(64, 3, activation="relu", data_format=df),
        Flatten(),
        Dense(64, activation="relu"),
        Dense(classes, activation="softmax"),
    ], name="mnist_convnet")


def cats_vs_dogs_convnet(input_shape=None, data_format=None) -> Sequential:
    """The cats-vs-dogs convnet of Deep Learning with Python (5.2): 150x150x3, four conv/pool
    stages, Dense 512, one sigmoid output; 3,453,121 params."""
    df = keras_data_format(data_format)
    layers = [_input(input_shape, (150, 150), 3, df)]
    for filters in (32, 64, 128, 128):
        layers += [Conv2D(filters, 3, activation="relu", data_format=df), MaxPooling2D(2, data_format=df)]
    layers += [Flatten(), Dense(512, activation="relu"), Dense(1, activation="sigmoid")]
    return Sequential(layers, name="cats_vs_dogs_convnet")


def vgg16(include_top=True, input_shape=None, classes=1000, classifier_activation="softmax",
          data_format=None) -> Sequential:
    """VGG-16 as keras.applications.VGG16 (layer names too): 138,357,544 params with the top
    (which needs a 224x224 input); include_top=False ends at block5_pool."""
    df = keras_data_format(data_format)
    layers = [_input(input_shape, (224, 224), 3, df)]
    for block, (filters, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        layers += [Conv2D(filters, 3, padding="same", activation="relu", data_format=df, name=f"block{block}_conv{i}")
                   for i in range(1, convs + 1)]
        layers.append(MaxPooling2D(2, strides=2, data_format=df, name=f"block{block}_pool"))
    if include_top:
        layers += [Flatten(name="flatten"), Dense(4096, activation="relu", name="fc1"),
                   Dense(4096, activation="relu", name="fc2"),
                   Dense(classes, activation=classifier_activation, name="predictions")]
    return Sequential(layers, name="vgg16")


def resnet34(include_top=True, input_shape=None, classes=1000, classifier_activation="softmax",
             data_format=None) -> Sequential:
    """ResNet-34 (He et al. 2015) as torchvision's resnet34: a 7x7/2 stem, 3x3/2 max pool,
    [3, 4, 6, 3] residual units of 64..512 filters with projection shortcuts, global average
    pooling and the classifier. 21,797,672 trainable params (torchvision's count) plus the
    BatchNormalization moving statistics. include_top=False ends at the last residual unit."""
    df = keras_data_format(data_format)
    axis = _channel_axis(df)
    model = Sequential([
        _input(input_shape, (224, 224), 3, df),
        Conv2D(64, 7, strides=2, padding=3, use_bias=False, data_format=df),
        BatchNormalization(axis=axis),
        ReLU(),
        MaxPooling2D(3, strides=2, padding=1, data_format=df),
    ], name="resnet34")
    for filters, units, strides in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(units):
            model.add(ResidualUnit(filters, strides=strides if i == 0 else 1, data_format=df))
    if include_top:
        model.add(GlobalAveragePooling2D(data_format=df))
        model.add(Dense(classes, activation=classifier_activation))
    return model


def inception_module(input_shape=None, data_format=None) -> Sequential:
    """GoogLeNet's inception (3a) module on its 28x28x192 input: 64 + 128 + 32 + 32 = 256
    output channels."""
    df = keras_data_format(data_format)
    return Sequential([_input(input_shape, (28, 28), 192, df), InceptionModule(64, 96, 128, 16, 32, 32, data_format=df)],
                      name="inception_3a")


def xception_block(input_shape=None, filters=256, data_format=None) -> Sequential:
    """One Xception entry-flow block (Keras Xception block 3) on a 56x56x128 input."""
    df = keras_data_format(data_format)
    return Sequential([_input(input_shape, (56, 56), 128, df), XceptionBlock(filters, data_format=df)],
                      name="xception_block")


def mobilenet_blocks(input_shape=None, data_format=None) -> Sequential:
    """MobileNet v1's stem and first three depthwise-separable blocks (to 56x56x128): 3x3
    depthwise - BN - ReLU6 - 1x1 conv - BN - ReLU6, padded like PyTorch ports."""
    df = keras_data_format(data_format)
    axis = _channel_axis(df)
    layers = [_input(input_shape, (224, 224), 3, df),
              Conv2D(32, 3, strides=2, padding=1, use_bias=False, data_format=df),
              BatchNormalization(axis=axis), ReLU(6.0)]
    for filters, strides in ((64, 1), (128, 2), (128, 1)):
        layers += [DepthwiseConv2D(3, strides=strides, padding=1, use_bias=False, data_format=df),
                   BatchNormalization(axis=axis), ReLU(6.0),
                   Conv2D(filters, 1, use_bias=False, data_format=df),
                   BatchNormalization(axis=axis), ReLU(6.0)]
    return Sequential(layers, name="mobilenet_blocks")


def fcn_upsampler(input_shape=None, classes=21, data_format=None) -> Sequential:
    """A small fully convolutional segmenter: three 3x3/2 convolutions down to 1/8, a 1x1
    class score, and three 4x4/2 transposed convolutions (BN + ReLU between) back to the
    input size: per-pixel class scores."""
    df = keras_data_format(data_format)
    axis = _channel_axis(df)
    layers = [_input(input_shape, (64, 64), 3, df)]
    for filters in (32, 64, 128):
        layers.append(Conv2D(filters, 3, strides=2, padding="same", activation="relu", data_format=df))
    layers.append(Conv2D(classes, 1, data_format=df))
    for filters in (64, 32):
        layers += [Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, data_format=df),
                   BatchNormalization(axis=axis), ReLU()]
    layers.append(Conv2DTranspose(classes, 4, strides=2, padding="same", data_format=df))
    return Sequential(layers, name="fcn_upsampler")
