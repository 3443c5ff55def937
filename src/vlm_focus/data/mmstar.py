"""``mmstar``: MMStar (Chen et al. 2024), 1,500 vision-indispensable multiple-choice questions.

Layout (Hugging Face ``Lin-Chen/MMStar``): ``mmstar.parquet`` (or the snapshot's
``val-*.parquet``, also under ``data/``) with columns ``index``, ``question`` (the options
inline: ``"...\\nOptions: A: x, B: y, C: z, D: w"``), ``image`` (struct ``{bytes, path}``),
``answer`` (a letter), ``category``, ``l2_category``, ``meta_info``. Images come from the
bytes. Ids are the ``index`` values.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    LETTERS,
    DataError,
    Dataset,
    ParquetTable,
    Sample,
    data_root,
    find_files,
    image_from_cell,
    image_source,
    parse_letter,
    register_dataset,
    render_question,
    require,
    split_inline_options,
)

FILES = ["mmstar.parquet", "val-*.parquet", "data/val-*.parquet", "*/val-*.parquet"]


@register_dataset("mmstar")
class MMStar(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(self.name, data_dir, "mmstar.parquet")
        self.data_dir = root
        self.table = ParquetTable(find_files(root, FILES, self.name))
        for col in ("index", "question", "image", "answer"):
            if col not in self.table.columns:
                raise DataError(f"{self.table.where}: missing column {col!r}")
        for i, row in enumerate(self.table.rows):
            where = f"{self.table.where}, row {i}"
            self.add(str(require(row, "index", where)), i, where)

    def build(self, sample_id: str, record: int) -> Sample:
        row = self.table.rows[record]
        where = f"{self.table.where}, row {record} (index {sample_id})"
        stem, options = split_inline_options(str(require(row, "question", where)))
        letter = parse_letter(require(row, "answer", where), len(options) if options else None, where)
        answer = options[LETTERS.index(letter)] if options else letter
        image = image_from_cell(self.table.cell("image", record), self.data_dir, where)
        extras = {"answer_letter": letter}
        for key in ("l2_category", "meta_info"):
            if row.get(key) is not None:
                extras[key] = row[key]
        return Sample(
            id=sample_id,
            question=render_question(stem, options, self.prompt_format),
            **image_source(image),
            answer=answer,
            options=options,
            answer_kind="choice",
            category=row.get("category"),
            extras=extras,
        )
