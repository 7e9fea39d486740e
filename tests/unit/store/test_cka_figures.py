"""The ``cka`` command's own figures: models named by configuration, a colour scale fitted to the
data and stated, axis titles on both panels."""

from __future__ import annotations

import re

import pytest
import torch


@pytest.fixture
def ds():
    from attndilute.store import LayerSpec, cka_dataset

    specs = [LayerSpec(f"layers.{s}.blocks.0", "block", s, 0) for s in range(3)]
    values = torch.tensor([[0.99, 0.97, 0.96], [0.97, 0.98, 0.965], [0.96, 0.97, 0.975]], dtype=torch.float64)
    attrs = {"model_a": "/tmp/.demo-fast.tmp-4242/runs/base/best.safetensors", "model_b": "init:A",
             "n_scans": 6}  # fmt: skip
    return cka_dataset(values, specs, specs, attrs)


def test_html_names_configurations_and_fits_the_colour_scale(ds, tmp_path):
    from attndilute.store.cka_figures import write_html

    text = write_html(ds, tmp_path / "cka.html").read_text()
    assert "A: base   B: random init of base" in text and ".demo-fast.tmp" not in text
    assert re.search(r'"zmin":0\.96,.*"zmax":0\.99', text) or re.search(r'"zmax":0\.99.*"zmin":0\.96', text)
    assert "0.960-0.990" in text  # the colour bar states the range
    for title in ("layer of A (base)", "layer of B (random init of base)", "matched layer"):
        assert title in text


def test_png_heatmap_uses_the_fitted_range(ds, tmp_path, monkeypatch):
    import matplotlib.axes

    from attndilute.store.cka_figures import write_heatmap_png

    seen = {}
    imshow = matplotlib.axes.Axes.imshow

    def spy(self, *args, **kwargs):
        seen.update(vmin=kwargs.get("vmin"), vmax=kwargs.get("vmax"))
        return imshow(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    path = write_heatmap_png(ds, tmp_path / "cka.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen == {"vmin": pytest.approx(0.96), "vmax": pytest.approx(0.99)}
