"""Shared fixtures for the pycnn test suite.

- `isa`: runs a test once per ISA this CPU supports (scalar always), restoring the previous ISA.
- `rng`: a seeded NumPy generator, different per test but the same on every run.
- `conv_truth`, `assert_conv_close`: the float64 truth for a convolution and a tolerance that
  scales with the reduction length.
- `check_conv2d`, `check_transpose`: run the op and compare it with the float64 reference.
- `restore_threads`: the thread count before the test (yielded), set back afterwards.
- `follows_rows`: tells the NCHW pooling and depthwise ops that the hardware prefetchers follow
  their rows or not (which turns their own prefetches off or on).

Hypothesis profiles: "pycnn" (default, 60 examples, no deadline), "quick" and "thorough";
pick one with HYPOTHESIS_PROFILE=<name>.
"""
from __future__ import annotations

import math
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import pycnn
import pycnn.ops  # noqa: F401  (the package must import its ops)
import pycnn.reference
from helpers import reference_truth

# Function-scoped fixtures used by Hypothesis tests here (isa, the helper fixtures) hold no
# per-example state, so the health check about them does not apply.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("pycnn", max_examples=60, **_COMMON)
settings.register_profile("quick", max_examples=15, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pycnn"))

ISAS = pycnn.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Select each available ISA in turn; restore the ISA that was active before."""
    previous = pycnn.get_isa()
    pycnn.set_isa(request.param)
    try:
        yield request.param
    finally:
        pycnn.set_isa(previous)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: reproducible, yet different across tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


# ---------------------------------------------------------------------------------------------
# Tolerances
#
# A dot product of length K accumulated in precision eps has an error bounded in practice by
# ~ eps * sqrt(K) * sum(|x_i * w_i|) (and in the worst case eps * K * that sum). We compare
# against the float64 truth computed from the same (exactly representable) inputs, so only
# pycnn's rounding counts, and measure it against the per-element magnitude
# scale = conv(|x|, |w|) + |b|. Activations add a few ulps relative to the result, and
# functions like elu (exp(x) - 1) a few ulps absolute.
# ---------------------------------------------------------------------------------------------
_SUM_FACTOR = 16.0
_ULPS = 32.0


def conv_tolerance(dtype, k, scale, expected):
    """Per-element absolute tolerance for a convolution result of `dtype` with reduction length k."""
    eps = float(np.finfo(dtype).eps)
    return (_SUM_FACTOR * eps * math.sqrt(max(k, 1)) * np.abs(scale)
            + _ULPS * eps * np.abs(expected) + _ULPS * eps)


def _conv_truth(x, weight, bias=None, **params):
    """(expected, scale) in float64 for conv2d (see helpers.reference_truth)."""
    return reference_truth("conv2d", x, weight, bias, **params)


def reduction_length(weight, data_format="NCHW"):
    """C/groups * KH * KW from a weight in either layout."""
    return int(np.prod(np.shape(weight))) // (
        np.shape(weight)[0] if data_format in ("NCHW", "channels_first") else np.shape(weight)[3])


def _assert_conv_close(actual, expected, scale, k, dtype=None, err_msg=""):
    """Assert `actual` matches the float64 `expected` within the scaled tolerance.

    NaN must appear exactly where expected has NaN; infinities must match exactly.
    """
    actual = np.asarray(actual)
    dtype = actual.dtype if dtype is None else np.dtype(dtype)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}. {err_msg}"
    a = actual.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(expected)
    if not np.array_equal(nan_a, nan_e):
        where = np.argwhere(nan_a != nan_e)[:5].tolist()
        raise AssertionError(f"NaN positions differ (first: {where}). {err_msg}")
    inf_e = np.isinf(expected)
    np.testing.assert_array_equal(a[inf_e], expected[inf_e], err_msg=f"infinities differ. {err_msg}")
    finite = ~nan_e & ~inf_e
    tol = conv_tolerance(dtype, k, np.where(finite, scale, 0.0), np.where(finite, expected, 0.0))
    err = np.where(finite, np.abs(a - np.where(finite, expected, 0.0)), 0.0)
    bad = ~(err <= tol)  # also catches NaN/inf in actual where expected is finite
    bad &= finite
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        worst = tuple(np.unravel_index(np.argmax(np.where(finite, err / np.maximum(tol, 1e-300), 0)), err.shape))
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} elements out of tolerance (dtype {dtype}, K={k}). "
            f"first at {idx}: got {a[idx]!r}, expected {expected[idx]!r}, tol {tol[idx]:.3g}; "
            f"worst at {worst}: got {a[worst]!r}, expected {expected[worst]!r}, "
            f"err {err[worst]:.3g}, tol {tol[worst]:.3g}. {err_msg}"
        )


@pytest.fixture
def conv_truth():
    """conv_truth(x, weight, bias, **params) -> (expected, scale), both float64."""
    return _conv_truth


@pytest.fixture
def assert_conv_close():
    """assert_conv_close(actual, expected, scale, k, dtype=None, err_msg="")."""
    return _assert_conv_close


@pytest.fixture
def check_conv2d():
    """check_conv2d(x, weight, bias=None, **params): run pycnn.ops.conv2d, compare it with the
    float64 reference within tolerance, check the result dtype and return the result."""

    def check(x, weight, bias=None, *, expected_dtype=None, err_msg="", **params):
        result = pycnn.ops.conv2d(x, weight, bias, **params)
        assert isinstance(result, np.ndarray), type(result)
        if expected_dtype is None:
            kinds = [np.asarray(a).dtype for a in (x, weight, bias) if a is not None]
            expected_dtype = np.float64 if any(d == np.float64 for d in kinds) else np.float32
        assert result.dtype == expected_dtype, f"result dtype {result.dtype}, expected {expected_dtype}. {err_msg}"
        expected, scale = _conv_truth(x, weight, bias, **params)
        k = reduction_length(weight, params.get("data_format", "NCHW"))
        _assert_conv_close(result, expected, scale, k, err_msg=f"{err_msg} params={params}")
        return result

    return check


@pytest.fixture
def check_transpose():
    """check_transpose(x, weight, bias=None, **params): as check_conv2d, for conv_transpose2d."""

    def check(x, w, b=None, *, err_msg="", **params):
        result = pycnn.ops.conv_transpose2d(x, w, b, **params)
        kinds = [np.asarray(a).dtype for a in (x, w, b) if a is not None]
        assert result.dtype == (np.float64 if any(d == np.float64 for d in kinds) else np.float32)
        assert result.flags.c_contiguous
        expected, scale = reference_truth("conv_transpose2d", x, w, b, **params)
        nhwc = params.get("data_format", "NCHW") in ("NHWC", "channels_last")
        shape = np.shape(w)
        k = (shape[3] * shape[0] * shape[1] if nhwc else shape[0] * shape[2] * shape[3]) // params.get("groups", 1)
        _assert_conv_close(result, expected, scale, k, err_msg=f"{err_msg} params={params}")
        return result

    return check


@pytest.fixture
def restore_threads():
    previous = pycnn.get_num_threads()
    yield previous
    pycnn.set_num_threads(previous)


@pytest.fixture
def follows_rows():
    """follows_rows(follows): whether the NCHW pooling and stride-2 depthwise ops take the hardware
    prefetchers to follow their rows (no hints of their own for short rows in cache) whatever the
    CPU; restores the detected value."""
    yield lambda follows: pycnn._core.set_hardware_follows_rows(int(follows))
    pycnn._core.set_hardware_follows_rows(-1)


@pytest.fixture
def l2_cache():
    """Sets the L2 size the algorithm choice reads (`l2_cache(bytes)`), with no conv2d or
    conv_transpose2d plans cached across a change (a plan fixes the form, or the prepared
    weights, chosen when it was made); restores the reported size."""
    def set_l2(size):
        pycnn.ops._clear_plans()
        pycnn._core.set_l2_cache_bytes(size)

    try:
        yield set_l2
    finally:
        pycnn._core.set_l2_cache_bytes(0)
        pycnn.ops._clear_plans()


@pytest.fixture
def torch():
    """PyTorch, or skip the test."""
    return pytest.importorskip("torch")
