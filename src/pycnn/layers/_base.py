"""The Layer machinery: names, weights, initializers, activations, shape tracing.

A layer is built the first time it sees its input shape (from an array, from a SymbolicTensor
such as `Input(...)`, or from `input_shape=`): `build(input_shape)` creates the weights and
`compute_output_shape` gives the output shape. Layers made of other layers (a subclass with
`call()`) find theirs by running `call()` on a SymbolicTensor, which builds every sublayer on
the way without computing anything -- Keras's own approach.

Weights are NumPy arrays owned by the layer, read-only to everyone else: they change only
through `set_weights`, which bumps the layer's version so that derived forms (layout-converted,
batch-norm-folded, packed kernels) are rebuilt when next needed.
"""
from __future__ import annotations

import collections
import math
import re

import numpy as np

from .. import _args, reference

# ---------------------------------------------------------------------------------------------
# Random initial weights and layer names (module state, as Keras keeps them per session)
# ---------------------------------------------------------------------------------------------

_generator = np.random.default_rng()
_name_counts: collections.Counter = collections.Counter()


def set_seed(seed) -> None:
    """Seed the generator that draws every initial weight (glorot_uniform, he_uniform, ...).

    Layers draw their weights when they are built, in build order, so the same seed and the
    same model code give the same weights.
    """
    global _generator
    _generator = np.random.default_rng(seed)


def clear_session() -> None:
    """Restart the automatic layer names (conv2d, conv2d_1, ...), as keras.backend.clear_session."""
    _name_counts.clear()


def _snake_case(name: str) -> str:
    """Keras's class-name -> layer-name rule: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(base: str) -> str:
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _fans(shape):
    """Keras's fan_in/fan_out: kernels (..., in, out) with the leading axes as receptive field."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(shape, dtype, limit):
    value = _generator.random(shape, dtype=dtype)  # [0, 1) in the target dtype: no float64 copy of a big kernel
    value *= 2 * limit
    value -= limit
    return value


_INITIALIZERS = {
    "zeros": lambda shape, dtype: np.zeros(shape, dtype),
    "ones": lambda shape, dtype: np.ones(shape, dtype),
    "glorot_uniform": lambda shape, dtype: _uniform(shape, dtype, math.sqrt(6.0 / max(1, sum(_fans(shape))))),
    "he_uniform": lambda shape, dtype: _uniform(shape, dtype, math.sqrt(6.0 / max(1, _fans(shape)[0]))),
}


def check_initializer(value, name: str):
    """A known initializer name or a callable (shape, dtype) -> array."""
    if callable(value) or value in _INITIALIZERS:
        return value
    names = ", ".join(repr(k) for k in _INITIALIZERS)
    raise ValueError(f"{name} must be one of {names} or a callable (shape, dtype) -> array; got {value!r}")


def _initial_value(initializer, shape, dtype, what):
    if callable(initializer):
        value = np.asarray(initializer(shape, dtype), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"{what}: the initializer returned shape {value.shape}, expected {shape}")
        return np.array(value, dtype=dtype, order="C")
    return _INITIALIZERS[initializer](shape, dtype)


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------

# Keras's leaky_relu string means a slope of 0.2 (keras.activations / tf.nn), not PyTorch's 0.01.
_KERAS_LEAKY_SLOPE = 0.2


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


class ActivationSpec:
    """An activation resolved once: `fused` is what pycnn.ops kernels apply in their epilogue
    (None, a name, or (name, parameter)); `after` is a NumPy function for what they cannot
    (softmax over the last axis, or a user's callable). At most one of the two is set."""

    __slots__ = ("fused", "after", "name")

    def __init__(self, value, what="activation"):
        self.fused = self.after = None
        if value is None or value == "linear":
            self.name = "linear"
        elif callable(value):
            self.after, self.name = value, getattr(value, "__name__", "callable")
        elif value == "softmax":
            self.after, self.name = _softmax, "softmax"
        else:
            spec = (value, _KERAS_LEAKY_SLOPE) if isinstance(value, str) and value.lower() == "leaky_relu" else value
            try:
                _, param, canonical = _args.activation(spec)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"{what}: {exc} (or 'linear', 'softmax', a callable)") from None
            self.fused = canonical if param == _args.ACTIVATIONS[canonical][1] else (canonical, param)
            self.name = canonical

    @property
    def is_linear(self) -> bool:
        return self.fused is None and self.after is None

    def key(self):
        return self.fused, self.after

    def apply(self, x):
        """The activation in NumPy, for an array no kernel epilogue could take it into."""
        if self.fused is not None:
            return np.maximum(x, x.dtype.type(0)) if self.fused == "relu" else reference.apply_activation(x, self.fused)
        if self.after is not None:
            return np.asarray(self.after(x))
        return x


# ---------------------------------------------------------------------------------------------
# Shapes and symbolic tensors
# ---------------------------------------------------------------------------------------------

class NeedsConcreteInput(TypeError):
    """Raised when NumPy is asked to compute on a SymbolicTensor (a call() that uses NumPy
    directly): the caller then finds the output shape by running on a zero batch instead."""


class SymbolicTensor:
    """A batch of a known shape (batch size usually None) with no values: what `Input()`
    returns, and what layers pass each other while `call()` is traced to build sublayers and
    find output shapes. Supports `+` (a residual connection) like the arrays it stands for."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype="float32"):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype}>"

    def __add__(self, other):
        shapes = [self.shape, other.shape if isinstance(other, SymbolicTensor) else np.shape(other)]
        return SymbolicTensor(broadcast_shapes(shapes, "+"), self.dtype)

    __radd__ = __add__

    def _concrete_only(self, *args, **kwargs):
        raise NeedsConcreteInput("a SymbolicTensor has no values")

    __array__ = __array_ufunc__ = __array_function__ = _concrete_only
    __mul__ = __rmul__ = __sub__ = __rsub__ = __matmul__ = __rmatmul__ = __truediv__ = _concrete_only


def Input(shape, batch_size=None, dtype="float32", name=None) -> SymbolicTensor:  # noqa: N802 (Keras name)
    """The input of a model: `Sequential([Input(shape=(28, 28, 1)), Conv2D(32, 3), ...])`.

    shape excludes the batch axis; None marks a size known only at call time."""
    del name  # Keras accepts a name for the input; a Sequential shows no input row
    if isinstance(shape, int):
        shape = (shape,)
    dims = tuple(None if d is None else _args.integer(d, "shape", 0) for d in shape)
    batch = None if batch_size is None else _args.integer(batch_size, "batch_size")
    return SymbolicTensor((batch,) + dims, np.dtype(dtype))


def broadcast_shapes(shapes, what, allow_ones=True):
    """Shapes of same-rank tensors combined elementwise; None (unknown) matches anything, and
    with allow_ones a size 1 broadcasts."""
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ValueError(f"{what}: inputs must have the same rank; got shapes {format_shape(list(shapes))}")
    result = []
    for dims in zip(*shapes):
        known = {d for d in dims if d is not None and not (allow_ones and d == 1)}
        if len(known) > 1:
            raise ValueError(f"{what}: input shapes {format_shape(list(shapes))} do not match")
        result.append(known.pop() if known else (None if None in dims else 1))
    return tuple(result)


def is_symbolic(inputs) -> bool:
    if isinstance(inputs, (list, tuple)):
        return any(isinstance(x, SymbolicTensor) for x in inputs)
    return isinstance(inputs, SymbolicTensor)


def _shape_of(inputs, concrete: bool):
    """Batch shape(s) with the batch axis as None: a tuple, or a list of tuples for a list input."""
    if isinstance(inputs, (list, tuple)):
        return [_shape_of(x, concrete) for x in inputs]
    shape = tuple(inputs.shape)
    return ((None,) + shape[1:]) if (concrete and shape) else shape


def _symbolic(shape, dtype):
    if isinstance(shape, list):
        return [_symbolic(s, dtype) for s in shape]
    return SymbolicTensor(shape, dtype)


def format_shape(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _zeros(shape, dtype):
    if isinstance(shape, list):
        return [_zeros(s, dtype) for s in shape]
    if any(d is None for d in shape[1:]):
        raise ValueError(f"cannot run a zero batch of shape {format_shape(shape)} with unknown sizes")
    return np.zeros((1,) + tuple(shape[1:]), dtype)


def _unknown_batch(shape):
    if isinstance(shape, list):
        return [_unknown_batch(s) for s in shape]
    return (None,) + tuple(shape[1:])


def _outputs_shape(outputs):
    if isinstance(outputs, (list, tuple)):
        return [_outputs_shape(o) for o in outputs]
    if isinstance(outputs, SymbolicTensor):
        return outputs.shape
    return _unknown_batch(np.shape(outputs))


# ---------------------------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------------------------

class _Weight:
    __slots__ = ("name", "value", "trainable", "layer")

    def __init__(self, name, value, trainable, layer):
        self.name, self.value, self.trainable, self.layer = name, value, trainable, layer

    @property
    def path(self) -> str:
        return f"{self.layer.name}/{self.name}"


_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


class Layer:
    """Base class of every layer, and of your own blocks.

    Write a block the Keras way: create sublayers in `__init__` (attributes that hold a layer,
    or a list/tuple/dict of layers, are tracked for weights, count_params and summary), create
    weights of your own in `build(input_shape)` with `add_weight`, and compute in
    `call(inputs)` with the sublayers (on NumPy arrays; `+` adds a shortcut). A call() that
    uses NumPy directly also works: its output shape is then found by one zero batch.
    """

    def __init__(self, *, name=None, dtype="float32", trainable=True, input_shape=None):
        if name is None:
            name = _unique_name(_snake_case(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        try:
            self._dtype = _DTYPES[str(np.dtype(dtype))]
        except (KeyError, TypeError):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
        self._layer_initialized = True
        self.name = name
        self.trainable = _args.flag(trainable, "trainable")
        self.built = False
        self._own_weights: list[_Weight] = []
        self._weights_version = 0
        self._built_input_shape = None
        self._output_shape = None
        self._multiple_shapes = False
        self._input_ndim = None
        self._input_axes: dict = {}
        self._declared_input_shape = None
        if input_shape is not None:
            dims = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
            self._declared_input_shape = (None,) + tuple(
                None if d is None else _args.integer(d, "input_shape", 0) for d in dims)

    # -- identity -------------------------------------------------------------------------

    @property
    def dtype(self) -> str:
        return self._dtype.name

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"

    def _describe(self) -> str:
        return f"layer {self.name!r} ({type(self).__name__})"

    def _check_initialized(self):
        if "_layer_initialized" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before the layer is used")

    # -- sublayers ------------------------------------------------------------------------

    @property
    def layers(self) -> list:
        """Sublayers held in attributes (directly, or in lists, tuples and dict values), in the
        order they were assigned; each once."""
        found, seen = [], {id(self)}
        for value in self.__dict__.values():
            if isinstance(value, dict):
                items = value.values()
            else:
                items = value if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                if isinstance(item, Layer) and id(item) not in seen:
                    seen.add(id(item))
                    found.append(item)
        return found

    @property
    def submodules(self) -> list:
        """Every layer below this one, depth first, each once (Keras's `submodules`)."""
        return list(self._walk())[1:]

    def _walk(self, seen=None):
        """This layer and every layer below it, depth first, each once."""
        seen = set() if seen is None else seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield self
        for layer in self.layers:
            yield from layer._walk(seen)

    # -- weights --------------------------------------------------------------------------

    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True, dtype=None):
        """Create a weight (a read-only NumPy array, changed only through set_weights)."""
        check_initializer(initializer, f"{self._describe()} weight {name!r} initializer")
        shape = tuple(_args.integer(d, f"shape of weight {name!r}", 0) for d in shape)
        value = _initial_value(initializer, shape, self._dtype if dtype is None else np.dtype(dtype),
                               f"{self._describe()} weight {name!r}")
        value.flags.writeable = False
        self._own_weights.append(_Weight(name, value, bool(trainable), self))
        return value

    def _weight_records(self, trainable):
        """Own and sublayer weights with the given trainability, each once, own first.

        A non-trainable layer makes every weight under it non-trainable (as in Keras)."""
        records, seen = [], set()

        def visit(layer, parents_trainable):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            active = parents_trainable and layer.trainable
            records.extend(w for w in layer._own_weights if (w.trainable and active) == trainable)
            for sub in layer.layers:
                visit(sub, active)

        visit(self, True)
        return records

    def _all_weight_records(self):
        """Keras's Layer order: every trainable weight, then every non-trainable one."""
        return self._weight_records(True) + self._weight_records(False)

    @property
    def weights(self) -> list:
        return [w.value for w in self._all_weight_records()]

    @property
    def trainable_weights(self) -> list:
        return [w.value for w in self._weight_records(True)]

    @property
    def non_trainable_weights(self) -> list:
        return [w.value for w in self._weight_records(False)]

    def get_weights(self) -> list:
        """Copies of the weights, in Keras's order and layouts."""
        return [w.value.copy() for w in self._all_weight_records()]

    def set_weights(self, weights) -> None:
        """Replace every weight with a list of arrays in the order and layouts of get_weights.

        Checked before anything changes: the number of arrays, each shape, and that each is a
        real-valued array (cast to the layer dtype, as Keras does)."""
        if not self.built:
            raise ValueError(f"{self._describe()} is not built yet: call it on an input, or give "
                             f"input_shape=, before set_weights")
        records = self._all_weight_records()
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"{self._describe()}: set_weights takes a list of arrays, got {type(weights).__name__}")
        if len(weights) != len(records):
            expected = ", ".join(f"{w.path} {w.value.shape}" for w in records)
            raise ValueError(f"{self._describe()}: set_weights expected {len(records)} arrays "
                             f"[{expected}], got {len(weights)}")
        arrays = []
        for i, (record, value) in enumerate(zip(records, weights)):
            try:
                array = _args.as_array(value, "weight")
            except TypeError as exc:
                raise TypeError(f"{self._describe()}: weight {i} {record.path!r} must be a real-valued array "
                                f"({exc})") from None
            if array.shape != record.value.shape:
                raise ValueError(f"{self._describe()}: weight {i} {record.path!r} must have shape "
                                 f"{record.value.shape}, got {array.shape}")
            arrays.append(array)
        for record, array in zip(records, arrays):
            record.value.flags.writeable = True
            record.value[...] = array
            record.value.flags.writeable = False
            record.layer._weights_version += 1

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self._describe()} is not built yet, so it has no weights to count: call it "
                             f"on an input, or give input_shape=")
        return sum(w.value.size for w in self._all_weight_records())

    def macs(self) -> int | None:
        """Multiply-accumulates of one call for one image (batch 1) at the built shape, this layer
        and its sublayers (each counted once); None where a size is unknown."""
        total = 0
        for layer in self._walk():
            own = layer._own_macs() if layer.built else 0
            if own is None:
                return None
            total += own
        return total

    def _own_macs(self) -> int | None:
        return 0

    # -- shapes and building --------------------------------------------------------------

    @property
    def input_shape(self):
        if not self.built:
            raise AttributeError(f"{self._describe()} has not been built, so it has no input shape")
        return self._built_input_shape

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError(f"{self._describe()} has not been built, so it has no output shape")
        return self._output_shape

    def build(self, input_shape) -> None:
        """Create this layer's weights for inputs of `input_shape` (batch axis first, None).

        Override it to create weights with add_weight; blocks made of sublayers need not: their
        sublayers are built by tracing call()."""
        self._finish_build(input_shape)

    def _finish_build(self, input_shape):
        if self.built:
            return
        self.built = True
        self._built_input_shape = input_shape
        try:
            self._output_shape = self.compute_output_shape(input_shape)
            self._record_input_spec(input_shape)
        except BaseException:
            self.built = False
            raise

    def _build_for(self, input_shape):
        self.build(input_shape)
        self._finish_build(input_shape)

    def _input_axes_for(self, input_shape) -> dict:
        """Axes whose size the weights fix (e.g. a convolution's channels): checked on every call."""
        return {}

    def _record_input_spec(self, input_shape):
        if isinstance(input_shape, list):
            self._input_ndim = None
            return
        self._input_ndim = len(input_shape)
        self._input_axes = {axis % len(input_shape): size for axis, size in self._input_axes_for(input_shape).items()}

    def _check_input_shape(self, shape):
        if self._input_ndim is None:
            return
        if len(shape) != self._input_ndim:
            raise ValueError(f"input of {self._describe()} must be {self._input_ndim}-D like "
                             f"{format_shape(self._built_input_shape)}; got shape {format_shape(shape)}")
        for axis, size in self._input_axes.items():
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"input of {self._describe()} must have size {size} on axis {axis} like "
                                 f"{format_shape(self._built_input_shape)}; got shape {format_shape(shape)}")

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape. Layers made of sublayers get it by tracing call()
        on a SymbolicTensor; a call() that computes with NumPy is run on one zero image."""
        try:
            outputs = self.call(_symbolic(input_shape, self._dtype))
        except NeedsConcreteInput:
            outputs = self.call(_zeros(input_shape, self._dtype))
        return _outputs_shape(outputs)

    # -- calling --------------------------------------------------------------------------

    def call(self, inputs):
        """The computation on NumPy arrays (batch first). Subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(inputs)")

    def _convert(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return [self._convert(x) for x in inputs]
        x = _args.as_array(inputs, "inputs")
        return x if x.dtype == self._dtype else x.astype(self._dtype)

    def __call__(self, inputs, *args, **kwargs):
        self._check_initialized()
        if is_symbolic(inputs):
            return self._symbolic_call(inputs)
        inputs = self._convert(inputs)
        shape = _shape_of(inputs, concrete=True)
        if not self.built:
            self._build_for(shape)
        elif not isinstance(shape, list):
            self._check_input_shape(shape)
        return self.call(inputs, *args, **kwargs)

    def _symbolic_call(self, inputs):
        shape = _shape_of(inputs, concrete=False)
        if not self.built:
            self._build_for(shape)
            return _symbolic(self._output_shape, self._dtype)
        if not isinstance(shape, list):
            self._check_input_shape(shape)
        if shape == self._built_input_shape:
            return _symbolic(self._output_shape, self._dtype)
        output_shape = self.compute_output_shape(shape)
        if output_shape != self._output_shape:
            self._multiple_shapes = True
        return _symbolic(output_shape, self._dtype)

    def _build_from_declared_shape(self):
        if self._declared_input_shape is not None and not self.built:
            self._build_for(self._declared_input_shape)


# ---------------------------------------------------------------------------------------------
# Arguments shared by the image layers
# ---------------------------------------------------------------------------------------------

def keras_data_format(value) -> str:
    """'channels_last' (the Keras default, for None) or 'channels_first'; NHWC/NCHW accepted too."""
    return "channels_last" if value is None or _args.data_format(value) == "NHWC" else "channels_first"


def layout_of(data_format: str) -> str:
    return _args.data_format(data_format)


def image_axes(data_format: str):
    """(channel axis, (height axis, width axis)) of a 4-D batch."""
    return (3, (1, 2)) if data_format == "channels_last" else (1, (2, 3))


def padding_spec(value, name="padding"):
    """'valid', 'same' (Keras), or -- beyond Keras, as pycnn.ops takes it -- explicit padding: an
    int, (ph, pw) or ((top, bottom), (left, right)), normalized to the per-side form. Explicit
    padding lets a layer match a PyTorch model (padding=1 pads both sides; 'same' with stride 2
    pads only after) without a separate ZeroPadding2D copy."""
    if isinstance(value, str):
        mode = value.lower()
        if mode not in ("valid", "same"):
            raise ValueError(f"{name} must be 'valid', 'same' or explicit padding (int, (ph, pw), "
                             f"((top, bottom), (left, right))); got {value!r}")
        return mode
    return _args.padding(value, (1, 1), (1, 1), (1, 1), (1, 1))


def conv_output_length(size, kernel, stride, dilation, padding, what):
    """One spatial size after a convolution or pooling window (None stays None)."""
    if size is None:
        return None
    if padding == "same":
        before, after = _args.same_padding(size, kernel, stride, dilation)
    elif padding == "valid":
        before = after = 0
    else:
        before, after = padding
    return _args.conv_output_size(size, kernel, stride, dilation, before, after, what)


def image_shape(input_shape, layer, data_format):
    """(n, channels, (h, w)) of a 4-D input shape, or a ValueError naming the layer."""
    if isinstance(input_shape, list) or len(input_shape) != 4:
        kind = "(batch, height, width, channels)" if data_format == "channels_last" else \
            "(batch, channels, height, width)"
        raise ValueError(f"{layer._describe()} takes 4-D inputs {kind}; got shape {format_shape(input_shape)}")
    channel_axis, (h_axis, w_axis) = image_axes(data_format)
    return input_shape[0], input_shape[channel_axis], (input_shape[h_axis], input_shape[w_axis])


def make_shape(n, channels, spatial, data_format):
    return (n, *spatial, channels) if data_format == "channels_last" else (n, channels, *spatial)


def known_channels(channels, layer, input_shape):
    if channels is None:
        raise ValueError(f"{layer._describe()} needs a known channel count; got input shape "
                         f"{format_shape(input_shape)}")
    return channels
