"""``shapes``: the synthetic scenes of :mod:`vlm_focus.data.shapes` as a dataset.

Sample ``i`` of stream ``seed`` asks question type ``qtypes[i % len(qtypes)]`` (colour and
shape questions use scenes of at least two objects, so the question names one of several);
ids are ``shapes-{seed}-{i}``, the same as :func:`~vlm_focus.data.shapes.make_sample`'s.
Each sample carries its evidence mask, ``answer_kind="shapes"``, ``extras`` with ``qtype``,
``key``, ``seed`` and ``index``, and the generator's own sample as ``source`` (its scene
objects as :attr:`Sample.objects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import shapes
from .base import Dataset, Sample, register_dataset

DEFAULT_SEED = 2026  # the zoo models were trained on shapes seeds 0 and 1
DEFAULT_LIMIT = 200


def parse_qtypes(qtypes: str | Sequence[str] | None) -> list[str]:
    if qtypes is None:
        return list(shapes.QTYPES)
    kinds = (
        [q.strip() for q in qtypes.split(",")]
        if isinstance(qtypes, str)
        else [str(q).strip() for q in qtypes]
    )
    kinds = [q for q in kinds if q]
    if not kinds:
        raise InputError(f"shapes: no question type given; choose from {list(shapes.QTYPES)}")
    bad = [q for q in kinds if q not in shapes.QTYPES]
    if bad:
        raise InputError(f"shapes: unknown question type(s) {bad}; choose from {list(shapes.QTYPES)}")
    return kinds


def to_sample(
    s: shapes.Sample,
    seed: int,
    index: int,
    dataset: str = "shapes",
    category: str | None = None,
    **extras: Any,
) -> Sample:
    """A generator sample as a dataset :class:`Sample` (``category``: the question type unless
    given; ``extras`` added to the sample's)."""
    return Sample(
        id=s.id,
        question=s.question,
        image=s.image,
        answer=s.answer,
        answer_kind="shapes",
        category=category or s.qtype,
        evidence=s.evidence,
        extras={"qtype": s.qtype, "key": s.key, "seed": seed, "index": index, **extras},
        dataset=dataset,
        source=s,
    )


def check_scene_options(name: str, limit: int | None, size: int, min_objects: int, max_objects: int) -> int:
    """``limit``, or :class:`InputError` unless the generated stream ``name`` has a ``limit``,
    scenes of at least 64 px and ``1 <= min_objects <= max_objects``."""
    if limit is None:
        raise InputError(f"{name}: the stream is endless; give limit (a number of samples)")
    if size < 64:
        raise InputError(f"{name}: size must be at least 64 px, got {size}")
    if not 1 <= min_objects <= max_objects:
        raise InputError(f"{name}: need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    return limit


@register_dataset("shapes")
class ShapesDataset(Dataset):
    """Synthetic scenes with known evidence; needs no data folder (``data_dir`` ignored)."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        prompt_format: str = "open",
        limit: int | None = DEFAULT_LIMIT,
        seed: int = DEFAULT_SEED,
        qtypes: str | Sequence[str] | None = None,
        size: int = 64,
        min_objects: int = 1,
        max_objects: int = 4,
    ) -> None:
        limit = check_scene_options("shapes", limit, size, min_objects, max_objects)
        super().__init__(None, prompt_format, limit)
        self.seed, self.size = int(seed), int(size)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.qtypes = parse_qtypes(qtypes)
        for i in range(limit):
            self.add(f"shapes-{self.seed}-{i}", i)

    def qtype(self, index: int) -> str:
        return self.qtypes[index % len(self.qtypes)]

    def build(self, sample_id: str, record: int) -> Sample:
        kind = self.qtype(record)
        lo = max(2, self.min_objects) if kind in ("color", "shape") else self.min_objects
        s = shapes.make_sample(
            self.seed,
            record,
            qtype=kind,
            size=self.size,
            min_objects=lo,
            max_objects=max(lo, self.max_objects),
        )
        return to_sample(s, self.seed, record)

    def describe(self) -> dict:
        return {**super().describe(), "seed": self.seed, "qtypes": self.qtypes, "size": self.size}
