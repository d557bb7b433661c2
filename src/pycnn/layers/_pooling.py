"""Pooling layers: MaxPooling2D, AveragePooling2D (Keras names and aliases), and global pooling."""
from __future__ import annotations

from .. import _args, ops
from ._base import Layer, conv_output_length, image_shape, keras_data_format, layout_of, make_shape, padding_spec


class _Pooling2D(Layer):
    _op = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _args.pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _args.pair(strides, "strides")
        self.padding = padding_spec(padding)
        if not isinstance(self.padding, str):
            # explicit padding follows PyTorch's pooling: at most half the window on each side
            for (before, after), k in zip(self.padding, self.pool_size):
                if 2 * max(before, after) > k:
                    raise ValueError(f"{self._describe()}: padding {padding!r} must be at most half the "
                                     f"pool_size {self.pool_size}")
        self.data_format = keras_data_format(data_format)
        self._layout = layout_of(self.data_format)
        self._build_from_declared_shape()

    def compute_output_shape(self, input_shape):
        n, channels, spatial = image_shape(input_shape, self, self.data_format)
        out = tuple(conv_output_length(size, self.pool_size[i], self.strides[i], 1,
                                       self.padding if isinstance(self.padding, str) else self.padding[i],
                                       f"{self._describe()} {('height', 'width')[i]}")
                    for i, size in enumerate(spatial))
        return make_shape(n, channels, out, self.data_format)

    def call(self, inputs):
        return type(self)._op(inputs, self.pool_size, self.strides, self.padding, data_format=self._layout)


class MaxPooling2D(_Pooling2D):
    """Max over pool_size windows (Keras MaxPooling2D; strides default to pool_size).
    'same' pads after the input like TensorFlow; explicit padding pads like PyTorch."""

    _op = staticmethod(ops.max_pool2d)


class AveragePooling2D(_Pooling2D):
    """Mean over pool_size windows (Keras AveragePooling2D). 'same' windows average only the
    input cells they cover (TensorFlow); explicit padding counts the zeros (PyTorch's default)."""

    _op = staticmethod(ops.avg_pool2d)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    _op = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = keras_data_format(data_format)
        self._layout = layout_of(self.data_format)
        self.keepdims = _args.flag(keepdims, "keepdims")
        self._build_from_declared_shape()

    def compute_output_shape(self, input_shape):
        n, channels, _ = image_shape(input_shape, self, self.data_format)
        return make_shape(n, channels, (1, 1), self.data_format) if self.keepdims else (n, channels)

    def call(self, inputs):
        return type(self)._op(inputs, data_format=self._layout, keepdims=self.keepdims)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: (batch, channels), or with keepdims a 1x1 image."""

    _op = staticmethod(ops.global_avg_pool2d)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width: (batch, channels), or with keepdims a 1x1 image."""

    _op = staticmethod(ops.global_max_pool2d)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
