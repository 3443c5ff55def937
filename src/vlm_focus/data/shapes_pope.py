"""``shapes-pope``: POPE-style yes/no existence questions on the synthetic scenes.

POPE (Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language Models")
asks "Is there a {object} in the image?" with balanced yes/no labels, the absent objects
drawn at random, by popularity, or adversarially (objects that co-occur with those shown).
Here the question is "Is there a {color} {shape}?" (the zoo models' existence template):
sample ``i`` asks about an object that is present when ``i`` is even ("Yes", category
``present``) and about an absent colour-shape pair when ``i`` is odd ("No", category
``absent``), so the labels are balanced and the model's mistakes are known exactly. Absent
pairs, by ``split``:

- ``adversarial`` (default): a *binding* near miss when the scene has one - its colour and
  its shape are both present, on different objects (a red circle and a blue triangle; "Is
  there a red triangle?") - else a pair sharing the colour or the shape of an object, else
  any absent pair;
- ``random``: any absent pair, uniformly.

Scenes hold ``min_objects``-``max_objects`` objects (default 4-8: more than the 1-4 of the
zoo models' training scenes, so that they make mistakes at all). Evidence masks as the
``exist`` questions of :mod:`vlm_focus.data.shapes`: the object for "Yes", the near misses
(objects sharing the colour or the shape) for "No". Ids are ``shapes-pope-{seed}-{i}``;
``extras`` hold ``qtype`` (``"exist"``), ``key``, ``seed``, ``index``, ``split`` and the asked
``color`` / ``shape``. Needs no data folder. Hallucination metrics: ``vlm-focus evaluate
--dataset shapes-pope --hallucination`` (:mod:`vlm_focus.hallucination`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from . import shapes
from .base import Dataset, Sample, register_dataset
from .shapes_loader import DEFAULT_LIMIT, DEFAULT_SEED, check_scene_options, to_sample

SPLITS = ("adversarial", "random")


def absent_pair(rng: np.random.Generator, objects: list[shapes.SceneObject], split: str) -> tuple[str, str]:
    """An absent ``(color, shape)`` pair for the scene, chosen as ``split`` says."""
    present = {(o.color, o.shape) for o in objects}
    absent = [(c, s) for c in shapes.COLORS for s in shapes.SHAPES if (c, s) not in present]
    pool = absent
    if split == "adversarial":
        colors, kinds = {o.color for o in objects}, {o.shape for o in objects}
        binding = [(c, s) for c, s in absent if c in colors and s in kinds]
        near = [(c, s) for c, s in absent if c in colors or s in kinds]
        pool = binding or near or absent
    return pool[int(rng.integers(len(pool)))]


def make_pope_sample(
    seed: int,
    index: int,
    split: str = "adversarial",
    size: int = 64,
    min_objects: int = 4,
    max_objects: int = 8,
) -> shapes.Sample:
    """The ``index``-th question of the stream ``seed``: present (Yes) for even ``index``,
    absent (No) for odd; deterministic and order-free."""
    if split not in SPLITS:
        raise InputError(f"shapes-pope: split {split!r}; choose from {list(SPLITS)}")
    rng = np.random.default_rng([seed, index, 7])  # 7: a stream apart from shapes' own
    for _ in range(100):
        try:
            image, objects = shapes.make_scene(rng, size, int(rng.integers(min_objects, max_objects + 1)))
        except RuntimeError:  # too crowded to place: draw another scene
            continue
        if index % 2 == 0:
            o = objects[int(rng.integers(len(objects)))]
            color, kind = o.color, o.shape
        else:
            color, kind = absent_pair(rng, objects, split)
        match = [o for o in objects if o.color == color and o.shape == kind]
        if match:
            key, answer, evidence = "Yes", f"Yes, there is a {color} {kind}.", match
        else:
            near = [o for o in objects if o.color == color or o.shape == kind]
            key, answer, evidence = "No", f"No, there is no {color} {kind}.", near
        mask = np.zeros((size, size), dtype=bool)
        for e in evidence:
            mask |= e.mask
        return shapes.Sample(
            id=f"shapes-pope-{seed}-{index}",
            image=image,
            question=f"Is there a {color} {kind}?",
            answer=answer,
            qtype="exist",
            key=key,
            evidence=mask,
            objects=objects,
        )
    raise RuntimeError(f"could not place {min_objects}-{max_objects} objects on a {size}-px canvas")


@register_dataset("shapes-pope")
class ShapesPopeDataset(Dataset):
    """Balanced yes/no existence questions with near-miss absent objects (``data_dir`` ignored)."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        prompt_format: str = "open",
        limit: int | None = DEFAULT_LIMIT,
        seed: int = DEFAULT_SEED,
        split: str = "adversarial",
        size: int = 64,
        min_objects: int = 4,
        max_objects: int = 8,
    ) -> None:
        limit = check_scene_options("shapes-pope", limit, size, min_objects, max_objects)
        super().__init__(None, prompt_format, limit)
        if split not in SPLITS:
            raise InputError(f"shapes-pope: split {split!r}; choose from {list(SPLITS)}")
        self.seed, self.split, self.size = int(seed), split, int(size)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        for i in range(limit):
            self.add(f"shapes-pope-{self.seed}-{i}", i)

    def build(self, sample_id: str, record: int) -> Sample:
        s = make_pope_sample(self.seed, record, self.split, self.size, self.min_objects, self.max_objects)
        color, kind = s.question.removeprefix("Is there a ").rstrip("?").split(" ")
        category = "present" if s.key == "Yes" else "absent"
        return to_sample(s, self.seed, record, self.name, category, split=self.split, color=color, shape=kind)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "seed": self.seed,
            "split": self.split,
            "size": self.size,
            "min_objects": self.min_objects,
            "max_objects": self.max_objects,
        }
