"""Layers that run a pycnn convolution kernel: Conv2D, DepthwiseConv2D, SeparableConv2D,
Conv2DTranspose, and Dense (a 1x1 convolution over a one-row image of the batch).

Weights are kept in Keras layouts (what get_weights/set_weights show). A layer hands the
kernel its weights in the kernel's layout for the layer's data format -- PyTorch layouts for
channels_first -- with the bias and activation fused into the call, and, inside a Sequential,
the following BatchNormalization folded in; conv2d weights (Conv2D, Dense) are then packed with
ops.pack_conv2d_weight, Conv2DTranspose's with ops.pack_conv_transpose2d_weight. That prepared
form is made once per weight version and reused by every call.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _args, ops
from ._base import (ActivationSpec, Layer, check_initializer, conv_output_length, image_axes, image_shape,
                    keras_data_format, known_channels, layout_of, make_shape, padding_spec)


class _Convolution(Layer):
    """What the convolution layers share: activation, bias, data format, and the prepared
    (layout-converted, optionally BN-folded) weights behind every call."""

    def __init__(self, *, activation=None, use_bias=True, data_format=None, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self._activation = ActivationSpec(activation, f"{self._describe()} activation")
        self.use_bias = _args.flag(use_bias, "use_bias")
        self.data_format = keras_data_format(data_format)
        self._layout = layout_of(self.data_format)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer")
        self._prepared: dict = {}

    def _add_bias(self, channels):
        self.bias = self.add_weight("bias", (channels,), self.bias_initializer) if self.use_bias else None

    @property
    def output_channel_axis(self) -> int:
        """The axis a following BatchNormalization must normalize for it to fold in."""
        return image_axes(self.data_format)[0]

    # What each convolution defines:
    #   _kernels()                     its kernel weights, Keras layouts
    #   _fold(kernels, scale)          kernels scaled per output channel (float64)
    #   _to_op_layout(kernels)         the kernels in the op's layout for self._layout
    #   _pack(kernels)                 the op's packed form, where it has one (conv2d, conv_transpose2d)
    #   _run_op(x, kernels, bias, act) one call of the op

    def _pack(self, kernels):
        return kernels

    def _prepare(self, batch_norm, activation):
        kernels = self._kernels()
        bias = self.bias
        if batch_norm is not None:
            scale, shift = batch_norm.scale_and_shift()
            kernels = self._fold([k.astype(np.float64) for k in kernels], scale)
            bias = shift if bias is None else bias * scale + shift
        kernels = self._pack([np.ascontiguousarray(k, self._dtype) for k in self._to_op_layout(kernels)])
        bias = None if bias is None else np.ascontiguousarray(bias, self._dtype)
        fused = activation.fused
        return lambda x: self._run_op(x, kernels, bias, fused)

    def _run(self, x, batch_norm=None, activation=None):
        """The layer's output, with `batch_norm` folded into the weights and `activation` (of a
        following layer; the layer's own activation is then linear) fused into the kernel."""
        activation = self._activation if activation is None else activation
        # one prepared form per way of running (alone, or with a given BN and activation), remade
        # when the weights behind it change
        mode = (batch_norm, activation.key())
        versions = (self._weights_version, None if batch_norm is None else batch_norm._weights_version)
        entry = self._prepared.get(mode)
        if entry is None or entry[0] != versions:
            entry = self._prepared[mode] = (versions, self._prepare(batch_norm, activation))
        y = entry[1](x)
        return y if activation.after is None else activation.apply(y)

    def call(self, inputs):
        return self._run(inputs)


class _SpatialConvolution(_Convolution):
    """A convolution over H and W: kernel size, strides, padding, dilation."""

    def __init__(self, kernel_size, *, strides=(1, 1), padding="valid", dilation_rate=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _args.pair(kernel_size, "kernel_size")
        self.strides = _args.pair(strides, "strides")
        self.padding = padding_spec(padding)
        self.dilation_rate = _args.pair(dilation_rate, "dilation_rate")

    def _input_axes_for(self, input_shape):
        return {self.output_channel_axis: input_shape[self.output_channel_axis]}

    def _output_spatial(self, spatial):
        return tuple(conv_output_length(size, self.kernel_size[i], self.strides[i], self.dilation_rate[i],
                                        self.padding if isinstance(self.padding, str) else self.padding[i],
                                        f"{self._describe()} {('height', 'width')[i]}")
                     for i, size in enumerate(spatial))

    def _op_arguments(self):
        return dict(stride=self.strides, padding=self.padding, dilation=self.dilation_rate,
                    data_format=self._layout)

    def _output_channels(self, channels):
        return self.filters

    def compute_output_shape(self, input_shape):
        n, channels, spatial = image_shape(input_shape, self, self.data_format)
        return make_shape(n, self._output_channels(channels), self._output_spatial(spatial), self.data_format)


def _positive(value, name):
    return _args.integer(value, name)


class Conv2D(_SpatialConvolution):
    """2-D convolution (Keras Conv2D): kernel (KH, KW, C/groups, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias, data_format=data_format,
                         bias_initializer=bias_initializer, **kwargs)
        self.filters = _positive(filters, "filters")
        self.groups = _positive(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(f"{self._describe()}: groups={self.groups} must divide filters={self.filters}")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self._build_from_declared_shape()

    def build(self, input_shape):
        _, channels, _ = image_shape(input_shape, self, self.data_format)
        channels = known_channels(channels, self, input_shape)
        if channels % self.groups:
            raise ValueError(f"{self._describe()}: groups={self.groups} must divide the input channels {channels}")
        self.kernel = self.add_weight("kernel", (*self.kernel_size, channels // self.groups, self.filters),
                                      self.kernel_initializer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def _own_macs(self):
        spatial = image_shape(self._output_shape, self, self.data_format)[2]
        if None in spatial:
            return None
        return math.prod(spatial) * self.filters * self.kernel.shape[0] * self.kernel.shape[1] * self.kernel.shape[2]

    def _kernels(self):
        return [self.kernel]

    def _fold(self, kernels, scale):
        return [kernels[0] * scale]

    def _to_op_layout(self, kernels):
        return kernels if self._layout == "NHWC" else [kernels[0].transpose(3, 2, 0, 1)]

    def _pack(self, kernels):
        return [ops.pack_conv2d_weight(kernels[0], groups=self.groups, data_format=self._layout, dtype=self._dtype)]

    def _run_op(self, x, kernels, bias, activation):
        return ops.conv2d(x, kernels[0], bias, groups=self.groups, activation=activation, **self._op_arguments())


def _depthwise_to_nchw(kernel):
    """Keras (KH, KW, C, M) -> PyTorch (C*M, 1, KH, KW): output channel c*M + m."""
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


class DepthwiseConv2D(_SpatialConvolution):
    """Depthwise convolution (Keras DepthwiseConv2D): depthwise_kernel (KH, KW, C, M) with
    M = depth_multiplier, bias (C*M,); output channel c*M + m."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias, data_format=data_format,
                         bias_initializer=bias_initializer, **kwargs)
        self.depth_multiplier = _positive(depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = check_initializer(depthwise_initializer, "depthwise_initializer")
        self._build_from_declared_shape()

    def build(self, input_shape):
        _, channels, _ = image_shape(input_shape, self, self.data_format)
        channels = known_channels(channels, self, input_shape)
        shape = (*self.kernel_size, channels, self.depth_multiplier)
        self.depthwise_kernel = self.add_weight("depthwise_kernel", shape, self.depthwise_initializer)
        self._add_bias(channels * self.depth_multiplier)
        super().build(input_shape)

    def _output_channels(self, channels):
        return None if channels is None else channels * self.depth_multiplier

    def _own_macs(self):
        _, channels, spatial = image_shape(self._output_shape, self, self.data_format)
        if None in spatial:
            return None
        return math.prod(spatial) * channels * self.kernel_size[0] * self.kernel_size[1]

    def _kernels(self):
        return [self.depthwise_kernel]

    def _fold(self, kernels, scale):
        kh, kw, c, m = kernels[0].shape
        return [kernels[0] * scale.reshape(c, m)]

    def _to_op_layout(self, kernels):
        return kernels if self._layout == "NHWC" else [_depthwise_to_nchw(kernels[0])]

    def _run_op(self, x, kernels, bias, activation):
        return ops.depthwise_conv2d(x, kernels[0], bias, activation=activation, **self._op_arguments())


class SeparableConv2D(_SpatialConvolution):
    """Depthwise then 1x1 convolution (Keras SeparableConv2D): depthwise_kernel (KH, KW, C, M),
    pointwise_kernel (1, 1, C*M, filters), bias (filters,); one fused pycnn kernel."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias, data_format=data_format,
                         bias_initializer=bias_initializer, **kwargs)
        self.filters = _positive(filters, "filters")
        self.depth_multiplier = _positive(depth_multiplier, "depth_multiplier")
        self.depthwise_initializer = check_initializer(depthwise_initializer, "depthwise_initializer")
        self.pointwise_initializer = check_initializer(pointwise_initializer, "pointwise_initializer")
        self._build_from_declared_shape()

    def build(self, input_shape):
        _, channels, _ = image_shape(input_shape, self, self.data_format)
        channels = known_channels(channels, self, input_shape)
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (*self.kernel_size, channels, m),
                                                self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, channels * m, self.filters),
                                                self.pointwise_initializer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def _own_macs(self):
        spatial = image_shape(self._output_shape, self, self.data_format)[2]
        if None in spatial:
            return None
        mid = self.pointwise_kernel.shape[2]
        return math.prod(spatial) * mid * (self.kernel_size[0] * self.kernel_size[1] + self.filters)

    def _kernels(self):
        return [self.depthwise_kernel, self.pointwise_kernel]

    def _fold(self, kernels, scale):
        return [kernels[0], kernels[1] * scale]

    def _to_op_layout(self, kernels):
        if self._layout == "NHWC":
            return kernels
        return [_depthwise_to_nchw(kernels[0]), kernels[1].transpose(3, 2, 0, 1)]

    def _run_op(self, x, kernels, bias, activation):
        return ops.separable_conv2d(x, kernels[0], kernels[1], bias, activation=activation, **self._op_arguments())


class Conv2DTranspose(_SpatialConvolution):
    """Transposed convolution (Keras Conv2DTranspose): kernel (KH, KW, filters, C), bias
    (filters,). 'same' gives out = in * stride, 'valid' out = (in - 1) * stride + kernel extent
    (Keras); explicit integer padding follows PyTorch's ConvTranspose2d."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias, data_format=data_format,
                         bias_initializer=bias_initializer, **kwargs)
        self.filters = _positive(filters, "filters")
        self.output_padding = None if output_padding is None else _args.pair(output_padding, "output_padding", 0)
        if self.output_padding is not None:
            for i in (0, 1):
                if self.output_padding[i] >= max(self.strides[i], self.dilation_rate[i]):
                    raise ValueError(f"{self._describe()}: output_padding {self.output_padding} must be smaller "
                                     f"than the strides {self.strides} or the dilation_rate {self.dilation_rate}")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self._build_from_declared_shape()

    def build(self, input_shape):
        _, channels, _ = image_shape(input_shape, self, self.data_format)
        channels = known_channels(channels, self, input_shape)
        self.kernel = self.add_weight("kernel", (*self.kernel_size, self.filters, channels), self.kernel_initializer)
        self._add_bias(self.filters)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n, _, spatial = image_shape(input_shape, self, self.data_format)
        out = []
        for i, size in enumerate(spatial):
            if size is None:
                out.append(None)
                continue
            pad = self.padding if isinstance(self.padding, str) else self.padding[i]
            out.append(_args.conv_transpose_output_size(
                size, self.kernel_size[i], self.strides[i], self.dilation_rate[i], pad,
                None if self.output_padding is None else self.output_padding[i],
                f"{self._describe()} {('height', 'width')[i]}")[1])
        return make_shape(n, self.filters, tuple(out), self.data_format)

    def _own_macs(self):
        _, channels, spatial = image_shape(self._built_input_shape, self, self.data_format)
        if None in spatial:
            return None
        return math.prod(spatial) * channels * self.kernel_size[0] * self.kernel_size[1] * self.filters

    def _kernels(self):
        return [self.kernel]

    def _fold(self, kernels, scale):
        return [kernels[0] * scale[:, None]]

    def _to_op_layout(self, kernels):
        return kernels if self._layout == "NHWC" else [kernels[0].transpose(3, 2, 0, 1)]

    def _pack(self, kernels):
        return [ops.pack_conv_transpose2d_weight(kernels[0], stride=self.strides, dilation=self.dilation_rate,
                                                 data_format=self._layout, dtype=self._dtype)]

    def _run_op(self, x, kernels, bias, activation):
        return ops.conv_transpose2d(x, kernels[0], bias, output_padding=self.output_padding,
                                    activation=activation, **self._op_arguments())


class Dense(_Convolution):
    """Fully connected layer on the last axis (Keras Dense): kernel (in, units), bias (units,).

    It runs as pycnn's 1x1 convolution over the rows of the input laid out as one NHWC image row
    (x (..., in) -> (1, 1, rows, in)): one GEMM over every row at once, with the bias and
    activation fused, on the same OpenMP threads as the convolutions around it. Alone, a large
    layer is slower this way than NumPy's BLAS (a 25088x4096 layer on one image: ~55 ms vs ~15 ms
    on the 2-core development machine), but inside a model it is as fast or faster: BLAS's own
    thread pool and pycnn's OpenMP threads take turns spinning on the same cores (VGG-16: the same
    time either way; the MNIST convnet at batch 256: 13-16 ms vs 32-40 ms with np.dot)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, bias_initializer=bias_initializer, **kwargs)
        self.units = _positive(units, "units")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self._build_from_declared_shape()

    @property
    def output_channel_axis(self) -> int:
        return -1

    def build(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{self._describe()} takes inputs of 2 or more dimensions with a known last "
                             f"dimension; got shape {input_shape}")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        self._add_bias(self.units)
        super().build(input_shape)

    def _input_axes_for(self, input_shape):
        return {-1: input_shape[-1]}

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _own_macs(self):
        rows = self._built_input_shape[1:-1]
        if None in rows:
            return None
        return math.prod(rows) * self.kernel.size

    def _kernels(self):
        return [self.kernel]

    def _fold(self, kernels, scale):
        return [kernels[0] * scale]

    def _to_op_layout(self, kernels):
        return [kernels[0].reshape(1, 1, *kernels[0].shape)]

    def _pack(self, kernels):
        return [ops.pack_conv2d_weight(kernels[0], data_format="NHWC", dtype=self._dtype)]

    def _run_op(self, x, kernels, bias, activation):
        rows = x.shape[:-1]
        if math.prod(rows) == 0:  # an empty batch: the kernel takes no empty image
            return np.empty(rows + (self.units,), self._dtype)
        y = ops.conv2d(x.reshape(1, 1, -1, x.shape[-1]), kernels[0], bias, activation=activation, data_format="NHWC")
        return y.reshape(rows + (self.units,))
