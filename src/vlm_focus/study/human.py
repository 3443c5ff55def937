"""``human``: does the model look where people look? Model focus against VQA-HAT human
attention maps (the paper's Table 8: IoU ~0.01, rank correlation ~ -0.2).

Each model explains the samples (``--models``, run with ``evaluate`` into
``OUT/runs/<label>``; or finished ``--runs`` folders) of a dataset with human maps
(:attr:`vlm_focus.data.Sample.human_map`, default ``vqa-hat``). The runner already scores
each heatmap against its human map (:func:`~vlm_focus.metrics.human_map_scores`: soft IoU,
Spearman rank correlation, top-10 % IoU); the study reports their means with 95 %
t-intervals per model, and beside them a **chance level**: the same heatmaps against the
human map of *another* sample (the next explained one, cyclically), which keeps both maps'
statistics and breaks only their pairing. ``rank_p`` is the two-sided Wilcoxon
signed-rank test of the per-sample rank correlation with the own map against the other
sample's map.

``--fixture`` runs on a VQA-HAT-layout folder written from synthetic scenes
(:func:`write_fixture`): their "human" maps are the scenes' evidence masks, so a model that
looks at the evidence scores far above the chance row. It needs no download.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import Study, StudyResult, register_study
from .common import add_data_arguments
from .compare import wilcoxon_p
from .folders import RunFolder, add_models_and_runs, collect, labelled

COLUMNS = [
    "model",
    "maps",
    "n",
    "soft_iou",
    "soft_iou_low",
    "soft_iou_high",
    "rank_correlation",
    "rank_low",
    "rank_high",
    "topk_iou",
    "rank_p",
]
OWN, OTHER = "own human map", "another sample's map"
METRICS = ("human_soft_iou", "human_rank_correlation", "human_topk_iou")
FIXTURE_SPLIT = "val"
FIXTURE_QUESTION_ID = 1000  # question ids of the fixture: 1000 + scene index


# ----- the fixture ---------------------------------------------------------------------------
def write_fixture(folder: str | Path, n: int, seed: int, qtypes: Sequence[str] | None = None) -> Path:
    """Write ``n`` synthetic scenes in the VQA-HAT layout into ``folder`` (see
    :mod:`vlm_focus.data.vqa_hat`): ``val2014/`` COCO-named JPEGs (quality 100, no chroma
    subsampling), the VQA v1 question and annotation files, and one "human" map per
    question, ``vqahat_val/{qid}_1.png``, that is the scene's evidence mask (white on black).
    Scenes with an empty evidence mask are left out (nothing to look at). Returns ``folder``.
    """
    from PIL import Image

    from ..data import get_dataset

    if n < 1:
        raise InputError(f"the fixture needs at least one scene, got {n}")
    folder = Path(folder)
    images, maps = folder / f"{FIXTURE_SPLIT}2014", folder / f"vqahat_{FIXTURE_SPLIT}"
    images.mkdir(parents=True, exist_ok=True)
    maps.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"seed": seed, "limit": n}
    if qtypes is not None:
        options["qtypes"] = list(qtypes)
    scenes = get_dataset("shapes", None, **options)
    questions, annotations = [], []
    for index, sample in enumerate(scenes):
        if sample.evidence is None or not sample.evidence.any():
            continue
        qid = FIXTURE_QUESTION_ID + index
        image = sample.load_image().convert("RGB")
        image.save(images / f"COCO_{FIXTURE_SPLIT}2014_{index:012d}.jpg", quality=100, subsampling=0)
        Image.fromarray(np.where(sample.evidence, 255, 0).astype(np.uint8)).save(maps / f"{qid}_1.png")
        answer = str(sample.extras.get("key") or sample.answer or "").lower()
        questions.append({"image_id": index, "question": sample.question, "question_id": qid})
        annotations.append(
            {
                "question_id": qid,
                "image_id": index,
                "answer_type": sample.category,
                "multiple_choice_answer": answer,
                "answers": [{"answer": answer, "answer_id": k} for k in range(1, 11)],
                "source": sample.id,
            }
        )
    (folder / f"OpenEnded_mscoco_{FIXTURE_SPLIT}2014_questions.json").write_text(
        json.dumps({"questions": questions}), encoding="utf-8"
    )
    (folder / f"mscoco_{FIXTURE_SPLIT}2014_annotations.json").write_text(
        json.dumps({"annotations": annotations}), encoding="utf-8"
    )
    return folder


def ensure_fixture(folder: str | Path, n: int, seed: int, qtypes: Sequence[str] | None = None) -> Path:
    """:func:`write_fixture` once: written into a temporary folder and renamed into place, so
    that concurrent processes (``torchrun`` ranks) never read half a fixture; an existing
    fixture is reused if it was written with the same settings, else refused."""
    import os
    import shutil

    folder = Path(folder)
    settings = {"n": n, "seed": seed, "qtypes": list(qtypes) if qtypes else None}
    stamp = folder / "fixture.json"
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        write_fixture(tmp, n, seed, qtypes)
        (tmp / "fixture.json").write_text(json.dumps(settings), encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:  # another process renamed its copy first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        old = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{folder} exists but is not a fixture written by this study") from None
    if old != settings:
        raise InputError(f"the fixture in {folder} was written with {old}, not {settings}; use another --out")
    return folder


# ----- the table (pure) ----------------------------------------------------------------------
def _interval(values: Sequence[float]) -> dict:
    from ..runs.summary import mean_interval

    return mean_interval(list(values))


def chance_scores(folder: RunFolder, human_maps: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``id -> human_map_scores`` of each explained sample's heatmap against the human map of
    the next explained sample (cyclically, in the folder's order); empty below two samples."""
    from ..metrics import human_map_scores

    ids = [sid for sid in folder.ok if sid in human_maps]
    if len(ids) < 2:
        return {}
    return {
        sid: human_map_scores(folder.heatmap(sid), human_maps[ids[(k + 1) % len(ids)]])
        for k, sid in enumerate(ids)
    }


def human_rows(folder: RunFolder, human_maps: dict[str, np.ndarray] | None) -> list[dict]:
    """The own-map row of ``folder`` and, with ``human_maps``, its chance row."""
    ok = {sid: r for sid, r in folder.ok.items() if any(m in r for m in METRICS)}  # samples with a human map
    own = {sid: {m: _num(r.get(m)) for m in METRICS} for sid, r in ok.items()}
    rows = [_row(folder.label, OWN, own)]
    if human_maps:
        other = chance_scores(folder, {sid: human_maps[sid] for sid in own if sid in human_maps})
        if other:
            shared = [sid for sid in own if sid in other]
            rows[0]["rank_p"] = wilcoxon_p(
                [own[s]["human_rank_correlation"] for s in shared],
                [other[s]["human_rank_correlation"] for s in shared],
            )
            rows.append(_row(folder.label, OTHER, other))
    return rows


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _row(label: str, maps: str, scores: dict[str, dict[str, float]]) -> dict:
    iou = _interval([s["human_soft_iou"] for s in scores.values()])
    rank = _interval([s["human_rank_correlation"] for s in scores.values()])
    topk = _interval([s["human_topk_iou"] for s in scores.values()])
    return {
        "model": label,
        "maps": maps,
        "n": rank["n"],
        "soft_iou": iou["mean"],
        "soft_iou_low": iou["low"],
        "soft_iou_high": iou["high"],
        "rank_correlation": rank["mean"],
        "rank_low": rank["low"],
        "rank_high": rank["high"],
        "topk_iou": topk["mean"],
    }


def human_table(folders: Sequence[RunFolder], human_maps: dict[str, np.ndarray] | None = None) -> StudyResult:
    """Per model: agreement with the own human maps and, given ``human_maps`` (``id -> map``),
    with another sample's (the chance level)."""
    rows = [row for f in folders for row in human_rows(f, human_maps)]
    if not any(r["n"] for r in rows):
        raise InputError(
            "no explained sample has a human attention map: use a dataset with human maps "
            "(--dataset vqa-hat, or --fixture)"
        )
    notes = [
        "soft IoU: sum(min) / sum(max) of the min-max normalised maps; rank correlation: Spearman over "
        "pixels; topk_iou: IoU of the two maps' top 10 % pixels; *_low / *_high: 95 % t-interval",
        f"'{OTHER}': the heatmap against the next explained sample's human map (chance level); "
        "rank_p: two-sided Wilcoxon signed-rank test, own vs other, per sample",
        "paper (Table 8, VQA-HAT): LLaVA-1.5 IoU 0.010, rank correlation -0.201; LLaVA-OV 0.012, -0.195",
    ]
    return StudyResult("Model focus against human attention (paper Table 8)", COLUMNS, rows, notes)


@register_study("human")
class Human(Study):
    summary = (
        "Model focus against human attention maps (VQA-HAT): soft IoU, rank correlation and top-10 % IoU "
        "per model, beside a chance level (paper Table 8)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_data_arguments(parser)
        parser.set_defaults(dataset="vqa-hat")
        g = parser.add_argument_group("human")
        add_models_and_runs(g)
        g.add_argument(
            "--fixture",
            action="store_true",
            help="no VQA-HAT at hand: write --limit synthetic scenes whose 'human' maps are their evidence "
            "masks, in the VQA-HAT layout, to OUT/fixture, and study those",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        from .common import check_limit, open_dataset

        out = Path(out)
        check_limit(args)
        models = labelled(args.models, "--models")
        runs = labelled(args.runs, "--runs", need_label=True)
        if not models and not runs:
            models = {args.model: args.model}
        if args.fixture:
            if args.limit is None:
                raise InputError("--fixture needs --limit (the number of scenes to write)")
            qtypes = args.qtypes.split(",") if args.qtypes else None
            ensure_fixture(out / "fixture", args.limit, args.seed, qtypes)
            args.dataset, args.data_dir, args.qtypes = "vqa-hat", out / "fixture", None
        dataset = open_dataset(args)
        folders = collect(args, out, models, runs, dataset)
        if folders is None:
            return None
        ids = {sid for f in folders for sid in f.ok}
        human_maps = {}
        for sid in ids:
            if sid in dataset:
                m = dataset.get(sid).human_map
                if m is not None:
                    human_maps[sid] = m
        result = human_table(folders, human_maps)
        result.details["settings"] = {
            "models": models,
            "runs": runs,
            "dataset": args.dataset,
            "fixture": args.fixture,
        }
        return result
