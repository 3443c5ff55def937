"""``llava-bench``: LLaVA-Bench (In-the-Wild) (Liu et al. 2023), 60 free-form questions on
24 images (categories ``conv``, ``detail``, ``complex``).

Two layouts, the original release preferred when both are present:

- Original (Hugging Face ``liuhaotian/llava-bench-in-the-wild``): ``questions.jsonl``
  (``image``, ``text``, ``category``, ``question_id``), ``answers_gpt4.jsonl``
  (``question_id``, ``text``: the reference answer), ``context.jsonl`` (optional:
  ``image``, ``caption``) and ``images/``.
- Hugging Face parquet snapshot (``lmms-lab/llava-bench-in-the-wild``, split ``train``):
  ``data/train-*.parquet`` (also at the top of the folder), one row per question with
  columns ``question_id`` (int8), ``question``, ``image`` (struct ``{bytes, path}``),
  ``caption``, ``gpt_answer`` (the reference answer), ``category`` and ``image_id``
  (strings). Columns read: ``question_id``, ``question`` and ``image`` (required),
  ``gpt_answer``, ``category``, ``caption`` and ``image_id`` (when present). Images come
  from the bytes. Sources: the dataset card's ``dataset_info.features`` (as copied in
  ``LOGiC31/Radix-Attention`` ``datasets/llava-bench-in-the-wild/README.md``; 60 rows,
  ``data/train-*``) and ``EvolvingLMMs-Lab/lmms-eval``
  ``lmms_eval/tasks/llava-in-the-wild/utils.py`` / ``llava-in-the-wild.yaml``
  (``doc["image"]``, ``doc["question"]``, ``doc_to_target: gpt_answer``,
  ``doc.get("caption")`` (a string, or a list of lines), ``doc.get("category")``,
  ``doc.get("question_id")``, ``test_split: train``). The form of ``image_id`` (``"001"``
  or ``"001.jpg"``) is not documented: ``extras["image"]`` is the image struct's ``path``
  when it has one, else ``image_id``.

Answers are free-form (``answer_kind="free"``): graded by nobody here (the benchmark uses a
GPT-4 judge). Ids are the ``question_id`` values.
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
    image_from_cell,
    image_source,
    read_jsonl,
    register_dataset,
    require,
    safe_path,
    snapshot_files,
)

QUESTIONS = "questions.jsonl"
PARQUET_FILES = ["data/train-*.parquet", "train-*.parquet", "*/train-*.parquet"]
REQUIRED_COLUMNS = ("question_id", "question", "image")


@register_dataset("llava-bench")
class LlavaBench(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(
            self.name,
            data_dir,
            "questions.jsonl, answers_gpt4.jsonl and images/, or the Hugging Face parquet snapshot",
        )
        self.data_dir = root
        self.answers: dict[str, str] = {}
        self.captions: dict[str, str] = {}
        self.table: ParquetTable | None = None
        if (root / QUESTIONS).is_file():
            self._read_jsonl(root)
        else:
            self._read_parquet(ParquetTable(snapshot_files(root, PARQUET_FILES, self.name, QUESTIONS)))

    def _read_jsonl(self, root: Path) -> None:
        answers = root / "answers_gpt4.jsonl"
        if answers.is_file():
            for n, row in read_jsonl(answers):
                where = f"{answers}, line {n}"
                self.answers[str(require(row, "question_id", where))] = str(require(row, "text", where))
        context = root / "context.jsonl"
        if context.is_file():
            for n, row in read_jsonl(context):
                where = f"{context}, line {n}"
                if row.get("caption") is not None:
                    self.captions[str(require(row, "image", where))] = str(row["caption"])
        questions = root / QUESTIONS
        for n, row in read_jsonl(questions):
            where = f"{questions}, line {n}"
            for key in ("image", "text"):
                require(row, key, where)
            image = safe_path(root, f"images/{row['image']}", where)
            record = {"question": row["text"], "category": row.get("category"), "image": str(row["image"])}
            self.add(str(require(row, "question_id", where)), (where, record, image), where)

    def _read_parquet(self, table: ParquetTable) -> None:
        self.table = table
        for col in REQUIRED_COLUMNS:
            if col not in table.columns:
                raise DataError(f"{table.where}: missing column {col!r}; columns are {table.columns}")
        for i, row in enumerate(table.rows):
            where = f"{table.where}, row {i}"
            sample_id = str(require(row, "question_id", where))
            require(row, "question", where)
            caption = row.get("caption")
            if isinstance(caption, list):
                caption = "\n".join(str(c) for c in caption)
            record = {
                "question": row["question"],
                "category": row.get("category"),
                "image_id": row.get("image_id"),
                "caption": caption,
            }
            if row.get("gpt_answer") is not None:
                self.answers[sample_id] = str(row["gpt_answer"])
            self.add(sample_id, (where, record, i), where)

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, ref = record
        extras: dict[str, Any] = {}
        image: Any = ref
        if isinstance(ref, int):
            assert self.table is not None
            cell = self.table.cell("image", ref)
            image = image_from_cell(cell, self.data_dir, where)
            path = cell.get("path") if isinstance(cell, dict) else None
            name = PurePosixPath(str(path).replace("\\", "/")).name if path else None
            if name or row.get("image_id") is not None:
                extras["image"] = str(name or row["image_id"])
            if row.get("image_id") is not None:
                extras["image_id"] = str(row["image_id"])
            if row.get("caption"):
                extras["caption"] = str(row["caption"])
        else:
            extras["image"] = row["image"]
            if row["image"] in self.captions:
                extras["caption"] = self.captions[row["image"]]
        return Sample(
            id=sample_id,
            question=str(row["question"]).strip(),
            **image_source(image),
            answer=self.answers.get(sample_id),
            answer_kind="free",
            category=row.get("category"),
            extras=extras,
        )
