"""The examples run: edge_detection.py (filters checked against plain NumPy, the PNG written when
Pillow or matplotlib is there, a clear message when not) and architectures.py."""
from __future__ import annotations

import builtins
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.fixture(scope="module")
def edges():
    return load_example("edge_detection")


def correlate_interior(image, kernel):
    """Plain cross-correlation of the cells whose window fits in the image."""
    k = kernel.shape[0]
    h, w = image.shape
    out = np.zeros((h - k + 1, w - k + 1))
    for i in range(k):
        for j in range(k):
            out += kernel[i, j] * image[i:i + h - k + 1, j:j + w - k + 1]
    return out


def test_filters_match_numpy(edges):
    image = edges.synthetic_scene(48)
    assert image.shape == (48, 48) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    results = edges.apply_filters(image)
    assert set(results) == set(edges.FILTERS) | {"sobel magnitude"}
    for name, kernel in edges.FILTERS.items():
        r = kernel.shape[0] // 2
        expected = correlate_interior(image.astype(np.float64), kernel)
        np.testing.assert_allclose(results[name][r:48 - r, r:48 - r], expected, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(results["sobel magnitude"], np.hypot(results["sobel x"], results["sobel y"]), rtol=1e-6)
    # a rising ramp has a positive x gradient, a flat image no Laplacian
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
    ramp_results = edges.apply_filters(ramp)
    np.testing.assert_allclose(ramp_results["sobel x"][2:-2, 2:-2], 1 / 15 * 2, rtol=1e-5)
    np.testing.assert_allclose(edges.apply_filters(np.full((9, 9), 0.5, np.float32))["laplacian"][1:-1, 1:-1], 0,
                               atol=1e-6)
    by_layer = edges.sobel_with_a_layer(image)
    np.testing.assert_allclose(by_layer[..., 0], results["sobel x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(by_layer[..., 1], results["sobel y"], rtol=1e-6, atol=1e-6)


def test_edge_detection_writes_a_png(edges, tmp_path, capsys):
    pytest.importorskip("PIL")
    out = tmp_path / "edges.png"
    edges.main(["--out", str(out), "--size", "64"])
    assert f"wrote {out}" in capsys.readouterr().out
    from PIL import Image
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (4 * 64, 4 * (64 + 16))


def test_edge_detection_without_an_image_library(edges, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_image_libraries(name, *args, **kwargs):
        if name.split(".")[0] in ("PIL", "matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_image_libraries)
    out = tmp_path / "edges.png"
    edges.main(["--out", str(out), "--size", "32"])
    text = capsys.readouterr().out
    assert "neither Pillow nor matplotlib is installed, so no PNG was written" in text
    assert "sobel magnitude" in text and not out.exists()


@pytest.mark.parametrize("torch_flag", [["--no-torch"], []], ids=["pycnn only", "with torch"])
def test_architectures_example_runs(torch_flag, capsys):
    if not torch_flag:
        pytest.importorskip("torch")
    load_example("architectures").main(["--arch", "lenet5", "--repeat", "1", "--layout", "channels_last",
                                        *torch_flag])
    out = capsys.readouterr().out
    assert 'Model: "lenet5"' in out and "Total params: 61,706" in out
    row = [line for line in out.splitlines() if line.startswith("lenet5")][-1]
    assert "pycnn" in row and "img/s" in row
    assert ("max |diff|" in row) == (not torch_flag)


def test_readme_layer_api_examples_run(capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Layer API"):readme.index("## Examples")]
    blocks = [block.split("```")[0] for block in section.split("```python\n")[1:]]
    assert len(blocks) == 2
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["probabilities"].shape == (100, 10)
    assert "Total params: 93,322" in capsys.readouterr().out
    unit = namespace["ResidualUnit"](8)
    y = unit(np.ones((2, 5, 5, 8), np.float32))
    assert y.shape == (2, 5, 5, 8) and unit.count_params() == 2 * (9 * 8 * 8 + 4 * 8)
