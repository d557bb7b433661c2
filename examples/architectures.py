"""Classic CNN architectures on pycnn's layers, with random weights: summary(), images/s, and --
when PyTorch is importable -- the largest difference to the same network written in PyTorch
(examples/torch_twins.py) with the same weights, and PyTorch's images/s beside pycnn's.

    python examples/architectures.py --arch resnet34 --repeat 10 --threads 2 --layout channels_last
    python examples/architectures.py --arch all --no-summary

Batch 1 at each network's usual input (224x224 for VGG-16, ResNet-34 and MobileNet). Weights
are drawn with a fixed seed; BatchNormalization statistics are random too, so that folding
them into the convolutions is exercised. VGG-16 and ResNet-34 are compared on their logits
(no softmax), so that a difference is not hidden by a saturated softmax. Times are medians of
--repeat calls after two warm-up calls, pycnn's and PyTorch's calls taking turns (a shared
machine's load then falls on both alike); PyTorch in eval mode under inference_mode with the
same thread count and memory layout (channels_last tensors for --layout channels_last).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import pycnn
from pycnn import applications, layers

# name -> (pycnn builder keyword arguments, twin keyword arguments, input (H, W, C))
ARCHITECTURES = {
    "lenet5": ({}, {}, (32, 32, 1)),
    "mnist_convnet": ({}, {}, (28, 28, 1)),
    "cats_vs_dogs_convnet": ({}, {}, (150, 150, 3)),
    "vgg16": ({"classifier_activation": None}, {"softmax": False}, (224, 224, 3)),
    "resnet34": ({"classifier_activation": None}, {"softmax": False}, (224, 224, 3)),
    "inception_module": ({}, {}, (28, 28, 192)),
    "xception_block": ({}, {}, (56, 56, 128)),
    "mobilenet_blocks": ({}, {}, (224, 224, 3)),
    "fcn_upsampler": ({}, {}, (224, 224, 3)),
}


def image_shape(hwc, data_format):
    h, w, c = hwc
    return (h, w, c) if data_format == "channels_last" else (c, h, w)


def build(name, data_format="channels_last", input_hwc=None, **overrides):
    """The pycnn model `name` of pycnn.applications for a data format and input size."""
    kwargs, _, default_hwc = ARCHITECTURES[name]
    kwargs = {**kwargs, **overrides}
    return getattr(applications, name)(input_shape=image_shape(input_hwc or default_hwc, data_format),
                                       data_format=data_format, **kwargs)


def randomize_batch_norm(model, rng):
    """Random gamma, beta and moving statistics for every BatchNormalization in the model."""
    for layer in model.submodules:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])


def median_seconds(functions, repeat, settle=0.03):
    """Median seconds per call of each function. They are called in turn (a, b, a, b, ...) so
    that the load of a shared machine falls on all of them alike; two warm-up rounds first
    (weights prepared once, plans cached, caches warm). Each timed call starts `settle` seconds
    after the previous one, once the other framework's OpenMP threads have stopped spinning
    (they would otherwise take this call's cores)."""
    for _ in range(2):
        for fn in functions:
            fn()
    times = [[] for _ in functions]
    for _ in range(repeat):
        for fn, samples in zip(functions, times):
            time.sleep(settle)
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def load_torch():
    try:
        import torch
    except ImportError:
        return None, None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_twins
    return torch, torch_twins


def run(name, data_format, repeat, show_summary, torch, twins, rng):
    model = build(name, data_format)
    randomize_batch_norm(model, rng)
    if show_summary:
        model.summary()
    x = rng.standard_normal((1,) + model.input_shape[1:]).astype(np.float32)
    y = model(x)
    row = {"arch": name, "layout": data_format}
    if torch is None:
        (row["pycnn"],) = (1.0 / t for t in median_seconds([lambda: model(x)], repeat))
        return row
    _, twin_kwargs, _ = ARCHITECTURES[name]
    twin = twins.copy_weights(model, twins.TWINS[name](**twin_kwargs), data_format)
    xt = twins.to_torch_input(x, data_format)
    if data_format == "channels_last":
        twin = twin.to(memory_format=torch.channels_last)

    def torch_forward():
        with torch.inference_mode():
            return twin(xt)

    row["max_abs_diff"] = float(np.abs(y - twins.from_torch_output(torch_forward(), data_format)).max())
    row["max_abs_output"] = float(np.abs(y).max())
    row["pycnn"], row["torch"] = (1.0 / t for t in median_seconds([lambda: model(x), torch_forward], repeat))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="all", choices=["all", *ARCHITECTURES],
                        help="architecture to run (default: all)")
    parser.add_argument("--layout", default="both", choices=["channels_last", "channels_first", "both"])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per model (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"threads for pycnn and PyTorch (default: pycnn's, now {pycnn.get_num_threads()})")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--no-summary", action="store_true", help="do not print the summaries")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    if args.threads is not None:
        pycnn.set_num_threads(args.threads)
    threads = pycnn.get_num_threads()
    torch, twins = (None, None) if args.no_torch else load_torch()
    if torch is not None:
        torch.set_num_threads(threads)
    elif not args.no_torch:
        print("PyTorch is not importable: pycnn only (pip install torch for the comparison)")

    layers.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    names = list(ARCHITECTURES) if args.arch == "all" else [args.arch]
    data_formats = ["channels_last", "channels_first"] if args.layout == "both" else [args.layout]
    rows = []
    for name in names:
        for data_format in data_formats:
            rows.append(run(name, data_format, args.repeat, not args.no_summary and data_format == data_formats[0],
                            torch, twins, rng))
            print(_format_row(rows[-1]), flush=True)

    print(f"\nimages/s, batch 1, {threads} threads, median of {args.repeat} (pycnn {pycnn.__version__}, "
          f"ISA {pycnn.get_isa()}{', torch ' + torch.__version__ if torch is not None else ''})")
    for row in rows:
        print(_format_row(row))


def _format_row(row):
    text = f"{row['arch']:22s} {row['layout']:15s} pycnn {row['pycnn']:9.2f} img/s"
    if "torch" in row:
        text += (f"   torch {row['torch']:9.2f} img/s   pycnn/torch {row['pycnn'] / row['torch']:5.2f}x"
                 f"   max |diff| {row['max_abs_diff']:.2e} (max |y| {row['max_abs_output']:.2e})")
    return text


if __name__ == "__main__":
    main()
