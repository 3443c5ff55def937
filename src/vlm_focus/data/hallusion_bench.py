"""``hallusion-bench``: HallusionBench (Guan et al. 2024), yes/no questions on visual
dependence (VD) and visual supplement (VS), many with edited images.

Layout (github ``tianyi-lab/HallusionBench``): ``HallusionBench.json``, a list of entries
with ``category``, ``subcategory``, ``visual_input`` (``"0"``: no image; ``"1"``/``"2"``:
an image), ``set_id``, ``figure_id``, ``question_id``, ``question``, ``gt_answer`` (``"1"``
yes / ``"0"`` no), ``gt_answer_details`` and ``filename`` (``"./hallusion_bench/VD/ocr/
0_0.png"``), plus the image folders. ``filename`` is resolved in the data folder, and also
without its leading folder (so the data folder may be the ``hallusion_bench`` folder
itself). Entries without an image are skipped and counted in :attr:`skipped`. Ids are
``{category}_{subcategory}_{set_id}_{figure_id}_{question_id}`` (the benchmark's own key).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from .base import DataError, Dataset, Sample, data_root, read_json, register_dataset, require, safe_path

JSON = "HallusionBench.json"
NO_IMAGE = "no image (visual_input 0)"
KEY = ("category", "subcategory", "set_id", "figure_id", "question_id")


@register_dataset("hallusion-bench")
class HallusionBench(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(self.name, data_dir, f"{JSON} and the image folders")
        self.data_dir = root
        path = root / JSON
        entries = read_json(path)
        if not isinstance(entries, list):
            raise DataError(f"{path}: expected a list of entries, got {type(entries).__name__}")
        for n, row in enumerate(entries):
            where = f"{path}, entry {n}"
            for key in (*KEY, "question", "gt_answer", "visual_input"):
                require(row, key, where)
            if str(row["visual_input"]).strip() == "0":
                self.skip(NO_IMAGE)
                continue
            if str(row["gt_answer"]).strip() not in ("0", "1"):
                raise DataError(
                    f"{where}: field 'gt_answer' is {row['gt_answer']!r}, expected '1' (yes) or '0' (no)"
                )
            image = self.resolve(str(require(row, "filename", where)), where)
            self.add("_".join(str(row[k]) for k in KEY), (where, row, image), where)

    def resolve(self, filename: str, where: str) -> Path:
        assert self.data_dir is not None
        first = safe_path(self.data_dir, filename, where)
        if first.is_file():
            return first
        parts = [p for p in PurePosixPath(filename.replace("\\", "/")).parts if p != "."]
        if len(parts) > 1:
            second = safe_path(self.data_dir, str(PurePosixPath(*parts[1:])), where)
            if second.is_file():
                return second
        return first

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, image = record
        extras = {k: row[k] for k in ("set_id", "figure_id", "question_id", "visual_input")}
        for k in ("subcategory", "gt_answer_details", "sample_note"):
            if row.get(k) is not None:
                extras[k] = row[k]
        return Sample(
            id=sample_id,
            question=str(row["question"]).strip(),
            image_path=image,
            answer="yes" if str(row["gt_answer"]).strip() == "1" else "no",
            answer_kind="yesno",
            category=str(row["category"]),
            extras=extras,
        )
