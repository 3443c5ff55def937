"""Synthetic scenes whose evidence regions are known.

Each scene holds 1-4 non-overlapping coloured shapes on a light, mildly noisy background.
Every object keeps its pixel mask, so each question/answer pair carries the *evidence
mask*: the pixels an honest answer depends on.

Evidence masks, by question type:

- ``color`` ("What color is the {shape}?"): the object with that (unique) shape.
- ``shape`` ("What shape is the {color} object?"): the object with that (unique) colour.
- ``count`` ("How many {shape}s are there?"): the union of the objects of that shape;
  empty when the answer is "There are no {shape}s." (nothing in the image is evidence).
- ``exist`` ("Is there a {color} {shape}?"): for "Yes", the matching object; for "No",
  the near misses the model must inspect to reject the question - objects that share the
  colour or the shape - and an empty mask when there are none.

Localisation metrics skip samples whose evidence mask is empty.

Example::

    >>> from vlm_focus.data.shapes import make_sample
    >>> s = make_sample(seed=0, index=3, qtype="color")
    >>> s.question, s.answer  # doctest: +SKIP
    ('What color is the square?', 'The square is blue.')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
QTYPES: tuple[str, ...] = ("color", "shape", "count", "exist")
NUMBER_WORDS: tuple[str, ...] = ("no", "one", "two", "three", "four")
COLOR_JITTER = 30


@dataclass
class SceneObject:
    shape: str
    color: str
    mask: np.ndarray  # bool [H, W]


@dataclass
class Sample:
    """One question about one scene, with the answer and its evidence mask."""

    id: str
    image: Image.Image
    question: str
    answer: str
    qtype: str
    key: str  # the answer's key word: colour, shape, number word, "Yes" or "No"
    evidence: np.ndarray  # bool [H, W]
    objects: list[SceneObject] = field(repr=False, default_factory=list)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_scene(
    rng: np.random.Generator, size: int = 64, n_objects: int = 2
) -> tuple[Image.Image, list[SceneObject]]:
    """Draw ``n_objects`` non-overlapping objects on a ``size`` x ``size`` canvas."""
    if size < 64:
        raise ValueError(f"scenes need a canvas of at least 64 px, got {size}")
    background = rng.integers(225, 250, size=3)
    noise = rng.normal(0.0, 3.0, size=(size, size, 3))
    canvas = np.clip(background[None, None, :] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    taken = np.zeros((size, size), dtype=bool)
    objects: list[SceneObject] = []
    for _ in range(200):
        if len(objects) == n_objects:
            break
        side = int(rng.integers(int(0.15 * size), int(0.30 * size) + 1))
        x0 = int(rng.integers(0, size - side))
        y0 = int(rng.integers(0, size - side))
        gap = max(1, size // 32)
        lo_y, lo_x = max(0, y0 - gap), max(0, x0 - gap)
        if taken[lo_y : y0 + side + gap, lo_x : x0 + side + gap].any():
            continue
        taken[y0 : y0 + side, x0 : x0 + side] = True
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        base = np.array(COLORS[color])
        fill = tuple(int(v) for v in np.clip(base + rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255))
        box = (x0, y0, x0 + side - 1, y0 + side - 1)
        _draw_shape(draw, shape, box, fill)
        mask_img = Image.new("L", (size, size), 0)
        _draw_shape(ImageDraw.Draw(mask_img), shape, box, 255)
        objects.append(SceneObject(shape, color, np.asarray(mask_img) > 127))
    if len(objects) < n_objects:
        raise RuntimeError("could not place the objects; use a larger canvas")
    return image, objects


def _union(objects: list[SceneObject], size: int) -> np.ndarray:
    out = np.zeros((size, size), dtype=bool)
    for o in objects:
        out |= o.mask
    return out


def _unique(objects: list[SceneObject], attr: str) -> list[SceneObject]:
    values = [getattr(o, attr) for o in objects]
    return [o for o in objects if values.count(getattr(o, attr)) == 1]


def _question(rng: np.random.Generator, qtype: str, objects: list[SceneObject]):
    """Return (question, answer, key, evidence objects) or None if the scene does not fit."""
    if qtype == "color":
        cands = _unique(objects, "shape")
        if not cands:
            return None
        o = cands[int(rng.integers(len(cands)))]
        return f"What color is the {o.shape}?", f"The {o.shape} is {o.color}.", o.color, [o]
    if qtype == "shape":
        cands = _unique(objects, "color")
        if not cands:
            return None
        o = cands[int(rng.integers(len(cands)))]
        return f"What shape is the {o.color} object?", f"The {o.color} object is a {o.shape}.", o.shape, [o]
    if qtype == "count":
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        hits = [o for o in objects if o.shape == shape]
        n = len(hits)
        if n == 0:
            answer = f"There are no {shape}s."
        elif n == 1:
            answer = f"There is one {shape}."
        else:
            answer = f"There are {NUMBER_WORDS[n]} {shape}s."
        return f"How many {shape}s are there?", answer, NUMBER_WORDS[n], hits
    if qtype == "exist":
        if rng.random() < 0.5:
            o = objects[int(rng.integers(len(objects)))]
            color, shape = o.color, o.shape
        else:
            present = {(o.color, o.shape) for o in objects}
            absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
            # Prefer near misses (shared colour or shape): they need binding to reject.
            near = [(c, s) for c, s in absent if any(o.color == c or o.shape == s for o in objects)]
            pool = near if near and rng.random() < 0.8 else absent
            color, shape = pool[int(rng.integers(len(pool)))]
        q = f"Is there a {color} {shape}?"
        match = [o for o in objects if o.color == color and o.shape == shape]
        if match:
            return q, f"Yes, there is a {color} {shape}.", "Yes", match
        near_objs = [o for o in objects if o.color == color or o.shape == shape]
        return q, f"No, there is no {color} {shape}.", "No", near_objs
    raise ValueError(f"unknown question type {qtype!r}; choose from {QTYPES}")


def make_sample(
    seed: int,
    index: int,
    qtype: str | None = None,
    size: int = 64,
    min_objects: int = 1,
    max_objects: int = 4,
) -> Sample:
    """The ``index``-th sample of the stream ``seed``: deterministic and order-free."""
    rng = np.random.default_rng([seed, index])
    kind = qtype or QTYPES[int(rng.integers(len(QTYPES)))]
    if kind not in QTYPES:
        raise ValueError(f"unknown question type {kind!r}; choose from {QTYPES}")
    for _ in range(100):
        n = int(rng.integers(min_objects, max_objects + 1))
        image, objects = make_scene(rng, size, n)
        qa = _question(rng, kind, objects)
        if qa is not None:
            question, answer, key, evidence = qa
            return Sample(
                id=f"shapes-{seed}-{index}",
                image=image,
                question=question,
                answer=answer,
                qtype=kind,
                key=key,
                evidence=_union(evidence, size),
                objects=objects,
            )
    raise RuntimeError(f"no {kind} question fits scenes of {min_objects}-{max_objects} objects")


def patch_labels(objects: list[SceneObject], grid: int) -> np.ndarray:
    """Per-patch class on a ``grid`` x ``grid`` partition of the scene: 0 background, else
    ``1 + colour * len(SHAPES) + shape``.

    A patch takes the class of the object covering most of it, if that object covers at
    least a quarter of the patch. Used to pre-train vision towers.
    """
    cover = np.zeros((len(objects) + 1, grid, grid))
    cover[0] = 0.25
    for i, o in enumerate(objects, start=1):
        frac = Image.fromarray(o.mask.astype(np.float32)).resize((grid, grid), Image.Resampling.BOX)
        cover[i] = np.asarray(frac)
    winner = cover.argmax(0)
    classes = np.array(
        [0] + [1 + list(COLORS).index(o.color) * len(SHAPES) + SHAPES.index(o.shape) for o in objects]
    )
    return classes[winner]


def vocabulary_corpus() -> list[str]:
    """Every question and answer sentence the templates can produce (for tokenizers)."""
    lines = []
    for s in SHAPES:
        for c in COLORS:
            lines += [
                f"What color is the {s}?",
                f"The {s} is {c}.",
                f"What shape is the {c} object?",
                f"The {c} object is a {s}.",
                f"Is there a {c} {s}?",
                f"Yes, there is a {c} {s}.",
                f"No, there is no {c} {s}.",
            ]
        lines += [f"How many {s}s are there?", f"There are no {s}s.", f"There is one {s}."]
        lines += [f"There are {w} {s}s." for w in NUMBER_WORDS[2:]]
    return lines


def answer_correct(answer: str, sample: Sample) -> bool:
    """Judge an answer by its key word: the right colour / shape / number word / yes-no,
    and no competing word of the same kind (so "red or blue" is wrong)."""
    words = [w.strip(".,!?;:").lower() for w in answer.split()]
    words = [w[:-1] if sample.qtype == "count" and w.endswith("s") and w[:-1] in SHAPES else w for w in words]
    if sample.qtype == "exist":
        return bool(words) and words[0] == sample.key.lower()
    vocab = {"color": list(COLORS), "shape": list(SHAPES), "count": list(NUMBER_WORDS)}[sample.qtype]
    found = {w for w in words if w in vocab}
    return found == {sample.key.lower()}
