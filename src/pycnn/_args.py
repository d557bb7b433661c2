"""Argument normalization and shape rules: the one place for each fact.

`pycnn.ops`, `pycnn.reference` (and later the layer API) all call these helpers, so the
output-size formulas, padding splits, layout aliases, activation names and dtype rules are
written once. Every error names the argument it is about.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

# Strides, dilations, kernel sizes and paddings are stored as 32-bit ints in the C++ core;
# anything larger is certainly a mistake (no tensor dimension gets near it).
MAX_PARAM = 2**31 - 1

_LAYOUTS = {
    "NCHW": "NCHW",
    "channels_first": "NCHW",
    "NHWC": "NHWC",
    "channels_last": "NHWC",
}

# name -> (code in the C++ core, default parameter)
ACTIVATIONS = {
    None: (0, 0.0),
    "relu": (1, 0.0),
    "relu6": (2, 0.0),
    "leaky_relu": (3, 0.01),
    "sigmoid": (4, 0.0),
    "tanh": (5, 0.0),
    "silu": (6, 0.0),
    "swish": (6, 0.0),
    "elu": (7, 1.0),
}


def typed_key(value):
    """A hashable key that tells 2, 2.0, True and np.int64(2) apart (they compare equal), for
    caches of validated arguments. Unhashable values make the lookup raise TypeError."""
    t = type(value)
    if t is tuple or t is list:
        return (t, *[typed_key(v) for v in value])
    return t, value


def data_format(value) -> str:
    """'NCHW' or 'NHWC' from any accepted spelling."""
    try:
        return _LAYOUTS[value]
    except (KeyError, TypeError):
        raise ValueError(
            f"data_format must be one of 'NCHW', 'NHWC', 'channels_first', 'channels_last'; "
            f"got {value!r}"
        ) from None


def integer(value, name: str, minimum: int = 1) -> int:
    """A Python/NumPy integer (not bool, not float) in [minimum, MAX_PARAM]."""
    if type(value) is not int:  # plain ints skip the (slow) abstract-base-class checks
        value = _integral(value, name)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_PARAM:
        raise ValueError(f"{name} must be <= {MAX_PARAM}, got {value}")
    return value


def _integral(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return operator.index(value)


def pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints -> (h, w)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return integer(value[0], name, minimum), integer(value[1], name, minimum)
    v = integer(value, name, minimum)
    return v, v


def activation(value) -> tuple[int, float, str | None]:
    """(code, parameter, canonical name) for an activation spec: None, a name, or (name, param)."""
    param = None
    name = value
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"activation must be a name or (name, parameter), got {value!r}")
        name, param = value
    if isinstance(name, str):
        name = name.lower()
    try:
        code, default = ACTIVATIONS[name]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"activation must be one of {names}; got {value!r}") from None
    if param is None:
        param = default
    elif name not in ("leaky_relu", "elu"):
        raise ValueError(f"activation {name!r} takes no parameter, got {value!r}")
    elif isinstance(param, bool) or not isinstance(param, numbers.Real) or not np.isfinite(param):
        raise TypeError(f"activation parameter must be a finite number, got {param!r}")
    canonical = "silu" if name == "swish" else name
    return code, float(param), canonical


def as_array(value, name: str) -> np.ndarray:
    """An ndarray view of an input: DLPack producers (a CPU torch tensor) and buffers without a
    copy, anything else through numpy.asarray. None and non-real data raise TypeError."""
    if isinstance(value, np.ndarray):
        a = value
    elif value is None:
        raise TypeError(f"{name} must be an array, got None")
    else:
        a = None
        if hasattr(value, "__dlpack__"):
            try:
                a = np.from_dlpack(value)
            except (TypeError, ValueError, BufferError, RuntimeError):
                pass  # not a CPU tensor NumPy can view: fall back to the array protocol
        if a is None:
            try:
                a = np.asarray(value)
            except (TypeError, ValueError, RuntimeError, BufferError) as exc:
                # RuntimeError: e.g. a torch tensor that requires grad refuses __array__
                raise TypeError(f"{name} must be array-like: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a real (bool, integer or floating) array; got dtype {a.dtype} "
            f"(pycnn computes in float32/float64)"
        )
    return a


def result_dtype(*arrays) -> np.dtype:
    """float64 if any input is float64, else float32. Complex/object/string arrays: TypeError."""
    out = np.dtype(np.float32)
    for a in arrays:
        if a is None:
            continue
        kind = a.dtype.kind
        if kind in "biuf":
            if a.dtype == np.float64 or (kind == "f" and a.dtype.itemsize > 8):
                out = np.dtype(np.float64)
        else:
            raise TypeError(
                f"pycnn computes in float32/float64; got an array of dtype {a.dtype} "
                f"(complex, object and string arrays are not accepted)"
            )
    return out


def conv_output_size(size: int, kernel: int, stride: int, dilation: int,
                     before: int, after: int, what: str = "convolution") -> int:
    """floor((in + before + after - d*(k-1) - 1) / s) + 1, and >= 1."""
    effective = dilation * (kernel - 1) + 1
    padded = size + before + after
    if padded < effective:
        raise ValueError(
            f"{what}: kernel extent {effective} (kernel {kernel}, dilation {dilation}) is larger "
            f"than the padded input {padded} (input {size} + padding {before}+{after})"
        )
    return (padded - effective) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow 'same': out = ceil(in/s), the extra cell (if odd) goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def padding(value, sizes, kernel, stride, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding spec -> ((top, bottom), (left, right)).

    Accepts an int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same' (TensorFlow).
    """
    if isinstance(value, str):
        mode = value.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return tuple(same_padding(sizes[i], kernel[i], stride[i], dilation[i]) for i in (0, 1))
        raise ValueError(f"padding must be an int, a pair, per-side pairs, 'valid' or 'same'; got {value!r}")
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (tuple, list)) for v in value):
        sides = []
        for v in value:
            if len(v) != 2:
                raise ValueError(f"padding per side must be ((top, bottom), (left, right)); got {value!r}")
            sides.append((integer(v[0], "padding", 0), integer(v[1], "padding", 0)))
        return tuple(sides)
    ph, pw = pair(value, "padding", 0)
    return (ph, ph), (pw, pw)


def image_dims(x: np.ndarray, layout: str, name: str = "x"):
    """(n, c, h, w) of a 4-D batch in `layout`; a 3-D array must be unbatched before this."""
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (batch) or 3-D (one image); got shape {x.shape}")
    if layout == "NCHW":
        return x.shape
    n, h, w, c = x.shape
    return n, c, h, w


def batched(x: np.ndarray, name: str = "x"):
    """Add a batch axis to a 3-D image; returns (array, was_unbatched)."""
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W / N, H, W, C) or 3-D (one image); got shape {x.shape}")
    return x, False


def make_image(n: int, c: int, h: int, w: int, layout: str) -> tuple[int, ...]:
    """Shape of an image batch in `layout`."""
    return (n, c, h, w) if layout == "NCHW" else (n, h, w, c)


class ConvGeometry:
    """Everything that defines a 2-D convolution's shapes, resolved once."""

    __slots__ = ("n", "c", "h", "w", "o", "kh", "kw", "oh", "ow", "stride", "dilation",
                 "pad", "groups", "layout")

    def __repr__(self):
        return "ConvGeometry(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def conv2d_geometry(x_shape, w_shape, *, stride, padding_spec, dilation, groups, layout) -> ConvGeometry:
    """Check x/weight shapes against each other and compute the output size.

    NCHW: x (N, C, H, W), weight (O, C/groups, KH, KW) (PyTorch).
    NHWC: x (N, H, W, C), weight (KH, KW, C/groups, O) (Keras/TensorFlow).
    """
    g = ConvGeometry()
    g.layout = layout
    if len(w_shape) != 4:
        raise ValueError(
            f"weight must be 4-D ({'O, C/groups, KH, KW' if layout == 'NCHW' else 'KH, KW, C/groups, O'}); "
            f"got shape {tuple(w_shape)}"
        )
    if layout == "NCHW":
        g.n, g.c, g.h, g.w = x_shape
        g.o, cg, g.kh, g.kw = w_shape
    else:
        g.n, g.h, g.w, g.c = x_shape
        g.kh, g.kw, cg, g.o = w_shape
    g.groups = integer(groups, "groups")
    if g.c % g.groups:
        raise ValueError(f"groups={g.groups} must divide the input channels {g.c}")
    if g.o % g.groups:
        raise ValueError(f"groups={g.groups} must divide the output channels {g.o} of weight")
    if cg != g.c // g.groups:
        raise ValueError(
            f"weight has {cg} input channels per group but x has {g.c} channels / groups {g.groups} "
            f"= {g.c // g.groups} (weight shape {tuple(w_shape)}, data_format {layout})"
        )
    if g.o < 1 or g.kh < 1 or g.kw < 1:
        raise ValueError(f"weight must have nonzero output channels and kernel size; got shape {tuple(w_shape)}")
    if g.c < 1:
        raise ValueError(f"x must have at least one channel; got shape {tuple(x_shape)}")
    if g.h < 1 or g.w < 1:
        raise ValueError(f"x must have a nonzero height and width; got shape {tuple(x_shape)}")
    g.stride = pair(stride, "stride")
    g.dilation = pair(dilation, "dilation")
    g.pad = padding(padding_spec, (g.h, g.w), (g.kh, g.kw), g.stride, g.dilation)
    g.oh = conv_output_size(g.h, g.kh, g.stride[0], g.dilation[0], *g.pad[0], what="conv2d height")
    g.ow = conv_output_size(g.w, g.kw, g.stride[1], g.dilation[1], *g.pad[1], what="conv2d width")
    return g


# ---------------------------------------------------------------------------------------------
# Flags, bias, out=
# ---------------------------------------------------------------------------------------------

def flag(value, name: str) -> bool:
    """A Python/NumPy bool (not an int standing in for one)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_bias(shape, channels: int, name: str = "bias") -> None:
    """A bias is one value per output channel: shape (channels,)."""
    if tuple(shape) != (channels,):
        raise ValueError(
            f"{name} must have shape ({channels},), one value per output channel; got shape {tuple(shape)}"
        )


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except np.exceptions.TooHardError:
        return True  # can't tell cheaply: treat as overlapping


def out_array(out, shape, dtype, inputs=None):
    """Validate `out=`: a C-contiguous, writeable ndarray of exactly `shape` and `dtype` that shares
    no memory with any of `inputs` (a mapping name -> array or None). Returns `out` (or None)."""
    if out is None:
        return None
    shape = tuple(shape)
    dtype = np.dtype(dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a NumPy array of shape {shape} and dtype {dtype}; got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}; got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have dtype {dtype}; got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    for name, a in (inputs or {}).items():
        if isinstance(a, np.ndarray) and _overlaps(out, a):
            raise ValueError(f"out must not overlap the input {name}")
    return out


# ---------------------------------------------------------------------------------------------
# Depthwise and separable convolution
# ---------------------------------------------------------------------------------------------

def depthwise_conv2d_geometry(x_shape, w_shape, *, stride, padding_spec, dilation, layout,
                              weight_name: str = "weight") -> ConvGeometry:
    """A depthwise convolution as the grouped convolution it is: groups = C, o = C*M.

    NCHW: weight (C*M, 1, KH, KW) (PyTorch conv2d with groups=C).
    NHWC: weight (KH, KW, C, M) (Keras DepthwiseConv2D), read as (KH, KW, 1, C*M).
    Output channel c*M + m is input channel c filtered by multiplier m; M = o // c.
    """
    if len(w_shape) != 4:
        expected = "C*M, 1, KH, KW" if layout == "NCHW" else "KH, KW, C, M"
        raise ValueError(f"{weight_name} must be 4-D ({expected}); got shape {tuple(w_shape)}")
    c = x_shape[1] if layout == "NCHW" else x_shape[3]
    if c < 1:
        raise ValueError(f"x must have at least one channel; got shape {tuple(x_shape)}")
    if layout == "NCHW":
        cm, one, kh, kw = w_shape
        if one != 1 or cm < 1 or cm % c:
            raise ValueError(
                f"{weight_name} must have shape (C*M, 1, KH, KW) with C = {c} input channels; "
                f"got shape {tuple(w_shape)}"
            )
        conv_shape = tuple(w_shape)
    else:
        kh, kw, wc, m = w_shape
        if wc != c or m < 1:
            raise ValueError(
                f"{weight_name} must have shape (KH, KW, C, M) with C = {c} input channels; "
                f"got shape {tuple(w_shape)}"
            )
        conv_shape = (kh, kw, 1, c * m)
    if kh < 1 or kw < 1:
        raise ValueError(f"{weight_name} must have a nonzero kernel size; got shape {tuple(w_shape)}")
    return conv2d_geometry(x_shape, conv_shape, stride=stride, padding_spec=padding_spec,
                           dilation=dilation, groups=c, layout=layout)


def separable_conv2d_geometry(x_shape, depthwise_shape, pointwise_shape, *, stride, padding_spec,
                              dilation, layout) -> tuple[ConvGeometry, ConvGeometry]:
    """(depthwise geometry, pointwise geometry): a depthwise step, then a 1x1 convolution.

    Pointwise weight: NCHW (O, C*M, 1, 1), NHWC (1, 1, C*M, O). Stride, padding and dilation
    belong to the depthwise step; the pointwise step is stride 1, no padding.
    """
    dw = depthwise_conv2d_geometry(x_shape, depthwise_shape, stride=stride, padding_spec=padding_spec,
                                   dilation=dilation, layout=layout, weight_name="depthwise_weight")
    expected = f"(O, {dw.o}, 1, 1)" if layout == "NCHW" else f"(1, 1, {dw.o}, O)"
    pw_shape = tuple(pointwise_shape)
    if len(pw_shape) != 4:
        raise ValueError(f"pointwise_weight must be 4-D {expected}; got shape {pw_shape}")
    kh, kw, cin, o = (pw_shape[2], pw_shape[3], pw_shape[1], pw_shape[0]) if layout == "NCHW" else pw_shape
    if kh != 1 or kw != 1 or cin != dw.o or o < 1:
        raise ValueError(
            f"pointwise_weight must have shape {expected} to follow the depthwise step's {dw.o} "
            f"channels; got shape {pw_shape}"
        )
    mid_shape = make_image(dw.n, dw.o, dw.oh, dw.ow, layout)
    pw = conv2d_geometry(mid_shape, pw_shape, stride=1, padding_spec=0, dilation=1, groups=1, layout=layout)
    return dw, pw


# ---------------------------------------------------------------------------------------------
# Transposed convolution
# ---------------------------------------------------------------------------------------------

class ConvTransposeGeometry:
    """Everything that defines a 2-D transposed convolution's shapes, resolved once.

    Input pixel i with tap t lands on output i*s + t*d - top (rows; columns likewise with left).
    The "full" result (no cropping) has (in - 1)*s + d*(k - 1) + 1 cells; `pad` is
    ((top, bottom), (left, right)) cells cropped from it, so oh = full_h - top - bottom. A negative
    bottom/right means the output runs past the full result (output_padding): those cells get no
    tap, only the bias.
    """

    __slots__ = ("n", "c", "h", "w", "o", "kh", "kw", "oh", "ow", "stride", "dilation",
                 "pad", "groups", "layout")

    def __repr__(self):
        return "ConvTransposeGeometry(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def conv_transpose_output_size(size: int, kernel: int, stride: int, dilation: int, pad, output_padding,
                               what: str = "conv_transpose2d") -> tuple[int, int]:
    """(before, out) for one dimension of a transposed convolution.

    pad: "valid", "same" (Keras Conv2DTranspose) or (before, after) (PyTorch: cropped from the
    full result). output_padding: an int, or None for the layout's default.
    """
    k_eff = dilation * (kernel - 1) + 1
    if pad == "valid":
        if output_padding is None:
            output_padding = max(k_eff, stride) - k_eff
        before = 0
        out = (size - 1) * stride + k_eff + output_padding
    elif pad == "same":
        if output_padding is None:
            out = size * stride
        else:
            out = (size - 1) * stride + k_eff % 2 + output_padding
        # the "same" split of the forward convolution that maps `out` back to `size`
        before = max((size - 1) * stride + k_eff - out, 0) // 2
    else:
        before, after = pad
        out = (size - 1) * stride - before - after + k_eff + (output_padding or 0)
    if out < 1:
        raise ValueError(
            f"{what}: output size {out} < 1 (input {size}, kernel {kernel}, stride {stride}, "
            f"dilation {dilation}, padding {pad!r}, output_padding {output_padding})"
        )
    return before, out


def conv_transpose2d_geometry(x_shape, w_shape, *, stride, padding_spec, output_padding, dilation, groups,
                              layout) -> ConvTransposeGeometry:
    """Check x/weight shapes and compute the output size of a transposed convolution.

    NCHW: x (N, C, H, W), weight (C, O/groups, KH, KW) (PyTorch).
    NHWC: x (N, H, W, C), weight (KH, KW, O/groups, C) (Keras/TensorFlow).
    Integer padding follows PyTorch (an omitted output_padding is 0); "valid"/"same" follow Keras
    Conv2DTranspose. output_padding must be smaller than the stride or the dilation.
    """
    g = ConvTransposeGeometry()
    g.layout = layout
    if len(w_shape) != 4:
        raise ValueError(
            f"weight must be 4-D ({'C, O/groups, KH, KW' if layout == 'NCHW' else 'KH, KW, O/groups, C'}); "
            f"got shape {tuple(w_shape)}"
        )
    if layout == "NCHW":
        g.n, g.c, g.h, g.w = x_shape
        wc, og, g.kh, g.kw = w_shape
    else:
        g.n, g.h, g.w, g.c = x_shape
        g.kh, g.kw, og, wc = w_shape
    g.groups = integer(groups, "groups")
    if g.c < 1:
        raise ValueError(f"x must have at least one channel; got shape {tuple(x_shape)}")
    if g.h < 1 or g.w < 1:
        raise ValueError(f"x must have a nonzero height and width; got shape {tuple(x_shape)}")
    if g.c % g.groups:
        raise ValueError(f"groups={g.groups} must divide the input channels {g.c}")
    if wc != g.c:
        raise ValueError(
            f"weight has {wc} input channels but x has {g.c} (weight shape {tuple(w_shape)}, data_format {layout})"
        )
    if og < 1 or g.kh < 1 or g.kw < 1:
        raise ValueError(f"weight must have nonzero output channels and kernel size; got shape {tuple(w_shape)}")
    g.o = og * g.groups
    g.stride = pair(stride, "stride")
    g.dilation = pair(dilation, "dilation")
    if output_padding is not None:
        output_padding = pair(output_padding, "output_padding", 0)
        for i in (0, 1):
            if output_padding[i] >= max(g.stride[i], g.dilation[i]):
                raise ValueError(
                    f"output_padding must be smaller than the stride or the dilation; got output_padding "
                    f"{output_padding}, stride {g.stride}, dilation {g.dilation}"
                )
    if isinstance(padding_spec, str):
        mode = padding_spec.lower()
        if mode not in ("valid", "same"):
            raise ValueError(
                f"padding must be an int, a pair, per-side pairs, 'valid' or 'same'; got {padding_spec!r}"
            )
        pads = (mode, mode)
    else:
        pads = padding(padding_spec, (g.h, g.w), (g.kh, g.kw), g.stride, g.dilation)
    sizes, kernels, outs, pad = (g.h, g.w), (g.kh, g.kw), [], []
    for i, what in ((0, "conv_transpose2d height"), (1, "conv_transpose2d width")):
        op = None if output_padding is None else output_padding[i]
        before, out = conv_transpose_output_size(sizes[i], kernels[i], g.stride[i], g.dilation[i], pads[i], op, what)
        full = (sizes[i] - 1) * g.stride[i] + g.dilation[i] * (kernels[i] - 1) + 1
        outs.append(out)
        pad.append((before, full - before - out))
    g.oh, g.ow = outs
    g.pad = tuple(pad)
    return g


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

class PoolGeometry:
    """Everything that defines a 2-D pooling window's shapes, resolved once.

    Output cell o reads input rows o*s - top + j*d, j < kh (columns likewise with left); rows
    outside the input are padding. `count_include_pad` is resolved: False for "same" padding.
    Divisor with count_include_pad: the window clipped to [-top, h + bottom) x [-left, w + right)
    (PyTorch); without: the window clipped to the input.
    """

    __slots__ = ("n", "c", "h", "w", "kh", "kw", "oh", "ow", "stride", "dilation", "pad",
                 "ceil_mode", "count_include_pad", "layout")

    def __repr__(self):
        return "PoolGeometry(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def pool_output_size(size: int, kernel: int, stride: int, dilation: int, before: int, after: int,
                     ceil_mode: bool, what: str = "pooling") -> int:
    """PyTorch's pooling output size: ceil_mode adds s - 1 before the floor, and drops a last
    window that would start in the right padding (or past it)."""
    effective = dilation * (kernel - 1) + 1
    padded = size + before + after
    out = (padded - effective + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    if out < 1:
        raise ValueError(
            f"{what}: output size {out} < 1: kernel extent {effective} (kernel {kernel}, dilation "
            f"{dilation}) does not fit the padded input {padded} (input {size} + padding {before}+{after})"
        )
    return out


def pool2d_geometry(x_shape, *, kernel_size, stride=None, padding_spec=0, dilation=1, ceil_mode=False,
                    count_include_pad=True, layout) -> PoolGeometry:
    """Pooling shapes. Integer padding follows PyTorch (each side at most half the effective
    kernel); "valid"/"same" follow Keras/TensorFlow ("same" never counts padded cells).
    stride defaults to kernel_size."""
    g = PoolGeometry()
    g.layout = layout
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D (batch) or 3-D (one image); got shape {tuple(x_shape)}")
    if layout == "NCHW":
        g.n, g.c, g.h, g.w = x_shape
    else:
        g.n, g.h, g.w, g.c = x_shape
    if g.h < 1 or g.w < 1:
        raise ValueError(f"x must have a nonzero height and width; got shape {tuple(x_shape)}")
    g.kh, g.kw = pair(kernel_size, "kernel_size")
    g.stride = (g.kh, g.kw) if stride is None else pair(stride, "stride")
    g.dilation = pair(dilation, "dilation")
    g.ceil_mode = flag(ceil_mode, "ceil_mode")
    g.count_include_pad = flag(count_include_pad, "count_include_pad")
    g.pad = padding(padding_spec, (g.h, g.w), (g.kh, g.kw), g.stride, g.dilation)
    if isinstance(padding_spec, str):
        if padding_spec.lower() == "same":
            g.count_include_pad = False
    else:
        for (before, after), k, d in zip(g.pad, (g.kh, g.kw), g.dilation):
            effective = d * (k - 1) + 1
            if 2 * max(before, after) > effective:
                raise ValueError(
                    f"padding must be at most half the effective kernel size; got padding {padding_spec!r}, "
                    f"kernel_size {(g.kh, g.kw)}, dilation {g.dilation}"
                )
    g.oh = pool_output_size(g.h, g.kh, g.stride[0], g.dilation[0], *g.pad[0], g.ceil_mode, "pooling height")
    g.ow = pool_output_size(g.w, g.kw, g.stride[1], g.dilation[1], *g.pad[1], g.ceil_mode, "pooling width")
    return g


def global_pool_shape(n: int, c: int, layout: str, keepdims: bool) -> tuple[int, ...]:
    """(N, C), or with keepdims (N, C, 1, 1) / (N, 1, 1, C)."""
    return make_image(n, c, 1, 1, layout) if keepdims else (n, c)


def depth_pool_channels(channels: int, pool_size) -> int:
    """Output channels of depth pooling: pool_size must divide the channels."""
    pool_size = integer(pool_size, "pool_size")
    if channels % pool_size:
        raise ValueError(f"pool_size={pool_size} must divide the number of channels {channels}")
    return channels // pool_size
