"""Classic image filters with pycnn: Sobel, Prewitt and Scharr gradients, gradient magnitude,
Laplacian, sharpen, box and Gaussian blur, emboss -- applied to a synthetic scene that the script
draws itself, written out as a PNG grid.

    python examples/edge_detection.py --out edges.png --size 256

All filters run as one pycnn.ops.conv2d call: a filter bank of shape (O, 1, 5, 5) (3x3
kernels centred in 5x5) over the one-channel image, 'same' padding. The Sobel pair is run a
second time through a Keras-style Conv2D layer given the kernels with set_weights, to show the
layer route gives the same answer. Writing the PNG needs Pillow or matplotlib (pip install
"pycnn[examples]"); without either, the script still filters and prints what it found.
"""
from __future__ import annotations

import argparse

import numpy as np

import pycnn.ops as ops
from pycnn import layers

SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
PREWITT_X = [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]
SCHARR_X = [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]

# name -> kernel (cross-correlation, as conv2d computes: positive where brightness rises to the
# right for *_x, downwards for *_y)
FILTERS = {
    "sobel x": np.array(SOBEL_X) / 4,
    "sobel y": np.array(SOBEL_X).T / 4,
    "prewitt x": np.array(PREWITT_X) / 3,
    "prewitt y": np.array(PREWITT_X).T / 3,
    "scharr x": np.array(SCHARR_X) / 16,
    "scharr y": np.array(SCHARR_X).T / 16,
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "laplacian 8": np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]]),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "box blur 5x5": np.full((5, 5), 1 / 25),
    "gaussian 5x5": np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256,
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
}
SIGNED = {"sobel x", "sobel y", "prewitt x", "prewitt y", "scharr x", "scharr y", "laplacian", "laplacian 8"}


def synthetic_scene(size=256, seed=0):
    """A grayscale test image in [0, 1]: a gradient sky, a disc, a ring, a square, a triangle,
    stripes of rising frequency, a checkerboard patch and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.25 + 0.35 * y                                                   # vertical gradient
    image = np.where((x - 0.28) ** 2 + (y - 0.3) ** 2 < 0.15 ** 2, 0.95, image)   # disc
    r = np.hypot(x - 0.72, y - 0.3)
    image = np.where((r > 0.1) & (r < 0.15), 0.05, image)                    # ring
    image = np.where((abs(x - 0.25) < 0.12) & (abs(y - 0.72) < 0.12), 0.1, image)  # square
    inside = (y > 0.58) & (y < 0.88) & (abs(x - 0.72) < (y - 0.58) * 0.6)    # triangle
    image = np.where(inside, 0.85, image)
    stripes = (y > 0.92) & (np.sin(2 * np.pi * x * (4 + 40 * x)) > 0)          # chirp stripes
    image = np.where(stripes, 1.0, image)
    checker = (x > 0.45) & (x < 0.55) & (y > 0.45) & (y < 0.55)
    image = np.where(checker, ((np.floor(x * 80) + np.floor(y * 80)) % 2) * 0.8 + 0.1, image)
    image += rng.normal(0, 0.01, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def filter_bank():
    """Every filter as one conv2d weight (O, 1, 5, 5): 3x3 kernels centred in zeros."""
    bank = np.zeros((len(FILTERS), 1, 5, 5), np.float32)
    for i, kernel in enumerate(FILTERS.values()):
        k = kernel.shape[0]
        offset = (5 - k) // 2
        bank[i, 0, offset:offset + k, offset:offset + k] = kernel
    return bank


def apply_filters(image):
    """{name: filtered image} from one conv2d call, plus the gradient magnitude from Sobel x/y."""
    responses = ops.conv2d(image[None, None], filter_bank(), padding="same")[0]   # (O, H, W)
    results = dict(zip(FILTERS, responses))
    results["sobel magnitude"] = np.hypot(results["sobel x"], results["sobel y"])
    return results


def sobel_with_a_layer(image):
    """The Sobel pair through a Keras-style Conv2D layer: kernel (KH, KW, in, out) = (3, 3, 1, 2)."""
    conv = layers.Conv2D(2, 3, padding="same", use_bias=False, input_shape=(image.shape[0], image.shape[1], 1))
    conv.set_weights([np.stack([FILTERS["sobel x"], FILTERS["sobel y"]], axis=-1)[:, :, None, :]])
    return conv(image[None, :, :, None])[0]   # (H, W, 2), channels_last


def to_display(name, response):
    """8-bit pixels: signed responses around mid-grey (zero), the magnitude scaled to its
    maximum, the others (blurs, sharpen, emboss: kernels summing to 1) clipped to [0, 1]."""
    if name in SIGNED:
        scale = max(float(np.abs(response).max()), 1e-12)
        response = 0.5 + 0.5 * response / scale
    elif name == "sobel magnitude":
        response = response / max(float(response.max()), 1e-12)
    return (np.clip(response, 0, 1) * 255).round().astype(np.uint8)


def write_grid(panels, path, columns=4):
    """Write the titled panels as one PNG, with Pillow or else matplotlib; False if neither."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        Image = None
    if Image is not None:
        h, w = next(iter(panels.values())).shape
        label = 16
        rows = -(-len(panels) // columns)
        grid = Image.new("L", (columns * w, rows * (h + label)), color=255)
        draw = ImageDraw.Draw(grid)
        for i, (name, pixels) in enumerate(panels.items()):
            left, top = (i % columns) * w, (i // columns) * (h + label)
            draw.text((left + 4, top + 2), name, fill=0)
            grid.paste(Image.fromarray(pixels), (left, top + label))
        grid.save(path)
        return True
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, pixels) in zip(axes.flat, panels.items()):
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=255)
        ax.set_title(name)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="edges.png", help="PNG file to write (default: edges.png)")
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic image in pixels")
    args = parser.parse_args(argv)
    if args.size < 16:
        parser.error("--size must be at least 16")

    image = synthetic_scene(args.size)
    results = apply_filters(image)
    by_layer = sobel_with_a_layer(image)
    difference = max(float(np.abs(by_layer[..., 0] - results["sobel x"]).max()),
                     float(np.abs(by_layer[..., 1] - results["sobel y"]).max()))
    print(f"{len(FILTERS)} filters on a {args.size}x{args.size} image in one conv2d call; Conv2D layer vs "
          f"ops.conv2d Sobel: max |difference| {difference:.1e}")
    for name, response in results.items():
        print(f"  {name:16s} min {response.min():8.3f}  max {response.max():8.3f}  mean |.| {np.abs(response).mean():.4f}")

    panels = {"input": to_display("input", image)}
    panels.update((name, to_display(name, response)) for name, response in results.items())
    if write_grid(panels, args.out):
        print(f"wrote {args.out}")
    else:
        print("neither Pillow nor matplotlib is installed, so no PNG was written "
              "(pip install pillow, or pip install \"pycnn[examples]\")")


if __name__ == "__main__":
    main()
