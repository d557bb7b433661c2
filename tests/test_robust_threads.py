"""Threads: concurrent calls from Python threads, the thread-count controls, and fork safety."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import pycnn

from robust_cases import make_calls, run

SRC = str(Path(pycnn.__file__).parent.parent)


def run_python(code, env=None, timeout=120):
    """Run `code` in a fresh interpreter with pycnn importable; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([SRC, str(Path(__file__).parent), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def test_concurrent_calls_of_every_op_match_serial_calls():
    """Four Python threads call every op on their own inputs at once; each result equals the
    serial result for the same inputs (the ops keep no shared mutable state)."""
    inputs = [make_calls(seed=s) for s in range(8)]
    serial = [{name: run(call) for name, call in calls.items()} for calls in inputs]

    def work(i):
        calls = inputs[i % len(inputs)]
        return i, {name: run(call) for name, call in calls.items()}

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(32)))
    assert len(results) == 32
    for i, got in results:
        want = serial[i % len(inputs)]
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name}, call {i}")
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape


def test_cached_calls_survive_a_cache_cleared_under_them():
    """Threads repeat cached calls (their plans found in C++, run without the GIL) while another
    clears every plan cache and fills the caches past their bound: each result still equals the
    serial one (a running call holds its plan)."""
    import threading

    from pycnn import ops

    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 16, 40, 40)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    dw = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    calls = [lambda: ops.conv2d(x, w, padding=1), lambda: ops.depthwise_conv2d(x, dw, padding=1),
             lambda: ops.max_pool2d(x, 3, 2, 1), lambda: ops.conv_transpose2d(x, w, stride=2)]
    serial = [f() for f in calls]
    stop = threading.Event()

    def churn():
        one = np.ones((1, 1, 1, 1), np.float32)
        while not stop.is_set():
            ops._clear_plans()
            for width in range(1, 300):  # past the caches' bound of 256 entries
                ops.max_pool2d(np.ones((1, 1, 1, width), np.float32), 1)
                ops.conv2d(np.ones((1, 1, 1, width), np.float32), one)

    def work(i):
        return i % len(calls), calls[i % len(calls)]()

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(work, range(120)))
    finally:
        stop.set()
        churner.join()
    for k, got in results:
        np.testing.assert_array_equal(got, serial[k])


def test_concurrent_calls_with_out_into_distinct_buffers():
    calls = make_calls(seed=3)
    names = ["conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d"]
    want = {name: run(calls[name]) for name in names}

    def work(i):
        name = names[i % len(names)]
        fn, args, kwargs = calls[name]
        out = np.full_like(want[name], np.nan)
        assert fn(*args, **kwargs, out=out) is out
        return name, out

    with ThreadPoolExecutor(max_workers=4) as pool:
        for name, out in pool.map(work, range(24)):
            np.testing.assert_allclose(out, want[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_set_num_threads_controls_get_num_threads():
    code = """
        import pycnn
        start = pycnn.get_num_threads()
        pycnn.set_num_threads(1)
        one = pycnn.get_num_threads()
        pycnn.set_num_threads(2)
        two = pycnn.get_num_threads()
        pycnn.set_num_threads(start)
        print(start, one, two, pycnn.get_num_threads(), pycnn.show_config(print_out=False)["num_threads"])
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "1", "2", "2", "2"]


@pytest.mark.parametrize("omp", ["1", "2", "3"])
def test_omp_num_threads_sets_the_default(omp):
    proc = run_python("import pycnn; print(pycnn.get_num_threads())", env={"OMP_NUM_THREADS": omp})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == omp


def test_threadpoolctl_limits_apply_and_are_restored():
    pytest.importorskip("threadpoolctl")
    code = """
        import numpy as np, pycnn, pycnn.ops as ops
        from threadpoolctl import threadpool_limits, threadpool_info
        x = np.ones((1, 2, 8, 8), np.float32)
        ops.max_pool2d(x, 2)  # the OpenMP runtime is loaded and initialised
        apis = {i["user_api"] for i in threadpool_info()}
        before = pycnn.get_num_threads()
        with threadpool_limits(limits=1, user_api="openmp"):
            inside = pycnn.get_num_threads()
            y = ops.max_pool2d(x, 2)
        after = pycnn.get_num_threads()
        print("openmp" in apis, before, inside, after, float(y.sum()))
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "2", "1", "2", "32.0"]


def test_set_num_threads_applies_to_calls_from_other_python_threads():
    """pycnn's own setting is process-wide (OpenMP's per-thread default is not)."""
    code = """
        import threading, pycnn
        pycnn.set_num_threads(1)
        seen = []
        t = threading.Thread(target=lambda: seen.append(pycnn.get_num_threads()))
        t.start(); t.join()
        print(pycnn.get_num_threads(), seen[0])
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1"]


def test_forked_child_that_does_not_call_pycnn_does_not_hang():
    """The parent ran pycnn's OpenMP pool; a 'fork' child that only uses NumPy must finish."""
    code = """
        import multiprocessing as mp, numpy as np, pycnn, pycnn.ops as ops
        pycnn.set_num_threads(2)
        x = np.random.default_rng(0).standard_normal((4, 16, 32, 32)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32)
        for _ in range(3):
            ops.conv2d(x, w, padding=1)  # the thread pool is up

        def child(q):
            q.put(float(np.ones(1000).sum()))

        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        value = q.get(timeout=60)
        p.join(60)
        # the parent can still use its pool afterwards
        y = ops.conv2d(x, w, padding=1)
        print(value, p.exitcode, y.shape)
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1000.0", "0", "(4,", "16,", "32,", "32)"]


def test_calls_from_inside_an_openmp_parallel_region_do_all_their_work():
    """A C++ framework calling pycnn from its own OpenMP loop (the same libgomp): each call must
    run all of its loops itself; a small call's work-sharing loops once bound to the caller's
    team and split one call's work across the caller's threads."""
    code = """
        import ctypes, numpy as np, pycnn.ops as ops
        gomp = ctypes.CDLL("libgomp.so.1")  # the runtime pycnn's core is linked with
        rng = np.random.default_rng(0)
        cases = [  # a call small enough for one thread, and one that asks for a team
            (rng.standard_normal((1, 4, 12, 12)).astype(np.float32), rng.standard_normal((8, 4, 3, 3)).astype(np.float32)),
            (rng.standard_normal((1, 32, 40, 40)).astype(np.float32), rng.standard_normal((32, 32, 3, 3)).astype(np.float32)),
        ]
        expected = [ops.conv2d(x, w, padding=1) for x, w in cases]
        results, errors = [], []

        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def body(_):
            try:
                for (x, w), e in zip(cases, expected):
                    results.append(bool(np.array_equal(ops.conv2d(x, w, padding=1), e)))
            except Exception as exc:
                errors.append(repr(exc))

        gomp.GOMP_parallel(body, None, 2, 0)
        print(len(results), all(results), errors)
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["4", "True", "[]"]


@pytest.mark.parametrize("n", [100_000, 2**31 - 1])
def test_absurd_thread_counts_are_capped_not_a_crash(n):
    """set_num_threads(100000) made the next large op start 100000 OpenMP threads (SIGSEGV in
    libgomp); ops now use at most 1024 threads and the answer is unchanged."""
    code = f"""
        import numpy as np, pycnn, pycnn.ops as ops
        x = np.random.default_rng(0).standard_normal((64, 64, 32, 32)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((8, 64, 3, 3)).astype(np.float32)
        want_pool, want_conv = ops.max_pool2d(x, 2), ops.conv2d(x[:4], w)
        pycnn.set_num_threads({n})
        got_pool, got_conv = ops.max_pool2d(x, 2), ops.conv2d(x[:4], w)
        print(pycnn.get_num_threads(), np.array_equal(got_pool, want_pool),
              np.allclose(got_conv, want_conv, rtol=1e-5, atol=1e-4))
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "2"}, timeout=300)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.stdout.split() == ["1024", "True", "True"]


def test_every_op_releases_the_gil():
    """With a switch interval of 1000 s the calling thread never hands the GIL over on its own, so
    a helper thread (sleeping in small steps) can only count while an op runs in C++ without the
    GIL. Each op is called until the helper has counted during a call (at most 1000 calls); an op
    that held the GIL would leave the count unchanged every time. The ops run on one OpenMP
    thread so that the helper has a free core even on a 2-core machine under load."""
    code = """
        import sys, threading, time
        import numpy as np, pycnn
        from robust_cases import make_calls, run
        calls = make_calls(seed=1, n=8, size=48)
        for call in calls.values():
            run(call)  # warm: plan caches, thread pool
        count, done = [0], []

        def helper():
            while not done:
                time.sleep(0.0002)
                count[0] += 1

        t = threading.Thread(target=helper)
        t.start()
        time.sleep(0.01)
        sys.setswitchinterval(1000.0)
        needed = {}
        for name, call in calls.items():
            for i in range(1, 1001):
                before = count[0]
                run(call)
                if count[0] != before:
                    needed[name] = i
                    break
            else:
                needed[name] = None
        sys.setswitchinterval(0.005)
        done.append(1)
        t.join()
        print(sorted(name for name, i in needed.items() if i is None))
    """
    proc = run_python(code, env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"ops that never let another thread run: {proc.stdout}"
