"""The package API: version, threads, show_config, ISA dispatch, PYCNN_ISA, signatures, and
that the floating-point mode of the caller's thread is left alone."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import pycnn
import pycnn.ops
import pycnn.reference

ALL_ISAS = ["scalar", "avx2", "avx512"]
# Run subprocesses from the directory that holds the imported package, so they import the same one.
PACKAGE_ROOT = Path(pycnn.__file__).resolve().parents[1]


def run_python(code, **env):
    """Run `code` in a fresh interpreter; env values of None remove the variable."""
    environ = dict(os.environ)
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          cwd=PACKAGE_ROOT, timeout=120)


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    m = re.search(r"^flags\s*:(.*)$", text, re.M)
    return set(m.group(1).split()) if m else None


# ------------------------------------------------------------------------------ version

def test_version():
    assert isinstance(pycnn.__version__, str)
    assert re.match(r"^\d+\.\d+", pycnn.__version__), pycnn.__version__


# ------------------------------------------------------------------------------ threads

def test_get_num_threads_is_positive_int():
    n = pycnn.get_num_threads()
    assert isinstance(n, int) and n >= 1


@pytest.mark.parametrize("n", [1, 2, 3, np.int64(2)], ids=str)
def test_set_then_get_num_threads(n, restore_threads):
    pycnn.set_num_threads(n)
    assert pycnn.get_num_threads() == int(n)


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", None, True], ids=repr)
def test_set_num_threads_rejects_bad_values(bad, restore_threads):
    pycnn.set_num_threads(1)
    with pytest.raises((ValueError, TypeError)):
        pycnn.set_num_threads(bad)
    assert pycnn.get_num_threads() == 1


def test_omp_num_threads_is_honoured():
    r = run_python("import pycnn; print(pycnn.get_num_threads())", OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "1"


def test_threadpoolctl_limits_pycnn(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pycnn.set_num_threads(2)
    assert any(info["user_api"] == "openmp" for info in threadpoolctl.threadpool_info())
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert pycnn.get_num_threads() == 1
        x = np.ones((2, 3, 8, 8), np.float32)
        w = np.ones((4, 3, 3, 3), np.float32)
        np.testing.assert_array_equal(pycnn.ops.conv2d(x, w), np.full((2, 4, 6, 6), 27.0))
    assert pycnn.get_num_threads() == 2


# ------------------------------------------------------------------------------ show_config

def test_show_config_prints_and_returns_dict(capfd):
    config = pycnn.show_config()
    printed = capfd.readouterr().out
    assert isinstance(config, dict)
    for key in ("version", "cpu_vendor", "cpu_features", "isa", "available_isas", "openmp", "num_threads",
                "compiler", "flags"):
        assert key in config, key
    assert config["version"] == pycnn.__version__
    assert isinstance(config["cpu_features"], list)
    assert all(isinstance(f, str) for f in config["cpu_features"])
    assert config["isa"] == pycnn.get_isa()
    assert list(config["available_isas"]) == pycnn.available_isas()
    assert config["num_threads"] == pycnn.get_num_threads()
    assert isinstance(config["compiler"], str) and config["compiler"]
    assert printed.strip(), "show_config() printed nothing"
    assert pycnn.__version__ in printed
    assert config["isa"] in printed


def test_show_config_cpu_vendor_is_the_kernels():
    """The CPUID vendor string (some kernel choices depend on it), as Linux reports it."""
    vendor = pycnn.show_config(print_out=False)["cpu_vendor"]
    assert isinstance(vendor, str) and len(vendor) == 12, vendor
    try:
        with open("/proc/cpuinfo") as f:
            reported = {line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")}
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if not reported:
        pytest.skip("/proc/cpuinfo names no vendor_id")
    assert reported == {vendor}


def test_show_config_reflects_cpu_features():
    features = {f.lower() for f in pycnn.show_config()["cpu_features"]}
    if "avx2" in pycnn.available_isas():
        assert "avx2" in features
    if "avx512" in pycnn.available_isas():
        assert any(f.startswith("avx512") for f in features), features


# ------------------------------------------------------------------------------ ISA dispatch

@pytest.fixture
def restore_isa():
    previous = pycnn.get_isa()
    yield previous
    pycnn.set_isa(previous)


def test_available_isas():
    isas = pycnn.available_isas()
    assert isinstance(isas, list)
    assert isas[0] == "scalar"
    assert isas == [name for name in ALL_ISAS if name in isas], isas
    assert pycnn.get_isa() in isas


def test_available_isas_match_the_cpu():
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    isas = pycnn.available_isas()
    assert ("avx2" in isas) == ({"avx2", "fma"} <= flags), (isas, sorted(f for f in flags if "avx" in f))
    if "avx512" in isas:
        assert "avx512f" in flags
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        assert "avx512" in isas


@pytest.mark.parametrize("name", ALL_ISAS)
def test_set_isa_round_trip(name, restore_isa):
    if name not in pycnn.available_isas():
        pytest.skip(f"this CPU lacks {name}")
    pycnn.set_isa(name)
    assert pycnn.get_isa() == name
    assert pycnn.show_config()["isa"] == name


@pytest.mark.parametrize("bad", ["bogus", "", "sse2", "neon"])
def test_set_isa_rejects_unknown_names(bad, restore_isa):
    before = pycnn.get_isa()
    with pytest.raises(ValueError, match=r"(?i)isa"):
        pycnn.set_isa(bad)
    assert pycnn.get_isa() == before


def test_set_isa_rejects_non_strings(restore_isa):
    with pytest.raises((TypeError, ValueError)):
        pycnn.set_isa(None)


def test_set_isa_rejects_unavailable_isa(restore_isa):
    missing = [name for name in ALL_ISAS if name not in pycnn.available_isas()]
    if not missing:
        pytest.skip("this CPU supports every ISA")
    before = pycnn.get_isa()
    with pytest.raises(ValueError, match=r"(?i)isa"):
        pycnn.set_isa(missing[0])
    assert pycnn.get_isa() == before


def test_default_isa_is_the_best_available():
    r = run_python("import pycnn; print(pycnn.get_isa(), pycnn.available_isas()[-1])", PYCNN_ISA=None)
    assert r.returncode == 0, r.stderr
    current, best = r.stdout.split()
    assert current == best


@pytest.mark.parametrize("name", ALL_ISAS)
def test_pycnn_isa_environment_variable(name):
    if name not in pycnn.available_isas():
        pytest.skip(f"this CPU lacks {name}")
    r = run_python("import pycnn; print(pycnn.get_isa())", PYCNN_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_pycnn_isa_bogus_is_a_clear_error():
    r = run_python("import pycnn; print(pycnn.get_isa())", PYCNN_ISA="bogus")
    assert r.returncode != 0, r.stdout
    assert "PYCNN_ISA" in r.stderr, r.stderr
    assert "Segmentation" not in r.stderr and r.returncode > 0


def test_pycnn_isa_unavailable_is_a_clear_error():
    missing = [name for name in ALL_ISAS if name not in pycnn.available_isas()]
    if not missing:
        pytest.skip("this CPU supports every ISA")
    r = run_python("import pycnn; print(pycnn.get_isa())", PYCNN_ISA=missing[0])
    assert r.returncode != 0
    assert "PYCNN_ISA" in r.stderr


# ------------------------------------------------------------------------------ signatures

def test_conv2d_signature_is_the_contract():
    sig = inspect.signature(pycnn.ops.conv2d)
    expected = [
        ("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("bias", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("stride", inspect.Parameter.KEYWORD_ONLY, 1),
        ("padding", inspect.Parameter.KEYWORD_ONLY, 0),
        ("dilation", inspect.Parameter.KEYWORD_ONLY, 1),
        ("groups", inspect.Parameter.KEYWORD_ONLY, 1),
        ("activation", inspect.Parameter.KEYWORD_ONLY, None),
        ("data_format", inspect.Parameter.KEYWORD_ONLY, "NCHW"),
        ("algorithm", inspect.Parameter.KEYWORD_ONLY, "auto"),
        ("out", inspect.Parameter.KEYWORD_ONLY, None),
    ]
    got = [(p.name, p.kind, p.default) for p in sig.parameters.values()]
    assert got == expected


def test_reference_signatures_match_ops():
    names = [n for n, f in vars(pycnn.reference).items()
             if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == pycnn.reference.__name__
             and inspect.isfunction(getattr(pycnn.ops, n, None))]
    assert "conv2d" in names
    for name in names:
        ours = inspect.signature(getattr(pycnn.ops, name))
        theirs = inspect.signature(getattr(pycnn.reference, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.kind, p.default) for p in theirs.parameters.values()], name


# ------------------------------------------------------------------------------ FP mode

def _denormals_survive():
    """True if the calling thread computes with subnormals (neither FTZ nor DAZ is set)."""
    tiny32 = np.float32(1e-39)                       # a float32 subnormal
    tiny64 = np.float64(1e-310)                      # a float64 subnormal
    return bool(
        tiny32 != 0
        and tiny32 * np.float32(1.0) != 0             # DAZ would read the operand as 0
        and np.float32(1e-38) / np.float32(100.0) != 0  # FTZ would flush the result
        and tiny64 * 1.0 != 0
        and np.float64(1e-300) / 1e15 != 0
        and (np.full(64, 1e-39, np.float32) * np.float32(1.0) != 0).all()   # SIMD path
    )


def _some_convolutions():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for n, c, hw, o in ((1, 3, 7, 5), (4, 32, 32, 64)):    # small (one thread) and threaded
            x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
            w = rng.standard_normal((o, c, 3, 3)).astype(dtype)
            w.flat[0] = 1e-39 if dtype == np.float32 else 1e-310   # a subnormal weight
            for algorithm in ("direct", "im2col", "auto"):
                pycnn.ops.conv2d(x, w, padding=1, algorithm=algorithm, activation="sigmoid")


def test_conv2d_leaves_denormals_alone_in_the_calling_thread(isa):
    assert _denormals_survive(), "FTZ/DAZ already set before the test"
    _some_convolutions()
    assert _denormals_survive(), f"conv2d (isa={isa}) left FTZ/DAZ set in the calling thread"


def test_conv2d_leaves_denormals_alone_in_a_python_thread():
    results = []

    def work():
        before = _denormals_survive()
        _some_convolutions()
        results.append((before, _denormals_survive()))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert results == [(True, True)]
