"""An independent forward pass for pycnn.layers models: every layer computed with
pycnn.reference (or plain NumPy) in float64 from its Keras-layout get_weights() and its public
settings, one layer at a time -- nothing fused, nothing folded, no layout code shared with the
layers under test.

Blocks written as Layer subclasses run their own call(), with each sublayer's computation
swapped for this reference while it runs.
"""
from __future__ import annotations

import numpy as np

import pycnn.reference as ref
from pycnn import layers as L


def _activation(y, activation):
    """Keras activation names on a float64 array (softmax over the last axis)."""
    if activation is None or activation == "linear":
        return y
    if callable(activation):
        return np.asarray(activation(y))
    if activation == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if activation == "leaky_relu":
        return ref.apply_activation(y, ("leaky_relu", 0.2))  # Keras's slope
    return ref.apply_activation(y, activation)


def _layout(layer):
    return "NHWC" if layer.data_format == "channels_last" else "NCHW"


def _conv_kernel_nchw(kernel):
    """Keras (KH, KW, C, O) -> (O, C, KH, KW)."""
    return kernel.transpose(3, 2, 0, 1)


def _depthwise_nchw(kernel):
    kh, kw, c, m = kernel.shape
    out = np.empty((c * m, 1, kh, kw), kernel.dtype)
    for ci in range(c):
        for mi in range(m):
            out[ci * m + mi, 0] = kernel[:, :, ci, mi]
    return out


def _bias(layer, weights):
    return weights[-1] if layer.use_bias else None


def _conv2d(layer, x):
    w = layer.get_weights()
    kernel = w[0] if layer.data_format == "channels_last" else _conv_kernel_nchw(w[0])
    y = ref.conv2d(x, kernel, _bias(layer, w), stride=layer.strides, padding=layer.padding,
                   dilation=layer.dilation_rate, groups=layer.groups, data_format=_layout(layer))
    return _activation(y, layer.activation)


def _depthwise(layer, x):
    w = layer.get_weights()
    kernel = w[0] if layer.data_format == "channels_last" else _depthwise_nchw(w[0])
    y = ref.depthwise_conv2d(x, kernel, _bias(layer, w), stride=layer.strides, padding=layer.padding,
                             dilation=layer.dilation_rate, data_format=_layout(layer))
    return _activation(y, layer.activation)


def _separable(layer, x):
    w = layer.get_weights()
    depthwise, pointwise = w[0], w[1]
    if layer.data_format == "channels_first":
        depthwise, pointwise = _depthwise_nchw(depthwise), _conv_kernel_nchw(pointwise)
    y = ref.separable_conv2d(x, depthwise, pointwise, _bias(layer, w), stride=layer.strides,
                             padding=layer.padding, dilation=layer.dilation_rate, data_format=_layout(layer))
    return _activation(y, layer.activation)


def _transpose(layer, x):
    w = layer.get_weights()
    kernel = w[0] if layer.data_format == "channels_last" else w[0].transpose(3, 2, 0, 1)  # -> (C, O, KH, KW)
    y = ref.conv_transpose2d(x, kernel, _bias(layer, w), stride=layer.strides, padding=layer.padding,
                             output_padding=layer.output_padding, dilation=layer.dilation_rate,
                             data_format=_layout(layer))
    return _activation(y, layer.activation)


def _dense(layer, x):
    w = layer.get_weights()
    y = np.asarray(x, np.float64) @ w[0].astype(np.float64)
    if layer.use_bias:
        y = y + w[1]
    return _activation(y, layer.activation)


def _batch_norm(layer, x):
    w = [a.astype(np.float64) for a in layer.get_weights()]
    gamma = w.pop(0) if layer.scale else 1.0
    beta = w.pop(0) if layer.center else 0.0
    mean, variance = w
    shape = [1] * x.ndim
    shape[layer.axis % x.ndim] = -1
    reshape = (lambda a: a.reshape(shape) if isinstance(a, np.ndarray) else a)
    return (np.asarray(x, np.float64) - reshape(mean)) / np.sqrt(reshape(variance) + layer.epsilon) * reshape(gamma) \
        + reshape(beta)


def _relu(layer, x):
    x = np.asarray(x, np.float64)
    y = np.where(x >= layer.threshold, x, layer.negative_slope * (x - layer.threshold))
    return y if layer.max_value is None else np.minimum(y, layer.max_value)


def _flatten(layer, x):
    if layer.data_format == "channels_first" and x.ndim >= 3:
        x = np.moveaxis(x, 1, -1)
    return np.reshape(x, (x.shape[0], -1))


def _zero_padding(layer, x):
    (top, bottom), (left, right) = layer.padding
    spatial = [(top, bottom), (left, right)]
    pads = [(0, 0)] + spatial + [(0, 0)] if layer.data_format == "channels_last" else [(0, 0), (0, 0)] + spatial
    return np.pad(x, pads)


def _pool(fn):
    def pool(layer, x):
        return fn(np.asarray(x, np.float64), layer.pool_size, layer.strides, layer.padding,
                  data_format=_layout(layer))
    return pool


def _global(fn):
    def pool(layer, x):
        return fn(np.asarray(x, np.float64), data_format=_layout(layer), keepdims=layer.keepdims)
    return pool


_LEAVES = [
    (L.Conv2D, _conv2d),
    (L.DepthwiseConv2D, _depthwise),
    (L.SeparableConv2D, _separable),
    (L.Conv2DTranspose, _transpose),
    (L.Dense, _dense),
    (L.BatchNormalization, _batch_norm),
    (L.ReLU, _relu),
    (L.Activation, lambda layer, x: _activation(np.asarray(x, np.float64), layer.activation)),
    (L.Dropout, lambda layer, x: x),
    (L.Flatten, _flatten),
    (L.ZeroPadding2D, _zero_padding),
    (L.MaxPooling2D, _pool(ref.max_pool2d)),
    (L.AveragePooling2D, _pool(ref.avg_pool2d)),
    (L.GlobalAveragePooling2D, _global(ref.global_avg_pool2d)),
    (L.GlobalMaxPooling2D, _global(ref.global_max_pool2d)),
    (L.Add, lambda layer, xs: sum(np.asarray(x, np.float64) for x in xs)),
    (L.Concatenate, lambda layer, xs: np.concatenate([np.asarray(x, np.float64) for x in xs], axis=layer.axis)),
]


def reference_forward(layer, x):
    """The output of `layer` (a layer, Sequential or Layer/Model subclass) for x, in float64."""
    for kind, forward in _LEAVES:
        if isinstance(layer, kind):
            return forward(layer, x)
    if isinstance(layer, L.Sequential):
        for sub in layer.layers:
            x = reference_forward(sub, x)
        return x
    # A block: run its own call() with every sublayer computing through this reference.
    patched = layer.layers
    for sub in patched:
        sub.call = (lambda s: lambda inputs, *args, **kwargs: reference_forward(s, inputs))(sub)
    try:
        return type(layer).call(layer, x)  # the class's call: the instance's may be patched by an outer block
    finally:
        for sub in patched:
            del sub.call
