"""pytest-benchmark suites over the standard layers of `python -m pycnn.bench`:

    pytest bench/ --benchmark-only

Every case of every op group (pycnn.bench.CASE_GROUPS) is timed for pycnn in both layouts, its
other pycnn baselines (separable as two calls), the NumPy reference and the installed peers (PyTorch, ONNX Runtime), grouped per layer; each result
carries its rate (GFLOP/s or GB/s) in extra_info. Not part of the test suite (testpaths =
tests): nothing here asserts a time.
"""
from __future__ import annotations

import time

import pytest

import pycnn
from pycnn.bench import CASE_GROUPS, REFERENCE_SETTLE_SECONDS, settle_seconds_after

THREADS = pycnn.get_num_threads()
CASES = [case for build in CASE_GROUPS.values()
         for case in build(batch=None, peers={"torch", "onnxruntime"}, threads=THREADS)]
IMPLEMENTATIONS = [(case, label, fn) for case in CASES
                   for label, fn in [*((f"pycnn {k}", f) for k, f in case.pycnn.items()),
                                     *case.baselines.items(), ("reference", case.reference),
                                     *case.peers.items()]
                   if fn is not None]


# The pause the implementation timed last asks for before the next starts (as in
# `python -m pycnn.bench`): its threads may still spin (OpenBLAS after the reference, ONNX
# Runtime's pool after its runs) and take the next one's cores.
_pause_after_last = [0.0]


@pytest.mark.parametrize("case, label, fn", IMPLEMENTATIONS,
                         ids=[f"{c.group}:{c.name}:{label}" for c, label, _ in IMPLEMENTATIONS])
def test_layer(benchmark, case, label, fn):
    benchmark.group = f"{case.group}: {case.name}"
    time.sleep(_pause_after_last[0])
    if label == "reference":
        benchmark.pedantic(fn, rounds=3, iterations=1)
    else:
        benchmark(fn)
    _pause_after_last[0] = REFERENCE_SETTLE_SECONDS if label == "reference" else settle_seconds_after(fn)
    if benchmark.stats is not None:
        benchmark.extra_info[case.unit] = case.work / benchmark.stats.stats.median / 1e9
