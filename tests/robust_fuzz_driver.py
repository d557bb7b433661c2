"""Fuzz driver for tests/test_robust_fuzz.py (run as a script so a crash cannot kill pytest).

    python tests/robust_fuzz_driver.py --seed 1 --examples 300

Hypothesis draws an op, small shapes, an input dtype (float32/64, float16, int, bool), a layout
and argument values, some of them invalid. For every example pycnn.ops must either give the
answer of pycnn.reference (same shape and dtype, values within tolerance, NaN where it has NaN)
or, when the reference raises ValueError/TypeError, raise the same type. Prints one JSON line:
{"examples": ..., "compared": ..., "rejected": ..., "ops": {...}}; any mismatch fails the
Hypothesis test (non-zero exit code and the falsifying example on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import pycnn
import pycnn.ops as ops
import pycnn.reference as ref

STATS = Counter()
PER_OP = Counter()

DTYPES = [np.float32, np.float64, np.float16, np.int32, np.uint8, np.bool_]
BAD_INTS = [0, -1, True, 1.5, 2**31, (1, 0), (2, 2, 2), None, "2"]
BAD_PADDING = [-1, "full", (1, -1), ((0, 1), (2,)), 2.5, 2**31]


def maybe_bad(strategy, bad):
    """Mostly (11 in 12) `strategy`, sometimes one of the invalid values."""
    return st.integers(0, 11).flatmap(lambda r: st.sampled_from(bad) if r == 0 else strategy)


def mostly(good, bad):
    """One of `good` (11 in 12), else one of `bad`."""
    return maybe_bad(st.sampled_from(good), bad)


@st.composite
def pair_or_int(draw, lo, hi):
    if draw(st.booleans()):
        return draw(st.integers(lo, hi))
    return (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))


@st.composite
def padding_spec(draw, hi=2):
    kind = draw(mostly(["int", "pair", "sides", "same", "valid"], ["bad"]))
    if kind == "int":
        return draw(st.integers(0, hi))
    if kind == "pair":
        return (draw(st.integers(0, hi)), draw(st.integers(0, hi)))
    if kind == "sides":
        return tuple((draw(st.integers(0, hi)), draw(st.integers(0, hi))) for _ in range(2))
    if kind == "bad":
        return draw(st.sampled_from(BAD_PADDING))
    return kind


def array(draw, shape, dtype, special=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0 if dtype == np.uint8 else -3, 4, shape).astype(dtype)
    a = rng.standard_normal(shape).astype(dtype)
    # Now and then a NaN or an infinity in x. Not in weights: whether a non-finite weight tap that
    # lands in the zero padding gives NaN (0 * inf) is left to the algorithm (see
    # test_conv2d.test_nan_propagates_like_reference), and the layouts differ there.
    if special and draw(st.integers(0, 19)) == 0 and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return a


def image(draw, n, c, h, w, layout, dtype):
    a = array(draw, (n, c, h, w), dtype, special=True)
    return a if layout == "NCHW" else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def dims(draw, batch=True):
    n = draw(st.integers(0, 2)) if batch else 1
    return n, draw(st.integers(1, 5)), draw(st.integers(1, 7)), draw(st.integers(1, 7))


@st.composite
def problems(draw):
    op = draw(st.sampled_from(["conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d", "max_pool2d",
                               "avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "depth_max_pool2d"]))
    layout = draw(st.sampled_from(["NCHW", "NHWC"]))
    n, c, h, w = dims(draw)
    xdt = draw(st.sampled_from(DTYPES))
    wdt = draw(st.sampled_from(DTYPES))
    x = image(draw, n, c, h, w, layout, xdt)
    if n and draw(st.integers(0, 9)) == 0:
        x = x[0]  # one unbatched image
    kw = {"data_format": layout}
    args = [x]
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if op in ("conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d"):
        kw["stride"] = draw(maybe_bad(pair_or_int(1, 3), BAD_INTS))
        kw["dilation"] = draw(maybe_bad(pair_or_int(1, 2), BAD_INTS))
        kw["padding"] = draw(padding_spec())
        kw["activation"] = draw(mostly([None, "relu", "relu6", ("leaky_relu", 0.2), "sigmoid", "tanh", "silu",
                                                  "elu"], ["gelu", ("relu", 1.0)]))
        with_bias = draw(st.booleans())
    if op == "conv2d":
        groups = draw(mostly([1, 1, 2, 3], [0, True, 1.0]))
        g = groups if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 else 1
        o = g * draw(st.integers(1, 3))
        cg = max(c // g, 1)
        wshape = (o, cg) + k if layout == "NCHW" else k + (cg, o)
        args.append(array(draw, wshape, wdt))
        kw["groups"] = groups
        kw["bias"] = array(draw, (o,), wdt) if with_bias else None
    elif op == "depthwise_conv2d":
        m = draw(st.integers(1, 2))
        wshape = (c * m, 1) + k if layout == "NCHW" else k + (c, m)
        args.append(array(draw, wshape, wdt))
        kw["bias"] = array(draw, (c * m,), wdt) if with_bias else None
    elif op == "separable_conv2d":
        m, o = draw(st.integers(1, 2)), draw(st.integers(1, 4))
        dshape = (c * m, 1) + k if layout == "NCHW" else k + (c, m)
        pshape = (o, c * m, 1, 1) if layout == "NCHW" else (1, 1, c * m, o)
        args += [array(draw, dshape, wdt), array(draw, pshape, wdt)]
        kw["bias"] = array(draw, (o,), wdt) if with_bias else None
    elif op == "conv_transpose2d":
        groups = draw(mostly([1, 1, 2], [0, 2**31]))
        g = groups if 0 < groups <= 2 else 1
        og = draw(st.integers(1, 3))
        wshape = (c, og) + k if layout == "NCHW" else k + (og, c)
        args.append(array(draw, wshape, wdt))
        kw["groups"] = groups
        kw["output_padding"] = draw(st.one_of(st.none(), pair_or_int(0, 2), st.integers(0, 11).flatmap(lambda r: st.sampled_from([-1, 1.0, 2**31]) if r == 0 else st.none())))
        kw["bias"] = array(draw, (og * g,), wdt) if with_bias else None
    elif op in ("max_pool2d", "avg_pool2d"):
        kw["kernel_size"] = draw(maybe_bad(pair_or_int(1, 4), BAD_INTS))
        kw["stride"] = draw(st.one_of(st.none(), maybe_bad(pair_or_int(1, 3), BAD_INTS)))
        kw["padding"] = draw(padding_spec(hi=2))
        kw["ceil_mode"] = draw(mostly([False, True], [1, None]))
        if op == "max_pool2d":
            kw["dilation"] = draw(maybe_bad(pair_or_int(1, 2), BAD_INTS))
        else:
            kw["count_include_pad"] = draw(mostly([True, False], [0]))
    elif op in ("global_avg_pool2d", "global_max_pool2d"):
        kw["keepdims"] = draw(mostly([False, True], [1, None]))
    else:
        args.append(draw(mostly([1, 1, 2, 3, 5], [0, 2.0, True, 2**31])))
    return op, args, kw


def tolerance(expected, scale_inputs):
    eps = float(np.finfo(expected.dtype).eps) if expected.dtype.kind == "f" else 0.0
    return 256 * eps * (1.0 + scale_inputs)


def check(problem):
    op, args, kw = problem
    STATS["examples"] += 1
    PER_OP[op] += 1
    try:
        expected = getattr(ref, op)(*args, **kw)
    except (ValueError, TypeError) as exc:
        try:
            getattr(ops, op)(*args, **kw)
        except (ValueError, TypeError) as got:
            assert type(got) is type(exc), f"{op}: pycnn raised {type(got).__name__}: {got}; reference " \
                                           f"{type(exc).__name__}: {exc}"
            STATS["rejected"] += 1
            return
        raise AssertionError(f"{op}: reference raised {type(exc).__name__}: {exc}; pycnn did not")
    result = getattr(ops, op)(*args, **kw)
    assert isinstance(result, np.ndarray)
    assert result.shape == expected.shape, (op, result.shape, expected.shape)
    assert result.dtype == expected.dtype, (op, result.dtype, expected.dtype)
    assert result.flags.c_contiguous
    if result.size:
        # scale: the magnitude a result element can have, sum over the window of |x|*|w| + |b|
        mags = [float(np.nanmax(np.abs(np.where(np.isfinite(a), a, 0).astype(np.float64)), initial=0))
                for a in list(args) + [kw.get("bias")] if isinstance(a, np.ndarray) and a.size]
        window = np.prod([a.size for a in args[1:] if isinstance(a, np.ndarray)], initial=1)
        scale = float(np.prod(mags)) * float(window)
        np.testing.assert_allclose(result, expected, rtol=0, atol=tolerance(expected, scale), equal_nan=True,
                                   err_msg=f"{op} {kw}")
    STATS["compared"] += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--isa", default=None)
    args = parser.parse_args()
    # A runaway allocation becomes a MemoryError (a failed example), not the machine's OOM killer.
    # (Not under AddressSanitizer, whose shadow memory needs terabytes of address space.)
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
    if args.isa:
        pycnn.set_isa(args.isa)
    run = seed(args.seed)(settings(max_examples=args.examples, deadline=None, database=None,
                                   suppress_health_check=list(HealthCheck))(given(problem=problems())(check)))
    np.seterr(all="ignore")
    run()
    print(json.dumps({"examples": STATS["examples"], "compared": STATS["compared"],
                      "rejected": STATS["rejected"], "ops": dict(PER_OP), "isa": pycnn.get_isa()}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
