"""``vqa-hat``: VQA-HAT (Das et al. 2016), human attention maps for VQA v1 questions on COCO.

Layout: the VQA-HAT maps ``vqahat_{split}/{question_id}_{k}.png`` (one per annotator
``k``), the VQA v1 questions ``OpenEnded_mscoco_{split}2014_questions.json``
(``{"questions": [{"image_id", "question", "question_id"}]}``) and annotations
``mscoco_{split}2014_annotations.json`` (``{"annotations": [{"question_id",
"multiple_choice_answer", "answers", "answer_type", ...}]}``) - in the data folder or its
``Questions/`` / ``Annotations/`` folders - and the COCO images
``{split}2014/COCO_{split}2014_{image_id:012d}.jpg`` (or under ``Images/mscoco/`` or
``images/``). Option ``split``: ``val`` (default) or ``train``.

A sample exists for each question with at least one map; :attr:`Sample.human_map` is the
mean of its maps, each resized to the image (bilinear), scaled to ``[0, 1]``. The answer is
``multiple_choice_answer``; answers given by at least 3 of the 10 annotators are accepted
too (``extras["alternatives"]``, VQA's full-credit rule). Ids are the question ids.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError
from .base import (
    DataError,
    Dataset,
    Sample,
    data_root,
    image_size,
    read_json,
    register_dataset,
    require,
    safe_path,
)

SPLITS = ("val", "train")
MAP_NAME = re.compile(r"^(\d+)_(\d+)\.png$", re.IGNORECASE)


def _first(root: Path, names: list[str], what: str) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    raise DataError(f"vqa-hat: {what} not found in {root} (looked for {names})")


def human_map(paths: list[Path], size: tuple[int, int], where: str) -> np.ndarray:
    """Mean of the maps at ``paths``, each resized to ``size = (width, height)``, in [0, 1]."""
    acc = np.zeros((size[1], size[0]), dtype=np.float64)
    for p in paths:
        try:
            with Image.open(p) as img:
                grey = img.convert("F") if img.mode in ("I", "I;16", "F") else img.convert("L").convert("F")
                acc += np.asarray(grey.resize(size, Image.Resampling.BILINEAR), dtype=np.float64)
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{where}: {p}: not a readable attention map ({e})") from None
    acc /= max(1, len(paths))
    lo, hi = acc.min(), acc.max()
    out = (acc - lo) / (hi - lo) if hi > lo else np.zeros_like(acc)
    return out.astype(np.float32)


@register_dataset("vqa-hat")
class VQAHAT(Dataset):
    def __init__(
        self,
        data_dir: str | Path | None = None,
        prompt_format: str = "open",
        limit: int | None = None,
        split: str = "val",
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        if split not in SPLITS:
            raise InputError(f"vqa-hat: split {split!r}; choose from {list(SPLITS)}")
        self.split = split
        root = data_root(self.name, data_dir, f"vqahat_{split}/ with the VQA v1 {split} JSON files")
        self.data_dir = root
        maps_dir = root / f"vqahat_{split}"
        if not maps_dir.is_dir():
            raise DataError(f"vqa-hat: folder of human attention maps not found: {maps_dir}")
        qname = f"OpenEnded_mscoco_{split}2014_questions.json"
        aname = f"mscoco_{split}2014_annotations.json"
        qpath = _first(root, [qname, f"Questions/{qname}"], "the VQA v1 question file")
        apath = _first(root, [aname, f"Annotations/{aname}"], "the VQA v1 annotation file")
        folder = f"{split}2014"
        self.image_dir = _first(
            root, [folder, f"Images/mscoco/{folder}", f"images/{folder}"], "the COCO image folder"
        )
        questions = self._index(qpath, "questions", ("question_id", "image_id", "question"))
        annotations = self._index(apath, "annotations", ("question_id",))
        maps: dict[int, list[Path]] = {}
        for p in sorted(maps_dir.iterdir()):
            m = MAP_NAME.match(p.name)
            if m is None:
                self.skip("file name not {question_id}_{k}.png")
                continue
            maps.setdefault(int(m.group(1)), []).append(p)
        for qid in sorted(maps):
            if qid not in questions:
                self.skip("no VQA question for the map")
                continue
            files = sorted(maps[qid], key=lambda p: int(MAP_NAME.match(p.name).group(2)))  # type: ignore[union-attr]
            self.add(str(qid), (questions[qid], annotations.get(qid), files), str(maps_dir))

    def _index(self, path: Path, key: str, fields: tuple[str, ...]) -> dict[int, dict]:
        data = read_json(path)
        items = require(data, key, str(path))
        if not isinstance(items, list):
            raise DataError(f"{path}: field {key!r} must be a list")
        out = {}
        for n, item in enumerate(items):
            where = f"{path}, {key}[{n}]"
            for f in fields:
                require(item, f, where)
            try:
                out[int(item["question_id"])] = item
            except (TypeError, ValueError):
                raise DataError(
                    f"{where}: field 'question_id' is {item['question_id']!r}, not a number"
                ) from None
        return out

    def describe(self) -> dict:
        return {**super().describe(), "split": self.split}

    def build(self, sample_id: str, record: Any) -> Sample:
        question, ann, files = record
        where = f"vqa-hat ({self.split}), question {sample_id}"
        image_id = int(question["image_id"])
        assert self.data_dir is not None
        rel = self.image_dir.relative_to(self.data_dir) / f"COCO_{self.split}2014_{image_id:012d}.jpg"
        sample = Sample(
            id=sample_id,
            question=str(question["question"]).strip(),
            image_path=safe_path(self.data_dir, rel, where),
            answer_kind="short",
            extras={"image_id": image_id, "maps": [p.name for p in files]},
            dataset=self.name,
        )
        if ann is not None:
            sample.answer = ann.get("multiple_choice_answer")
            sample.category = ann.get("answer_type")
            counts = Counter(
                str(a.get("answer", "")).strip() for a in ann.get("answers", []) if isinstance(a, dict)
            )
            alternatives = sorted(a for a, c in counts.items() if a and c >= 3 and a != sample.answer)
            if alternatives:
                sample.extras["alternatives"] = alternatives
            if ann.get("question_type") is not None:
                sample.extras["question_type"] = ann["question_type"]
        sample.human_map = human_map(files, image_size(sample), where)
        return sample
