"""``cv-bench``: CV-Bench (Tong et al. 2024, Cambrian-1), 2,638 vision-centric multiple-choice
questions (2D: count, relation; 3D: depth, distance).

Layout (Hugging Face ``nyu-visionx/CV-Bench``): ``test_2d.jsonl`` and ``test_3d.jsonl``
(or ``test.jsonl``, or the same names as ``.parquet``) with fields ``idx``, ``type``
(``2D``/``3D``), ``task``, ``question``, ``choices`` (list), ``answer`` (``"(C)"``),
``prompt``, ``filename`` (``img/2D/count/ade20k_10.png``, relative to the data folder),
``source`` and optionally ``bbox``; parquet rows may carry the image bytes in ``image``.
Option ``split``: ``all`` (default), ``2d`` or ``3d``. Ids are ``{type}-{idx}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import (
    LETTERS,
    DataError,
    Dataset,
    ParquetTable,
    Sample,
    data_root,
    image_from_cell,
    image_source,
    parse_letter,
    read_jsonl,
    register_dataset,
    render_question,
    require,
    safe_path,
)

SPLITS = ("all", "2d", "3d")
EXTRA_FIELDS = ("source", "source_dataset", "source_filename", "target_class", "target_size", "bbox")


def _find(root: Path, stem: str) -> Path | None:
    for ext in (".jsonl", ".parquet"):
        if (root / f"{stem}{ext}").is_file():
            return root / f"{stem}{ext}"
    return None


@register_dataset("cv-bench")
class CVBench(Dataset):
    def __init__(
        self,
        data_dir: str | Path | None = None,
        prompt_format: str = "open",
        limit: int | None = None,
        split: str = "all",
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        if split.lower() not in SPLITS:
            raise InputError(f"cv-bench: split {split!r}; choose from {list(SPLITS)}")
        self.split = split.lower()
        root = data_root(self.name, data_dir, "test_2d.jsonl / test_3d.jsonl and img/")
        self.data_dir = root
        files: list[Path | None]
        two, three, both = _find(root, "test_2d"), _find(root, "test_3d"), _find(root, "test")
        if self.split == "all":
            files = [two, three] if two and three else [both] if both else []
        else:
            own = two if self.split == "2d" else three
            files = [own] if own else [both] if both else []
        if not files:
            want = {"all": "test_2d and test_3d, or test", "2d": "test_2d or test", "3d": "test_3d or test"}
            raise DataError(f"cv-bench: {want[self.split]} (.jsonl or .parquet) not found in {root}")
        self.tables: dict[Path, ParquetTable] = {}
        for file in files:
            assert file is not None
            for where, row, ref in self._rows(file):
                kind = str(require(row, "type", where))
                if self.split != "all" and kind.lower() != self.split:
                    continue
                idx = require(row, "idx", where)
                image = safe_path(root, str(row["filename"]), where) if row.get("filename") else None
                if image is None and ref is None:
                    raise DataError(f"{where}: missing field 'filename'")
                self.add(f"{kind}-{idx}", (where, row, ref, image), where)

    def _rows(self, path: Path):
        if path.suffix == ".jsonl":
            for n, row in read_jsonl(path):
                yield f"{path}, line {n}", row, None
        else:
            table = ParquetTable([path])
            self.tables[path] = table
            for i, row in enumerate(table.rows):
                yield f"{path}, row {i}", row, (path, i)

    def describe(self) -> dict:
        return {**super().describe(), "split": self.split}

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, ref, path = record
        choices = require(row, "choices", where)
        if not isinstance(choices, list) or len(choices) < 2:
            raise DataError(f"{where}: field 'choices' must be a list of at least two options")
        options = [str(c) for c in choices]
        letter = parse_letter(require(row, "answer", where), len(options), where)
        image: Any = None
        if ref is not None and "image" in self.tables[ref[0]].columns:
            cell = self.tables[ref[0]].cell("image", ref[1])
            if cell is not None and (not isinstance(cell, dict) or cell.get("bytes") or cell.get("path")):
                image = image_from_cell(cell, self.data_dir, where)
        if image is None:
            if path is None:
                raise DataError(f"{where}: no image bytes and no field 'filename'")
            image = path
        extras: dict[str, Any] = {"answer_letter": letter, "type": row.get("type")}
        extras.update({k: row[k] for k in EXTRA_FIELDS if row.get(k) is not None})
        if row.get("filename") is not None:
            extras["filename"] = row["filename"]
        return Sample(
            id=sample_id,
            question=render_question(str(require(row, "question", where)), options, self.prompt_format),
            answer=options[LETTERS.index(letter)],
            options=options,
            answer_kind="choice",
            category=row.get("task"),
            extras=extras,
            **image_source(image),
        )
