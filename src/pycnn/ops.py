"""The functional API: every argument is validated and normalized here, once.

Arrays in: anything `numpy.asarray` accepts (NumPy arrays, CPU torch tensors, buffers).
Arrays out: new C-contiguous arrays, or `out=`. Semantics: ../DESIGN.md (PyTorch for NCHW,
Keras/TensorFlow for NHWC and the "same"/"valid" padding names).
"""
from __future__ import annotations

import numpy as np

from . import _args, _core

__all__ = [
    "conv2d",
    "pack_conv2d_weight",
    "PackedConv2dWeight",
    "explain_conv2d",
    "explain_conv_transpose2d",
    "depthwise_conv2d",
    "separable_conv2d",
    "separable_conv2d_scratch_bytes",
    "conv_transpose2d",
    "pack_conv_transpose2d_weight",
    "PackedConvTranspose2dWeight",
    "max_pool2d",
    "avg_pool2d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "depth_max_pool2d",
]

_ALGORITHMS = {"auto": 0, "direct": 1, "im2col": 2, "winograd": 3}
_LAYOUT_CODE = {"NCHW": 0, "NHWC": 1}
_POOL_KIND = {"max": 0, "avg": 1}


def _contiguous(a, dtype):
    return a if (a.dtype == dtype and a.flags.c_contiguous) else np.ascontiguousarray(a, dtype)


class _Inputs:
    """The array arguments of a weighted op as ndarrays, their result dtype, and x as a batch."""

    __slots__ = ("layout", "x", "x4", "unbatched", "weights", "bias", "dtype", "_names")

    def __init__(self, data_format, x, bias, **weights):
        self.layout = _args.data_format(data_format)
        self.x = _args.as_array(x, "x")
        self.weights = [_args.as_array(w, name) for name, w in weights.items()]
        self.bias = None if bias is None else _args.as_array(bias, "bias")
        self.dtype = _args.result_dtype(self.x, *self.weights, self.bias)
        self.x4, self.unbatched = _args.batched(self.x)
        self._names = ("x", *weights, "bias")

    def check_bias(self, channels):
        if self.bias is not None:
            _args.check_bias(self.bias.shape, channels)

    def result(self, out, n, channels, oh, ow):
        """(result array, its 4-D view) after validating `out=` against these inputs."""
        shape = _args.make_image(n, channels, oh, ow, self.layout)
        result_shape = shape[1:] if self.unbatched else shape
        inputs = dict(zip(self._names, (self.x, *self.weights, self.bias)))
        y = _args.out_array(out, result_shape, self.dtype, inputs)
        if y is None:
            y = np.empty(result_shape, self.dtype)
        return y, y.reshape(shape)

    def arrays(self):
        """x (4-D), the weights and bias, contiguous in the result dtype, for the core."""
        d = self.dtype
        return (_contiguous(self.x4, d), *(_contiguous(w, d) for w in self.weights),
                None if self.bias is None else _contiguous(self.bias, d))


def _effective(stride, dilation, kernel, positions, keep_half=False):
    """(stride, dilation) with the ones that cannot matter set to 1: a stride over a single
    position (one output row of a convolution, one input row of a transposed one) and the
    dilation of a one-tap kernel. The answer is the same; the C++ core then never sizes
    buffers by a meaningless stride of 2**31 - 1 (it raised MemoryError). keep_half: a stride of
    half the kernel stays (small, and what lets Winograd take a transposed kernel)."""
    keep = keep_half and kernel == 2 * stride
    return (1 if positions == 1 and not keep else stride), (1 if kernel == 1 else dilation)


def _geometry_tuple(g, transposed=False):
    (sh, dh), (sw, dw) = (_effective(g.stride[i], g.dilation[i], k, pos, transposed) for i, k, pos in (
        (0, g.kh, g.h if transposed else g.oh), (1, g.kw, g.w if transposed else g.ow)))
    return (g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow, sh, sw, dh, dw, g.pad[0][0], g.pad[1][0], g.groups)


class _PackedWeight:
    """What packed weights share: the private read-only copy (`weight`), its shape and dtype, and
    what it was packed for (data_format, groups, and the subclass's `_packed_for`)."""

    __slots__ = ("weight", "data_format", "groups")
    _packed_for = ("data_format", "groups")

    @property
    def shape(self):
        return self.weight.shape

    @property
    def dtype(self):
        return self.weight.dtype

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._packed_for)
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, {fields})"

    def check_data_format(self, layout):
        """ValueError unless the call's layout is the one this weight was packed for."""
        if self.data_format != layout:
            raise ValueError(f"weight was packed for data_format {self.data_format!r}; "
                             f"this call has data_format {layout!r}")

    def check_geometry(self, g):
        """ValueError naming the first of what this weight was packed for (but its layout) that
        the call's geometry `g` does not have."""
        for name in self._packed_for:
            if name == "data_format":
                continue
            was, now = getattr(self, name), getattr(g, name)
            if was != now:
                raise ValueError(f"weight was packed for {name}={was}; this call has {name}={now}")


class PackedConv2dWeight(_PackedWeight):
    """conv2d weights prepared once for repeated calls; made by `pack_conv2d_weight`.

    `conv2d` takes it in place of `weight` when `data_format` and `groups` match the ones it was
    packed for. It holds a private read-only copy (later changes to the array it was made from
    do not reach it); for NCHW, the same weights reordered to (KH, KW, C/groups, O), the form
    the direct kernels read, so no call reorders them; and for a 3x3 kernel with one group, the
    weights transformed for Winograd F(2x2, 3x3) at stride 1 and at stride 2, each made by the
    first call of its stride that runs Winograd (each takes 16/9 of the weights' memory and
    more), so no Winograd call transforms them.
    """

    __slots__ = ("_hwio", "_winograd_able", "_winograd_made", "_winograd_strided_made")

    def __init__(self, weight, data_format, groups, hwio):
        self.weight, self.data_format, self.groups, self._hwio = weight, data_format, groups, hwio
        kernel = weight.shape[2:] if data_format == "NCHW" else weight.shape[:2]
        self._winograd_able = groups == 1 and kernel == (3, 3)
        self._winograd_made = self._winograd_strided_made = None

    # Two plain properties, not one keyed by stride: read on every Winograd call.
    @property
    def _winograd(self):
        """The Winograd transform of the weights for calls at stride 1 (made on first use), or
        None if they have none."""
        if self._winograd_made is None and self._winograd_able:
            self._winograd_made = _winograd_weights(self.weight, self.data_format, 1)
        return self._winograd_made

    @property
    def _winograd_strided(self):
        """The same for calls at stride 2."""
        if self._winograd_strided_made is None and self._winograd_able:
            self._winograd_strided_made = _winograd_weights(self.weight, self.data_format, 2)
        return self._winograd_strided_made


def pack_conv2d_weight(weight, *, groups=1, data_format="NCHW", dtype=None) -> PackedConv2dWeight:
    """Prepare conv2d weights once, for repeated `conv2d(x, packed, ...)` calls.

    weight: NCHW (O, C/groups, KH, KW), NHWC (KH, KW, C/groups, O), as for conv2d.
    dtype: float32 or float64; by default float64 for float64 weights, else float32. A call whose
    result dtype differs (float64 x with float32 weights) converts the weights on every call.
    """
    layout, groups, packed = _checked_copy(weight, groups, data_format, dtype, _CONV2D_WEIGHT_DIMS,
                                           "output channels")
    hwio = _aligned_copy(packed.transpose(2, 3, 1, 0), packed.dtype) if layout == "NCHW" else None
    return PackedConv2dWeight(packed, layout, groups, hwio)


def _winograd_weights(w, layout, stride):
    """A weight transformed for Winograd (read-only, aligned): a 3x3 one-group conv2d weight for
    calls at `stride` 1 or 2 (F(2x2, 3x3), each stride its own transform), or with a
    (stride_h, stride_w) `stride`, a conv_transpose2d weight twice the stride for F(3x3, 2x2) on
    its stride phases."""
    nchw = layout == "NCHW"
    if isinstance(stride, int):
        c, columns = (w.shape[1], w.shape[0]) if nchw else (w.shape[2], w.shape[3])
    else:
        c, columns = (w.shape[0], w.shape[1]) if nchw else (w.shape[3], w.shape[2])
        columns *= stride[0] * stride[1]
    u = _aligned_empty((16, c, _core.winograd_weights_stride(columns)), w.dtype)
    if isinstance(stride, int):
        _core.conv2d_winograd_weights(w, _LAYOUT_CODE[layout], stride, u)
    else:
        _core.conv_transpose2d_winograd_weights(w, _LAYOUT_CODE[layout], *stride, u)
    u.flags.writeable = False
    return u


def _checked_copy(weight, groups, data_format, dtype, dims, grouped):
    """(layout, groups, an aligned read-only copy) of a weight to pack, after the checks every
    pack function makes. dims: layout -> the weight's dimension names; `grouped`: what the
    groups divide, the first dimension in NCHW and the last in NHWC."""
    layout = _args.data_format(data_format)
    w = _args.as_array(weight, "weight")
    if w.ndim != 4:
        raise ValueError(f"weight must be 4-D ({dims[layout]}); got shape {w.shape}")
    if 0 in w.shape:
        raise ValueError(f"weight must have no zero-sized dimension; got shape {w.shape}")
    groups = _args.integer(groups, "groups")
    n = w.shape[0] if layout == "NCHW" else w.shape[3]
    if n % groups:
        raise ValueError(f"groups={groups} must divide the {grouped} {n} of weight")
    if dtype is None:
        dtype = _args.result_dtype(w)
    elif np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
    return layout, groups, _aligned_copy(w, dtype)


_CONV2D_WEIGHT_DIMS = {"NCHW": "O, C/groups, KH, KW", "NHWC": "KH, KW, C/groups, O"}
_TRANSPOSE_WEIGHT_DIMS = {"NCHW": "C, O/groups, KH, KW", "NHWC": "KH, KW, O/groups, C"}


def _aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array starting on a 64-byte boundary, so that the
    microkernels' full-vector weight loads never straddle two cache lines."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.empty(size + 64 // itemsize, dtype)
    start = (-raw.ctypes.data % 64) // itemsize
    return raw[start:start + size].reshape(shape)


def _aligned_copy(a, dtype):
    """A read-only aligned (_aligned_empty) copy of `a`."""
    out = _aligned_empty(a.shape, dtype)
    out[...] = a
    out.flags.writeable = False
    return out


# C++ plans (_core.Conv2dPlan, DepthwisePlan, SeparablePlan, ConvTranspose2dPlan) of recent call
# shapes, one cache per op, with their result's shape and dtype (to check out=), so that a
# repeated call skips argument normalisation. The key tells 1, 1.0, True and np.int64(1) apart:
# they must not share a plan.
_PLANS: dict = {}
_DEPTHWISE_PLANS: dict = {}
_SEPARABLE_PLANS: dict = {}
_TRANSPOSE_PLANS: dict = {}
_MAX_PLANS = 256
# The same plans of conv2d, depthwise_conv2d, separable_conv2d and conv_transpose2d
# (_TRANSPOSE_CACHE, below its packed weight's class) for calls with no out=, and the plans of
# the pooling ops but depth_max_pool2d, found in C++ from the call's own arguments
# (_core.PlanCache, whose keys are stricter than these dicts': options of exactly int, bool, str,
# None or tuples of them). A tiny conv2d (1x1x8x8, 3x3), alternating, us: 5.7 -> 3.2 with the
# Python key skipped, 2.6 with the cached call's array checks and result allocation made direct
# NumPy calls.
_CONV2D_CACHE = _core.PlanCache(PackedConv2dWeight, ["data_format", "groups"])
_DEPTHWISE_CACHE = _core.PlanCache()
_SEPARABLE_CACHE = _core.PlanCache()  # weight: (depthwise weight, pointwise weight)
_POOL_CACHE = _core.PlanCache()
_run_cached_conv2d = _CONV2D_CACHE.runner()
_run_cached_depthwise = _DEPTHWISE_CACHE.runner()
_run_cached_separable = _SEPARABLE_CACHE.runner()
_run_cached_pool = _POOL_CACHE.runner()
_FLAT_KEY_TYPES = frozenset((int, str, type(None)))
_DEFAULT_OPTION_TYPES = (int, int, int, int, type(None), str, str)


def _clear_plans():
    """Forgets every cached plan (after a change to what the algorithm choice reads)."""
    for plans in (_PLANS, _DEPTHWISE_PLANS, _SEPARABLE_PLANS, _TRANSPOSE_PLANS, _CONV2D_CACHE, _DEPTHWISE_CACHE,
                  _SEPARABLE_CACHE, _TRANSPOSE_CACHE, _POOL_CACHE):
        plans.clear()


def _plan_key(x, weight, bias, options, types, default_types=_DEFAULT_OPTION_TYPES):
    """The cache key of a call, or None when the call cannot be cached. `types` are the types of
    `options`: with them in the key, 1, 1.0 and True never share a plan. A packed weight keys by
    what it was packed for."""
    if type(x) is not np.ndarray or not (bias is None or type(bias) is np.ndarray):
        return None
    tw = type(weight)
    if tw is np.ndarray:
        wkey = weight.shape, weight.dtype.num
    elif tw is PackedConv2dWeight:  # its data_format and groups were checked when the plan was made
        wkey = tw, weight.weight.shape, weight.weight.dtype.num, weight.data_format, weight.groups
    elif tw is PackedConvTranspose2dWeight:  # as above, and its stride and dilation
        wkey = (tw, weight.weight.shape, weight.weight.dtype.num, weight.data_format, weight.groups, weight.stride,
                weight.dilation)
    else:
        return None
    bkey = None if bias is None else (bias.shape, bias.dtype.num)
    if types == default_types:  # a key one shorter than any other: hashed and compared faster
        return x.shape, x.dtype.num, wkey, bkey, options
    if not _FLAT_KEY_TYPES.issuperset(types):
        options = _args.typed_key(options)  # tuples (padding=(1, 1.0)), floats, bools, NumPy scalars
    return x.shape, x.dtype.num, wkey, bkey, options, types


def _remember(plans, key, plan, y, *extra):
    """Caches (plan, the result's shape and dtype, *extra) under key."""
    if key is not None:
        if len(plans) >= _MAX_PLANS:
            plans.clear()
        plans[key] = (plan, y.shape, y.dtype, *extra)


def _lookup(plans, key):
    """(the cached entry of key or None, key or None when it cannot be cached: unhashable)."""
    if key is None:
        return None, None
    try:
        return plans.get(key), key
    except TypeError:  # an unhashable argument: no plan reuse
        return None, None


def _run_cached(entry, x, weight, bias, out, *extra):
    """An (x, weight, bias) call through its cached plan entry; `extra`: the plan's arguments
    after out (conv_transpose2d's weight phases). (separable_conv2d, with two weights, has its
    own: a names-and-arrays form cost out= calls 0.3 us in building the dict.)"""
    plan = entry[0]
    if out is None:
        return plan(x, weight, bias, None, *extra) if extra else plan(x, weight, bias)
    # out= is validated as on the first call: shape, dtype, layout, no overlap.
    plan(x, weight, bias, _args.out_array(out, entry[1], entry[2], {"x": x, "weight": weight, "bias": bias}), *extra)
    return out


def _kernel_within_input(g):
    """Whether the dilated kernel spans no more than the input. The depthwise kernels size their
    padded planes by its extent (a dilation of 2**31-1 with "same" padding, where only the centre
    tap lands, would take gigabytes); conv2d's grouped im2col serves the others."""
    return (g.kh - 1) * g.dilation[0] < g.h and (g.kw - 1) * g.dilation[1] < g.w


def _is_depthwise(g):
    """A grouped conv2d with one input channel per group (PyTorch's spelling of a depthwise
    convolution), which algorithm="auto" runs on the depthwise kernels: the grouped GEMMs of
    one channel each ran 5-48x slower (dw 3x3 144 @56, 2 threads, p10: NCHW 255 vs 50 us,
    NHWC 2049 vs 43 us)."""
    return g.groups > 1 and g.groups == g.c and _kernel_within_input(g)


def _depthwise_as_conv2d_weight(w, g, layout):
    """A depthwise weight as conv2d's with groups = C: NHWC (KH, KW, C, M) -> (KH, KW, 1, C*M)."""
    return w if layout == "NCHW" else w.reshape(g.kh, g.kw, 1, g.o)


def _run_plan(plan, prepared, x, weight, bias, out=None):
    """A conv2d plan's call. prepared (kept in the plan's cache entry): how it takes a packed
    weight, None for a DepthwisePlan (the weights as given), else the name of the packed form it
    also reads ("_hwio", "_winograd" or "_winograd_strided"), or "" for none."""
    if type(weight) is PackedConv2dWeight:
        if prepared is None:
            return plan(x, weight.weight, bias, out)
        return plan(x, weight.weight, bias, out, getattr(weight, prepared) if prepared else None)
    return plan(x, weight, bias, out)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None,
           data_format="NCHW", algorithm="auto", out=None):
    """2-D convolution (cross-correlation), y = activation(conv(x, weight) + bias).

    NCHW: x (N, C, H, W), weight (O, C/groups, KH, KW) as in PyTorch.
    NHWC: x (N, H, W, C), weight (KH, KW, C/groups, O) as in Keras.
    weight may also be a PackedConv2dWeight (pack_conv2d_weight) for the same data_format/groups.
    padding: int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same" (TensorFlow).
    algorithm: "auto", "direct", "im2col" or "winograd" (3x3 kernels, stride 1 or 2, no dilation,
    groups too: F(2x2, 3x3), at stride 2 with the even and odd inputs apart; see explain_conv2d).
    "auto" runs groups == channels (one input channel per group) on the depthwise kernels, as
    depthwise_conv2d, and takes Winograd for 3x3 stride-1 layers with enough channels (per
    group) and output tiles, and for 3x3 stride-2 ones with one group, 32 or more input and
    output channels (at most 32768 pairs; with packed weights on a core with a 1 MiB L2 or more,
    131072 from 128 tiles) and 40 or more 2x2 output tiles. A Winograd call that
    meets a non-finite value recomputes directly, so Inf and NaN propagate as in a direct sum.
    """
    options = (stride, padding, dilation, groups, activation, data_format, algorithm)
    if out is None:
        y = _run_cached_conv2d(x, weight, bias, options)
        if y is not None:
            return y
    key = _plan_key(x, weight, bias, options,
                    (type(stride), type(padding), type(dilation), type(groups), type(activation),
                     type(data_format), type(algorithm)))
    if key is not None:
        try:
            entry = _PLANS.get(key)
        except TypeError:  # an unhashable argument: no plan reuse
            key = entry = None
        if entry is not None:  # inline, not _run_cached: conv2d's tiny-call overhead is measured
            plan = entry[0]
            if out is None:
                if type(weight) is np.ndarray:
                    return plan(x, weight, bias)
                if entry[3] is None:  # as _run_plan, inline
                    return plan(x, weight.weight, bias, None)
                return plan(x, weight.weight, bias, None, getattr(weight, entry[3]) if entry[3] else None)
            # out= is validated as on the first call: shape, dtype, layout, no overlap.
            inputs = {"x": x, "weight": weight if type(weight) is np.ndarray else weight.weight, "bias": bias}
            _run_plan(plan, entry[3], x, weight, bias, _args.out_array(out, entry[1], entry[2], inputs))
            return out

    try:
        algo = _ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm must be one of 'auto', 'direct', 'im2col', 'winograd'; "
                         f"got {algorithm!r}") from None
    act, act_param, _ = _args.activation(activation)
    if type(weight) is PackedConvTranspose2dWeight:
        raise TypeError("weight is a PackedConvTranspose2dWeight (for conv_transpose2d); conv2d takes an array "
                        "or a PackedConv2dWeight")
    packed = weight if type(weight) is PackedConv2dWeight else None
    a = _Inputs(data_format, x, bias, weight=weight if packed is None else packed.weight)
    if packed is not None:
        packed.check_data_format(a.layout)
    g = _args.conv2d_geometry(a.x4.shape, a.weights[0].shape, stride=stride, padding_spec=padding,
                              dilation=dilation, groups=groups, layout=a.layout)
    if packed is not None:
        packed.check_geometry(g)
    a.check_bias(g.o)
    y, y4 = a.result(out, g.n, g.o, g.oh, g.ow)
    if g.n == 0:
        return y
    if algo == _ALGORITHMS["auto"] and _is_depthwise(g):
        # The weight's memory order is the depthwise op's: NCHW (C*M, 1, KH, KW) as is, NHWC
        # (KH, KW, 1, C*M) as (KH, KW, C, M); output channel c*M + m in both.
        plan = _core.DepthwisePlan(_depthwise_geometry_tuple(g), _LAYOUT_CODE[a.layout], act, act_param,
                                   a.dtype == np.float64, y.shape)
        prepared = None
    else:
        usable = packed if packed is not None and packed.dtype == a.dtype else None
        plan, prepared = _conv2d_plan(g, a.layout, act, act_param, algo, usable, a.dtype == np.float64, y.shape)
    _remember(_PLANS, key, plan, y, prepared)
    if key is not None:
        _CONV2D_CACHE.remember(x, weight, bias, options, plan, prepared or None)
    _run_plan(plan, prepared, a.x4, weight if packed is not None else a.weights[0], a.bias, y4)
    return y


def _conv2d_plan(g, layout, act, act_param, algo, packed, float64, result_shape=()):
    """(the Conv2dPlan of a conv2d call, the packed form it reads: "_winograd", "_winograd_strided",
    "_hwio" or "").
    packed: the call's PackedConv2dWeight when its dtype is the call's, else None. A 3x3 one-group
    packed weight offers its Winograd transform, so that "auto" counts none; the plan takes it
    when its algorithm is Winograd."""
    geometry, code = _geometry_tuple(g), _LAYOUT_CODE[layout]
    if packed is not None and packed._winograd_able:
        plan = _core.Conv2dPlan(geometry, code, act, act_param, algo, False, float64, result_shape,
                                weight_winograd_given=True)
        if plan.algorithm == _ALGORITHMS["winograd"]:
            return plan, "_winograd_strided" if plan.winograd_stride == 2 else "_winograd"
    hwio_use = packed is not None and packed._hwio is not None
    return _core.Conv2dPlan(geometry, code, act, act_param, algo, hwio_use, float64, result_shape), (
        "_hwio" if hwio_use else "")


def explain_conv2d(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                   data_format="NCHW") -> str:
    """Which algorithm `algorithm="auto"` picks for these shapes, and why. Either shape may be
    given as an array (its shape is used); weight_shape may be a PackedConv2dWeight: packed NCHW
    weights make the reorder to NHWC cheaper, packed 3x3 weights Winograd (no weight transform)."""
    layout = _args.data_format(data_format)
    x_shape = tuple(getattr(x_shape, "shape", x_shape))
    if type(weight_shape) is not PackedConv2dWeight:
        weight_shape = getattr(weight_shape, "shape", weight_shape)
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    packed = type(weight_shape) is PackedConv2dWeight
    g = _args.conv2d_geometry(x_shape, tuple(weight_shape.shape if packed else weight_shape), stride=stride,
                              padding_spec=padding, dilation=dilation, groups=groups, layout=layout)
    if _is_depthwise(g):
        return (f"depthwise: groups = channels = {g.groups}, one input channel per group, so the depthwise "
                f"kernels (as depthwise_conv2d with depth multiplier {g.o // g.c}); direct and im2col rejected: "
                f"{g.groups} GEMMs of one input channel each (algorithm='direct' or 'im2col' still runs them)")
    return _conv2d_plan(g, layout, 0, 0.0, _ALGORITHMS["auto"], weight_shape if packed else None, False)[0].explain()


# ---------------------------------------------------------------------------------------------
# Depthwise, separable and transposed convolution
# ---------------------------------------------------------------------------------------------

# The option types of a depthwise_conv2d / conv_transpose2d call with its defaults (their keys
# skip the typed-key conversion).
_DEPTHWISE_OPTION_TYPES = (int, int, int, type(None), str)
_TRANSPOSE_OPTION_TYPES = (int, int, type(None), int, int, type(None), str, str)
_TRANSPOSE_ALGORITHMS = {"auto": 0, "direct": 1, "gemm": 2, "winograd": 3, "conv2d": 4}


def _depthwise_key(x, weight, bias, stride, padding, dilation, activation, data_format):
    """The plan key of a depthwise call's (x, depthwise weight, bias) and options, or None."""
    if type(weight) is not np.ndarray:
        return None
    return _plan_key(x, weight, bias, (stride, padding, dilation, activation, data_format),
                     (type(stride), type(padding), type(dilation), type(activation), type(data_format)),
                     _DEPTHWISE_OPTION_TYPES)


def _depthwise_geometry_tuple(g):
    return _geometry_tuple(g)[:4] + (g.o // g.c,) + _geometry_tuple(g)[5:15]


def depthwise_conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, activation=None,
                     data_format="NCHW", out=None):
    """Depthwise convolution with depth multiplier M, y = activation(depthwise(x, weight) + bias).

    NCHW: x (N, C, H, W), weight (C*M, 1, KH, KW) (PyTorch conv2d with groups=C).
    NHWC: x (N, H, W, C), weight (KH, KW, C, M) (Keras DepthwiseConv2D).
    Output channel c*M + m is input channel c filtered by multiplier m; bias has C*M values.
    """
    options = (stride, padding, dilation, activation, data_format)
    if out is None:
        y = _run_cached_depthwise(x, weight, bias, options)
        if y is not None:
            return y
    key = _depthwise_key(x, weight, bias, stride, padding, dilation, activation, data_format)
    entry, key = _lookup(_DEPTHWISE_PLANS, key)
    if entry is not None:
        return _run_cached(entry, x, weight, bias, out)
    act, act_param, _ = _args.activation(activation)
    a = _Inputs(data_format, x, bias, weight=weight)
    g = _args.depthwise_conv2d_geometry(a.x4.shape, a.weights[0].shape, stride=stride, padding_spec=padding,
                                        dilation=dilation, layout=a.layout)
    a.check_bias(g.o)
    y, y4 = a.result(out, g.n, g.o, g.oh, g.ow)
    if g.n and not _kernel_within_input(g):
        conv2d(a.x4, _depthwise_as_conv2d_weight(a.weights[0], g, a.layout), a.bias, stride=stride, padding=padding,
               dilation=dilation, groups=g.c, activation=activation, data_format=a.layout, algorithm="im2col", out=y4)
    elif g.n:
        plan = _core.DepthwisePlan(_depthwise_geometry_tuple(g), _LAYOUT_CODE[a.layout], act, act_param,
                                   a.dtype == np.float64, y.shape)
        _remember(_DEPTHWISE_PLANS, key, plan, y)
        if key is not None:
            _DEPTHWISE_CACHE.remember(x, weight, bias, options, plan)
        plan(*a.arrays(), y4)
    return y


def separable_conv2d(x, depthwise_weight, pointwise_weight, bias=None, *, stride=1, padding=0, dilation=1,
                     activation=None, data_format="NCHW", out=None):
    """Depthwise convolution, then a 1x1 convolution; bias and activation after the 1x1 step.

    depthwise_weight as in depthwise_conv2d; pointwise_weight NCHW (O, C*M, 1, 1), NHWC
    (1, 1, C*M, O). Fused: the depthwise result is computed band by band into per-thread
    scratch and fed straight to the GEMM; it is never materialised whole (see
    separable_conv2d_scratch_bytes).
    """
    options = (stride, padding, dilation, activation, data_format)
    if out is None:
        y = _run_cached_separable(x, (depthwise_weight, pointwise_weight), bias, options)
        if y is not None:
            return y
    key = None
    if type(pointwise_weight) is np.ndarray:
        key = _depthwise_key(x, depthwise_weight, bias, stride, padding, dilation, activation, data_format)
        if key is not None:
            key += (pointwise_weight.shape, pointwise_weight.dtype.num)
    entry, key = _lookup(_SEPARABLE_PLANS, key)
    if entry is not None:
        plan = entry[0]
        if out is None:
            return plan(x, depthwise_weight, pointwise_weight, bias)
        inputs = {"x": x, "depthwise_weight": depthwise_weight, "pointwise_weight": pointwise_weight, "bias": bias}
        plan(x, depthwise_weight, pointwise_weight, bias, _args.out_array(out, entry[1], entry[2], inputs))
        return out
    act, act_param, _ = _args.activation(activation)
    a = _Inputs(data_format, x, bias, depthwise_weight=depthwise_weight, pointwise_weight=pointwise_weight)
    dg, pg = _args.separable_conv2d_geometry(a.x4.shape, a.weights[0].shape, a.weights[1].shape,
                                             stride=stride, padding_spec=padding, dilation=dilation,
                                             layout=a.layout)
    a.check_bias(pg.o)
    y, y4 = a.result(out, pg.n, pg.o, pg.oh, pg.ow)
    if dg.n and not _kernel_within_input(dg):
        mid = conv2d(a.x4, _depthwise_as_conv2d_weight(a.weights[0], dg, a.layout), stride=stride, padding=padding,
                     dilation=dilation, groups=dg.c, data_format=a.layout, algorithm="im2col")
        conv2d(mid, a.weights[1], a.bias, activation=activation, data_format=a.layout, out=y4)
    elif dg.n:
        plan = _core.SeparablePlan(_depthwise_geometry_tuple(dg), pg.o, _LAYOUT_CODE[a.layout], act, act_param,
                                   a.dtype == np.float64, y.shape)
        _remember(_SEPARABLE_PLANS, key, plan, y)
        if key is not None:
            _SEPARABLE_CACHE.remember(x, (depthwise_weight, pointwise_weight), bias, options, plan)
        plan(*a.arrays(), y4)
    return y


def separable_conv2d_scratch_bytes(x_shape, depthwise_weight_shape, pointwise_weight_shape, *, stride=1,
                                   padding=0, dilation=1, data_format="NCHW", dtype=np.float32) -> dict:
    """Memory of the fused separable_conv2d for these shapes, with the current thread count:
    {"intermediate_bytes": the depthwise result a two-call approach materialises,
     "scratch_bytes": the band scratch the fused op uses instead, all threads together}."""
    layout = _args.data_format(data_format)
    x_shape = tuple(x_shape)
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    dg, pg = _args.separable_conv2d_geometry(x_shape, tuple(depthwise_weight_shape),
                                             tuple(pointwise_weight_shape), stride=stride,
                                             padding_spec=padding, dilation=dilation, layout=layout)
    size = np.dtype(dtype).itemsize
    if size not in (4, 8):
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return {"intermediate_bytes": dg.n * dg.o * dg.oh * dg.ow * size,
            "scratch_bytes": int(_core.separable_scratch_bytes(_depthwise_geometry_tuple(dg), pg.o,
                                                               _LAYOUT_CODE[layout], size))}


class PackedConvTranspose2dWeight(_PackedWeight):
    """conv_transpose2d weights prepared once for repeated calls; made by
    `pack_conv_transpose2d_weight`.

    `conv_transpose2d` takes it in place of `weight` when `data_format`, `groups`, `stride` and
    `dilation` match the ones it was packed for. It holds a private read-only copy of the weights
    and the same weights split by stride phase (per phase and group, a (taps x C/groups, O/groups)
    matrix), the form the kernels read, so no call reorders them; and for a kernel twice the
    stride with one group and no dilation, the weights transformed for Winograd F(3x3, 2x2), made
    by the first call that runs Winograd.
    """

    __slots__ = ("stride", "dilation", "_phases", "_winograd_able", "_winograd_made")
    _packed_for = ("data_format", "groups", "stride", "dilation")

    def __init__(self, weight, data_format, groups, stride, dilation, phases):
        self.weight, self.data_format, self.groups = weight, data_format, groups
        self.stride, self.dilation, self._phases = stride, dilation, phases
        kernel = weight.shape[2:] if data_format == "NCHW" else weight.shape[:2]
        self._winograd_able = groups == 1 and dilation == (1, 1) and kernel == (2 * stride[0], 2 * stride[1])
        self._winograd_made = None

    @property
    def _winograd(self):
        """The Winograd transform of the weights (made on first use), or None if they have none."""
        if self._winograd_made is None and self._winograd_able:
            self._winograd_made = _winograd_weights(self.weight, self.data_format, self.stride)
        return self._winograd_made


def pack_conv_transpose2d_weight(weight, *, stride=1, dilation=1, groups=1, data_format="NCHW",
                                 dtype=None) -> PackedConvTranspose2dWeight:
    """Prepare conv_transpose2d weights once, for repeated `conv_transpose2d(x, packed, ...)` calls
    with this stride, dilation and groups.

    weight: NCHW (C, O/groups, KH, KW), NHWC (KH, KW, O/groups, C), as for conv_transpose2d.
    dtype: float32 or float64; by default float64 for float64 weights, else float32.
    """
    layout, groups, packed = _checked_copy(weight, groups, data_format, dtype, _TRANSPOSE_WEIGHT_DIMS,
                                           "input channels")
    stride, dilation = _args.pair(stride, "stride"), _args.pair(dilation, "dilation")
    # (C, O/g, KH, KW) -> for each phase (r, q), group and (row tap, column tap) in descending tap
    # order, that tap's (C/g, O/g) block: the order of the C++ core's phase split.
    w_c = packed if layout == "NCHW" else packed.transpose(3, 2, 0, 1)
    cg, (kh, kw) = w_c.shape[0] // groups, w_c.shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    blocks = []
    for r in range(sh):
        rows = [k for k in range(kh - 1, -1, -1) if k * dh % sh == r]
        for q in range(sw):
            cols = [k for k in range(kw - 1, -1, -1) if k * dw % sw == q]
            for g in range(groups):
                blocks += [w_c[g * cg:(g + 1) * cg, :, i, j] for i in rows for j in cols]
    phases = _aligned_copy(np.concatenate([b.reshape(-1) for b in blocks]), packed.dtype)
    return PackedConvTranspose2dWeight(packed, layout, groups, stride, dilation, phases)


def _conv_transpose2d_plan(g, layout, act, act_param, algo, packed, float64, result_shape=()):
    """(the ConvTranspose2dPlan of a call, the packed form it reads: "_winograd", "_phases" or
    None). packed: the call's PackedConvTranspose2dWeight when its dtype is the call's, else None.
    Its phases are those of the packed stride and dilation; the core may drop a stride or dilation
    that cannot matter (_effective), and then splits anew. Its Winograd transform is offered so
    that "auto" counts none, and taken by a plan that runs Winograd."""
    geometry, code = _geometry_tuple(g, transposed=True), _LAYOUT_CODE[layout]
    same = packed is not None and geometry[9:13] == (*packed.stride, *packed.dilation)
    if same and packed._winograd_able:
        plan = _core.ConvTranspose2dPlan(geometry, code, act, act_param, float64, result_shape, algo,
                                         weight_winograd_given=True)
        if plan.algorithm == _TRANSPOSE_ALGORITHMS["winograd"]:
            return plan, "_winograd"
    return (_core.ConvTranspose2dPlan(geometry, code, act, act_param, float64, result_shape, algo),
            "_phases" if same else None)


def explain_conv_transpose2d(x_shape, weight_shape, *, stride=1, padding=0, output_padding=None, dilation=1,
                             groups=1, data_format="NCHW") -> str:
    """Which algorithm `algorithm="auto"` picks for these conv_transpose2d shapes, and why. Either
    shape may be given as an array (its shape is used); weight_shape may be a
    PackedConvTranspose2dWeight (packed, a kernel twice the stride runs Winograd from fewer tiles;
    the explanation assumes calls of the packed dtype, as other calls convert the weights and
    transform them anew)."""
    layout = _args.data_format(data_format)
    x_shape = tuple(getattr(x_shape, "shape", x_shape))
    packed = weight_shape if type(weight_shape) is PackedConvTranspose2dWeight else None
    if packed is not None:
        packed.check_data_format(layout)
    if len(x_shape) == 3:
        x_shape = (1,) + x_shape
    g = _args.conv_transpose2d_geometry(x_shape, tuple(getattr(weight_shape, "shape", weight_shape)), stride=stride,
                                        padding_spec=padding, output_padding=output_padding, dilation=dilation,
                                        groups=groups, layout=layout)
    if packed is not None:
        packed.check_geometry(g)
    return _conv_transpose2d_plan(g, layout, 0, 0.0, _TRANSPOSE_ALGORITHMS["auto"], packed, False)[0].explain()


# conv_transpose2d's C++ plan cache (as _CONV2D_CACHE).
_TRANSPOSE_CACHE = _core.PlanCache(PackedConvTranspose2dWeight, ["data_format", "groups", "stride", "dilation"])
_run_cached_transpose = _TRANSPOSE_CACHE.runner()


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=None, dilation=1, groups=1,
                     activation=None, data_format="NCHW", algorithm="auto", out=None):
    """Transposed convolution (the gradient of conv2d with respect to its input), then bias and
    activation.

    NCHW: x (N, C, H, W), weight (C, O/groups, KH, KW) (PyTorch).
    NHWC: x (N, H, W, C), weight (KH, KW, O/groups, C) (Keras Conv2DTranspose).
    weight may also be a PackedConvTranspose2dWeight (pack_conv_transpose2d_weight) for the same
    data_format, groups, stride and dilation.
    Integer padding follows PyTorch (output_padding defaults to 0); "valid"/"same" follow Keras
    (an omitted output_padding gives out = in*stride for "same"). output_padding must be smaller
    than the stride or the dilation.
    algorithm: "auto", "direct" (each stride phase a correlation on the direct kernels), "gemm"
    (a GEMM per kernel tap), "winograd" (F(3x3, 2x2) on every stride phase: a kernel of twice
    the stride, e.g. 4x4 at stride 2, no dilation, one group; a non-finite value makes the call
    recompute by another form, so Inf/NaN propagate as in a direct sum) or "conv2d" (stride 1,
    one group, padding within the dilated kernel: conv2d with the kernel flipped, as conv2d's
    "auto" runs it); "auto" picks per shape (see explain_conv_transpose2d).
    """
    options = (stride, padding, output_padding, dilation, groups, activation, data_format, algorithm)
    if out is None:
        y = _run_cached_transpose(x, weight, bias, options)
        if y is not None:
            return y
    tw = type(weight)
    key = None if tw is not np.ndarray and tw is not PackedConvTranspose2dWeight else _plan_key(
        x, weight, bias, options,
        (type(stride), type(padding), type(output_padding), type(dilation), type(groups), type(activation),
         type(data_format), type(algorithm)), _TRANSPOSE_OPTION_TYPES)
    entry, key = _lookup(_TRANSPOSE_PLANS, key)
    if entry is not None:
        if tw is np.ndarray:
            return _run_cached(entry, x, weight, bias, out)
        return _run_cached(entry, x, weight.weight, bias, out, getattr(weight, entry[3]) if entry[3] else None)
    try:
        algo = _TRANSPOSE_ALGORITHMS[algorithm]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm must be one of 'auto', 'direct', 'gemm', 'winograd', 'conv2d'; "
                         f"got {algorithm!r}") from None
    act, act_param, _ = _args.activation(activation)
    if tw is PackedConv2dWeight:
        raise TypeError("weight is a PackedConv2dWeight (for conv2d); conv_transpose2d takes an array or a "
                        "PackedConvTranspose2dWeight")
    packed = weight if tw is PackedConvTranspose2dWeight else None
    a = _Inputs(data_format, x, bias, weight=weight if packed is None else packed.weight)
    if packed is not None:
        packed.check_data_format(a.layout)
    g = _args.conv_transpose2d_geometry(a.x4.shape, a.weights[0].shape, stride=stride, padding_spec=padding,
                                        output_padding=output_padding, dilation=dilation, groups=groups,
                                        layout=a.layout)
    if packed is not None:
        packed.check_geometry(g)
    a.check_bias(g.o)
    y, y4 = a.result(out, g.n, g.o, g.oh, g.ow)
    if g.n:
        plan, prepared = _conv_transpose2d_plan(g, a.layout, act, act_param, algo,
                                                packed if packed is not None and packed.dtype == a.dtype else None,
                                                a.dtype == np.float64, y.shape)
        _remember(_TRANSPOSE_PLANS, key, plan, y, prepared)
        if key is not None:
            _TRANSPOSE_CACHE.remember(x, weight, bias, options, plan, prepared or None)
        plan(a.x4, a.weights[0], a.bias, y4, getattr(packed, prepared) if prepared else None)
    return y


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------

_POOL_GEOMETRY_CACHE: dict = {}
_POOL_GEOMETRY_CACHE_SIZE = 256


def _pool_geometry(shape, layout, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad):
    """_args.pool2d_geometry, memoised: resolving the arguments costs more than pooling a small
    tensor. Only successful results are kept, keyed by value and type, so every bad argument
    still reaches the checks in _args (and unhashable ones skip the cache)."""
    try:
        key = (shape, layout, _args.typed_key(kernel_size), _args.typed_key(stride), _args.typed_key(padding),
               _args.typed_key(dilation), _args.typed_key(ceil_mode), _args.typed_key(count_include_pad))
        g = _POOL_GEOMETRY_CACHE.get(key)
    except TypeError:
        key, g = None, None
    if g is None:
        g = _args.pool2d_geometry(shape, kernel_size=kernel_size, stride=stride, padding_spec=padding,
                                  dilation=dilation, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                                  layout=layout)
        if key is not None:
            if len(_POOL_GEOMETRY_CACHE) >= _POOL_GEOMETRY_CACHE_SIZE:
                _POOL_GEOMETRY_CACHE.clear()
            _POOL_GEOMETRY_CACHE[key] = g
    return g


_NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _pool_dtype(x):
    """_args.result_dtype for the one input x, with the common float32/float64 case first."""
    return x.dtype if x.dtype in _NATIVE_DTYPES else _args.result_dtype(x)


def _pool2d(kind, x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, data_format, out):
    options = (kind, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, data_format)
    if out is None:
        y = _run_cached_pool(x, None, None, options)
        if y is not None:
            return y
    layout = _args.data_format(data_format)
    x_in = _args.as_array(x, "x")
    dtype = _pool_dtype(x_in)
    x4, unbatched = _args.batched(x_in)
    g = _pool_geometry(x4.shape, layout, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad)
    shape = _args.make_image(g.n, g.c, g.oh, g.ow, layout)
    result_shape = shape[1:] if unbatched else shape
    y = _args.out_array(out, result_shape, dtype, {"x": x_in})
    if y is None:
        y = np.empty(result_shape, dtype)
    if y.size == 0:
        return y
    geometry = (g.n, g.c, g.h, g.w, g.kh, g.kw, g.oh, g.ow, g.stride[0], g.stride[1], g.dilation[0],
                g.dilation[1], g.pad[0][0], g.pad[0][1], g.pad[1][0], g.pad[1][1])
    plan = _core.Pool2dPlan(geometry, _LAYOUT_CODE[layout], _POOL_KIND[kind], g.count_include_pad,
                            dtype == np.float64, y.shape)
    _POOL_CACHE.remember(x, None, None, options, plan)
    plan(_contiguous(x4, dtype), y.reshape(shape))
    return y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, data_format="NCHW",
               out=None):
    """Max over each pooling window (PyTorch MaxPool2d / Keras MaxPooling2D).

    stride defaults to kernel_size. padding: int, (ph, pw), ((top, bottom), (left, right)) --
    each side at most half the effective kernel, as in PyTorch -- or "valid"/"same" (Keras).
    Padded cells never win; a NaN anywhere in a window gives NaN. ceil_mode as in PyTorch.
    """
    return _pool2d("max", x, kernel_size, stride, padding, dilation, ceil_mode, True, data_format, out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               data_format="NCHW", out=None):
    """Mean over each pooling window (PyTorch AvgPool2d / Keras AveragePooling2D).

    count_include_pad=True divides by the window clipped to the padded input (PyTorch); False
    divides by the input cells in the window. "same" padding never counts padded cells (Keras).
    """
    return _pool2d("avg", x, kernel_size, stride, padding, 1, ceil_mode, count_include_pad, data_format, out)


def _global_pool2d(kind, x, data_format, keepdims):
    options = (kind, data_format, keepdims)
    y = _run_cached_pool(x, None, None, options)
    if y is not None:
        return y
    layout = _args.data_format(data_format)
    keepdims = _args.flag(keepdims, "keepdims")
    x_in = _args.as_array(x, "x")
    dtype = _pool_dtype(x_in)
    x4, unbatched = _args.batched(x_in)
    n, c, h, w = _args.image_dims(x4, layout)
    if h < 1 or w < 1:
        raise ValueError(f"x must have a nonzero height and width; got shape {x_in.shape}")
    # (N, C) values in either result shape: the core writes them straight into it.
    y = np.empty(_args.global_pool_shape(n, c, layout, keepdims), dtype)
    if y.size:
        plan = _core.GlobalPool2dPlan(_POOL_KIND[kind], _LAYOUT_CODE[layout], n, c, h, w, dtype == np.float64,
                                      y.shape[1:] if unbatched else y.shape)
        _POOL_CACHE.remember(x, None, None, options, plan)
        plan(_contiguous(x4, dtype), y)
    return y[0] if unbatched else y


def global_avg_pool2d(x, *, data_format="NCHW", keepdims=False):
    """Mean over H and W: (N, C), or with keepdims (N, C, 1, 1) / (N, 1, 1, C)."""
    return _global_pool2d("avg", x, data_format, keepdims)


def global_max_pool2d(x, *, data_format="NCHW", keepdims=False):
    """Max over H and W (NaN propagates): (N, C), or with keepdims (N, C, 1, 1) / (N, 1, 1, C)."""
    return _global_pool2d("max", x, data_format, keepdims)


def depth_max_pool2d(x, pool_size, *, data_format="NCHW"):
    """Max over groups of `pool_size` consecutive channels (pool_size must divide C); NaN propagates."""
    layout = _args.data_format(data_format)
    x_in = _args.as_array(x, "x")
    dtype = _pool_dtype(x_in)
    x4, unbatched = _args.batched(x_in)
    n, c, h, w = _args.image_dims(x4, layout)
    groups = _args.depth_pool_channels(c, pool_size)
    shape = _args.make_image(n, groups, h, w, layout)
    y = np.empty(shape, dtype)
    if y.size:
        _core.depth_max_pool2d(_contiguous(x4, dtype), y, n, c, h, w, c // groups, _LAYOUT_CODE[layout])
    return y[0] if unbatched else y
