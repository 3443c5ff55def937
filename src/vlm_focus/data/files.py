"""``files``: the user's own images and questions.

Two layouts:

- a table: a ``.jsonl`` or ``.csv`` file (``data_dir`` is the file, or a folder holding
  exactly one such file) with columns ``image`` and ``question`` and optionally ``answer``,
  ``id``, ``category``, ``options`` (a JSON list, or in CSV a ``|``-separated string) and
  ``answer_kind``. Image paths are relative to the file's folder. Ids are the ``id`` column,
  else the 1-based entry number. A row without a question takes the ``question`` option.
- a folder of images with one ``question`` for all (``question=`` option): every image file
  below the folder, in sorted path order; ids are the relative paths.

The answer kind is the ``answer_kind`` column or option, else ``choice`` when there are
options, ``short`` when there is an answer, ``free`` otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import (
    ANSWER_KINDS,
    IMAGE_SUFFIXES,
    LETTERS,
    DataError,
    Dataset,
    Sample,
    read_csv,
    read_jsonl,
    register_dataset,
    render_question,
    safe_path,
)

TABLE_SUFFIXES = (".jsonl", ".csv")


def _options(value: Any, where: str) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise DataError(f"{where}: field 'options' is not a JSON list") from None
        else:
            value = [v.strip() for v in text.split("|")]
    if not isinstance(value, list) or len(value) < 2 or not all(str(v).strip() for v in value):
        raise DataError(f"{where}: field 'options' must list at least two non-empty options")
    return [str(v).strip() for v in value]


@register_dataset("files")
class Files(Dataset):
    def __init__(
        self,
        data_dir: str | Path | None = None,
        prompt_format: str = "open",
        limit: int | None = None,
        question: str | None = None,
        answer_kind: str | None = None,
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        if answer_kind is not None and answer_kind not in ANSWER_KINDS:
            raise InputError(f"files: answer_kind {answer_kind!r}; choose from {list(ANSWER_KINDS)}")
        if data_dir is None:
            raise DataError("files: give data_dir: a .jsonl/.csv file, or a folder of images with question=")
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise DataError(f"files: not found: {path}")
        self.question, self.answer_kind = question, answer_kind
        self.table: Path | None = None
        if path.is_file():
            self._table(path)
            return
        tables = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES)
        if question is None:
            if len(tables) != 1:
                found = [p.name for p in tables] or "none"
                raise DataError(
                    f"files: {path} needs exactly one .jsonl/.csv file of questions (found {found}), "
                    "or pass question= to ask one question about every image"
                )
            self._table(tables[0])
            return
        self._folder(path)

    def _table(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in TABLE_SUFFIXES:
            raise DataError(f"files: {path}: expected a .jsonl or .csv file")
        self.data_dir = path.parent
        self.table = path
        rows = read_jsonl(path) if suffix == ".jsonl" else read_csv(path)
        if not rows:
            raise DataError(f"{path}: no entries")
        for k, (n, row) in enumerate(rows, start=1):
            where = f"{path}, line {n}"
            if not str(row.get("image") or "").strip():
                raise DataError(f"{where}: missing field 'image'")
            if not str(row.get("question") or "").strip() and not self.question:
                raise DataError(f"{where}: missing field 'question' (or pass question= for rows without one)")
            sample_id = str(row["id"]).strip() if str(row.get("id") or "").strip() else str(k)
            image = safe_path(self.data_dir, str(row["image"]).strip(), where)
            self.add(sample_id, (where, row, image), where)

    def _folder(self, path: Path) -> None:
        self.data_dir = path
        images = sorted(
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not any(x.startswith(".") for x in p.relative_to(path).parts)
        )
        if not images:
            raise DataError(f"files: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
        for rel in images:
            self.add(rel, (str(path / rel), {"image": rel}, safe_path(path, rel, str(path))), str(path))

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, image = record
        options = _options(row.get("options"), where)
        answer = row.get("answer")
        answer = None if answer is None or str(answer).strip() == "" else str(answer).strip()
        extras: dict[str, Any] = {"image": str(row["image"])}
        if options and answer is not None:
            # a letter answer is resolved to its option text
            letter = answer.strip("() .").upper()
            if len(letter) == 1 and letter in LETTERS[: len(options)] and answer not in options:
                answer = options[LETTERS.index(letter)]
            if answer not in options:
                raise DataError(f"{where}: answer {answer!r} is neither an option letter nor an option text")
            extras["answer_letter"] = LETTERS[options.index(answer)]
        kind = str(row.get("answer_kind") or "").strip() or self.answer_kind
        if kind is None:
            kind = "choice" if options else "short" if answer is not None else "free"
        if kind not in ANSWER_KINDS:
            raise DataError(f"{where}: answer_kind {kind!r}; choose from {list(ANSWER_KINDS)}")
        question = str(row.get("question") or "").strip() or str(self.question)
        return Sample(
            id=sample_id,
            question=render_question(question, options, self.prompt_format) if options else question,
            image_path=image,
            answer=answer,
            options=options,
            answer_kind=kind,
            category=str(row["category"]) if row.get("category") not in (None, "") else None,
            extras=extras,
        )
