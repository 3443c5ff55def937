"""``mmvp``: MMVP (Tong et al. 2024, "Eyes Wide Shut?"), 150 pairs of CLIP-blind images,
300 two-option questions.

Layout (github ``tsb0601/MMVP``, Hugging Face ``MMVP/MMVP``): ``Questions.csv`` with
columns ``lndex`` [sic] (or ``Index``), ``Question``, ``Options`` (``"(a) Open (b)
Closed"``), ``Correct Answer`` (``"(a)"``), and ``MMVP Images/{n}.jpg``. Ids are the index
values; questions ``2k-1`` and ``2k`` form pair ``k`` (``extras["pair"]``, :meth:`pairs`):
MMVP scores a pair right only when both of its questions are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .base import (
    LETTERS,
    DataError,
    Dataset,
    Sample,
    data_root,
    parse_letter,
    read_csv,
    register_dataset,
    render_question,
    safe_path,
)

INDEX_COLUMNS = ("lndex", "Index", "index")
IMAGE_DIR = "MMVP Images"


def parse_options(text: str, where: str) -> list[str]:
    """``"(a) Open (b) Closed"`` -> ``["Open", "Closed"]``."""
    parts = re.split(r"\(([a-zA-Z])\)\s*", text.strip())
    if len(parts) < 5 or parts[0].strip():
        raise DataError(f"{where}: field 'Options' {text!r} is not in the form '(a) ... (b) ...'")
    letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if [x.lower() for x in letters] != [x.lower() for x in LETTERS[: len(letters)]]:
        raise DataError(f"{where}: field 'Options' {text!r}: options are not labelled (a), (b), ...")
    return texts


@register_dataset("mmvp")
class MMVP(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(self.name, data_dir, f"Questions.csv and {IMAGE_DIR}/")
        self.data_dir = root
        path = root / "Questions.csv"
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
            raw = (row.get(col) or "").strip()
            if not raw.isdigit():
                raise DataError(f"{where}: field {col!r} is {raw!r}, not a question number")
            self.add(str(int(raw)), (where, row), where)

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
        where, row = record
        options = parse_options(row.get("Options") or "", where)
        letter = parse_letter(row.get("Correct Answer") or "", len(options), where)
        question = (row.get("Question") or "").strip()
        if not question:
            raise DataError(f"{where}: empty field 'Question'")
        assert self.data_dir is not None
        n = int(sample_id)
        return Sample(
            id=sample_id,
            question=render_question(question, options, self.prompt_format),
            image_path=safe_path(self.data_dir, f"{IMAGE_DIR}/{n}.jpg", where),
            answer=options[LETTERS.index(letter)],
            options=options,
            answer_kind="choice",
            extras={"answer_letter": letter, "pair": (n + 1) // 2},
        )
