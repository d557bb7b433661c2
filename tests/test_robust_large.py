"""Tensors of more than 2**31 elements (64-bit index arithmetic end to end).

Needs ~12 GB of free memory and a minute or two: marked slow and skipped unless
PYCNN_SLOW_TESTS=1 and /proc/meminfo shows enough MemAvailable.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import pycnn.ops as ops

SHAPE = (1, 2, 32768, 32769)  # 2 * 32768 * 32769 = 2**31 + 65536 float32 elements (8.6 GB)
NEEDED_BYTES = 12 * 2**30      # the 8.6 GB input, a 2.1 GB output and slack


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PYCNN_SLOW_TESTS") != "1", reason="set PYCNN_SLOW_TESTS=1 to run"),
    pytest.mark.skipif(_mem_available() < NEEDED_BYTES, reason="needs ~12 GB of MemAvailable"),
]


@pytest.fixture(scope="module")
def big():
    n = int(np.prod(SHAPE))
    assert n > 2**31
    # value = flat index mod 9973 (a prime): every cell's value is known without a second copy
    x = np.empty(n, np.float32)
    step = 1 << 26
    for start in range(0, n, step):
        stop = min(n, start + step)
        x[start:stop] = np.arange(start, stop, dtype=np.int64) % 9973
    return x.reshape(SHAPE)


def _cell(flat):
    return np.float32(flat % 9973)


def _probe_cells(oh, ow):
    """Output cells near the start, the middle, the 2**31 boundary and the end."""
    c1 = [(0, 0, 0, 0), (0, 0, oh - 1, ow - 1), (0, 1, 0, 0), (0, 1, oh - 1, ow - 1), (0, 1, oh // 2, ow // 3)]
    return c1


def test_max_pool2d_over_2_31_elements(big):
    _, c, h, w = SHAPE
    y = ops.max_pool2d(big, 2)
    assert y.shape == (1, c, h // 2, w // 2) and y.dtype == np.float32
    for (n, ch, i, j) in _probe_cells(h // 2, w // 2):
        window = [(ch * h + 2 * i + a) * w + 2 * j + b for a in (0, 1) for b in (0, 1)]
        assert y[n, ch, i, j] == max(_cell(f) for f in window), (ch, i, j)
    # the last row of windows reads elements past index 2**31
    last = (c - 1) * h * w + (h - 1) * w
    assert last > 2**31
    expected_row = np.maximum.reduce([(np.arange(last + d * w + b, last + d * w + b + 2 * (w // 2), 2) % 9973)
                                      for d in (-1, 0) for b in (0, 1)]).astype(np.float32)
    np.testing.assert_array_equal(y[0, c - 1, -1], expected_row)


def test_global_avg_pool2d_over_2_31_elements(big):
    _, c, h, w = SHAPE
    y = ops.global_avg_pool2d(big)
    assert y.shape == (1, c)
    for ch in range(c):
        start = ch * h * w
        # exact mean of (start .. start + h*w - 1) % 9973, in float64 by blocks
        total = 0.0
        for s in range(start, start + h * w, 1 << 26):
            e = min(start + h * w, s + (1 << 26))
            total += float((np.arange(s, e, dtype=np.int64) % 9973).sum())
        np.testing.assert_allclose(y[0, ch], total / (h * w), rtol=1e-4)


def test_one_by_one_conv2d_over_2_31_elements(big):
    _, c, h, w = SHAPE
    weight = np.array([1.0, -2.0], np.float32).reshape(1, c, 1, 1)
    y = ops.conv2d(big, weight, stride=2)  # stride 2 keeps the output at 1 GB
    oh, ow = (h + 1) // 2, (w + 1) // 2
    assert y.shape == (1, 1, oh, ow)
    for i, j in [(0, 0), (oh - 1, ow - 1), (oh // 2, 7), (oh - 1, 0)]:
        f0, f1 = 2 * i * w + 2 * j, h * w + 2 * i * w + 2 * j
        assert y[0, 0, i, j] == _cell(f0) - 2 * _cell(f1), (i, j)
