"""pytest-benchmark suite over the depthwise, separable and transposed-convolution layers of
`python -m pycnn.bench`: `pytest bench/ --benchmark-only`.

pycnn in both layouts (the separable layer also as two pycnn calls, depthwise then 1x1) and the
NumPy reference; GFLOP of each layer in extra_info. Not part of the default test run.
"""
import numpy as np
import pytest

from pycnn import ops, reference
from pycnn.bench import DEPTHWISE_LAYERS, SEPARABLE_LAYERS, TRANSPOSE_LAYERS

LAYOUTS = ["NCHW", "NHWC"]


def _image(layer, layout, rng):
    x = rng.standard_normal((layer.batch, layer.c, layer.size, layer.size), dtype=np.float32)
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _depthwise_operands(layer, layout):
    rng = np.random.default_rng(0)
    x = _image(layer, layout, rng)
    k, c, m = layer.kernel, layer.c, layer.m
    dw = rng.standard_normal((c * m, 1, k, k), dtype=np.float32)
    pw = rng.standard_normal((layer.pointwise or 1, c * m, 1, 1), dtype=np.float32)
    if layout == "NHWC":
        dw = np.ascontiguousarray(dw[:, 0].transpose(1, 2, 0).reshape(k, k, c, m))
        pw = np.ascontiguousarray(pw.transpose(2, 3, 1, 0))
    return x, dw, pw


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("layer", DEPTHWISE_LAYERS, ids=[l.name for l in DEPTHWISE_LAYERS])
def test_depthwise_pycnn(benchmark, layer, layout):
    x, dw, _ = _depthwise_operands(layer, layout)
    benchmark(ops.depthwise_conv2d, x, dw, stride=layer.stride, padding=layer.padding, data_format=layout)
    benchmark.extra_info["gflop"] = layer.flops(layer.batch) / 1e9


@pytest.mark.parametrize("layer", DEPTHWISE_LAYERS, ids=[l.name for l in DEPTHWISE_LAYERS])
def test_depthwise_reference(benchmark, layer):
    x, dw, _ = _depthwise_operands(layer, "NCHW")
    benchmark.pedantic(reference.depthwise_conv2d, args=(x, dw),
                       kwargs=dict(stride=layer.stride, padding=layer.padding), rounds=3, iterations=1)
    benchmark.extra_info["gflop"] = layer.flops(layer.batch) / 1e9


@pytest.mark.parametrize("way", ["fused", "two calls"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("layer", SEPARABLE_LAYERS, ids=[l.name for l in SEPARABLE_LAYERS])
def test_separable_pycnn(benchmark, layer, layout, way):
    x, dw, pw = _depthwise_operands(layer, layout)
    kw = dict(stride=layer.stride, padding=layer.padding, data_format=layout)
    if way == "fused":
        benchmark(ops.separable_conv2d, x, dw, pw, **kw)
    else:
        benchmark(lambda: ops.conv2d(ops.depthwise_conv2d(x, dw, **kw), pw, data_format=layout))
    benchmark.extra_info["gflop"] = layer.flops(layer.batch) / 1e9


def _transpose_operands(layer, layout):
    rng = np.random.default_rng(0)
    x = _image(layer, layout, rng)
    w = rng.standard_normal((layer.c, layer.o, layer.kernel, layer.kernel), dtype=np.float32)
    return x, (w if layout == "NCHW" else np.ascontiguousarray(w.transpose(2, 3, 1, 0)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("layer", TRANSPOSE_LAYERS, ids=[l.name for l in TRANSPOSE_LAYERS])
def test_conv_transpose_pycnn(benchmark, layer, layout):
    x, w = _transpose_operands(layer, layout)
    benchmark(ops.conv_transpose2d, x, w, stride=layer.stride, padding=layer.padding, data_format=layout)
    benchmark.extra_info["gflop"] = layer.flops(layer.batch) / 1e9


@pytest.mark.parametrize("layer", TRANSPOSE_LAYERS, ids=[l.name for l in TRANSPOSE_LAYERS])
def test_conv_transpose_reference(benchmark, layer):
    x, w = _transpose_operands(layer, "NCHW")
    benchmark.pedantic(reference.conv_transpose2d, args=(x, w),
                       kwargs=dict(stride=layer.stride, padding=layer.padding), rounds=3, iterations=1)
    benchmark.extra_info["gflop"] = layer.flops(layer.batch) / 1e9
