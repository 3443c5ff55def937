"""``hallusion-bench``: HallusionBench (Guan et al. 2024), yes/no questions on visual
dependence (VD) and visual supplement (VS), many with edited images.

Two layouts, the original release preferred when both are present:

- Original (github ``tianyi-lab/HallusionBench``): ``HallusionBench.json``, a list of
  entries with ``category``, ``subcategory``, ``visual_input`` (``"0"``: no image;
  ``"1"``/``"2"``: an image), ``set_id``, ``figure_id``, ``question_id``, ``question``,
  ``gt_answer`` (``"1"`` yes / ``"0"`` no), ``gt_answer_details`` and ``filename``
  (``"./hallusion_bench/VD/ocr/0_0.png"``), plus the image folders. ``filename`` is
  resolved in the data folder, and also without its leading folder (so the data folder may
  be the ``hallusion_bench`` folder itself).
- Hugging Face parquet snapshot (``lmms-lab/HallusionBench``): split ``image`` in
  ``data/image-*.parquet`` (951 rows, each with its image) and split ``non_image`` in
  ``data/non_image-*.parquet`` (178 rows, the entries without an image; optional), also
  accepted at the top of the folder. Columns read: the JSON's fields above as strings
  (``category``, ``subcategory``, ``visual_input``, ``set_id``, ``figure_id``,
  ``question_id``, ``question``, ``gt_answer``; ``gt_answer_details`` and
  ``sample_note`` when present) and ``image`` (struct ``{bytes, path}``, PNG); the images
  come from the bytes, ``filename`` is not needed. Sources: ``EvolvingLMMs-Lab/lmms-eval``
  ``lmms_eval/tasks/hallusion_bench/hallusion_bench_image.yaml`` (``dataset_path:
  lmms-lab/HallusionBench``, ``test_split: image``, ``doc_to_target:
  gt_answer_details``), ``evaluate_hb.py`` (``doc["image"]``, ``doc["question"]``,
  ``r["gt_answer"]``, ids from ``category``, ``subcategory``, ``set_id``, ``figure_id``,
  ``question_id``) and ``utils.py`` (``visual_input``); ``modelscope/evalscope``'s
  HallusionBench adapter (``record["gt_answer"] == "0"``: a string;
  ``record["image"]["bytes"]``); the dataset's file list and viewer (the two splits and
  their sizes). The column types beyond those (e.g. whether ``set_id`` is a string) are
  not stated anywhere found: both strings and integers are accepted.

Entries without an image (``visual_input`` ``"0"``, and every row of the ``non_image``
split) are skipped and counted in :attr:`skipped`. Ids are
``{category}_{subcategory}_{set_id}_{figure_id}_{question_id}`` (the benchmark's own key).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from .base import (
    DataError,
    Dataset,
    ParquetTable,
    Sample,
    data_root,
    find_files,
    image_from_cell,
    image_source,
    read_json,
    register_dataset,
    require,
    safe_path,
    snapshot_files,
)

JSON = "HallusionBench.json"
NO_IMAGE = "no image (visual_input 0)"
KEY = ("category", "subcategory", "set_id", "figure_id", "question_id")
REQUIRED = (*KEY, "question", "gt_answer", "visual_input")
IMAGE_FILES = ["data/image-*.parquet", "image-*.parquet"]
NON_IMAGE_FILES = ["data/non_image-*.parquet", "non_image-*.parquet"]


@register_dataset("hallusion-bench")
class HallusionBench(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(
            self.name,
            data_dir,
            f"{JSON} and the image folders, or the Hugging Face parquet snapshot (data/image-*.parquet)",
        )
        self.data_dir = root
        self.table: ParquetTable | None = None
        if (root / JSON).is_file():
            self._read_json(root / JSON)
        else:
            self._read_parquet(root)

    def _read_json(self, path: Path) -> None:
        entries = read_json(path)
        if not isinstance(entries, list):
            raise DataError(f"{path}: expected a list of entries, got {type(entries).__name__}")
        for n, row in enumerate(entries):
            where = f"{path}, entry {n}"
            if not self._check(row, where):
                continue
            image = self.resolve(str(require(row, "filename", where)), where)
            self.add(self._key(row), (where, row, image), where)

    def _read_parquet(self, root: Path) -> None:
        table = self.table = ParquetTable(snapshot_files(root, IMAGE_FILES, self.name, JSON))
        for col in (*REQUIRED, "image"):
            if col not in table.columns:
                raise DataError(f"{table.where}: missing column {col!r}")
        for i, row in enumerate(table.rows):
            where = f"{table.where}, row {i}"
            if self._check(row, where):
                self.add(self._key(row), (where, row, i), where)
        try:
            hits = find_files(root, NON_IMAGE_FILES, self.name)
        except DataError:
            hits = []
        if hits:
            # its own table: the split may carry no (or an all-null) image column
            other = ParquetTable(hits)
            for col in REQUIRED:
                if col not in other.columns:
                    raise DataError(f"{other.where}: missing column {col!r}")
            for i, row in enumerate(other.rows):
                for key in REQUIRED:
                    require(row, key, f"{other.where}, row {i}")
                self.skip(NO_IMAGE)

    def _check(self, row: Any, where: str) -> bool:
        """Validate an entry; ``False`` (and counted) when it has no image."""
        for key in REQUIRED:
            require(row, key, where)
        if str(row["visual_input"]).strip() == "0":
            self.skip(NO_IMAGE)
            return False
        if str(row["gt_answer"]).strip() not in ("0", "1"):
            raise DataError(
                f"{where}: field 'gt_answer' is {row['gt_answer']!r}, expected '1' (yes) or '0' (no)"
            )
        return True

    @staticmethod
    def _key(row: dict) -> str:
        return "_".join(str(row[k]) for k in KEY)

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
        where, row, ref = record
        image: Any = ref
        if isinstance(ref, int):
            assert self.table is not None
            cell = self.table.cell("image", ref)
            if cell is None:
                raise DataError(f"{where}: field 'image' is empty (visual_input {row['visual_input']!r})")
            image = image_from_cell(cell, self.data_dir, where)
        extras = {k: row[k] for k in ("set_id", "figure_id", "question_id", "visual_input")}
        for k in ("subcategory", "gt_answer_details", "sample_note"):
            if row.get(k) is not None:
                extras[k] = row[k]
        return Sample(
            id=sample_id,
            question=str(row["question"]).strip(),
            **image_source(image),
            answer="yes" if str(row["gt_answer"]).strip() == "1" else "no",
            answer_kind="yesno",
            category=str(row["category"]),
            extras=extras,
        )
