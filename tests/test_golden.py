"""The worked examples of ../shared/golden/seed_examples.json as golden tests.

conv2d examples: single-channel cross-correlations with integer data, so every float32 partial
sum is exact and the results are compared exactly, on every ISA, algorithm and layout.
output_size examples: the output shape of pycnn.ops.conv2d. (max_pool2d examples belong to the
pooling tests.)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pycnn.ops

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "seed_examples.json"
EXAMPLES = json.loads(GOLDEN.read_text())


def _params(key):
    return [pytest.param(example, id=example["name"]) for example in EXAMPLES[key]]


def test_golden_file_has_examples():
    assert EXAMPLES["conv2d"] and EXAMPLES["output_size"]


def _image(values, layout):
    a = np.asarray(values)
    return a[None, None] if layout == "NCHW" else a[None, :, :, None]


def _kernel(values, layout):
    k = np.asarray(values)
    return k[None, None] if layout == "NCHW" else k[:, :, None, None]


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
@pytest.mark.parametrize("example", _params("conv2d"))
def test_conv2d_example(example, algorithm, isa):
    for layout in ("NCHW", "NHWC"):
        for dtype in (np.float32, np.float64):
            x = _image(example["input"], layout).astype(dtype)
            w = _kernel(example["kernel"], layout).astype(dtype)
            result = pycnn.ops.conv2d(x, w, stride=example["stride"], padding=example["padding"],
                                      data_format=layout, algorithm=algorithm)
            assert result.dtype == dtype
            expected = _image(example["expected"], layout)
            np.testing.assert_array_equal(result, expected,
                                          err_msg=f"isa={isa} layout={layout} dtype={np.dtype(dtype)}")


@pytest.mark.parametrize("example", _params("conv2d"))
def test_conv2d_example_from_lists(example):
    """The examples as given (nested lists of ints, unbatched 3-D): float32 result, same numbers."""
    result = pycnn.ops.conv2d([example["input"]], [[example["kernel"]]], stride=example["stride"],
                              padding=example["padding"])
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [example["expected"]])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("example", _params("output_size"))
def test_output_size_example(example, layout, rng):
    n, k = example["in"], example["kernel"]
    x = rng.standard_normal((2, 3, n, n) if layout == "NCHW" else (2, n, n, 3)).astype(np.float32)
    w = rng.standard_normal((5, 3, k, k) if layout == "NCHW" else (k, k, 3, 5)).astype(np.float32)
    result = pycnn.ops.conv2d(x, w, stride=example["stride"], padding=example["padding"], data_format=layout)
    out = example["out"]
    assert result.shape == ((2, 5, out, out) if layout == "NCHW" else (2, out, out, 5))


@pytest.mark.parametrize("example", _params("output_size"))
def test_output_size_example_one_axis(example, rng):
    """The example's sizes on the height axis only; the width stays untouched by a 1-wide kernel."""
    n, k = example["in"], example["kernel"]
    x = rng.standard_normal((1, 2, n, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, k, 1)).astype(np.float32)
    padding = example["padding"]
    if isinstance(padding, int):
        padding = (padding, 0)
    result = pycnn.ops.conv2d(x, w, stride=(example["stride"], 1), padding=padding)
    assert result.shape == (1, 3, example["out"], 9)
