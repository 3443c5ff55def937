"""``llava-bench``: LLaVA-Bench (In-the-Wild) (Liu et al. 2023), 60 free-form questions on
24 images (categories ``conv``, ``detail``, ``complex``).

Layout (Hugging Face ``liuhaotian/llava-bench-in-the-wild``): ``questions.jsonl``
(``image``, ``text``, ``category``, ``question_id``), ``answers_gpt4.jsonl``
(``question_id``, ``text``: the reference answer), ``context.jsonl`` (optional: ``image``,
``caption``) and ``images/``. Answers are free-form (``answer_kind="free"``): graded by
nobody here (the benchmark uses a GPT-4 judge). Ids are the ``question_id`` values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Dataset, Sample, data_root, read_jsonl, register_dataset, require, safe_path


@register_dataset("llava-bench")
class LlavaBench(Dataset):
    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        super().__init__(data_dir, prompt_format, limit)
        root = data_root(self.name, data_dir, "questions.jsonl, answers_gpt4.jsonl and images/")
        self.data_dir = root
        self.answers: dict[str, str] = {}
        answers = root / "answers_gpt4.jsonl"
        if answers.is_file():
            for n, row in read_jsonl(answers):
                where = f"{answers}, line {n}"
                self.answers[str(require(row, "question_id", where))] = str(require(row, "text", where))
        self.captions: dict[str, str] = {}
        context = root / "context.jsonl"
        if context.is_file():
            for n, row in read_jsonl(context):
                where = f"{context}, line {n}"
                if row.get("caption") is not None:
                    self.captions[str(require(row, "image", where))] = str(row["caption"])
        questions = root / "questions.jsonl"
        for n, row in read_jsonl(questions):
            where = f"{questions}, line {n}"
            for key in ("image", "text"):
                require(row, key, where)
            image = safe_path(root, f"images/{row['image']}", where)
            self.add(str(require(row, "question_id", where)), (where, row, image), where)

    def build(self, sample_id: str, record: Any) -> Sample:
        where, row, path = record
        image = str(row["image"])
        extras: dict[str, Any] = {"image": image}
        if image in self.captions:
            extras["caption"] = self.captions[image]
        return Sample(
            id=sample_id,
            question=str(row["text"]).strip(),
            image_path=path,
            answer=self.answers.get(sample_id),
            answer_kind="free",
            category=row.get("category"),
            extras=extras,
        )
