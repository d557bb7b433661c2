"""Hypothesis fuzzing of every op against pycnn.reference, in a subprocess (tests/robust_fuzz_driver.py)
so that a crash fails this test instead of killing pytest.

Each run draws small random shapes, input dtypes (float32/64, float16, int, bool), layouts and
argument values (some invalid) and requires pycnn.ops to give the reference's answer within
tolerance or to raise the reference's exception type. PYCNN_FUZZ_EXAMPLES scales the run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pycnn

DRIVER = Path(__file__).with_name("robust_fuzz_driver.py")
EXAMPLES = int(os.environ.get("PYCNN_FUZZ_EXAMPLES", "600"))
OPS = {"conv2d", "depthwise_conv2d", "separable_conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
       "global_avg_pool2d", "global_max_pool2d", "depth_max_pool2d"}


def run_driver(seed, examples, isa):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(pycnn.__file__).parent.parent)]
                                                      + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run([sys.executable, str(DRIVER), "--seed", str(seed), "--examples", str(examples),
                           "--isa", isa], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (
        f"fuzz driver failed (exit code {proc.returncode}; negative = killed by a signal)\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("isa", pycnn.available_isas())
def test_fuzz_every_op_matches_reference_or_raises_like_it(isa):
    seed = 20261122 + pycnn.available_isas().index(isa)
    summary = run_driver(seed, EXAMPLES, isa)
    print(f"fuzz isa={isa}: {summary}")
    assert summary["isa"] == isa
    assert summary["examples"] >= EXAMPLES  # Hypothesis ran every example it was asked for
    assert set(summary["ops"]) == OPS       # and every op was drawn
    # both outcomes are exercised: computed answers and clean rejections
    assert summary["compared"] >= EXAMPLES // 5
    assert summary["rejected"] >= EXAMPLES // 10
