"""pytest-benchmark suite over the standard conv2d layers: `pytest bench/ --benchmark-only`.

Each layer is timed for pycnn (both layouts) and the NumPy reference; GFLOP/s is attached to
the benchmark's extra_info. Not part of the default test run (testpaths = tests).
"""
import numpy as np
import pytest

from pycnn import ops, reference
from pycnn.bench import CONV_LAYERS


def _operands(layer, layout):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.batch, layer.c, layer.size, layer.size), dtype=np.float32)
    w = rng.standard_normal((layer.o, layer.c, layer.kernel, layer.kernel), dtype=np.float32)
    if layout == "NHWC":
        x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    return x, w


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("layer", CONV_LAYERS, ids=[l.name for l in CONV_LAYERS])
def test_conv2d_pycnn(benchmark, layer, layout):
    x, w = _operands(layer, layout)
    y = benchmark(ops.conv2d, x, w, stride=layer.stride, padding=layer.padding, data_format=layout)
    assert y.shape[0] == layer.batch
    benchmark.extra_info["gflop"] = layer.gflop()


@pytest.mark.parametrize("layer", CONV_LAYERS, ids=[l.name for l in CONV_LAYERS])
def test_conv2d_reference(benchmark, layer):
    x, w = _operands(layer, "NCHW")
    benchmark.pedantic(reference.conv2d, args=(x, w), kwargs=dict(stride=layer.stride, padding=layer.padding),
                       rounds=3, iterations=1)
    benchmark.extra_info["gflop"] = layer.gflop()
