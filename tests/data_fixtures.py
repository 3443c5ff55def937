"""Tiny copies of each benchmark in its published layout, for the loader tests and for
end-to-end tests of dataset runs.

One writer per registered dataset: ``write_<name>(dir) -> data_dir`` (``-`` in the name
becomes ``_``), all in :data:`WRITERS`. :data:`OPTIONS` holds the options each dataset
needs (e.g. ``shapes``'s ``limit``) and :data:`SIZES` how many samples the fixture yields.
Images are small solid-colour pictures (each one distinct), made with PIL; parquet files
are written with pyarrow, images stored as Hugging Face ``Image`` structs ``{bytes, path}``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = [(200, 40, 40), (40, 160, 60), (40, 80, 220), (230, 200, 40), (150, 60, 200), (30, 190, 190)]


def image(path: Path | None = None, size: tuple[int, int] = (32, 24), color: int = 0, fmt: str | None = None):
    """A solid image (with a small white square so it is not flat); written to ``path``
    when given (format from the suffix or ``fmt``), returned as encoded bytes otherwise."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = PALETTE[color % len(PALETTE)]
    arr[2:6, 2:6] = 255
    img = Image.fromarray(arr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, format=fmt)
        return path
    buf = io.BytesIO()
    img.save(buf, format=fmt or "PNG")
    return buf.getvalue()


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _parquet(path: Path, rows: list[dict], types: dict | None = None) -> None:
    """Rows to a parquet file; ``types`` fixes some columns' arrow types (``"image"`` is
    always the Hugging Face ``Image`` struct ``{bytes: binary, path: string}``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for r in rows for k in r))
    fixed = {"image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]), **(types or {})}
    table = pa.Table.from_pylist(rows)
    schema = pa.schema([(n, fixed.get(n, table.schema.field(n).type)) for n in names])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _png(color: int) -> bytes:
    return image(color=color, fmt="PNG")


# ----- MMStar ----------------------------------------------------------------------------
MMSTAR_ROWS = [
    {
        "index": 0,
        "question": "Which option describe the object relationship in the image correctly?\n"
        "Options: A: The suitcase is on the book., B: The suitcase is beneath the cat., "
        "C: The suitcase is beneath the bed., D: The suitcase is beneath the book.",
        "answer": "A",
        "category": "coarse perception",
        "l2_category": "image scene and topic",
    },
    {
        "index": 1,
        "question": "How many apples are there?\nOptions: A: 1, 2 or 3, B: 4, C: 5, D: 6",
        "answer": "B",
        "category": "fine-grained perception",
        "l2_category": "object counting",
    },
    {
        "index": 7,
        "question": "What is the main colour of the picture? Answer with the option's letter from the given "
        "choices directly.\nOptions: A: red, B: green, C: blue, D: yellow",
        "answer": "C",
        "category": "coarse perception",
        "l2_category": "image style & quality",
    },
]


def write_mmstar(dir: Path, snapshot: bool = False, drop: str | None = None) -> Path:
    """``mmstar.parquet`` (or with ``snapshot`` the HF ``val-00000-of-00001.parquet``);
    ``drop`` leaves a column out."""
    rows = []
    for k, r in enumerate(MMSTAR_ROWS):
        row = {**r, "image": {"bytes": image(color=k), "path": f"{r['index']}.png"}}
        row["meta_info"] = {"source": "fixture", "split": "val", "image_path": f"images/{r['index']}.png"}
        rows.append({c: v for c, v in row.items() if c != drop})
    _parquet(dir / ("val-00000-of-00001.parquet" if snapshot else "mmstar.parquet"), rows)
    return dir


# ----- CV-Bench --------------------------------------------------------------------------
CVBENCH_2D = [
    {
        "idx": 0,
        "type": "2D",
        "task": "Count",
        "question": "How many organs are in the image?",
        "choices": ["3", "2", "1", "0"],
        "answer": "(C)",
        "prompt": "How many organs are in the image? Select from the following choices.\n(A) 3\n(B) 2\n(C) 1\n(D) 0",
        "filename": "img/2D/count/ade20k_10.png",
        "source": "ADE20K",
    },
    {
        "idx": 1,
        "type": "2D",
        "task": "Relation",
        "question": "Considering the relative positions of the lamp and the bed, where is the lamp located "
        "with respect to the bed?",
        "choices": ["left", "right"],
        "answer": "(B)",
        "prompt": "...",
        "filename": "img/2D/relation/coco_3.png",
        "source": "COCO",
        "bbox": [[1, 2, 10, 12], [14, 3, 30, 20]],
    },
]
CVBENCH_3D = [
    {
        "idx": 0,
        "type": "3D",
        "task": "Depth",
        "question": "Which is closer to the camera, the chair (highlighted by a red box) or the table "
        "(highlighted by a blue box)?",
        "choices": ["chair", "table"],
        "answer": "(A)",
        "prompt": "...",
        "filename": "img/3D/depth/omni3d_5.png",
        "source": "Omni3D",
    },
]


def write_cv_bench(dir: Path, fmt: str = "jsonl") -> Path:
    """``test_2d`` / ``test_3d`` as ``.jsonl`` (images under ``img/``) or ``.parquet``
    (images as bytes, ``img/`` not written)."""
    for name, rows in (("test_2d", CVBENCH_2D), ("test_3d", CVBENCH_3D)):
        if fmt == "jsonl":
            for k, r in enumerate(rows):
                image(dir / r["filename"], color=k + (3 if name == "test_3d" else 0))
            _jsonl(dir / f"{name}.jsonl", rows)
        else:
            full = [
                {**r, "bbox": r.get("bbox"), "image": {"bytes": image(color=k), "path": r["filename"]}}
                for k, r in enumerate(rows)
            ]
            _parquet(dir / f"{name}.parquet", full)
    return dir


# ----- MMVP ------------------------------------------------------------------------------
MMVP_ROWS = [
    ("1", "Are the butterfly's wings closer to being open or closed?", "(a) Open (b) Closed", "(a)"),
    ("2", "Are the butterfly's wings closer to being open or closed?", "(a) Open (b) Closed", "(b)"),
    ("3", "Is the dog facing left or right from the camera's perspective?", "(a) Left (b) Right", "(b)"),
    ("4", "Is the dog facing left or right from the camera's perspective?", "(a) Left (b) Right", "(a)"),
]


def write_mmvp(dir: Path, index_column: str = "lndex") -> Path:
    """``Questions.csv`` (first column ``lndex`` as in the GitHub release, or ``Index``)
    and ``MMVP Images/{n}.jpg``."""
    dir.mkdir(parents=True, exist_ok=True)
    with (dir / "Questions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([index_column, "Question", "Options", "Correct Answer"])
        w.writerows(MMVP_ROWS)
    for k, row in enumerate(MMVP_ROWS):
        image(dir / "MMVP Images" / f"{row[0]}.jpg", color=k, fmt="JPEG")
    return dir


def write_mmvp_parquet(dir: Path, drop: str | None = None) -> Path:
    """The Hugging Face snapshot (``lmms-lab-eval/MMVP``): ``data/train-00000-of-00001.parquet``
    with ``Index`` (int32), ``Question``, ``Options``, ``Correct Answer`` and ``image``
    (PNG bytes, the same colours as :func:`write_mmvp`); ``drop`` leaves a column out."""
    import pyarrow as pa

    rows = []
    for k, (index, question, options, answer) in enumerate(MMVP_ROWS):
        row = {
            "Index": int(index),
            "Question": question,
            "Options": options,
            "Correct Answer": answer,
            "image": {"bytes": _png(k), "path": f"{index}.jpg"},
        }
        rows.append({c: v for c, v in row.items() if c != drop})
    _parquet(dir / "data" / "train-00000-of-00001.parquet", rows, {"Index": pa.int32()})
    return dir


# ----- LLaVA-Bench (In-the-Wild) ---------------------------------------------------------
LLAVA_QUESTIONS = [
    {
        "question_id": 0,
        "image": "001.jpg",
        "text": "What is the name of this famous sight?",
        "category": "conv",
    },
    {
        "question_id": 1,
        "image": "001.jpg",
        "text": "Describe this photo in detail.",
        "category": "detail",
    },
    {"question_id": 2, "image": "002.jpg", "text": "Why is this scene unusual?", "category": "complex"},
]
LLAVA_CAPTIONS = {"001.jpg": "A tower at dusk."}


def write_llava_bench(dir: Path) -> Path:
    answers = [
        {
            "question_id": q["question_id"],
            "text": f"Reference answer {q['question_id']}.",
            "model_id": "gpt-4",
        }
        for q in LLAVA_QUESTIONS
    ]
    _jsonl(dir / "questions.jsonl", LLAVA_QUESTIONS)
    _jsonl(dir / "answers_gpt4.jsonl", answers)
    _jsonl(dir / "context.jsonl", [{"id": "a", "image": k, "caption": v} for k, v in LLAVA_CAPTIONS.items()])
    image(dir / "images" / "001.jpg", color=0, fmt="JPEG")
    image(dir / "images" / "002.jpg", color=1, fmt="JPEG")
    return dir


def write_llava_bench_parquet(dir: Path, drop: str | None = None) -> Path:
    """The Hugging Face snapshot (``lmms-lab/llava-bench-in-the-wild``):
    ``data/train-00000-of-00001.parquet`` with ``question_id`` (int8), ``question``,
    ``image`` (PNG bytes), ``caption``, ``gpt_answer``, ``category``, ``image_id``: the
    content of :func:`write_llava_bench`; ``drop`` leaves a column out."""
    import pyarrow as pa

    rows = []
    for q in LLAVA_QUESTIONS:
        name = q["image"]
        row = {
            "question_id": q["question_id"],
            "question": q["text"],
            "image": {"bytes": _png(int(name[:3]) - 1), "path": name},
            "caption": LLAVA_CAPTIONS.get(name),
            "gpt_answer": f"Reference answer {q['question_id']}.",
            "category": q["category"],
            "image_id": name.split(".")[0],
        }
        rows.append({c: v for c, v in row.items() if c != drop})
    _parquet(dir / "data" / "train-00000-of-00001.parquet", rows, {"question_id": pa.int8()})
    return dir


# ----- VQA-HAT ---------------------------------------------------------------------------
VQAHAT_IMAGE_SIZE = (40, 30)  # width, height of the COCO images; the maps are half size


def _map(path: Path, region: str) -> None:
    w, h = VQAHAT_IMAGE_SIZE[0] // 2, VQAHAT_IMAGE_SIZE[1] // 2
    arr = np.zeros((h, w), dtype=np.uint8)
    if region == "left":
        arr[:, : w // 2] = 255
    elif region == "top":
        arr[: h // 2 + 1, :] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_vqa_hat(dir: Path, split: str = "val") -> Path:
    """Maps ``vqahat_{split}/{qid}_{k}.png`` for questions 1001 (two maps: left half and top
    half) and 1002 (one map), an orphan map 9999 (no question), the VQA v1 question and
    annotation JSONs (question 1003 has no map) and COCO images ``{split}2014/``."""
    maps = dir / f"vqahat_{split}"
    _map(maps / "1001_1.png", "left")
    _map(maps / "1001_2.png", "top")
    _map(maps / "1002_1.png", "left")
    _map(maps / "9999_1.png", "top")
    questions = [
        {"image_id": 42, "question": "What color is the bus?", "question_id": 1001},
        {"image_id": 42, "question": "How many people are there?", "question_id": 1002},
        {"image_id": 77, "question": "Is it raining?", "question_id": 1003},
    ]
    annotations = [
        {
            "question_id": 1001,
            "image_id": 42,
            "question_type": "what color is the",
            "answer_type": "other",
            "multiple_choice_answer": "red",
            "answers": [{"answer": "red", "answer_confidence": "yes", "answer_id": i} for i in range(1, 7)]
            + [{"answer": "dark red", "answer_confidence": "yes", "answer_id": i} for i in range(7, 11)],
        },
        {
            "question_id": 1002,
            "image_id": 42,
            "question_type": "how many",
            "answer_type": "number",
            "multiple_choice_answer": "2",
            "answers": [{"answer": "2", "answer_confidence": "yes", "answer_id": i} for i in range(1, 11)],
        },
        {
            "question_id": 1003,
            "image_id": 77,
            "question_type": "is it",
            "answer_type": "yes/no",
            "multiple_choice_answer": "no",
            "answers": [],
        },
    ]
    q = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "questions": questions}
    a = {"info": {}, "data_type": "mscoco", "annotations": annotations}
    dir.mkdir(parents=True, exist_ok=True)
    (dir / f"OpenEnded_mscoco_{split}2014_questions.json").write_text(json.dumps(q), encoding="utf-8")
    (dir / f"mscoco_{split}2014_annotations.json").write_text(json.dumps(a), encoding="utf-8")
    for k, image_id in enumerate((42, 77)):
        image(dir / f"{split}2014" / f"COCO_{split}2014_{image_id:012d}.jpg", VQAHAT_IMAGE_SIZE, k, "JPEG")
    return dir


# ----- HallusionBench --------------------------------------------------------------------
def _hb(category, sub, set_id, figure_id, question_id, question, gt, visual, filename):
    return {
        "category": category,
        "subcategory": sub,
        "visual_input": visual,
        "set_id": set_id,
        "figure_id": figure_id,
        "sample_note": "fixture",
        "question_id": question_id,
        "question": question,
        "gt_answer_details": "details",
        "gt_answer": gt,
        "filename": filename,
    }


HALLUSION_ENTRIES = [
    _hb(
        "VD",
        "ocr",
        "0",
        "0",
        "0",
        "Is the text in this figure 'Hello'?",
        "1",
        "1",
        "./hallusion_bench/VD/ocr/0_0.png",
    ),
    _hb(
        "VD",
        "ocr",
        "0",
        "0",
        "1",
        "Is the text in this figure 'Goodbye'?",
        "0",
        "1",
        "./hallusion_bench/VD/ocr/0_0.png",
    ),
    _hb("VS", "chart", "0", "1", "0", "Is China the largest economy in 2020?", "0", "0", None),
    _hb(
        "VS",
        "chart",
        "1",
        "1",
        "0",
        "According to the chart, is the blue bar taller?",
        "1",
        "2",
        "./hallusion_bench/VS/chart/1_1.png",
    ),
]


def write_hallusion_bench(dir: Path) -> Path:
    """``HallusionBench.json`` with four entries, one without an image (``visual_input
    "0"``); one image under ``hallusion_bench/`` as released, the other stored without the
    leading folder (``VS/chart/1_1.png``)."""
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "HallusionBench.json").write_text(json.dumps(HALLUSION_ENTRIES, indent=1), encoding="utf-8")
    image(dir / "hallusion_bench" / "VD" / "ocr" / "0_0.png", color=0)
    image(dir / "VS" / "chart" / "1_1.png", color=1)
    return dir


def write_hallusion_bench_parquet(dir: Path, drop: str | None = None, non_image: bool = True) -> Path:
    """The Hugging Face snapshot (``lmms-lab/HallusionBench``): the entries of
    :data:`HALLUSION_ENTRIES` with an image in ``data/image-00000-of-00001.parquet`` (PNG
    bytes, the same colours as :func:`write_hallusion_bench`), those without in
    ``data/non_image-00000-of-00001.parquet`` (``image`` null) unless ``non_image`` is
    false; ``drop`` leaves a column out of both."""
    with_image, without = [], []
    for e in HALLUSION_ENTRIES:
        if e["visual_input"] == "0":
            without.append({**e, "image": None})
        else:
            color = 0 if e["subcategory"] == "ocr" else 1
            with_image.append({**e, "image": {"bytes": _png(color), "path": e["filename"].split("/")[-1]}})
    for name, rows in (("image", with_image), ("non_image", without)):
        if name == "non_image" and not non_image:
            continue
        rows = [{c: v for c, v in r.items() if c != drop} for r in rows]
        _parquet(dir / "data" / f"{name}-00000-of-00001.parquet", rows)
    return dir


# ----- the user's own files --------------------------------------------------------------
def write_files(dir: Path) -> Path:
    """``questions.jsonl`` with images under ``imgs/``: a short answer, a multiple-choice
    row (letter answer) and a row without an answer."""
    image(dir / "imgs" / "cat.png", color=0)
    image(dir / "imgs" / "dog.png", color=1)
    rows = [
        {"id": "cat", "image": "imgs/cat.png", "question": "What animal is this?", "answer": "a cat"},
        {
            "id": "dog",
            "image": "imgs/dog.png",
            "question": "Which animal is shown?",
            "options": ["cat", "dog", "bird"],
            "answer": "B",
            "category": "animals",
        },
        {"image": "imgs/dog.png", "question": "Describe the picture."},
    ]
    _jsonl(dir / "questions.jsonl", rows)
    return dir


def write_shapes(dir: Path) -> Path:
    """``shapes`` is generated: there is nothing to write."""
    return dir


WRITERS: dict[str, Callable[[Path], Path]] = {
    "mmstar": write_mmstar,
    "cv-bench": write_cv_bench,
    "mmvp": write_mmvp,
    "llava-bench": write_llava_bench,
    "vqa-hat": write_vqa_hat,
    "hallusion-bench": write_hallusion_bench,
    "files": write_files,
    "shapes": write_shapes,
    "shapes-pope": write_shapes,
}
# The Hugging Face parquet snapshots, for the datasets whose loader also reads one.
PARQUET_WRITERS: dict[str, Callable[[Path], Path]] = {
    "mmvp": write_mmvp_parquet,
    "llava-bench": write_llava_bench_parquet,
    "hallusion-bench": write_hallusion_bench_parquet,
}
OPTIONS: dict[str, dict] = {"shapes": {"limit": 8}, "shapes-pope": {"limit": 6}}
#: Datasets generated in memory: they need no data folder.
GENERATED = frozenset({"shapes", "shapes-pope"})
SIZES: dict[str, int] = {
    "mmstar": 3,
    "cv-bench": 3,
    "mmvp": 4,
    "llava-bench": 3,
    "vqa-hat": 2,
    "hallusion-bench": 3,
    "files": 3,
    "shapes": 8,
    "shapes-pope": 6,
}


def write(name: str, dir: Path) -> tuple[Path, dict]:
    """Write the fixture of dataset ``name`` under ``dir``: ``(data_dir, options)``."""
    return WRITERS[name](dir), dict(OPTIONS.get(name, {}))
