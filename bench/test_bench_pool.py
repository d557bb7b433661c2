"""pytest-benchmark suite for pooling: pycnn (both layouts) vs the NumPy reference and PyTorch.

    python3 -m pytest bench/test_bench_pool.py --benchmark-columns=median,ops

The layers are pycnn.bench.POOL_LAYERS; each result carries its GB/s (input + output bytes per
median second) in extra_info. Not part of the test suite: nothing here asserts a time.
"""
from __future__ import annotations

import numpy as np
import pytest

import pycnn.ops
import pycnn.reference
from pycnn.bench import POOL_LAYERS, _pool_call, _torch_pool_peers

LAYOUTS = ["NCHW", "NHWC"]


def _input(layer, layout):
    x = np.random.default_rng(0).standard_normal((layer.batch, layer.c, layer.size, layer.size), dtype=np.float32)
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _record(benchmark, layer):
    benchmark.extra_info["gbytes"] = layer.gbytes()
    if benchmark.stats is not None:
        benchmark.extra_info["GB/s"] = layer.gbytes() / benchmark.stats.stats.median


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("layer", POOL_LAYERS, ids=lambda layer: layer.name)
def test_pycnn(benchmark, layer, layout):
    benchmark.group = layer.name
    benchmark(_pool_call(pycnn.ops, layer, _input(layer, layout), layout))
    _record(benchmark, layer)


@pytest.mark.parametrize("layer", POOL_LAYERS, ids=lambda layer: layer.name)
def test_reference(benchmark, layer):
    benchmark.group = layer.name
    benchmark.pedantic(_pool_call(pycnn.reference, layer, _input(layer, "NCHW"), "NCHW"), rounds=3, iterations=1)
    _record(benchmark, layer)


@pytest.mark.parametrize("peer", ["torch NCHW", "torch NHWC"])
@pytest.mark.parametrize("layer", POOL_LAYERS, ids=lambda layer: layer.name)
def test_torch(benchmark, layer, peer):
    pytest.importorskip("torch")
    benchmark.group = layer.name
    benchmark(_torch_pool_peers(layer, _input(layer, "NCHW"), pycnn.get_num_threads())[peer])
    _record(benchmark, layer)
