"""Dataset runs: explain every sample, score faithfulness and localisation, resumably, in
one process or many.

:func:`run` explains each sample of a :class:`~vlm_focus.data.Dataset` with a
:class:`~vlm_focus.explain.Lens`, grades the answer (:func:`vlm_focus.data.grade`) and scores
the heatmap: deletion / insertion (paper Sec. 4.3, computed by ``Lens.explain``), the
localisation metrics of :mod:`vlm_focus.metrics.localization` where the sample has an
evidence mask, and the agreement with a human attention map
(:func:`~vlm_focus.metrics.human_map_scores`, paper Table 8) where it has one. Files: see
:mod:`vlm_focus.runs.store`. Each record has ``status`` ``"ok"``, ``"skipped"``
(``reason``: the answer does not depend on the image, or the message of a
:class:`~vlm_focus.errors.VlmFocusError` such as a missing image) or ``"error"`` (an
unexpected exception; the run goes on, and a resumed run tries the sample again).

Under ``torchrun`` / ``accelerate launch`` each process explains its shard
(:mod:`vlm_focus.runs.shards`) into its own results file; rank 0 waits for all, merges the
shards into ``results.jsonl`` in the dataset's order and writes ``summary.json``.

``resume=True`` continues a killed run, with any number of processes: every results file
in the folder (whatever world size wrote it) tells which samples are done; a truncated last
line is dropped; samples that ended in ``"error"`` are tried again. Each sample is explained
under its own torch seed derived from ``(seed, position in the dataset)``, so a resumed or
sharded run gives the numbers of an uninterrupted single-process one.

Example::

    lens = vlm_focus.load("shapes-llava", method="igos++")
    summary = run_evaluation(lens, "shapes", limit=200, out="runs/igos")

or ``vlm-focus evaluate --dataset shapes --method igos++ --limit 200 --out runs/igos``, and
``torchrun --nproc-per-node 4 -m vlm_focus.cli evaluate ...`` for four processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InputError, OutputError, VlmFocusError
from ..methods.correction import DEFAULT_BUDGET, check_budget
from ..metrics import human_map_scores, localization_scores
from ..randomization import sanity_check
from . import shards as shards_mod
from . import store
from .retry import explain_with_retries
from .summary import summarize

if TYPE_CHECKING:
    from ..data import Dataset, Sample
    from ..explain import Lens

EVAL_SEED = 2026  # the default run seed; the zoo models were trained on shapes seeds 0 and 1
NO_IMAGE = "answer does not depend on the image"
# Options that change speed or memory but not results: a resumed run may change them.
FREE_OPTIONS = frozenset({"batch_size"})
# Dataset description keys that do not define the samples (a resumed run may change them).
FREE_DATASET_KEYS = frozenset({"samples", "skipped", "data_dir"})


def pointing_tolerance(height: int, width: int) -> float:
    """Default pointing-game tolerance: 3% of the longer side (15 px on 500-px images, as
    Zhang et al.; 2 px on the 64-px shapes scenes)."""
    return float(max(1, round(0.03 * max(height, width))))


def sample_seed(seed: int, index: int) -> int:
    """The torch seed of the sample at ``index``: independent of order and of the shard."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def read_ids(path: str | Path) -> list[str]:
    """Sample ids from a file: a JSON list, or one id per line (blank lines ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the ids file {path}: {e.strerror or e}") from None
    if text.lstrip().startswith("["):
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not a JSON list of ids (line {e.lineno}: {e.msg})") from None
        if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids):
            raise InputError(f"{path}: expected a JSON list of ids (strings or numbers)")
        ids = [str(i) for i in ids]
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise InputError(f"{path}: no sample ids")
    return ids


def select_ids(all_ids: Sequence[str], ids: Iterable[str] | None, limit: int | None) -> list[str]:
    """The samples of a run, in dataset order: those in ``ids`` (all if None), then the
    first ``limit`` of them. Unknown ids are refused."""
    chosen = list(all_ids)
    if ids is not None:
        wanted = list(dict.fromkeys(str(i) for i in ids))
        known = set(chosen)
        unknown = [i for i in wanted if i not in known]
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise InputError(f"{len(unknown)} id(s) not in the dataset: {unknown[:5]}{more}")
        keep = set(wanted)
        chosen = [i for i in chosen if i in keep]
    return chosen if limit is None else chosen[:limit]


# ----- one sample ------------------------------------------------------------------------
def evaluate_sample(
    lens: Lens,
    sample: Sample,
    index: int,
    seed: int,
    heatmap_dir: Path,
    tolerance: float | None = None,
    sanity: bool = False,
    hallucination: float | None = None,
) -> dict:
    """Explain one sample and score it; never raises except for ``KeyboardInterrupt``-like
    exits. Returns the record written to the results file. ``hallucination``: the area
    budget of the correction search (:func:`_hallucination`), None: off."""
    from ..data import grade

    rec: dict[str, Any] = {
        "id": sample.id,
        "index": index,
        "category": sample.category,
        "question": sample.question,
        "reference": sample.answer,
        "options": sample.options,
        "answer_kind": sample.answer_kind,
        "extras": sample.extras,
    }
    if sample.evidence is not None:
        rec["evidence_pixels"] = int(np.count_nonzero(sample.evidence))
    t0 = time.perf_counter()
    ex = None
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(sample_seed(seed, index))
            image = sample.load_image()
            ex = explain_with_retries(lens, image, sample.question, sample_seed(seed, index), rec)
            correct, rule = grade(ex.answer, sample)
            rec.update(
                answer=ex.answer,
                correct=correct,
                grading=rule,
                tokens=ex.tokens,
                llr=ex.llr,
                selected=ex.selected,
                selected_text=ex.selected_text,
            )
            if not ex.selected or ex.heatmap is None:
                rec.update(status="skipped", reason=NO_IMAGE)
            else:
                rec.update(
                    {k: ex.scores.get(k, math.nan) for k in ("deletion", "insertion", "baseline_prob")}
                )
                rec.update(_map_scores(ex.heatmap, sample, tolerance))
                if sanity:
                    check = sanity_check(lens, image, sample.question, seed=seed, explanation=ex)
                    rec.update(sanity_spearman=check.spearman, sanity_ssim=check.ssim)
                name = store.safe_name(sample.id) + ".npy"
                store.write_npy(heatmap_dir / name, ex.heatmap)
                rec.update(status="ok", heatmap=f"{store.HEATMAPS}/{name}")
            if hallucination is not None:
                rec.update(_hallucination(lens, image, sample, ex, heatmap_dir, hallucination))
            rec["timings"] = ex.timings
        rec["warnings"] = list(dict.fromkeys(list(ex.warnings) + [str(w.message) for w in caught]))
    except OutputError:  # the output folder cannot be written: stop the run, not this sample
        raise
    except VlmFocusError as e:
        rec.update(status="skipped", reason=f"{type(e).__name__}: {e}")
    except Exception as e:  # a long run must survive one bad sample; the record says what broke
        rec.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    rec["finished_at"] = round(time.time(), 3)
    return rec


def _hallucination(lens: Lens, image: Any, sample: Sample, ex: Any, heatmap_dir: Path, budget: float) -> dict:
    """For a yes/no sample: ``hallucinated`` (the label is no; did the model say yes?) or
    ``missed`` (the label is yes; did it say no?), and for a wrong answer its minimal
    correction region (:func:`vlm_focus.hallucination.correct_answer`, the regions ordered
    by the heatmap when there is one): ``correction_*`` fields and the region as
    ``heatmaps/<id>.correction.npy``. Nothing for other samples."""
    from ..hallucination import NO, YES, correct_answer, yes_no

    label, said = yes_no(sample.answer), yes_no(ex.answer)
    if label is None:
        return {}
    out: dict[str, Any] = {"hallucinated" if label == NO else "missed": said == (YES if label == NO else NO)}
    if said is None or said == label:
        return out
    result = correct_answer(lens, image, sample.question, ex.answer, label, ex.heatmap, budget=budget)
    if result is None:
        return out
    out.update(result.record())
    if result.correction.flipped:
        name = store.safe_name(sample.id) + ".correction.npy"
        store.write_npy(heatmap_dir / name, result.mask)
        out["correction_mask"] = f"{store.HEATMAPS}/{name}"
    return out


def _map_scores(heatmap: np.ndarray, sample: Sample, tolerance: float | None) -> dict:
    out: dict[str, Any] = {}
    if sample.evidence is not None:
        h, w = sample.evidence.shape
        tol = pointing_tolerance(h, w) if tolerance is None else tolerance
        out.update(localization_scores(heatmap, sample.evidence, tol), pointing_tolerance=tol)
    if sample.human_map is not None:
        out.update(human_map_scores(heatmap, sample.human_map))
    return out


# ----- settings ----------------------------------------------------------------------------
def describe_dataset(dataset: Dataset) -> dict:
    """What defines the samples of ``dataset`` (name, prompt format, options)."""
    info = dataset.describe() if hasattr(dataset, "describe") else {"name": dataset.name}
    return {k: v for k, v in info.items() if k not in FREE_DATASET_KEYS}


def run_config(
    lens: Lens,
    dataset: Dataset,
    seed: int,
    sanity: bool,
    tolerance: float | None,
    hallucination: float | None = None,
) -> dict:
    """The settings recorded in ``run.json`` and checked on resume."""
    cfg: dict[str, Any] = {
        "dataset": dataset.name,
        "dataset_options": describe_dataset(dataset),
        "seed": seed,
        "sanity": sanity,
        "tolerance": tolerance,
        "model": lens.adapter.name,
        "method": lens.method.name,
        "method_options": lens.method.options,
        "lens_options": lens.options,
    }
    if hallucination is not None:  # recorded only when on: older run folders resume unchanged
        cfg["hallucination"] = {"budget": hallucination}
    return json.loads(json.dumps(store.clean(cfg), allow_nan=False))


def check_config(path: Path, cfg: dict) -> None:
    """Refuse to resume a run recorded with other settings (speed options may change)."""
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))

    def strip(c: dict) -> dict:
        lens = {k: v for k, v in c.get("lens_options", {}).items() if k not in FREE_OPTIONS}
        return {**c, "lens_options": lens}

    a, b = strip(old), strip(cfg)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        details = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff)
        raise InputError(
            f"cannot resume {path.parent}: the settings differ from the recorded run ({details}); "
            "use the same settings or another --out directory"
        )


def versions() -> dict:
    import transformers

    from .. import __version__

    return {
        "vlm_focus": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ----- the run -------------------------------------------------------------------------------
def run(
    lens: Lens,
    dataset: Dataset,
    out: str | Path,
    *,
    limit: int | None = None,
    ids: Iterable[str] | None = None,
    resume: bool = False,
    seed: int = EVAL_SEED,
    sanity: bool = False,
    tolerance: float | None = None,
    progress: bool = True,
    args: dict | None = None,
    hallucination: bool = False,
    correction_budget: float = DEFAULT_BUDGET,
) -> dict:
    """Explain the samples of ``dataset`` (those in ``ids`` if given, then the first ``limit``)
    into ``out`` and return the summary (on every rank).

    ``sanity``: also run :func:`~vlm_focus.randomization.sanity_check` per sample (one more heatmap
    each). ``tolerance``: pointing-game tolerance in pixels (default
    :func:`pointing_tolerance`). ``args``: extra arguments to record (the CLI's).
    ``hallucination``: also, per wrong yes/no answer, its minimal correction region and
    whether it fits ``correction_budget`` (a share of the image area; see
    :mod:`vlm_focus.hallucination`). Raises
    :class:`InputError` if ``out`` already holds results and ``resume`` is False.
    """
    _check_limit(limit)
    all_ids = list(dataset.ids())
    position = {sid: i for i, sid in enumerate(all_ids)}
    chosen = select_ids(all_ids, ids, limit)
    out = Path(out)
    store.check_out(out, resume)
    budget = check_budget(correction_budget) if hallucination else None
    cfg = run_config(lens, dataset, seed, sanity, tolerance, budget)
    started = time.perf_counter()
    with (
        shards_mod.distributed(getattr(lens.adapter, "device", None)) as shard,
        contextlib.ExitStack() as stack,
    ):
        done = open_folder(out, cfg, resume, shard, stack)
        mine = shard.select(chosen)
        todo = [sid for sid in mine if sid not in done]
        shard.barrier()  # every rank has read the folder before any rank writes to it
        _loop(lens, dataset, out, shard, mine, todo, position, seed, sanity, tolerance, progress, budget)
        shard.barrier()  # every shard is complete
        if shard.main:
            merged = store.merge(out, all_ids)
            wanted = set(chosen)
            ours = [r for r in merged if r["id"] in wanted]
            summary = summarize(ours, _categories(ours), sanity)
            summary.update(
                outside_selection=len(merged) - len(ours),
                world_size=shard.world_size,
                seconds_this_session=round(time.perf_counter() - started, 2),
                dataset=dataset.describe() if hasattr(dataset, "describe") else {"name": dataset.name},
                versions=versions(),
                args=store.clean(
                    {
                        "dataset": dataset.name,
                        "limit": limit,
                        "ids": len(chosen) if ids is not None else None,
                        "out": str(out),
                        "resume": resume,
                        **cfg["dataset_options"],
                        **cfg,
                        **({"cli": args} if args else {}),
                    }
                ),
            )
            store.write_json(out / store.SUMMARY, summary)
        shard.barrier()  # the summary is written
        if not shard.main:
            summary = json.loads((out / store.SUMMARY).read_text(encoding="utf-8"))
    return summary


def _check_limit(limit: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive number of samples, got {limit!r}")


def _categories(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(r["category"]) for r in records if r.get("category") is not None))


def _loop(
    lens: Lens,
    dataset: Dataset,
    out: Path,
    shard: shards_mod.Shard,
    mine: list[str],
    todo: list[str],
    position: dict[str, int],
    seed: int,
    sanity: bool,
    tolerance: float | None,
    progress: bool,
    hallucination: float | None = None,
) -> None:
    """Explain ``todo`` (this rank's samples not done yet), one appended record each."""
    from tqdm.auto import tqdm

    where = f" [rank {shard.rank} of {shard.world_size}]" if shard.world_size > 1 else ""
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        file=sys.stderr,
        disable=not progress or not shard.main,
        unit="sample",
        dynamic_ncols=True,
        desc=f"evaluate {dataset.name}{where}",
    )
    status: Counter = Counter()
    with bar, store.open_results(out / store.shard_name(shard.rank, shard.world_size)) as f:
        for sid in todo:
            try:
                sample = dataset.get(sid)
            except VlmFocusError as e:  # a broken index entry: record it, go on
                rec: dict[str, Any] = {"id": sid, "status": "skipped", "reason": f"{type(e).__name__}: {e}"}
            except Exception as e:  # a loader bug on one record: record it, go on (retried on resume)
                rec = {"id": sid, "status": "error", "reason": f"{type(e).__name__}: {e}"}
                rec["traceback"] = traceback.format_exc(limit=8)
            else:
                rec = evaluate_sample(
                    lens, sample, position[sid], seed, out / store.HEATMAPS, tolerance, sanity, hallucination
                )
            rec.update(index=position[sid], rank=shard.rank)
            store.append(f, rec)
            status[rec["status"]] += 1
            bar.set_postfix(status, refresh=False)
            bar.update(1)


def open_folder(
    out: Path, cfg: dict, resume: bool, shard: shards_mod.Shard, stack: contextlib.ExitStack
) -> set[str]:
    """Start (or continue) a results folder on every rank; return the ids already done.

    Rank 0 alone prepares it: makes it, takes its lock (held until ``stack`` closes), and
    with ``resume`` repairs a half-written last line, removes a killed run's temporary files
    and refuses other settings (:func:`check_config`); then it records ``cfg``. If that fails
    on rank 0, every rank raises. Samples recorded as errors are not done (they are retried).
    """
    problem: VlmFocusError | None = None
    if shard.main:
        try:
            store.make_dir(out)
            stack.enter_context(store.locked(out))
            if resume:
                store.read_all(out, repair=True)
                store.remove_stale_temps(out)
                check_config(out / store.CONFIG, cfg)
            store.write_json(out / store.CONFIG, cfg)
        except VlmFocusError as e:
            problem = e
    if not shard.all_ok(problem is None):
        raise problem or InputError(f"rank 0 could not start the run in {out}; see its message")
    previous = store.read_all(out, repair=False) if resume else {}
    return {sid for sid, r in previous.items() if r.get("status") != "error"}


def run_evaluation(
    lens: Lens,
    dataset: Dataset | str,
    limit: int | None = None,
    out: str | Path = "vlm-focus-eval",
    resume: bool = False,
    seed: int = EVAL_SEED,
    sanity: bool = False,
    tolerance: float | None = None,
    progress: bool = True,
    args: dict | None = None,
    *,
    ids: Iterable[str] | None = None,
    data_dir: str | Path | None = None,
    prompt_format: str | None = None,
    hallucination: bool = False,
    correction_budget: float = DEFAULT_BUDGET,
    **dataset_options: Any,
) -> dict:
    """:func:`run` on a dataset object, or on a registered dataset by name, opened with
    :func:`vlm_focus.data.get_dataset` from ``data_dir`` with ``prompt_format`` and
    ``dataset_options`` (e.g. ``qtypes=["color"]`` for shapes). A dataset that takes a
    ``seed`` or a ``limit`` option gets the run's."""
    _check_limit(limit)
    if isinstance(dataset, str):
        from ..data import dataset_options as known_options
        from ..data import get_dataset

        known = known_options(dataset)
        options = dict(dataset_options)
        if "seed" in known:
            options.setdefault("seed", seed)
        if "limit" in known and limit is not None and ids is None:
            options.setdefault("limit", limit)
        if prompt_format is not None:
            options["prompt_format"] = prompt_format
        dataset = get_dataset(dataset, data_dir, **options)
    elif dataset_options or data_dir is not None or prompt_format is not None:
        raise InputError("data_dir, prompt_format and dataset options apply to a dataset name, not a Dataset")
    return run(
        lens,
        dataset,
        out,
        limit=limit,
        ids=ids,
        resume=resume,
        seed=seed,
        sanity=sanity,
        tolerance=tolerance,
        progress=progress,
        args=args,
        hallucination=hallucination,
        correction_budget=correction_budget,
    )
