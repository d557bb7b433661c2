"""`python -m pycnn.bench`: the standard-layer benchmark, pycnn's main job.

It measures this machine's own roofs first (float32 FMA peak with pycnn's register-only kernel
for the ISA in use, and streaming-copy bandwidth), then times every standard layer: pycnn in
both layouts, the NumPy reference, and the installed peers (PyTorch NCHW and channels_last,
ONNX Runtime) in the same process with the same thread count. Times are medians; ratios are
best-peer time / pycnn time, so > 1 means pycnn is faster.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import pycnn
from pycnn import _args, ops, reference

# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One benchmarked layer: how much work it is and the callables that do it."""

    group: str                      # "conv2d", "pooling", ...
    name: str
    work: float                     # flops, or bytes moved for bandwidth-bound ops
    unit: str                       # "GFLOP/s" or "GB/s"
    bytes_moved: float              # compulsory bytes (inputs + weights + outputs): roofline x
    pycnn: dict = field(default_factory=dict)      # label ("NCHW", "NHWC") -> fn
    reference: Callable | None = None
    note: str = ""                                 # a line printed under the row
    peers: dict = field(default_factory=dict)      # label -> fn
    baselines: dict = field(default_factory=dict)  # label -> fn: other pycnn ways, shown, not peers

    @property
    def intensity(self) -> float:
        return self.work / self.bytes_moved if self.unit == "GFLOP/s" else 0.0


@dataclass(frozen=True)
class ConvLayer:
    name: str
    c: int
    o: int
    size: int
    kernel: int
    stride: int = 1
    padding: int = 0
    batch: int = 1

    @property
    def out_size(self) -> int:
        return _args.conv_output_size(self.size, self.kernel, self.stride, 1, self.padding, self.padding)

    def gflop(self, batch: int | None = None) -> float:
        n = self.batch if batch is None else batch
        return 2.0 * n * self.o * self.c * self.kernel**2 * self.out_size**2 / 1e9


# The standard conv2d layers (ResNet/VGG stems and blocks, and MNIST/LeNet-size layers).
CONV_LAYERS = [
    ConvLayer("7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3),
    ConvLayer("3x3 64->64 @56", 64, 64, 56, 3, 1, 1),
    ConvLayer("1x1 256->64 @56", 256, 64, 56, 1, 1, 0),
    ConvLayer("3x3 256->256 @14", 256, 256, 14, 3, 1, 1),
    ConvLayer("3x3 128->128 @112", 128, 128, 112, 3, 1, 1),
    ConvLayer("3x3/2 128->256 @56", 128, 256, 56, 3, 2, 1),
    ConvLayer("3x3 64->64 @56 b8", 64, 64, 56, 3, 1, 1, batch=8),
    ConvLayer("3x3 1->32 @28", 1, 32, 28, 3, 1, 0),
    ConvLayer("3x3 32->64 @13", 32, 64, 13, 3, 1, 0),
    ConvLayer("5x5 6->16 @14 LeNet", 6, 16, 14, 5, 1, 0),
]


def _nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _onnxruntime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _ort_session(ort, node, inputs, output_shape, threads):
    """An ONNX Runtime session for one node (or a list of nodes, the last one's output being the
    graph's); inputs: name -> array, the first fed, the rest initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x_name, x = next(iter(inputs.items()))
    nodes = node if isinstance(node, list) else [node]
    graph = helper.make_graph(
        nodes, "bench",
        [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, list(output_shape))],
        initializer=[numpy_helper.from_array(v, k) for k, v in list(inputs.items())[1:]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {x_name: x}

    def run():
        return session.run(None, feed)

    run.settle_seconds = ORT_SETTLE_SECONDS
    return run


def _winograd_note(explain, layouts, kw, form, direct, fewer="2.25x") -> str:
    """The line under a layer that "auto" runs by Winograd in some layout ("" if in none): which
    layouts, and that its rates count the direct form's multiply-adds, `fewer` times the ones
    Winograd does. explain: ops.explain_conv2d or ops.explain_conv_transpose2d; layouts: (layout,
    x, packed weight) triples."""
    winograd = [layout for layout, x, w in layouts if explain(x, w, data_format=layout, **kw).startswith("winograd")]
    if not winograd:
        return ""
    return (f"{' and '.join(winograd)}: Winograd {form}; GFLOP/s and % peak count a direct {direct}'s "
            f"multiply-adds, {fewer} the ones it does")


def conv_cases(layers, *, batch, peers, threads) -> list[Case]:
    rng = np.random.default_rng(0)
    cases = []
    torch = _torch() if "torch" in peers else None
    ort = _onnxruntime() if "onnxruntime" in peers else None
    for layer in layers:
        n = layer.batch if batch is None else batch
        x = rng.standard_normal((n, layer.c, layer.size, layer.size), dtype=np.float32)
        w = rng.standard_normal((layer.o, layer.c, layer.kernel, layer.kernel), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(layer.c * layer.kernel**2))
        b = rng.standard_normal(layer.o, dtype=np.float32)
        xn, wn = _nhwc(x), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        kw = dict(stride=layer.stride, padding=layer.padding)
        out_elems = n * layer.o * layer.out_size**2
        case = Case("conv2d", layer.name + ("" if batch is None or batch == layer.batch else f" b{n}"),
                    layer.gflop(n) * 1e9, "GFLOP/s", 4.0 * (x.size + w.size + out_elems))
        # Weights packed once, as pycnn.layers uses them (and as ONNX Runtime prepacks its own).
        pw, pwn = ops.pack_conv2d_weight(w), ops.pack_conv2d_weight(wn, data_format="NHWC")
        case.pycnn["NCHW"] = lambda x=x, w=pw, b=b, kw=kw: ops.conv2d(x, w, b, **kw)
        case.pycnn["NHWC"] = lambda x=xn, w=pwn, b=b, kw=kw: ops.conv2d(x, w, b, data_format="NHWC", **kw)
        case.reference = lambda x=x, w=w, b=b, kw=kw: reference.conv2d(x, w, b, **kw)
        strided = layer.stride == 2  # 25 multiplies per 2x2 outputs, not 36
        case.note = _winograd_note(ops.explain_conv2d, (("NCHW", x, pw), ("NHWC", xn, pwn)), kw,
                                   "F(2x2, 3x3) at stride 2" if strided else "F(2x2, 3x3)", "convolution",
                                   "1.44x" if strided else "2.25x")
        if torch is not None:
            tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            tx_cl = tx.contiguous(memory_format=torch.channels_last)
            for label, t in (("torch NCHW", tx), ("torch NHWC", tx_cl)):
                def run(t=t, tw=tw, tb=tb, kw=kw):
                    with torch.no_grad():
                        torch.nn.functional.conv2d(t, tw, tb, **kw)
                case.peers[label] = run
        if ort is not None:
            from onnx import helper
            p = layer.padding
            node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[layer.stride] * 2, pads=[p] * 4)
            case.peers["onnxruntime"] = _ort_session(
                ort, node, {"x": x, "w": w, "b": b}, (n, layer.o, layer.out_size, layer.out_size), threads)
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------
# Depthwise, separable and transposed convolution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthwiseLayer:
    """A depthwise k x k convolution (multiplier m), optionally followed by a 1x1 to `pointwise`."""

    name: str
    c: int
    size: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    m: int = 1
    pointwise: int = 0
    batch: int = 1

    @property
    def out_size(self) -> int:
        return _args.conv_output_size(self.size, self.kernel, self.stride, 1, self.padding, self.padding)

    def flops(self, n: int) -> float:
        cm, p = self.c * self.m, self.out_size**2
        return 2.0 * n * p * cm * (self.kernel**2 + self.pointwise)


@dataclass(frozen=True)
class TransposeLayer:
    name: str
    c: int
    o: int
    size: int
    kernel: int = 4
    stride: int = 2
    padding: int = 1
    batch: int = 1

    @property
    def out_size(self) -> int:
        return _args.conv_transpose_output_size(self.size, self.kernel, self.stride, 1,
                                                (self.padding, self.padding), None)[1]

    def flops(self, n: int) -> float:
        return 2.0 * n * self.c * self.o * self.kernel**2 * self.size**2


DEPTHWISE_LAYERS = [
    DepthwiseLayer("dw 3x3 144 @56", 144, 56),
    DepthwiseLayer("dw 3x3/2 96 @112", 96, 112, stride=2),
]
SEPARABLE_LAYERS = [
    DepthwiseLayer("sep 3x3 128 @56 +1x1 128", 128, 56, pointwise=128),
]
TRANSPOSE_LAYERS = [
    TransposeLayer("convT 4x4/2 256->128 @14", 256, 128, 14),
    TransposeLayer("convT 4x4/2 64->32 @64", 64, 32, 64),
]


def _torch_runner(torch, fn):
    def run():
        with torch.no_grad():
            fn()
    return run


def depthwise_cases(layers, *, batch, peers, threads) -> list[Case]:
    """Depthwise layers, or separable ones (pointwise > 0: fused op, and the two-call baseline)."""
    rng = np.random.default_rng(0)
    torch = _torch() if "torch" in peers else None
    ort = _onnxruntime() if "onnxruntime" in peers else None
    cases = []
    for layer in layers:
        n = layer.batch if batch is None else batch
        c, m, k, cm, o = layer.c, layer.m, layer.kernel, layer.c * layer.m, layer.pointwise
        x = rng.standard_normal((n, c, layer.size, layer.size), dtype=np.float32)
        dw = rng.standard_normal((cm, 1, k, k), dtype=np.float32) / np.float32(k)
        dwn = np.ascontiguousarray(dw[:, 0].transpose(1, 2, 0).reshape(k, k, c, m))
        xn = _nhwc(x)
        kw = dict(stride=layer.stride, padding=layer.padding)
        out_c = o or cm
        out_shape = (n, out_c, layer.out_size, layer.out_size)
        b = rng.standard_normal(out_c, dtype=np.float32)
        name = layer.name + ("" if batch is None or batch == layer.batch else f" b{n}")
        if not o:
            case = Case("depthwise", name, layer.flops(n), "GFLOP/s",
                        4.0 * (x.size + dw.size + np.prod(out_shape)))
            case.pycnn["NCHW"] = lambda x=x, w=dw, b=b, kw=kw: ops.depthwise_conv2d(x, w, b, **kw)
            case.pycnn["NHWC"] = lambda x=xn, w=dwn, b=b, kw=kw: ops.depthwise_conv2d(
                x, w, b, data_format="NHWC", **kw)
            case.reference = lambda x=x, w=dw, b=b, kw=kw: reference.depthwise_conv2d(x, w, b, **kw)
        else:
            pw = rng.standard_normal((o, cm, 1, 1), dtype=np.float32) / np.float32(np.sqrt(cm))
            pwn = np.ascontiguousarray(pw.transpose(2, 3, 1, 0))
            case = Case("separable", name, layer.flops(n), "GFLOP/s",
                        4.0 * (x.size + dw.size + pw.size + np.prod(out_shape)))
            case.pycnn["NCHW"] = lambda x=x, d=dw, p=pw, b=b, kw=kw: ops.separable_conv2d(x, d, p, b, **kw)
            case.pycnn["NHWC"] = lambda x=xn, d=dwn, p=pwn, b=b, kw=kw: ops.separable_conv2d(
                x, d, p, b, data_format="NHWC", **kw)
            case.baselines["2 calls NCHW"] = lambda x=x, d=dw, p=pw, b=b, kw=kw: ops.conv2d(
                ops.depthwise_conv2d(x, d, **kw), p, b)
            case.baselines["2 calls NHWC"] = lambda x=xn, d=dwn, p=pwn, b=b, kw=kw: ops.conv2d(
                ops.depthwise_conv2d(x, d, data_format="NHWC", **kw), p, b, data_format="NHWC")
            case.reference = lambda x=x, d=dw, p=pw, b=b, kw=kw: reference.separable_conv2d(x, d, p, b, **kw)
            mem = ops.separable_conv2d_scratch_bytes(x.shape, dw.shape, pw.shape, **kw)
            case.note = (f"depthwise intermediate never materialised: {mem['intermediate_bytes'] / 2**20:.2f} MiB "
                         f"(two calls) vs {mem['scratch_bytes'] / 2**10:.0f} KiB of band scratch, all threads (fused)")
        if torch is not None:
            F = torch.nn.functional
            tx, tdw, tb = torch.from_numpy(x), torch.from_numpy(dw), torch.from_numpy(b)
            tpw = torch.from_numpy(pw) if o else None
            for label, t in (("torch NCHW", tx), ("torch NHWC", tx.contiguous(memory_format=torch.channels_last))):
                if o:
                    fn = lambda t=t, d=tdw, p=tpw, b=tb, c=c, kw=kw: F.conv2d(F.conv2d(t, d, groups=c, **kw), p, b)
                else:
                    fn = lambda t=t, d=tdw, b=tb, c=c, kw=kw: F.conv2d(t, d, b, groups=c, **kw)
                case.peers[label] = _torch_runner(torch, fn)
        if ort is not None:
            from onnx import helper
            conv = dict(strides=[layer.stride] * 2, pads=[layer.padding] * 4, group=c)
            if o:
                nodes = [helper.make_node("Conv", ["x", "dw"], ["mid"], **conv),
                         helper.make_node("Conv", ["mid", "pw", "b"], ["y"])]
                inputs = {"x": x, "dw": dw, "pw": pw, "b": b}
            else:
                nodes = helper.make_node("Conv", ["x", "dw", "b"], ["y"], **conv)
                inputs = {"x": x, "dw": dw, "b": b}
            case.peers["onnxruntime"] = _ort_session(ort, nodes, inputs, out_shape, threads)
        cases.append(case)
    return cases


def transpose_cases(layers, *, batch, peers, threads) -> list[Case]:
    rng = np.random.default_rng(0)
    torch = _torch() if "torch" in peers else None
    ort = _onnxruntime() if "onnxruntime" in peers else None
    cases = []
    for layer in layers:
        n = layer.batch if batch is None else batch
        x = rng.standard_normal((n, layer.c, layer.size, layer.size), dtype=np.float32)
        w = rng.standard_normal((layer.c, layer.o, layer.kernel, layer.kernel), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(layer.c * layer.kernel**2))
        b = rng.standard_normal(layer.o, dtype=np.float32)
        xn, wn = _nhwc(x), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        kw = dict(stride=layer.stride, padding=layer.padding)
        out_shape = (n, layer.o, layer.out_size, layer.out_size)
        case = Case("conv_transpose", layer.name + ("" if batch is None or batch == layer.batch else f" b{n}"),
                    layer.flops(n), "GFLOP/s", 4.0 * (x.size + w.size + np.prod(out_shape)))
        # Weights packed once, as for conv2d (and as pycnn.layers uses them).
        pw = ops.pack_conv_transpose2d_weight(w, stride=layer.stride)
        pwn = ops.pack_conv_transpose2d_weight(wn, stride=layer.stride, data_format="NHWC")
        case.pycnn["NCHW"] = lambda x=x, w=pw, b=b, kw=kw: ops.conv_transpose2d(x, w, b, **kw)
        case.pycnn["NHWC"] = lambda x=xn, w=pwn, b=b, kw=kw: ops.conv_transpose2d(x, w, b, data_format="NHWC", **kw)
        case.reference = lambda x=x, w=w, b=b, kw=kw: reference.conv_transpose2d(x, w, b, **kw)
        case.note = _winograd_note(ops.explain_conv_transpose2d, (("NCHW", x, pw), ("NHWC", xn, pwn)), kw,
                                   "F(3x3, 2x2) per stride phase", "transposed convolution")
        if torch is not None:
            tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            for label, t in (("torch NCHW", tx), ("torch NHWC", tx.contiguous(memory_format=torch.channels_last))):
                case.peers[label] = _torch_runner(
                    torch, lambda t=t, w=tw, b=tb, kw=kw: torch.nn.functional.conv_transpose2d(t, w, b, **kw))
        if ort is not None:
            from onnx import helper
            node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[layer.stride] * 2,
                                    pads=[layer.padding] * 4, kernel_shape=[layer.kernel] * 2)
            case.peers["onnxruntime"] = _ort_session(ort, node, {"x": x, "w": w, "b": b}, out_shape, threads)
        cases.append(case)
    return cases


@dataclass(frozen=True)
class PoolLayer:
    name: str
    kind: str            # "max", "avg" or "global_avg"
    c: int
    size: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    batch: int = 1

    @property
    def out_size(self) -> int:
        if self.kind == "global_avg":
            return 1
        return _args.conv_output_size(self.size, self.kernel, self.stride, 1, self.padding, self.padding)


# ResNet's stem max pool, VGG's 2x2 max pool, an average-pool stem and ResNet's global average.
POOL_LAYERS = [
    PoolLayer("max 3x3/2 p1 64 @112", "max", 64, 112, 3, 2, 1),
    PoolLayer("max 2x2/2 128 @112", "max", 128, 112, 2, 2, 0),
    PoolLayer("avg 3x3/2 p1 64 @112", "avg", 64, 112, 3, 2, 1),
    PoolLayer("global avg 512 @7 b8", "global_avg", 512, 7, batch=8),
]


def _pool_call(module, layer: PoolLayer, x, layout: str):
    """A zero-argument call of `module`'s (pycnn.ops or pycnn.reference) op for this layer."""
    if layer.kind == "global_avg":
        return lambda: module.global_avg_pool2d(x, data_format=layout)
    op = module.max_pool2d if layer.kind == "max" else module.avg_pool2d
    return lambda: op(x, layer.kernel, layer.stride, layer.padding, data_format=layout)


def pool_cases(layers, *, batch, peers, threads) -> list[Case]:
    """Pooling is bandwidth-bound: work = input bytes read + output bytes written (GB/s)."""
    rng = np.random.default_rng(0)
    torch = _torch() if "torch" in peers else None
    ort = _onnxruntime() if "onnxruntime" in peers else None
    cases = []
    for layer in layers:
        n = layer.batch if batch is None else batch
        x = rng.standard_normal((n, layer.c, layer.size, layer.size), dtype=np.float32)
        moved = 4.0 * n * layer.c * (layer.size**2 + layer.out_size**2)
        case = Case("pooling", layer.name + ("" if batch is None or batch == layer.batch else f" b{n}"),
                    moved, "GB/s", moved)
        case.pycnn["NCHW"] = _pool_call(ops, layer, x, "NCHW")
        case.pycnn["NHWC"] = _pool_call(ops, layer, _nhwc(x), "NHWC")
        case.reference = _pool_call(reference, layer, x, "NCHW")
        if torch is not None:
            F = torch.nn.functional
            tx = torch.from_numpy(x)
            for label, t in (("torch NCHW", tx), ("torch NHWC", tx.contiguous(memory_format=torch.channels_last))):
                if layer.kind == "global_avg":
                    op = lambda t=t: F.adaptive_avg_pool2d(t, 1)  # noqa: E731
                elif layer.kind == "max":
                    op = lambda t=t, l=layer: F.max_pool2d(t, l.kernel, l.stride, l.padding)  # noqa: E731
                else:
                    op = lambda t=t, l=layer: F.avg_pool2d(t, l.kernel, l.stride, l.padding)  # noqa: E731

                def run(op=op):
                    with torch.no_grad():
                        op()
                case.peers[label] = run
        if ort is not None:
            from onnx import helper
            if layer.kind == "global_avg":
                node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
            else:
                node = helper.make_node("MaxPool" if layer.kind == "max" else "AveragePool", ["x"], ["y"],
                                        kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2,
                                        pads=[layer.padding] * 4)
            case.peers["onnxruntime"] = _ort_session(
                ort, node, {"x": x}, (n, layer.c, layer.out_size, layer.out_size), threads)
        cases.append(case)
    return cases


# Builders of each op group's cases: name -> builder(batch=, peers=, threads=).
CASE_GROUPS: dict[str, Callable] = {
    "conv2d": lambda **kw: conv_cases(CONV_LAYERS, **kw),
    "depthwise": lambda **kw: depthwise_cases(DEPTHWISE_LAYERS, **kw),
    "separable": lambda **kw: depthwise_cases(SEPARABLE_LAYERS, **kw),
    "conv_transpose": lambda **kw: transpose_cases(TRANSPOSE_LAYERS, **kw),
    "pooling": lambda **kw: pool_cases(POOL_LAYERS, **kw),
}

# ---------------------------------------------------------------------------------------------
# Timing and report
# ---------------------------------------------------------------------------------------------


# Before each block of calls: a pause for the thread pools of the implementation timed before
# (OpenMP teams of pycnn and PyTorch, ONNX Runtime's pool) to stop spinning, so that they do not
# take the next one's cores. A function may ask for a longer pause after itself
# (`fn.settle_seconds`).
SETTLE_SECONDS = 0.03
# After ONNX Runtime: its intra-op pool (2 threads) spins 30-40 ms after a Run. Measured after
# 50 ms of ORT calls, the next call's median (convT 256->128 @14, 2 threads): pycnn NHWC 7.3 ms
# 30 ms later, 1.4 ms from 40 ms on; torch channels_last 20 ms at 30 ms, 2.2 ms at 100 ms. With
# the order rotating, the label after ORT's block (mostly pycnn NCHW) paid it in 4 rounds of 5.
ORT_SETTLE_SECONDS = 0.1
# After the NumPy reference: OpenBLAS's threads (NumPy's BLAS, its own pthread pool) keep
# spinning for ~0.1-0.3 s after a call, and an OpenMP team started meanwhile ran 10-25x slower
# here (a 1x1 256->64 @56 call: 0.5 -> 6-12 ms).
REFERENCE_SETTLE_SECONDS = 0.4


def settle_seconds_after(fn) -> float:
    """The pause the next block waits after a block of fn's calls."""
    return getattr(fn, "settle_seconds", SETTLE_SECONDS)


def median_times(fns: dict, min_time: float, rounds: int, min_repeats: int = 3,
                 max_repeats: int = 2000, settle: bool = True) -> dict:
    """label -> median wall time of fns[label]() after one warm-up call each. The functions take
    turns in `rounds` rounds (each runs >= min_time / rounds s and >= min_repeats times per
    round; the order rotates every round), so drift on a shared machine hits every
    implementation alike. `settle`: pause, then one untimed call, before each block."""
    for fn in fns.values():
        fn()
    samples = {label: [] for label in fns}
    order = list(fns.items())
    previous = order[-1][1]
    for r in range(rounds):
        for label, fn in order[r % len(order):] + order[:r % len(order)]:
            if settle:
                time.sleep(settle_seconds_after(previous))
                fn()
            previous = fn
            start = time.perf_counter()
            done = 0
            while done < max_repeats and (done < min_repeats or time.perf_counter() - start < min_time / rounds):
                t0 = time.perf_counter()
                fn()
                samples[label].append(time.perf_counter() - t0)
                done += 1
    return {label: statistics.median(ts) for label, ts in samples.items()}


@dataclass
class Result:
    case: Case
    runs: list  # per run: label -> seconds ("pycnn NCHW", "reference", "torch NCHW", ...)

    @property
    def times(self) -> dict:
        """label -> the median over the runs that timed it (the reference runs only in the first)."""
        labels = dict.fromkeys(label for run in self.runs for label in run)
        return {label: statistics.median(run[label] for run in self.runs if label in run) for label in labels}

    def rate(self, label: str) -> float:
        return self.case.work / self.times[label] / 1e9

    def ratios(self, label: str) -> list:
        """Each run's best-peer time / pycnn time for pycnn's `label` ("pycnn NCHW"), taken within
        the run, so that drift between runs does not enter a ratio."""
        out = []
        for run in self.runs:
            peers = [t for k, t in run.items() if k in self.case.peers]
            if peers:
                out.append(min(peers) / run[label])
        return out


def measure(case: Case, layouts, *, quick: bool, reference_too: bool) -> dict:
    """One run's times of a case: label -> median seconds."""
    fns = {f"pycnn {label}": case.pycnn[label] for label in layouts}
    fns.update(case.peers)
    fns.update(case.baselines)
    times = median_times(fns, 0.05 if quick else 0.5, rounds=1 if quick else 5)
    if reference_too and case.reference is not None:
        # The last block's threads (ONNX Runtime's, in quick mode's single round) may still spin.
        time.sleep(max(settle_seconds_after(fn) for fn in fns.values()))
        times.update(median_times({"reference": case.reference}, 0.0, rounds=1, min_repeats=1 if quick else 3,
                                  max_repeats=3, settle=False))
        time.sleep(REFERENCE_SETTLE_SECONDS)
    return times


def fma_roof(threads: int, samples: int) -> float:
    """The FMA peak as the best of a few 0.1 s runs. One run on a shared machine can read 20%
    low; the benchmark samples again after every op group and keeps the best (a single reading
    at the start once put 3x3 64->64 @56 at 111% of it)."""
    return max(pycnn._core.fma_peak_gflops(threads, 0.1) for _ in range(samples))


def call_overhead(peers) -> dict:
    """Microseconds per call of a tiny convolution (1x1x8x8 input, 3x3 kernel), where the call
    path, not arithmetic, is the cost: pycnn, and torch when installed."""
    x = np.ones((1, 1, 8, 8), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    fns = {"pycnn": lambda: ops.conv2d(x, w)}
    torch = _torch() if "torch" in peers else None
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)

        def run():
            with torch.no_grad():
                torch.nn.functional.conv2d(tx, tw)
        fns["torch"] = run
    return {label: t * 1e6 for label, t in median_times(fns, 0.2, rounds=3, max_repeats=100000).items()}


def print_call_overhead(per_run: list, median: dict) -> None:
    """The call-overhead line: one run's figures, or the median over the runs and their range."""
    several = len(per_run) > 1
    figures = [f"{label} {us:.1f} us"
               + (f" ({min(o[label] for o in per_run):.1f}-{max(o[label] for o in per_run):.1f})" if several else "")
               for label, us in median.items()]
    runs = f", median of {len(per_run)} runs" if several else ""
    print(f"call overhead, tiny conv2d (1x1x8x8, 3x3){runs}: " + ", ".join(figures))


def print_group(results: list[Result], layouts, roofs: dict) -> None:
    if not results:
        return
    unit = results[0].case.unit
    peer_labels = [k for k in results[0].case.peers]
    base_labels = [k for k in results[0].case.baselines]
    head = f"{'layer':<24}" + "".join(f"{'pycnn ' + l:>12}" for l in layouts)
    head += f"{'% peak':>8}" if unit == "GFLOP/s" else f"{'% bw':>8}"
    head += f"{'x ref':>8}" + "".join(f"{p:>13}" for p in peer_labels)
    head += "".join(f"{'ratio ' + l:>12}" for l in layouts) if peer_labels else ""
    several = len(results[0].runs) > 1
    head += "".join(f"{'range ' + l:>14}" for l in layouts) if peer_labels and several else ""
    head += "".join(f"{b:>16}" for b in base_labels)
    print(f"\n{results[0].case.group} ({unit}; ratio = best peer time / pycnn time)")
    print(head)
    roof = roofs["gflops"] if unit == "GFLOP/s" else roofs["gbs"]
    for r in results:
        rates = {l: r.rate(f"pycnn {l}") for l in layouts}
        best = max(rates.values())
        line = f"{r.case.name:<24}" + "".join(f"{rates[l]:12.1f}" for l in layouts)
        line += f"{100 * best / roof:7.0f}%"
        ref = r.times.get("reference")
        fastest = min(r.times[f"pycnn {l}"] for l in layouts)
        line += f"{ref / fastest:8.0f}" if ref else f"{'-':>8}"
        line += "".join(f"{r.rate(p):13.1f}" for p in peer_labels)
        ratios = {l: r.ratios(f"pycnn {l}") for l in layouts}
        if all(ratios.values()):
            line += "".join(f"{statistics.median(ratios[l]):11.2f}x" for l in layouts)
            if several:
                line += "".join(f"{min(ratios[l]):9.2f}-{max(ratios[l]):.2f}" for l in layouts)
        line += "".join(f"{r.rate(b):16.1f}" for b in base_labels)
        print(line, flush=True)
        if r.case.note:
            print(f"{'':<24}{r.case.note}")


def plot_roofline(results: list[Result], roofs: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    xs = np.logspace(-2, 3, 200)
    ax.loglog(xs, np.minimum(roofs["gflops"], xs * roofs["gbs"]), "k-", label="measured roofs")
    for r in results:
        if r.case.unit != "GFLOP/s":
            continue
        best = max(r.rate(k) for k in r.times if k.startswith("pycnn"))
        ax.scatter([r.case.intensity], [best], s=18)
        ax.annotate(r.case.name, (r.case.intensity, best), fontsize=6)
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"pycnn roofline ({pycnn.get_isa()}, {pycnn.get_num_threads()} threads)")
    ax.legend()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    print(f"roofline written to {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycnn.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run: fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads for pycnn and peers")
    parser.add_argument("--batch", type=int, default=None, help="override every layer's batch size")
    parser.add_argument("--layout", choices=["NCHW", "NHWC", "both"], default="both")
    parser.add_argument("--peers", default="auto",
                        help="comma list of torch,onnxruntime; 'auto' (installed ones) or 'none'")
    parser.add_argument("--ops", default=",".join(CASE_GROUPS), help="comma list of op groups")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy reference")
    parser.add_argument("--runs", type=int, default=1, metavar="N",
                        help="time every layer in N runs over the whole op list; print medians, and "
                             "each ratio as the median of the runs' own ratios with their range")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="roofline chart (needs matplotlib)")
    args = parser.parse_args(argv)
    groups = args.ops.split(",")
    for group in groups:
        if group not in CASE_GROUPS:
            parser.error(f"unknown op group {group!r}; choose from {', '.join(CASE_GROUPS)}")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    if args.threads is not None:
        pycnn.set_num_threads(args.threads)
    threads = pycnn.get_num_threads()
    peers = {"torch", "onnxruntime"} if args.peers == "auto" else (
        set() if args.peers == "none" else set(args.peers.split(",")))
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    layouts = ["NCHW", "NHWC"] if args.layout == "both" else [args.layout]

    cfg = pycnn.show_config(print_out=False)
    samples = 3 if args.quick else 5
    roofs = {"gflops": fma_roof(threads, samples), "gbs": pycnn._core.copy_bandwidth_gbs(threads)}
    installed = [p for p in ("torch", "onnxruntime") if p in peers and
                 (torch if p == "torch" else _onnxruntime()) is not None]
    print(f"pycnn {cfg['version']}  isa={cfg['isa']}  cpu={cfg['cpu_vendor']}  threads={threads}  float32  ({cfg['compiler']})")
    print(f"measured roofs: FMA peak {roofs['gflops']:.0f} GFLOP/s, copy bandwidth {roofs['gbs']:.1f} GB/s;"
          f" peers: {', '.join(installed) or 'none'}")

    # A shared machine drifts over minutes: each run goes through the whole op list, so every
    # layer is timed in as many different sittings as there are runs. Tables print after the last,
    # the call overhead (measured at the start of every run, its median) before them.
    by_group = [[Result(c, []) for c in CASE_GROUPS[group](batch=args.batch, peers=peers, threads=threads)]
                for group in groups]
    overheads = []
    for run in range(args.runs):
        overheads.append(call_overhead(peers))
        if run == args.runs - 1:
            overhead = {label: statistics.median(o[label] for o in overheads) for label in overheads[0]}
            print_call_overhead(overheads, overhead)
        reference_too = run == 0 and not args.no_reference
        for group_results in by_group:
            for r in group_results:
                r.runs.append(measure(r.case, layouts, quick=args.quick, reference_too=reference_too))
            roof = fma_roof(threads, samples)
            if round(roof) > round(roofs["gflops"]):
                print(f"\nFMA peak re-measured: {roof:.0f} GFLOP/s (was {roofs['gflops']:.0f}); % peak from here on")
            roofs["gflops"] = max(roof, roofs["gflops"])
            if run == args.runs - 1:
                print_group(group_results, layouts, roofs)
    results = [r for group_results in by_group for r in group_results]

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "threads": threads, "runs": args.runs, "roofs": roofs,
                       "call_overhead_us": overhead, "call_overhead_us_per_run": overheads,
                       "results": [{"group": r.case.group, "layer": r.case.name, "unit": r.case.unit,
                                    "work": r.case.work, "seconds": r.times, "seconds_per_run": r.runs,
                                    "ratios": {l: r.ratios(f"pycnn {l}") for l in layouts}}
                                   for r in results]},
                      f, indent=2)
    if args.plot:
        plot_roofline(results, roofs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
