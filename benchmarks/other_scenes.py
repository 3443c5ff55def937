"""Scenes from a second, independent generator: the zoo models' vocabulary (four colours,
three shapes, the same question templates) drawn another way, to check the heatmaps on
layouts no experiment and no model has seen.

Where ``vlm_focus.data.shapes.make_scene`` draws square canvases with a noisy light background
and objects 15-30 % of the side, aliased, this one draws:

- canvases of 128-300 px per side, width and height drawn apart (aspect 0.75-1.33);
- a plain background of any light tint, or a vertical gradient between two, without noise;
- 2-4 objects 12-26 % of the shorter side, anti-aliased (drawn at 4x and reduced), a third
  of them with a darker outline, triangles with their apex anywhere along the top edge,
  fills jittered by up to +-40 per channel (training: 30);
- gaps of at least 3 % of the shorter side between objects.

The questions are colour and shape questions about an object whose shape (colour) is unique
in the scene, as in the training data; the evidence is that object's mask (the pixels its
4x drawing covers by at least half).

    from other_scenes import other_scene
    sample = other_scene(seed=6161, index=0)  # a vlm_focus.data.shapes.Sample
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vlm_focus.data.shapes import COLORS, SHAPES, Sample, SceneObject, _question

SCALE = 4
"""Supersampling factor of the anti-aliased drawing."""

SIDE = (0.12, 0.26)
"""An object's side, as shares of the canvas's shorter side."""

OUTLINED = 1 / 3
"""The share of objects drawn with a darker outline."""

TINT = (205, 255)
"""The range of each background channel."""

CANVAS = (128, 300)
"""The range of the canvas's width and height, in pixels."""


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain light tint or a vertical gradient between two, ``[H, W, 3]`` float."""
    top = rng.uniform(*TINT, 3)
    bottom = rng.uniform(*TINT, 3) if rng.random() < 0.5 else top
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()


def outline_of(shape: str, box: tuple[float, float, float, float], apex: float) -> list[tuple[float, float]]:
    """The polygon of a square or a triangle in ``box`` (the triangle's apex at ``apex`` of the
    top edge, 0 = left, 1 = right)."""
    x0, y0, x1, y1 = box
    if shape == "square":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return [(x0 + apex * (x1 - x0), y0), (x1, y1), (x0, y1)]


def draw(canvas: ImageDraw.ImageDraw, shape: str, box: tuple, apex: float, fill: Any, line: Any) -> None:
    width = 2 * SCALE if line else 0
    if shape == "circle":
        canvas.ellipse(box, fill=fill, outline=line, width=width)
    else:
        canvas.polygon(outline_of(shape, box, apex), fill=fill, outline=line, width=width)


def other_scene(seed: int, index: int) -> Sample:
    """The ``index``-th scene of the stream ``seed``: colour questions at even indices, shape
    questions at odd ones; deterministic and order-free."""
    rng = np.random.default_rng([seed, index, 77])
    qtype = ("color", "shape")[index % 2]
    for _ in range(100):
        width, height = (int(rng.integers(CANVAS[0], CANVAS[1] + 1)) for _ in range(2))
        if not 0.75 <= width / height <= 1.34:
            continue
        scene = place(rng, width, height, int(rng.integers(2, 5)))
        if scene is None:
            continue
        image, objects = scene
        qa = _question(rng, qtype, objects)  # the training data's templates and uniqueness rule
        if qa is None:
            continue
        question, answer, key, (asked,) = qa
        return Sample(
            id=f"other-{seed}-{index}",
            image=image,
            question=question,
            answer=answer,
            qtype=qtype,
            key=key,
            evidence=asked.mask.copy(),
            objects=objects,
        )
    raise RuntimeError(f"no scene fits stream {seed}, index {index}")


def place(
    rng: np.random.Generator, width: int, height: int, n: int
) -> tuple[Image.Image, list[SceneObject]] | None:
    """``n`` objects on one canvas, or None when they do not fit."""
    short = min(width, height)
    gap = max(2, round(0.03 * short))
    big = Image.fromarray(np.zeros((height * SCALE, width * SCALE, 3), np.uint8))
    pen = ImageDraw.Draw(big)
    coverage = Image.new("L", big.size, 0)  # every object's pixels, at 4x
    cover = ImageDraw.Draw(coverage)
    taken = np.zeros((height, width), bool)
    objects: list[SceneObject] = []
    for _ in range(300):
        if len(objects) == n:
            break
        side = int(rng.integers(round(SIDE[0] * short), round(SIDE[1] * short) + 1))
        x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        if taken[max(0, y0 - gap) : y0 + side + gap, max(0, x0 - gap) : x0 + side + gap].any():
            continue
        taken[y0 : y0 + side, x0 : x0 + side] = True
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        fill = tuple(int(v) for v in np.clip(np.array(COLORS[color]) + rng.integers(-40, 41, 3), 0, 255))
        line = tuple(int(v * 0.6) for v in fill) if rng.random() < OUTLINED else None
        box = tuple(SCALE * v for v in (x0, y0, x0 + side - 1, y0 + side - 1))
        apex = float(rng.uniform(0.0, 1.0))
        draw(pen, shape, box, apex, fill, line)
        mask = Image.new("L", big.size, 0)
        draw(ImageDraw.Draw(mask), shape, box, apex, 255, 255 if line else None)
        draw(cover, shape, box, apex, 255, 255 if line else None)
        small = np.asarray(mask.resize((width, height), Image.Resampling.BOX)) >= 128
        objects.append(SceneObject(shape, color, small))
    if len(objects) < n:
        return None
    paint = np.asarray(big.resize((width, height), Image.Resampling.BOX), np.float32)
    alpha = np.asarray(coverage.resize((width, height), Image.Resampling.BOX), np.float32)[..., None] / 255
    # The 4x drawing is black outside the objects, so its reduction is paint * coverage.
    colour = np.where(alpha > 0, paint / np.maximum(alpha, 1e-6), 0.0)
    out = background(rng, width, height) * (1 - alpha) + colour * alpha
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8)), objects
