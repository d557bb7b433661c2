"""Keras-style layers on pycnn's kernels, for inference.

    from pycnn.layers import Sequential, Input, Conv2D, MaxPooling2D, Flatten, Dense

    model = Sequential([
        Input(shape=(28, 28, 1)),
        Conv2D(32, 3, activation="relu"), MaxPooling2D(2),
        Conv2D(64, 3, activation="relu"), MaxPooling2D(2),
        Conv2D(64, 3, activation="relu"),
        Flatten(), Dense(64, activation="relu"), Dense(10, activation="softmax"),
    ])
    model.summary()
    probabilities = model.predict(images, batch_size=64)

Keras's names, defaults (channels_last, 'valid' padding, glorot-uniform kernels, zero biases,
BatchNormalization epsilon 1e-3), weight layouts in get_weights/set_weights, parameter counts
and output shapes. channels_first layers take NCHW batches and give the kernels PyTorch weight
layouts, while get/set_weights stay in Keras layouts (as Keras does). Composition: Sequential,
and Layer/Model subclasses with call() (residual units, inception modules); see Model.

Beyond Keras: explicit integer padding (as pycnn.ops takes it) on convolutions and pooling to
match PyTorch models; summary() has a MACs column; inside a Sequential, BatchNormalization after
a convolution or Dense is folded into its weights and the activation after is fused.
"""
from ._base import Input, Layer, SymbolicTensor, clear_session, set_seed
from ._basic import (Activation, Add, BatchNormalization, Concatenate, Dropout, Flatten, ReLU,
                     ZeroPadding2D)
from ._convolution import Conv2D, Conv2DTranspose, Dense, DepthwiseConv2D, SeparableConv2D
from ._models import Model, Sequential
from ._pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                       GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)

__all__ = [
    "Activation", "Add", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Concatenate",
    "Conv2D", "Conv2DTranspose", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
    "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "Input",
    "Layer", "MaxPool2D", "MaxPooling2D", "Model", "ReLU", "SeparableConv2D", "Sequential",
    "SymbolicTensor", "ZeroPadding2D", "clear_session", "set_seed",
]
