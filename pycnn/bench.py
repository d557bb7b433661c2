"""`python -m pycnn.bench`: the standard-layer benchmark.

For each standard layer it times pycnn (every algorithm, the chosen layout), the NumPy
reference and, with --peers, PyTorch (NCHW and channels_last) in the same process with the same
thread count, and prints GFLOP/s and speedups. Pooling layers are timed in both layouts and
reported in GB/s (input bytes read + output bytes written). Times are medians of repeated runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import pycnn
from pycnn import ops, reference


@dataclass(frozen=True)
class ConvLayer:
    name: str
    c: int
    o: int
    size: int
    kernel: int
    stride: int = 1
    padding: int = 0
    batch: int = 1

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    def gflop(self, batch: int | None = None) -> float:
        n = self.batch if batch is None else batch
        return 2.0 * n * self.o * self.c * self.kernel**2 * self.out_size**2 / 1e9


# The standard layers (ResNet/VGG stems and blocks, and MNIST-size layers).
CONV_LAYERS = [
    ConvLayer("7x7/2 3->64 @224", 3, 64, 224, 7, 2, 3),
    ConvLayer("3x3 64->64 @56", 64, 64, 56, 3, 1, 1),
    ConvLayer("1x1 256->64 @56", 256, 64, 56, 1, 1, 0),
    ConvLayer("3x3 256->256 @14", 256, 256, 14, 3, 1, 1),
    ConvLayer("3x3 128->128 @112", 128, 128, 112, 3, 1, 1),
    ConvLayer("3x3/2 128->256 @56", 128, 256, 56, 3, 2, 1),
    ConvLayer("3x3 64->64 @56 b8", 64, 64, 56, 3, 1, 1, batch=8),
    ConvLayer("3x3 1->32 @28", 1, 32, 28, 3, 1, 0),
    ConvLayer("3x3 32->64 @13", 32, 64, 13, 3, 1, 0),
]


def median_time(fn, min_time: float, min_repeats: int = 3, max_repeats: int = 1000) -> float:
    """Median wall time of fn() after one warm-up call, over >= min_repeats runs and >= min_time s."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Row:
    layer: str
    gflop: float
    times: dict = field(default_factory=dict)  # implementation -> seconds


def _torch_peers(layer: ConvLayer, x, w, threads: int):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tx_cl = tx.contiguous(memory_format=torch.channels_last)
    conv = torch.nn.functional.conv2d

    def run(t):
        def f():
            with torch.no_grad():
                conv(t, tw, stride=layer.stride, padding=layer.padding)
        return f

    return {"torch NCHW": run(tx), "torch NHWC": run(tx_cl)}


def run_conv(layers, *, layout: str, batch: int | None, quick: bool, peers: bool, threads: int,
             reference_too: bool = True) -> list[Row]:
    rng = np.random.default_rng(0)
    min_time = 0.05 if quick else 0.4
    rows = []
    for layer in layers:
        n = layer.batch if batch is None else batch
        x = rng.standard_normal((n, layer.c, layer.size, layer.size), dtype=np.float32)
        w = rng.standard_normal((layer.o, layer.c, layer.kernel, layer.kernel), dtype=np.float32)
        w *= np.float32(1.0 / np.sqrt(layer.c * layer.kernel**2))
        kw = dict(stride=layer.stride, padding=layer.padding)
        if layout == "NHWC":
            xl, wl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        else:
            xl, wl = x, w
        row = Row(layer.name, layer.gflop(n))
        for algo in ("auto", "direct", "im2col"):
            row.times[f"pycnn {algo}"] = median_time(
                lambda a=algo: ops.conv2d(xl, wl, data_format=layout, algorithm=a, **kw), min_time)
        if reference_too:
            row.times["reference"] = median_time(
                lambda: reference.conv2d(xl, wl, data_format=layout, **kw), 0.0, min_repeats=1 if quick else 3)
        if peers:
            for name, fn in _torch_peers(layer, x, w, threads).items():
                row.times[name] = median_time(fn, min_time)
        rows.append(row)
        print_row(row, header=len(rows) == 1)
    return rows


def print_row(row: Row, header: bool) -> None:
    impls = list(row.times)
    if header:
        cols = "".join(f" {name:>13}" for name in impls)
        print(f"{'layer':<22} {'GFLOP':>7}{cols}   (GFLOP/s; last columns: pycnn auto speedup)")
    rates = "".join(f" {row.gflop / t:13.1f}" for t in row.times.values())
    auto = row.times["pycnn auto"]
    extras = []
    if "reference" in row.times:
        extras.append(f"x{row.times['reference'] / auto:.0f} vs reference")
    peer_times = [t for k, t in row.times.items() if k.startswith("torch")]
    if peer_times:
        extras.append(f"x{min(peer_times) / auto:.2f} vs best torch")
    print(f"{row.layer:<22} {row.gflop:7.3f}{rates}   {', '.join(extras)}", flush=True)


# ---------------------------------------------------------------------------------------------
# Pooling: bandwidth-bound, so GB/s = (input bytes + output bytes) / time, float32.

@dataclass(frozen=True)
class PoolLayer:
    name: str
    kind: str            # "max", "avg" or "global_avg"
    c: int
    size: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    batch: int = 1

    @property
    def out_size(self) -> int:
        if self.kind == "global_avg":
            return 1
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    def gbytes(self, batch: int | None = None) -> float:
        n = self.batch if batch is None else batch
        return 4.0 * n * self.c * (self.size**2 + self.out_size**2) / 1e9


# ResNet's stem max pool, VGG's 2x2 max pool, an average-pool stem and ResNet's global average.
POOL_LAYERS = [
    PoolLayer("max 3x3/2 p1 64 @112", "max", 64, 112, 3, 2, 1),
    PoolLayer("max 2x2/2 128 @112", "max", 128, 112, 2, 2, 0),
    PoolLayer("avg 3x3/2 p1 64 @112", "avg", 64, 112, 3, 2, 1),
    PoolLayer("global avg 512 @7 b8", "global_avg", 512, 7, batch=8),
]


def _pool_call(module, layer: PoolLayer, x, layout: str):
    """A zero-argument call of `module`'s (pycnn.ops or pycnn.reference) op for this layer."""
    if layer.kind == "global_avg":
        return lambda: module.global_avg_pool2d(x, data_format=layout)
    op = module.max_pool2d if layer.kind == "max" else module.avg_pool2d
    return lambda: op(x, layer.kernel, layer.stride, layer.padding, data_format=layout)


def _torch_pool_peers(layer: PoolLayer, x, threads: int):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    tx = torch.from_numpy(x)
    tx_cl = tx.contiguous(memory_format=torch.channels_last)
    F = torch.nn.functional

    def run(t):
        if layer.kind == "global_avg":
            op = lambda: F.adaptive_avg_pool2d(t, 1)  # noqa: E731
        elif layer.kind == "max":
            op = lambda: F.max_pool2d(t, layer.kernel, layer.stride, layer.padding)  # noqa: E731
        else:
            op = lambda: F.avg_pool2d(t, layer.kernel, layer.stride, layer.padding)  # noqa: E731

        def f():
            with torch.no_grad():
                op()
        return f

    return {"torch NCHW": run(tx), "torch NHWC": run(tx_cl)}


@dataclass
class PoolRow:
    layer: str
    gbytes: float
    times: dict = field(default_factory=dict)  # implementation -> seconds


def run_pool(layers, *, batch: int | None, quick: bool, peers: bool, threads: int,
             reference_too: bool = True) -> list[PoolRow]:
    """Time every pooling layer: pycnn in both layouts, the reference (NCHW), torch with --peers."""
    rng = np.random.default_rng(0)
    min_time = 0.05 if quick else 0.4
    rows = []
    for layer in layers:
        n = layer.batch if batch is None else batch
        x = rng.standard_normal((n, layer.c, layer.size, layer.size), dtype=np.float32)
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        row = PoolRow(layer.name, layer.gbytes(n))
        row.times["pycnn NCHW"] = median_time(_pool_call(ops, layer, x, "NCHW"), min_time)
        row.times["pycnn NHWC"] = median_time(_pool_call(ops, layer, x_nhwc, "NHWC"), min_time)
        if reference_too:
            row.times["reference"] = median_time(_pool_call(reference, layer, x, "NCHW"), 0.0,
                                                 min_repeats=1 if quick else 3)
        if peers:
            for name, fn in _torch_pool_peers(layer, x, threads).items():
                row.times[name] = median_time(fn, min_time)
        rows.append(row)
        print_pool_row(row, header=len(rows) == 1)
    return rows


def print_pool_row(row: PoolRow, header: bool) -> None:
    if header:
        cols = "".join(f" {name:>11}" for name in row.times)
        print(f"{'pooling layer':<22} {'MB':>6}{cols}   (GB/s; then pycnn NCHW / NHWC speedups)")
    rates = "".join(f" {row.gbytes / t:11.1f}" for t in row.times.values())
    nchw, nhwc = row.times["pycnn NCHW"], row.times["pycnn NHWC"]
    extras = []
    if "reference" in row.times:
        ref = row.times["reference"]
        extras.append(f"x{ref / nchw:.0f} / x{ref / nhwc:.0f} vs reference")
    if "torch NCHW" in row.times:
        extras.append(f"x{row.times['torch NCHW'] / nchw:.1f} / x{row.times['torch NHWC'] / nhwc:.1f} "
                      f"vs torch same layout")
    print(f"{row.layer:<22} {row.gbytes * 1e3:6.2f}{rates}   {', '.join(extras)}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycnn.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run: fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: pycnn's)")
    parser.add_argument("--batch", type=int, default=None, help="override every layer's batch size")
    parser.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW")
    parser.add_argument("--peers", action="store_true", help="also time PyTorch when installed")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy reference")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--only", choices=["conv", "pool"], default=None,
                        help="run only the convolution or only the pooling layers")
    args = parser.parse_args(argv)

    if args.threads is not None:
        pycnn.set_num_threads(args.threads)
    threads = pycnn.get_num_threads()
    cfg = pycnn.show_config(print_out=False)
    print(f"pycnn {cfg['version']}  isa={cfg['isa']}  threads={threads}  layout={args.layout}  "
          f"float32  ({cfg['compiler']})")
    rows, pool_rows = [], []
    if args.only != "pool":
        rows = run_conv(CONV_LAYERS, layout=args.layout, batch=args.batch, quick=args.quick,
                        peers=args.peers, threads=threads, reference_too=not args.no_reference)
    if args.only != "conv":
        if rows:
            print()
        pool_rows = run_pool(POOL_LAYERS, batch=args.batch, quick=args.quick, peers=args.peers,
                             threads=threads, reference_too=not args.no_reference)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "threads": threads, "layout": args.layout,
                       "conv2d": [{"layer": r.layer, "gflop": r.gflop, "seconds": r.times} for r in rows],
                       "pool2d": [{"layer": r.layer, "gbytes": r.gbytes, "seconds": r.times} for r in pool_rows]},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
