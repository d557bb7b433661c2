"""`python -m pycnn.bench`, the main job: its table, its JSON, and the FMA roof it keeps."""
from __future__ import annotations

import json

import pytest

import pycnn
from pycnn import bench

QUICK_POOLING = ["--quick", "--ops", "pooling", "--peers", "none", "--no-reference", "--layout", "NHWC"]


def test_quick_pooling_run_prints_every_layer_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert bench.main(QUICK_POOLING + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "measured roofs: FMA peak" in out and "peers: none" in out
    assert f"cpu={pycnn.show_config(print_out=False)['cpu_vendor']}" in out.splitlines()[0]
    names = [layer.name for layer in bench.POOL_LAYERS]
    for name in names:
        assert any(line.startswith(name) for line in out.splitlines()), name
    data = json.loads(path.read_text())
    assert [r["layer"] for r in data["results"]] == names
    assert all(r["unit"] == "GB/s" and r["seconds"]["pycnn NHWC"] > 0 for r in data["results"])
    assert data["roofs"]["gflops"] > 0 and data["roofs"]["gbs"] > 0
    assert data["call_overhead_us"]["pycnn"] > 0


def test_roof_is_sampled_again_after_each_group_only_rises_and_says_so_once(tmp_path, capsys, monkeypatch):
    readings = iter([100.0, 150.0, 150.2, 120.0])
    monkeypatch.setattr(bench, "fma_roof", lambda threads, samples: next(readings))
    path = tmp_path / "bench.json"
    assert bench.main(QUICK_POOLING + ["--ops", "pooling,pooling,pooling", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "FMA peak 100 GFLOP/s" in out
    assert out.count("FMA peak re-measured") == 1
    assert "FMA peak re-measured: 150 GFLOP/s (was 100)" in out
    assert json.loads(path.read_text())["roofs"]["gflops"] == 150.2  # kept, though it prints as 150


def test_unknown_op_group_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--quick", "--ops", "convolution", "--peers", "none", "--no-reference"])
    assert info.value.code == 2
    assert "unknown op group 'convolution'" in capsys.readouterr().err
