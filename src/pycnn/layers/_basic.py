"""BatchNormalization, activations, Dropout, Flatten, ZeroPadding2D, Add and Concatenate."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _args, ops
from ._base import (ActivationSpec, Layer, broadcast_shapes, check_initializer, format_shape, image_shape,
                    keras_data_format, make_shape)


class BatchNormalization(Layer):
    """Batch normalization at inference (Keras BatchNormalization): y = gamma * (x - moving_mean)
    / sqrt(moving_variance + epsilon) + beta over `axis`. Weights [gamma, beta, moving_mean,
    moving_variance]; the moving statistics are non-trainable, as Keras counts them.

    Inside a Sequential, directly after a convolution or Dense on the same axis, it is folded into
    that layer's weights and costs nothing. On its own it runs as one pass of pycnn's depthwise
    kernel with a 1x1 kernel = the per-channel scale and bias = the shift (and a following
    activation fused). `momentum` is kept for Keras's signature; nothing is trained here.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = _args.flag(center, "center")
        self.scale = _args.flag(scale, "scale")
        self._initializers = {name: check_initializer(value, f"{name}_initializer") for name, value in (
            ("gamma", gamma_initializer), ("beta", beta_initializer), ("moving_mean", moving_mean_initializer),
            ("moving_variance", moving_variance_initializer))}
        self._cache_version = None
        self._build_from_declared_shape()

    def build(self, input_shape):
        ndim = len(input_shape) if not isinstance(input_shape, list) else 0
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"{self._describe()}: axis {self.axis} is out of range for inputs of shape "
                             f"{format_shape(input_shape)}")
        self._axis = self.axis % ndim
        channels = input_shape[self._axis]
        if channels is None:
            raise ValueError(f"{self._describe()} needs a known size on axis {self.axis}; got shape "
                             f"{format_shape(input_shape)}")
        init = self._initializers
        self.gamma = self.add_weight("gamma", (channels,), init["gamma"]) if self.scale else None
        self.beta = self.add_weight("beta", (channels,), init["beta"]) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (channels,), init["moving_mean"], trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (channels,), init["moving_variance"],
                                               trainable=False)
        super().build(input_shape)

    def _input_axes_for(self, input_shape):
        return {self._axis: input_shape[self._axis]}

    def compute_output_shape(self, input_shape):
        return input_shape

    def scale_and_shift(self):
        """(scale, shift) per channel in float64: y = x * scale + shift."""
        if self._cache_version != self._weights_version:
            scale = 1.0 / np.sqrt(self.moving_variance.astype(np.float64) + self.epsilon)
            if self.gamma is not None:
                scale = scale * self.gamma
            shift = -self.moving_mean * scale
            if self.beta is not None:
                shift = shift + self.beta
            self._scale_shift = scale, shift
            self._affine = {}
            self._cache_version = self._weights_version
        return self._scale_shift

    def _affine_kernel(self, layout):
        """The per-channel scale as a 1x1 depthwise kernel of `layout`, and the shift, in the layer dtype."""
        scale, shift = self.scale_and_shift()
        if layout not in self._affine:
            kernel = scale.reshape(1, 1, -1, 1) if layout == "NHWC" else scale.reshape(-1, 1, 1, 1)
            self._affine[layout] = (np.ascontiguousarray(kernel, self._dtype), np.ascontiguousarray(shift, self._dtype))
        return self._affine[layout]

    def _run(self, x, activation=None):
        """Normalize x, then `activation` (of a following layer) fused into the same pass."""
        activation = ActivationSpec(None) if activation is None else activation
        axis = self._axis
        if x.ndim == 4 and axis in (1, 3):
            layout = "NCHW" if axis == 1 else "NHWC"
            image = x
        elif axis == x.ndim - 1:
            layout, image = "NHWC", x.reshape(1, 1, -1, x.shape[-1])  # rows of channels: one image row
        else:
            scale, shift = self.scale_and_shift()
            shape = [1] * x.ndim
            shape[axis] = -1
            y = x * scale.astype(self._dtype).reshape(shape) + shift.astype(self._dtype).reshape(shape)
            return activation.apply(y)
        if image.size == 0:
            return np.empty_like(x)
        kernel, shift = self._affine_kernel(layout)
        y = ops.depthwise_conv2d(image, kernel, shift, activation=activation.fused, data_format=layout)
        y = y.reshape(x.shape)
        return y if activation.after is None else activation.apply(y)

    def call(self, inputs):
        return self._run(inputs)


class _ActivationLayer(Layer):
    """Layers that only apply an activation; a Sequential fuses them into the layer before."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        return self.activation_spec.apply(inputs)


class Activation(_ActivationLayer):
    """An activation by name (Keras's: 'relu', 'relu6', 'sigmoid', 'tanh', 'silu'/'swish', 'elu',
    'leaky_relu' (slope 0.2, as Keras), 'softmax' (last axis), 'linear'), (name, parameter) for
    leaky_relu/elu, or a callable."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.activation_spec = ActivationSpec(activation, f"{self._describe()} activation")
        self._build_from_declared_shape()


def _relu_function(max_value, negative_slope, threshold):
    def relu(x):
        one = x.dtype.type
        y = np.where(x >= one(threshold), x, one(negative_slope) * (x - one(threshold)))
        return y if max_value is None else np.minimum(y, one(max_value))
    return relu


class ReLU(_ActivationLayer):
    """Keras ReLU: x for threshold <= x < max_value, max_value above, negative_slope * (x -
    threshold) below. The common forms (relu, relu6, leaky) fuse into a preceding kernel."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("max_value", max_value), ("negative_slope", negative_slope), ("threshold", threshold)):
            if value is None and name == "max_value":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{self._describe()}: {name} must be a finite number >= 0, got {value!r}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)
        if self.threshold == 0 and self.negative_slope == 0 and self.max_value in (None, 6.0):
            spec = "relu" if self.max_value is None else "relu6"
        elif self.threshold == 0 and self.max_value is None:
            spec = ("leaky_relu", self.negative_slope)
        else:
            spec = _relu_function(self.max_value, self.negative_slope, self.threshold)
        self.activation_spec = ActivationSpec(spec, f"{self._describe()}")
        self._build_from_declared_shape()


class Dropout(Layer):
    """Dropout: the identity at inference (Keras's behaviour outside training). rate is checked
    and kept with noise_shape and seed for Keras's signature."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError(f"{self._describe()}: rate must be a number in [0, 1], got {rate!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        self._build_from_declared_shape()

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        return inputs


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1*d2*...), in the input's memory order (as PyTorch's
    flatten and Keras's default). data_format='channels_first' flattens in channels-last order,
    as Keras does, so a Dense after it keeps channels-last weights."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = keras_data_format(data_format)
        self._build_from_declared_shape()

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 1:
            raise ValueError(f"{self._describe()} takes one batch of at least 1 dimension, got {input_shape}")
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim >= 3:
            inputs = np.moveaxis(inputs, 1, -1)
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))  # -1 fails for an empty batch


class ZeroPadding2D(Layer):
    """Zeros around the image: padding an int, (ph, pw) or ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, str):
            raise ValueError(f"{self._describe()}: padding must be an int, (ph, pw) or ((top, bottom), "
                             f"(left, right)); got {padding!r}")
        self.padding = _args.padding(padding, (1, 1), (1, 1), (1, 1), (1, 1))
        self.data_format = keras_data_format(data_format)
        self._build_from_declared_shape()

    def compute_output_shape(self, input_shape):
        n, channels, spatial = image_shape(input_shape, self, self.data_format)
        out = tuple(None if size is None else size + sum(self.padding[i]) for i, size in enumerate(spatial))
        return make_shape(n, channels, out, self.data_format)

    def call(self, inputs):
        (top, bottom), (left, right) = self.padding
        pads = [(0, 0), (top, bottom), (left, right), (0, 0)]
        if self.data_format == "channels_first":
            pads = [(0, 0), (0, 0), (top, bottom), (left, right)]
        return np.pad(inputs, pads)


class _Merge(Layer):
    def _check_list(self, inputs):
        """inputs: the arrays (made a list by __call__), or their shapes (a list of tuples)."""
        if not isinstance(inputs, list) or len(inputs) < 2:
            raise ValueError(f"{self._describe()} must be called on a list of at least 2 inputs")


class Add(_Merge):
    """Elementwise sum of a list of inputs of the same shape (Keras Add)."""

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        return broadcast_shapes(input_shape, f"{self._describe()}")

    def call(self, inputs):
        self._check_list(inputs)
        shapes = [np.shape(x) for x in inputs]
        broadcast_shapes(shapes, f"{self._describe()}")
        total = np.add(inputs[0], inputs[1])
        for x in inputs[2:]:
            total = np.add(total, x, out=total) if np.shape(x) == total.shape else total + x
        return total


class Concatenate(_Merge):
    """Inputs joined along `axis` (default -1, the channels of channels_last; use axis=1 for
    channels_first); every other size must agree (Keras Concatenate)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        ranks = {len(s) for s in input_shape}
        ndim = ranks.pop()
        if ranks or not -ndim <= self.axis < ndim:
            raise ValueError(f"{self._describe()}: inputs {format_shape(list(input_shape))} must have one rank "
                             f"with axis {self.axis} in range")
        axis = self.axis % ndim
        others = [tuple(d for i, d in enumerate(s) if i != axis) for s in input_shape]
        out = list(broadcast_shapes(others, f"{self._describe()} (sizes off axis {self.axis})", allow_ones=False))
        sizes = [s[axis] for s in input_shape]
        out.insert(axis, None if None in sizes else sum(sizes))
        return tuple(out)

    def call(self, inputs):
        self._check_list(inputs)
        self.compute_output_shape([tuple(np.shape(x)) for x in inputs])
        return np.concatenate(inputs, axis=self.axis)
