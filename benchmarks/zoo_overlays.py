"""The README example on every zoo model: where does the default map put its heat?

Explains ``examples/scene.png`` ("What color is the circle?") with each zoo model and the
default method, prints the mean heat on every object of the scene (objects found as
connected non-background regions; circle / square / triangle told apart by how much of
their bounding box they fill: ~0.79 / 1 / ~0.5) and whether the circle is the hottest, and
draws the four overlays side by side into ``docs/zoo_overlays.png``.

    python benchmarks/zoo_overlays.py            # ~1 min on 2 CPU cores
    python benchmarks/zoo_overlays.py -O preset=paper --out /tmp/zoo_overlays_paper.png
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

import vlm_focus
from vlm_focus.cli.common import parse_options

ROOT = Path(__file__).resolve().parents[1]
ZOO = ("shapes-llava", "shapes-qwen2.5-vl", "shapes-onevision", "shapes-multi-encoder")


def scene_objects(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """``(name, mask)`` per object: regions that differ from the background colour."""
    rgb = image.astype(float)
    background = np.median(rgb.reshape(-1, 3), axis=0)
    foreground = np.abs(rgb - background).max(-1) > 60
    labels, n = ndimage.label(foreground)
    objects = []
    for k in range(1, n + 1):
        mask = labels == k
        if mask.sum() < 20:
            continue
        rows, cols = np.nonzero(mask)
        fill = mask.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
        shape = "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"
        r, g, b = rgb[mask].mean(0)
        objects.append((f"{shape} (rgb {r:.0f},{g:.0f},{b:.0f})", mask))
    return objects


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-O", dest="options", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "zoo_overlays.png")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="the blur baseline does not remove")
    image_path = ROOT / "examples" / "scene.png"
    objects = scene_objects(np.asarray(Image.open(image_path).convert("RGB")))
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ZOO:
            lens = vlm_focus.load(model, device="cpu", **parse_options(args.options))
            ex = lens.explain(image_path, "What color is the circle?")
            heat = {name: float(ex.heatmap[mask].mean()) for name, mask in objects}
            circle = next(name for name in heat if name.startswith("circle"))
            hottest = max(heat, key=heat.__getitem__) == circle
            cells = ", ".join(f"{name} {value:.2f}" for name, value in heat.items())
            print(f"{model}: {ex.answer!r}; heat {cells}; circle hottest: {hottest}")
            ex.save(Path(tmp) / model)
            panels.append(Image.open(Path(tmp) / model / "overlay.png").convert("RGB"))
    height = max(p.height for p in panels)
    sheet = Image.new("RGB", (sum(p.width for p in panels), height), "white")
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width
    sheet.thumbnail((2400, 2400))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
