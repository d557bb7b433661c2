"""Memory and floating-point state: RSS does not grow over many calls of every op (also with out=
and on error paths); denormal inputs and weights give correct results; the caller's MXCSR
(FTZ/DAZ off) is untouched after every op, in the calling thread and in other Python threads."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import pycnn
import pycnn.ops as ops
import pycnn.reference as ref

from robust_cases import make_calls, run

PAGE = os.sysconf("SC_PAGE_SIZE")
CALLS = make_calls(seed=5, n=1, size=6)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm")
def test_rss_does_not_grow_over_many_calls_of_every_op():
    repeats = 2000
    out_ops = {"conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"}
    outs = {name: np.empty_like(run(call)) for name, call in CALLS.items() if name in out_ops}

    def one_round(n):
        for name, (fn, args, kwargs) in CALLS.items():
            for _ in range(n):
                fn(*args, **kwargs)
            if name in outs:
                for _ in range(n // 4):
                    fn(*args, **kwargs, out=outs[name])
        x = CALLS["conv2d"][1][0]
        for _ in range(n // 4):  # error paths: validation failures and the C++ core's own checks
            for bad in (lambda: ops.conv2d(x, CALLS["conv2d"][1][1], stride=0),
                        lambda: ops.max_pool2d(x, 2, out=np.empty((1, 1), np.float32)),
                        lambda: pycnn._core.Pool2dPlan((1, 4, 6, 6, 2, 2, 3, 3, 0, 2, 1, 1, 0, 0, 0, 0), 0, 0, True,
                                                       False, (1, 4, 3, 3))(x)):
                try:
                    bad()
                except (ValueError, TypeError):
                    pass
                else:
                    raise AssertionError("a bad call did not raise")

    one_round(200)  # warm-up: plan caches, workspaces, thread pool, allocator arenas
    before = rss_bytes()
    one_round(repeats)
    growth = rss_bytes() - before
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over {repeats} calls of each op"


# ---------------------------------------------------------------------------------------------
# Denormals
# ---------------------------------------------------------------------------------------------

def denormals_survive():
    """True if the calling thread computes with subnormals (neither FTZ nor DAZ is set)."""
    return bool(
        np.float32(1e-39) * np.float32(1) != 0
        and np.float32(1e-38) / np.float32(100.0) != 0
        and np.float64(1e-310) * 1.0 != 0
        and (np.full(64, 1e-39, np.float32) * np.float32(1.0) != 0).all()
    )


def _every_op_with_denormals(dtype):
    tiny = np.finfo(dtype).smallest_subnormal * 1000
    for name, (fn, args, kwargs) in make_calls(seed=7).items():
        args = [a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args]
        args[0] = args[0].copy()
        args[0].flat[::3] = tiny
        fn(*args, **kwargs)
    # a threaded call too
    fn, args, kwargs = make_calls(seed=8, n=8, size=32)["conv2d"]
    fn(*[a.astype(dtype) for a in args], **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_op_leaves_the_callers_ftz_daz_alone(isa, dtype):
    assert denormals_survive(), "FTZ/DAZ already set before the test"
    for name, call in make_calls(seed=9).items():
        run(call)
        assert denormals_survive(), f"{name} (isa={isa}) left FTZ/DAZ set in the calling thread"
    _every_op_with_denormals(dtype)
    assert denormals_survive()


def test_every_op_leaves_ftz_daz_alone_after_an_error():
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError):
        pycnn._core.Pool2dPlan((1, 2, 4, 4, 2, 2, 2, 2, 0, 2, 1, 1, 0, 0, 0, 0), 0, 1, True, False, (1, 2, 2, 2))(x)
    with pytest.raises(ValueError):
        ops.conv2d(x, np.ones((2, 2, 9, 9), np.float32))
    assert denormals_survive()


def test_every_op_leaves_ftz_daz_alone_in_another_python_thread():
    results = []

    def work():
        before = denormals_survive()
        _every_op_with_denormals(np.float32)
        results.append((before, denormals_survive()))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert results == [(True, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(make_calls()))
def test_denormal_inputs_and_weights_give_correct_results(name, dtype, isa):
    """Subnormal values mixed into x and the weights: the result matches the float64 reference
    within the usual tolerance (the kernels may flush subnormal products, which is below it)."""
    fn, args, kwargs = make_calls(seed=10)[name]
    tiny = float(np.finfo(dtype).smallest_subnormal) * 3
    args = [a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args]
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            a = a.copy()
            a.flat[::2] = tiny * np.sign(a.flat[::2])
            args[i] = a
    result = fn(*args, **kwargs)
    expected = getattr(ref, fn.__name__)(*[a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args],
                                         **{k: v for k, v in kwargs.items() if k != "algorithm"})
    assert result.dtype == dtype
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(result, expected, rtol=64 * eps, atol=64 * eps * (1 + np.abs(expected).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pooling_keeps_subnormals_exactly(dtype, isa):
    """Max pooling only selects values: subnormal inputs come out bit for bit (no DAZ)."""
    tiny = np.finfo(dtype).smallest_subnormal
    x = (np.arange(2 * 4 * 6 * 6).reshape(2, 4, 6, 6) % 7 + 1).astype(dtype) * tiny
    assert (x != 0).all()
    np.testing.assert_array_equal(ops.max_pool2d(x, 2), ref.max_pool2d(x, 2))
    np.testing.assert_array_equal(ops.max_pool2d(x.transpose(0, 2, 3, 1).copy(), 3, stride=1, padding=1,
                                                 data_format="NHWC"),
                                  ref.max_pool2d(x.transpose(0, 2, 3, 1).copy(), 3, stride=1, padding=1,
                                                 data_format="NHWC"))
    np.testing.assert_array_equal(ops.global_max_pool2d(x), x.max(axis=(2, 3)))
    np.testing.assert_array_equal(ops.depth_max_pool2d(x, 2), ref.depth_max_pool2d(x, 2))
    assert (ops.max_pool2d(x, 2) != 0).all()


# ---------------------------------------------------------------------------------------------
# Long reductions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_avg_pool2d_of_a_large_plane_stays_accurate_in_float32(layout, isa):
    """One float32 accumulator per lane over 2**30 cells lost 2% of the mean (found by the
    >2**31-element test); blocks summed in double keep it at float32 rounding here too."""
    h, w = 2048, 4096 + 3
    x = np.full((1, 2, h, w), 5000.3, np.float32)
    x[0, 1] = np.float32(0.7)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = ops.global_avg_pool2d(x, data_format=layout)
    np.testing.assert_allclose(y[0], [np.float32(5000.3), np.float32(0.7)], rtol=2e-5)
