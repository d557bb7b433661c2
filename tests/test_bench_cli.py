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


def test_runs_print_median_times_and_the_median_of_each_runs_own_ratio(tmp_path, capsys, monkeypatch):
    # One layer, one peer, three runs with scripted times (seconds: pycnn, peer). The ratios
    # within each run are 2.0, 0.5 and 1.5: their median is 1.5, where the ratio of the median
    # times (2.0 / 2.0) would read 1.00x. The call overhead, probed once a run, reads 3.9, 2.2
    # and 2.4 us: the median of the runs, not the first run's figure, is printed.
    per_run = iter([(1.0, 2.0), (4.0, 2.0), (2.0, 3.0)])
    overhead_per_run = iter([3.9e-6, 2.2e-6, 2.4e-6])

    def scripted_times(fns, *args, **kwargs):
        if "pycnn NHWC" not in fns:  # the call-overhead probe
            return {label: next(overhead_per_run) for label in fns}
        mine, peer = next(per_run)
        return {"pycnn NHWC": mine, "peer": peer}

    def one_layer(**kwargs):
        return [bench.Case("conv2d", "scripted layer", 1e9, "GFLOP/s", 1e8,
                           pycnn={"NHWC": lambda: None}, peers={"peer": lambda: None})]

    monkeypatch.setattr(bench, "median_times", scripted_times)
    monkeypatch.setattr(bench, "fma_roof", lambda threads, samples: 100.0)
    monkeypatch.setitem(bench.CASE_GROUPS, "scripted", one_layer)
    path = tmp_path / "bench.json"
    args = ["--ops", "scripted", "--layout", "NHWC", "--peers", "none", "--no-reference", "--runs", "3"]
    assert bench.main(args + ["--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "call overhead, tiny conv2d (1x1x8x8, 3x3), median of 3 runs: pycnn 2.4 us (2.2-3.9)" in out
    head = next(line for line in out.splitlines() if line.startswith("layer"))
    assert head.split()[-3:] == ["NHWC", "range", "NHWC"]
    row = next(line for line in out.splitlines() if line.startswith("scripted layer")).split()
    assert row[2:] == ["0.5", "0%", "-", "0.5", "1.50x", "0.50-2.00"]  # 1 GFLOP in a median 2 s
    with pytest.raises(StopIteration):
        next(per_run)  # each run timed the layer once
    data = json.loads(path.read_text())
    assert data["runs"] == 3
    (result,) = data["results"]
    assert result["seconds"] == {"pycnn NHWC": 2.0, "peer": 2.0}
    assert [run["pycnn NHWC"] for run in result["seconds_per_run"]] == [1.0, 4.0, 2.0]
    assert result["ratios"] == {"NHWC": [2.0, 0.5, 1.5]}
    assert data["call_overhead_us"] == {"pycnn": pytest.approx(2.4)}
    assert [o["pycnn"] for o in data["call_overhead_us_per_run"]] == pytest.approx([3.9, 2.2, 2.4])


def test_runs_below_one_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--quick", "--ops", "pooling", "--peers", "none", "--no-reference", "--runs", "0"])
    assert info.value.code == 2
    assert "--runs must be at least 1, got 0" in capsys.readouterr().err


def test_a_block_after_a_function_that_asks_for_a_longer_settle_waits_that_long(monkeypatch):
    # ONNX Runtime's pool spins for tens of ms after a Run (bench.ORT_SETTLE_SECONDS): the block
    # after its block, whichever the rotation puts there, waits that long; others wait
    # SETTLE_SECONDS.
    calls, pauses = [], []

    def fn(label):
        def run():
            calls.append(label)
        return run

    spinner = fn("spinner")
    spinner.settle_seconds = 0.25
    fns = {"a": fn("a"), "b": fn("b"), "spinner": spinner}
    monkeypatch.setattr(bench.time, "sleep", lambda s: pauses.append((s, len(calls))))
    bench.median_times(fns, 0.0, rounds=3, min_repeats=1, max_repeats=1)
    # Blocks a b spinner | b spinner a | spinner a b, after the warm-up calls a b spinner; each
    # pause comes before a block's untimed first call, right after the previous block.
    after = [calls[i - 1] for _, i in pauses]
    assert after == ["spinner", "a", "b", "spinner", "b", "spinner", "a", "spinner", "a"]
    assert [s for s, _ in pauses] == [0.25 if who == "spinner" else bench.SETTLE_SECONDS for who in after]


def test_onnxruntime_peer_asks_for_its_pools_settle():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    case = bench.CASE_GROUPS["pooling"](batch=1, peers={"onnxruntime"}, threads=1)[0]
    assert case.peers["onnxruntime"].settle_seconds == bench.ORT_SETTLE_SECONDS > bench.SETTLE_SECONDS


def test_the_reference_waits_for_a_spinning_peer_before_it_is_timed(monkeypatch):
    # Quick mode times each implementation in one block, ONNX Runtime's last; the NumPy reference,
    # timed next without the blocks' pauses, starts only after the longest pause a timed
    # function asks for.
    events = []

    def fn(label, settle=None):
        def run():
            events.append(label)
        if settle is not None:
            run.settle_seconds = settle
        return run

    case = bench.Case("conv2d", "scripted layer", 1e9, "GFLOP/s", 1e8, pycnn={"NHWC": fn("pycnn")},
                      peers={"spinner": fn("spinner", 0.25)}, reference=fn("reference"))
    monkeypatch.setattr(bench.time, "sleep", lambda s: events.append(s))
    bench.measure(case, ["NHWC"], quick=True, reference_too=True)
    first_reference = events.index("reference")
    assert "spinner" in events[:first_reference] and events[first_reference - 1] == 0.25
