"""``mmvp``: MMVP (Tong et al. 2024, "Eyes Wide Shut?"), 150 pairs of CLIP-blind images,
300 two-option questions.

Two layouts, the original release preferred when both are present:

- Original (github ``tsb0601/MMVP``, and the Hugging Face ``MMVP/MMVP`` snapshot, an
  image folder beside the CSV): ``Questions.csv`` with columns ``lndex`` [sic] (or
  ``Index``), ``Question``, ``Options`` (``"(a) Open (b) Closed"``), ``Correct Answer``
  (``"(a)"``), and ``MMVP Images/{n}.jpg``.
- Hugging Face parquet snapshot (``lmms-lab-eval/MMVP``, the copy lmms-eval reads; a
  ``lmms-lab/MMVP`` copy, whose card was not found, is read the same way):
  ``data/train-*.parquet`` (also ``test-*``, or at
  the top of the folder) with columns ``Index`` (int32, 1-based), ``Question``,
  ``Options`` and ``Correct Answer`` (strings in the CSV's formats) and ``image`` (struct
  ``{bytes, path}``); images come from the bytes. Columns read: those five (``index`` /
  ``question`` / ``options`` / ``answer`` are accepted too, as lmms-eval does; ``Options``
  may also be a list of option texts). Sources: the dataset card of
  ``lmms-lab-eval/MMVP`` (``dataset_info.features``: ``Index`` int32, ``Question``,
  ``Options``, ``Correct Answer`` strings, ``image``; split ``train``, ``data/train-*``)
  and ``EvolvingLMMs-Lab/lmms-eval`` ``lmms_eval/tasks/mmvp/utils.py``
  (``doc["image"]``, ``doc.get("Question")``, ``doc.get("Options")``,
  ``doc.get("Correct Answer")``, ``doc.get("Index")``). That copy carries the answer
  corrections of lmms-eval issue #1018 (questions 99/100 and 279/280 swapped back); the
  answers are read as stored.

Ids are the index values; questions ``2k-1`` and ``2k`` form pair ``k``
(``extras["pair"]``, :meth:`pairs`): MMVP scores a pair right only when both of its
questions are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
    read_csv,
    register_dataset,
    render_question,
    safe_path,
    snapshot_files,
)

INDEX_COLUMNS = ("lndex", "Index", "index")
IMAGE_DIR = "MMVP Images"
CSV = "Questions.csv"
PARQUET_FILES = [
    "data/train-*.parquet",
    "train-*.parquet",
    "data/test-*.parquet",
    "test-*.parquet",
    "*/train-*.parquet",
]
# column in the snapshot -> accepted spellings (the first is the card's)
PARQUET_COLUMNS = {
    "Question": ("Question", "question"),
    "Options": ("Options", "options"),
    "Correct Answer": ("Correct Answer", "answer"),
    "image": ("image",),
}


def parse_options(text: str, where: str) -> list[str]:
    """``"(a) Open (b) Closed"`` -> ``["Open", "Closed"]``."""
    parts = re.split(r"\(([a-zA-Z])\)\s*", text.strip())
    if len(parts) < 5 or parts[0].strip():
        raise DataError(f"{where}: field 'Options' {text!r} is not in the form '(a) ... (b) ...'")
    letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if [x.lower() for x in letters] != [x.lower() for x in LETTERS[: len(letters)]]:
        raise DataError(f"{where}: field 'Options' {text!r}: options are not labelled (a), (b), ...")
    return texts


def _index(value: Any, column: str, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        n = value
    else:
        raw = str(value if value is not None else "").strip()
        if not raw.isdigit():
            raise DataError(f"{where}: field {column!r} is {raw!r}, not a question number")
        n = int(raw)
    return n


@register_dataset("mmvp")
class MMVP(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(self.name, data_dir, f"{CSV} and {IMAGE_DIR}/, or the Hugging Face parquet snapshot")
        self.data_dir = root
        self.table: ParquetTable | None = None
        if (root / CSV).is_file():
            self._read_csv(root / CSV)
        else:
            files = snapshot_files(root, PARQUET_FILES, self.name, f"{CSV} (with {IMAGE_DIR}/)")
            self._read_parquet(ParquetTable(files))

    def _read_csv(self, path: Path) -> None:
        rows = read_csv(path)
        if not rows:
            raise DataError(f"{path}: no questions")
        header = list(rows[0][1])
        col = next((c for c in INDEX_COLUMNS if c in header), None)
        if col is None:
            raise DataError(
                f"{path}: missing index column (one of {list(INDEX_COLUMNS)}); header is {header}"
            )
        for name in ("Question", "Options", "Correct Answer"):
            if name not in header:
                raise DataError(f"{path}: missing column {name!r}; header is {header}")
        for n, row in rows:
            where = f"{path}, line {n}"
            number = _index(row.get(col), col, where)
            record = {
                "Question": row.get("Question"),
                "Options": row.get("Options"),
                "Correct Answer": row.get("Correct Answer"),
            }
            self.add(str(number), (where, record, None), where)

    def _read_parquet(self, table: ParquetTable) -> None:
        self.table = table
        col = next((c for c in INDEX_COLUMNS if c in table.columns), None)
        if col is None:
            raise DataError(
                f"{table.where}: missing index column (one of {list(INDEX_COLUMNS)}); "
                f"columns are {table.columns}"
            )
        names: dict[str, str] = {}
        for key, spellings in PARQUET_COLUMNS.items():
            found = next((c for c in spellings if c in table.columns), None)
            if found is None:
                raise DataError(f"{table.where}: missing column {key!r}; columns are {table.columns}")
            names[key] = found
        if not table.rows:
            raise DataError(f"{table.where}: no questions")
        for i, row in enumerate(table.rows):
            where = f"{table.where}, row {i}"
            number = _index(row.get(col), col, where)
            record = {key: row.get(names[key]) for key in ("Question", "Options", "Correct Answer")}
            self.add(str(number), (where, record, (names["image"], i)), where)

    def pairs(self) -> list[tuple[str, str]]:
        """``(first, second)`` ids of each complete pair, in order."""
        ids = set(self._order)
        out = []
        for i in self._order:
            n = int(i)
            if n % 2 == 1 and str(n + 1) in ids:
                out.append((i, str(n + 1)))
        return out

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, ref = record
        raw = row.get("Options")
        if isinstance(raw, list):
            options = [str(o).strip() for o in raw]
            if len(options) < 2 or not all(options):
                raise DataError(f"{where}: field 'Options' must hold at least two non-empty options")
        else:
            options = parse_options(str(raw or ""), where)
        letter = parse_letter(row.get("Correct Answer") or "", len(options), where)
        question = str(row.get("Question") or "").strip()
        if not question:
            raise DataError(f"{where}: empty field 'Question'")
        assert self.data_dir is not None
        n = int(sample_id)
        image: Any
        if ref is None:
            image = safe_path(self.data_dir, f"{IMAGE_DIR}/{n}.jpg", where)
        else:
            assert self.table is not None
            image = image_from_cell(self.table.cell(ref[0], ref[1]), self.data_dir, where)
        return Sample(
            id=sample_id,
            question=render_question(question, options, self.prompt_format),
            **image_source(image),
            answer=options[LETTERS.index(letter)],
            options=options,
            answer_kind="choice",
            extras={"answer_letter": letter, "pair": (n + 1) // 2},
        )
