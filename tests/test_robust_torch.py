"""Coexistence with PyTorch in one process: either import order, both libraries compute
correctly (conv2d and max_pool2d compared), no OpenMP runtime clash on stderr."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pycnn

pytest.importorskip("torch")

SRC = str(Path(pycnn.__file__).parent.parent)

BODY = """
import numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
b = rng.standard_normal(16).astype(np.float32)
for threads in (1, 2):
    torch.set_num_threads(threads)
    pycnn.set_num_threads(threads)
    for _ in range(3):  # alternate the two runtimes' thread pools
        ours = pycnn.ops.conv2d(x, w, b, padding=1, stride=1)
        theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                                            padding=1).numpy()
        truth = pycnn.reference.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
        assert np.allclose(ours, truth, rtol=1e-4, atol=1e-4), np.abs(ours - truth).max()
        assert np.allclose(theirs, truth, rtol=1e-4, atol=1e-4), np.abs(theirs - truth).max()
        mp = pycnn.ops.max_pool2d(x, 3, stride=2, padding=1)
        tmp = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, stride=2, padding=1).numpy()
        assert np.array_equal(mp, tmp)
        # a torch tensor straight into pycnn
        assert np.array_equal(pycnn.ops.conv2d(torch.from_numpy(x), w, b, padding=1), ours)
print("ok", pycnn.get_num_threads(), torch.get_num_threads())
"""

ORDERS = {
    "torch-first": "import torch\nimport pycnn, pycnn.ops, pycnn.reference\n",
    "pycnn-first": "import pycnn, pycnn.ops, pycnn.reference\nimport torch\n",
    "pycnn-used-before-torch-import": ("import numpy as np, pycnn, pycnn.ops, pycnn.reference\n"
                                       "pycnn.ops.conv2d(np.ones((1, 2, 8, 8), np.float32), np.ones((2, 2, 3, 3), np.float32))\n"
                                       "import torch\n"),
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_torch_and_pycnn_in_one_process(order):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.pop("KMP_DUPLICATE_LIB_OK", None)  # do not hide an OpenMP runtime clash
    code = ORDERS[order] + textwrap.dedent(BODY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "OMP: Error" not in proc.stderr and "OMP: Warning" not in proc.stderr, proc.stderr[-4000:]
    assert proc.stdout.split() == ["ok", "2", "2"]
