"""Model (subclass it: layers in __init__, wiring in call()) and Sequential, with predict() and
summary(). A Sequential runs a plan in which a convolution or Dense, the BatchNormalization
after it and the activation after that are one kernel call."""
from __future__ import annotations

import numbers

import numpy as np

from ._base import Layer, SymbolicTensor, _shape_of, _symbolic, format_shape
from ._basic import BatchNormalization, Dropout, _ActivationLayer
from ._convolution import _Convolution


def _batch_size(value) -> int:
    if value is None:
        return 32  # Keras's default
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"batch_size must be a positive int or None, got {value!r}")
    return int(value)


def _empty(shape, dtype, what):
    if isinstance(shape, list):
        return [_empty(s, dtype, what) for s in shape]
    if None in shape[1:]:
        raise ValueError(f"{what}: the output shape {format_shape(shape)} of an empty batch is not known")
    return np.empty((0,) + tuple(shape[1:]), dtype)


def _join(chunks):
    if isinstance(chunks[0], (list, tuple)):
        return [np.concatenate(parts) for parts in zip(*chunks)]
    return np.concatenate(chunks)


class Model(Layer):
    """A Layer with predict() and summary().

    Subclass it the Keras way -- sublayers in __init__, the forward pass in call() -- or use
    Sequential. (Keras's functional Model(inputs, outputs) graphs are not provided: write a
    branching block as a Layer subclass and compose blocks with Sequential or a Model subclass.)
    """

    def _all_weight_records(self):
        """Keras's Model order: each sublayer's weights in turn, then the model's own."""
        records, seen = [], set()
        for layer in self.layers:
            for w in layer._all_weight_records():
                if id(w) not in seen:
                    seen.add(id(w))
                    records.append(w)
        own = [w for w in self._own_weights if w.trainable and self.trainable]
        own += [w for w in self._own_weights if not (w.trainable and self.trainable)]
        return records + own

    def predict(self, x, batch_size=None):
        """The outputs for a batch x (an array, or a list for a model of several inputs), computed
        batch_size images at a time (default 32, as Keras) and joined."""
        batch_size = _batch_size(batch_size)
        self._check_initialized()
        inputs = self._convert(x)
        arrays = inputs if isinstance(inputs, list) else [inputs]
        if any(a.ndim == 0 for a in arrays):
            raise ValueError(f"{self._describe()}: predict needs a batch (first axis), got a scalar")
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise ValueError(f"{self._describe()}: every input needs the same batch size, got "
                             f"{[a.shape[0] for a in arrays]}")
        shape = _shape_of(inputs, concrete=True)
        if not self.built:
            self._build_for(shape)
        if n == 0:
            return _empty(self.compute_output_shape(shape), self._dtype, self._describe())
        chunks = []
        for start in range(0, n, batch_size):
            part = [a[start:start + batch_size] for a in arrays]
            chunks.append(self(part if isinstance(inputs, list) else part[0]))
        return chunks[0] if len(chunks) == 1 else _join(chunks)

    def summary(self, print_fn=None) -> None:
        """Keras's table: layer name (type), output shape, parameters -- and the multiply-
        accumulates of one image (batch 1; a BatchNormalization folded into the layer before it
        costs none, and neither do pooling and activations) -- then the parameter totals, with
        BatchNormalization's moving statistics non-trainable as Keras counts them."""
        if not self.built:
            raise ValueError(f"{self._describe()} has not been built yet: call it on a batch, build(input_shape) "
                             f"it, or give the first layer input_shape=")
        print_fn = print if print_fn is None else print_fn
        header = ("Layer (type)", "Output Shape", "Param #", "MACs")
        rows = []
        for layer in self.layers:
            if not layer.built:
                rows.append((f"{layer.name} ({type(layer).__name__})", "(unused)", "0", "0"))
                continue
            shape = "multiple" if layer._multiple_shapes else format_shape(layer.output_shape)
            macs = layer.macs()
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                         "?" if macs is None else f"{macs:,}"))
        # each column as wide as its widest entry plus a 3-space gap, and at least Keras's width
        widths = [max(minimum, max(len(r[i]) for r in rows + [header]) + gap)
                  for i, (minimum, gap) in enumerate(((29, 3), (26, 3), (12, 3), (11, 0)))]
        line = sum(widths)

        def row(fields):
            return "".join(f.ljust(w) for f, w in zip(fields, widths)).rstrip()

        trainable = sum(w.value.size for w in self._weight_records(True))
        non_trainable = sum(w.value.size for w in self._weight_records(False))
        total_macs = self.macs()
        lines = [f'Model: "{self.name}"', "_" * line, row(header), "=" * line]
        for i, r in enumerate(rows):
            lines.append(row(r))
            lines.append("=" * line if i == len(rows) - 1 else "_" * line)
        if not rows:
            lines.append("=" * line)
        lines += [f"Total params: {trainable + non_trainable:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {non_trainable:,}",
                  f"Total MACs per image: {'?' if total_macs is None else f'{total_macs:,}'}",
                  "_" * line]
        print_fn("\n".join(lines))


class _Fused:
    """One kernel call for a run of Sequential layers: a convolution (or Dense) with the
    BatchNormalization after it folded into its weights and the activation after that fused;
    or a BatchNormalization on its own with the activation after it fused."""

    __slots__ = ("layer", "batch_norm", "activation")

    def __init__(self, layer, batch_norm, activation):
        self.layer, self.batch_norm, self.activation = layer, batch_norm, activation

    def __call__(self, x):
        layer = self.layer
        x = layer._convert(x)
        layer._check_input_shape(_shape_of(x, concrete=True))
        if isinstance(layer, BatchNormalization):
            return layer._run(x, self.activation)
        return layer._run(x, self.batch_norm, self.activation)


def _folds_into(layer, batch_norm) -> bool:
    """Does batch_norm normalize the output channels of the convolution/Dense `layer`?"""
    ndim = len(layer.output_shape)
    return (batch_norm.built and batch_norm.dtype == layer.dtype
            and layer.output_channel_axis % ndim == batch_norm.axis % ndim)


def plan(layers) -> list:
    """The steps of a Sequential: each a layer, or a _Fused run of layers.

    Dropout is left out (the identity at inference). A convolution or Dense with a linear
    activation takes the BatchNormalization after it (on its channel axis) into its weights,
    and the activation layer after those into its kernel call. A BatchNormalization that
    follows anything else takes the activation after it."""
    layers = [layer for layer in layers if not isinstance(layer, Dropout)]
    steps, i = [], 0
    while i < len(layers):
        layer, j = layers[i], i + 1
        batch_norm = activation = None
        if isinstance(layer, _Convolution) and layer._activation.is_linear:
            if j < len(layers) and isinstance(layers[j], BatchNormalization) and _folds_into(layer, layers[j]):
                batch_norm, j = layers[j], j + 1
        if isinstance(layer, BatchNormalization) or (isinstance(layer, _Convolution) and layer._activation.is_linear):
            if j < len(layers) and isinstance(layers[j], _ActivationLayer):
                activation, j = layers[j].activation_spec, j + 1
        steps.append(_Fused(layer, batch_norm, activation) if (batch_norm or activation) else layer)
        i = j
    return steps


class Sequential(Model):
    """A stack of layers, each taking the previous one's output (Keras Sequential).

    The input shape comes from `Input(shape=...)` as the first element, from `input_shape=` on
    the first layer, or from the first batch it is called on. In the forward pass a convolution
    or Dense followed by BatchNormalization (and an activation) is a single fused kernel call:
    the normalization is folded into the weights. Calling the layers one by one gives the same
    result unfused.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._layers = []
        self._input_shape = None
        self._steps = None
        for layer in layers or ():
            self.add(layer)

    @property
    def layers(self) -> list:
        return list(self._layers)

    def add(self, layer) -> None:
        """Append a layer (or, first of all, an Input)."""
        if isinstance(layer, SymbolicTensor):
            if self._layers or self._input_shape is not None:
                raise ValueError(f"{self._describe()}: an Input must be the first element")
            self._input_shape = (None,) + layer.shape[1:]
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self._describe()}: only layers can be added, got {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"{self._describe()}: layer names must be unique; {layer.name!r} is there already")
        if not self._layers and self._input_shape is None and layer._declared_input_shape is not None:
            self._input_shape = layer._declared_input_shape
        self._layers.append(layer)
        self._steps = None
        shape = self._input_shape if self._input_shape is not None else self._built_input_shape
        if shape is not None:
            self.built = False
            try:
                self._build_for(shape)
            except BaseException:
                self._layers.pop()  # a layer that does not fit leaves the model as it was
                self._build_for(shape)
                raise

    def compute_output_shape(self, input_shape):
        outputs = _symbolic(input_shape, self._dtype)
        for layer in self._layers:
            outputs = layer(outputs)
        return _shape_of(outputs, concrete=False)

    def call(self, inputs):
        if self._steps is None:
            self._steps = plan(self._layers)
        for step in self._steps:
            inputs = step(inputs)
        return inputs
