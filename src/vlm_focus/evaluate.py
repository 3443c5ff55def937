"""Dataset runs: explain every sample, score faithfulness and localisation, resumably.

``run_evaluation`` explains each sample of a dataset with a :class:`~vlm_focus.explain.Lens`,
judges the answer by its key word, and scores the heatmap: deletion / insertion (paper
Sec. 4.3, computed by ``Lens.explain``) and the localisation metrics of
:mod:`vlm_focus.metrics.localization` against the sample's evidence mask. Files in ``out``:

- ``results.jsonl`` - one JSON line per finished sample, appended and fsync'ed as soon as
  the sample ends, with ``status`` ``"ok"``, ``"skipped"`` (``reason``: the answer does not
  depend on the image, or the message of a :class:`~vlm_focus.errors.VlmFocusError` such
  as a bad image) or ``"error"`` (an unexpected exception; the run goes on);
- ``heatmaps/<id>.npy`` - each explained sample's heatmap (float32, image grid);
- ``run.json`` - the settings, checked on ``resume`` so that one file never mixes runs;
- ``summary.json`` - per metric mean and 95% t-interval overall and per question type,
  accuracy, skipped samples by reason, versions and every argument.

``resume=True`` continues a killed run: a truncated last line is dropped (the file is
rewritten without it), samples already recorded are skipped, and samples that ended in
``"error"`` are tried again, so each sample ends up in the file exactly once. Each sample
is explained under its own torch seed derived from ``(seed, index)``, so a resumed run
gives the numbers of an uninterrupted one.

Example::

    lens = vlm_focus.load("shapes-llava", method="igos++")
    summary = run_evaluation(lens, "shapes", limit=200, out="runs/igos")

or ``vlm-focus evaluate --dataset shapes --method igos++ --limit 200 --out runs/igos``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .data.shapes import answer_correct
from .errors import DataError, InputError, VlmFocusError
from .metrics import localization_scores, mean_ci, sanity_check

if TYPE_CHECKING:
    from .data.shapes import Sample
    from .explain import Lens

DATASETS = ("shapes",)
EVAL_SEED = 2026  # the zoo models were trained on shapes seeds 0 and 1
RESULTS, SUMMARY, CONFIG, HEATMAPS = "results.jsonl", "summary.json", "run.json", "heatmaps"
METRICS = ("deletion", "insertion", "pointing_game", "relevance_mass", "relevance_rank", "energy_pointing")
SANITY_METRICS = ("sanity_spearman", "sanity_ssim")
LOWER_IS_BETTER = frozenset({"deletion", "sanity_spearman", "sanity_ssim"})
NO_IMAGE = "answer does not depend on the image"
# Options that change speed or memory but not results: a resumed run may change them.
FREE_OPTIONS = frozenset({"batch_size"})


def pointing_tolerance(height: int, width: int) -> float:
    """Default pointing-game tolerance: 3% of the longer side (15 px on 500-px images, as
    Zhang et al.; 2 px on the 64-px shapes scenes)."""
    return float(max(1, round(0.03 * max(height, width))))


def dataset_sampler(dataset: str, seed: int, qtypes: Sequence[str] | None = None) -> Callable[[int], Sample]:
    """``index -> Sample`` for ``dataset``; samples are deterministic and ids stable."""
    if dataset != "shapes":
        raise InputError(f"unknown dataset {dataset!r}; choose from {list(DATASETS)}")
    from .data.shapes import QTYPES, make_sample

    kinds = list(qtypes) if qtypes else list(QTYPES)
    bad = [q for q in kinds if q not in QTYPES]
    if bad:
        raise InputError(f"unknown question type(s) {bad}; choose from {list(QTYPES)}")

    def sample(index: int) -> Sample:
        kind = kinds[index % len(kinds)]
        return make_sample(seed, index, qtype=kind, min_objects=2 if kind in ("color", "shape") else 1)

    return sample


# ----- files ---------------------------------------------------------------------------
def read_results(path: str | Path, repair: bool = True) -> list[dict]:
    """Records of a ``results.jsonl``. A truncated last line (a killed run) is dropped and,
    with ``repair``, the file is rewritten without it; a broken line elsewhere raises
    :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, dropped = [], False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "id" not in rec:
                raise ValueError("not a record")
        except ValueError:
            if n == len(lines):  # no newline after it: the write was cut off
                dropped = True
                continue
            raise DataError(f"{path}, line {n}: not a JSON record; repair or remove the line") from None
        records.append(rec)
    if repair and (dropped or (raw and not raw.endswith(b"\n"))):
        write_results(path, records)
    return records


def write_results(path: Path, records: list[dict]) -> None:
    """Replace ``path`` atomically by ``records``, one JSON line each."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(_clean(rec), allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_out(out: str | Path, resume: bool) -> Path:
    """Refuse to overwrite: an existing non-empty results file needs ``resume``."""
    results = Path(out) / RESULTS
    if not resume and results.exists() and results.stat().st_size > 0:
        raise InputError(
            f"{results} already holds results; pass --resume (resume=True) to continue that run, "
            "or choose another --out directory"
        )
    return results


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two runs never append to one file."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, run unguarded
        yield
        return
    with open(directory / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another run is writing to {directory}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----- one sample ------------------------------------------------------------------------
def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)


def _sample_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def evaluate_sample(
    lens: Lens,
    sample: Sample,
    index: int,
    seed: int,
    heatmap_dir: Path,
    tolerance: float | None = None,
    sanity: bool = False,
) -> dict:
    """Explain one sample and score it; never raises except for ``KeyboardInterrupt``-like
    exits. Returns the record written to ``results.jsonl``."""
    rec: dict[str, Any] = {
        "id": sample.id,
        "index": index,
        "qtype": sample.qtype,
        "question": sample.question,
        "reference": sample.answer,
        "key": sample.key,
        "evidence_pixels": int(np.count_nonzero(sample.evidence)),
    }
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.manual_seed(_sample_seed(seed, index))
            ex = lens.explain(sample.image, sample.question)
            rec.update(
                answer=ex.answer,
                correct=answer_correct(ex.answer, sample),
                tokens=ex.tokens,
                llr=ex.llr,
                selected=ex.selected,
                selected_text=ex.selected_text,
            )
            if not ex.selected or ex.heatmap is None:
                rec.update(status="skipped", reason=NO_IMAGE)
            else:
                h, w = sample.evidence.shape
                tol = pointing_tolerance(h, w) if tolerance is None else tolerance
                rec.update(
                    {k: ex.scores.get(k, math.nan) for k in ("deletion", "insertion", "baseline_prob")}
                )
                rec.update(localization_scores(ex.heatmap, sample.evidence, tol), pointing_tolerance=tol)
                if sanity:
                    check = sanity_check(lens, sample.image, sample.question, seed=seed, explanation=ex)
                    rec.update(sanity_spearman=check.spearman, sanity_ssim=check.ssim)
                heatmap_dir.mkdir(parents=True, exist_ok=True)
                name = _safe_name(sample.id) + ".npy"
                tmp = heatmap_dir / (name + ".tmp")
                with open(tmp, "wb") as f:
                    np.save(f, np.asarray(ex.heatmap, dtype=np.float32), allow_pickle=False)
                os.replace(tmp, heatmap_dir / name)
                rec.update(status="ok", heatmap=f"{HEATMAPS}/{name}")
            rec["timings"] = ex.timings
        rec["warnings"] = list(dict.fromkeys(list(ex.warnings) + [str(w.message) for w in caught]))
    except VlmFocusError as e:
        rec.update(status="skipped", reason=f"{type(e).__name__}: {e}")
    except Exception as e:  # a long run must survive one bad sample; the record says what broke
        rec.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return rec


# ----- the run ---------------------------------------------------------------------------
def _config(
    lens: Lens, dataset: str, seed: int, qtypes: Sequence[str] | None, sanity: bool, tolerance: float | None
) -> dict:
    from .data.shapes import QTYPES

    cfg = {
        "dataset": dataset,
        "seed": seed,
        "qtypes": list(qtypes) if qtypes else list(QTYPES),
        "sanity": sanity,
        "tolerance": tolerance,
        "model": lens.adapter.name,
        "method": lens.method.name,
        "method_options": lens.method.options,
        "lens_options": lens.options,
    }
    return json.loads(json.dumps(_clean(cfg), allow_nan=False))


def _check_config(path: Path, cfg: dict) -> None:
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))

    def strip(c: dict) -> dict:
        c = {
            **c,
            "lens_options": {k: v for k, v in c.get("lens_options", {}).items() if k not in FREE_OPTIONS},
        }
        return c

    a, b = strip(old), strip(cfg)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        details = "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff)
        raise InputError(
            f"cannot resume {path.parent}: the settings differ from the recorded run ({details}); "
            "use the same settings or another --out directory"
        )


def run_evaluation(
    lens: Lens,
    dataset: str = "shapes",
    limit: int = 100,
    out: str | Path = "vlm-focus-eval",
    resume: bool = False,
    seed: int = EVAL_SEED,
    qtypes: Sequence[str] | None = None,
    sanity: bool = False,
    tolerance: float | None = None,
    progress: bool = True,
    args: dict | None = None,
) -> dict:
    """Explain the first ``limit`` samples of ``dataset`` and write ``out/results.jsonl``,
    ``out/heatmaps/`` and ``out/summary.json`` (see the module docstring). Returns the summary.

    ``qtypes``: question types to cycle through (shapes: color, shape, count, exist; default
    all). ``sanity``: also run :func:`~vlm_focus.metrics.sanity_check` per sample (one more
    heatmap each). ``tolerance``: pointing-game tolerance in pixels (default
    :func:`pointing_tolerance`). ``args``: extra arguments to record (the CLI's).
    Raises :class:`InputError` if ``out`` already holds results and ``resume`` is False.
    """
    if not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit must be a positive number of samples, got {limit!r}")
    sample_at = dataset_sampler(dataset, seed, qtypes)
    out = Path(out)
    results = check_out(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _config(lens, dataset, seed, qtypes, sanity, tolerance)
    started = time.perf_counter()
    with _locked(out):
        records = read_results(results) if resume else []
        if resume:
            _check_config(out / CONFIG, cfg)
            kept, seen = [], set()
            for rec in records:  # retry unexpected errors; never keep an id twice
                if rec.get("status") != "error" and rec["id"] not in seen:
                    kept.append(rec)
                    seen.add(rec["id"])
            if len(kept) != len(records):
                write_results(results, kept)
            records = kept
        _write_json(out / CONFIG, cfg)
        done = {r["id"] for r in records}
        from tqdm.auto import tqdm

        bar = tqdm(
            total=limit,
            file=sys.stderr,
            disable=not progress,
            unit="sample",
            dynamic_ncols=True,
            desc=f"evaluate {dataset}",
        )
        status: Counter = Counter()
        ids: set[str] = set()
        with bar, open(results, "a", encoding="utf-8") as f:
            for index in range(limit):
                sample = sample_at(index)
                ids.add(sample.id)
                if sample.id in done:
                    bar.update(1)
                    continue
                rec = evaluate_sample(lens, sample, index, seed, out / HEATMAPS, tolerance, sanity)
                f.write(json.dumps(_clean(rec), allow_nan=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                records.append(rec)
                done.add(sample.id)
                status[rec["status"]] += 1
                bar.set_postfix(status, refresh=False)
                bar.update(1)
        ours = sorted((r for r in records if r["id"] in ids), key=lambda r: r.get("index", 0))
        summary = summarize(ours, cfg["qtypes"], sanity)
        summary.update(
            outside_limit=len(records) - len(ours),
            seconds_this_session=round(time.perf_counter() - started, 2),
            versions=versions(),
            args={
                "dataset": dataset,
                "limit": limit,
                "out": str(out),
                "resume": resume,
                "seed": seed,
                "qtypes": cfg["qtypes"],
                "sanity": sanity,
                "tolerance": tolerance,
                **cfg,
                **({"cli": args} if args else {}),
            },
        )
        _write_json(out / SUMMARY, summary)
    return summary


# ----- summary ----------------------------------------------------------------------------
def _ci(values: list) -> dict:
    mean, low, high = mean_ci(values)
    n = sum(1 for v in values if v is not None and math.isfinite(v))
    return {"mean": mean, "low": low, "high": high, "n": n}


def summarize(records: list[dict], qtypes: Sequence[str], sanity: bool = False) -> dict:
    """Per metric mean and 95% CI (overall, per question type) over the ``ok`` records,
    accuracy over every answered sample, and counts of skipped/failed samples by reason."""
    n = len(records)
    ok = [r for r in records if r.get("status") == "ok"]
    names = METRICS + (SANITY_METRICS if sanity else ())
    metrics = {}
    for name in names:
        metrics[name] = {
            "overall": _ci([r.get(name) for r in ok]),
            "per_qtype": {q: _ci([r.get(name) for r in ok if r["qtype"] == q]) for q in qtypes},
        }
    answered = [r for r in records if r.get("correct") is not None]
    accuracy = {
        "overall": _ci([float(r["correct"]) for r in answered]),
        "per_qtype": {q: _ci([float(r["correct"]) for r in answered if r["qtype"] == q]) for q in qtypes},
    }

    def by_reason(kind: str) -> dict:
        reasons = Counter(r.get("reason", "") for r in records if r.get("status") == kind)
        count = sum(reasons.values())
        return {
            "count": count,
            "share": count / n if n else math.nan,
            "by_reason": {k: {"count": c, "share": c / n} for k, c in reasons.most_common()},
        }

    seconds = [r.get("seconds", 0.0) for r in records]
    return {
        "n_samples": n,
        "n_ok": len(ok),
        "n_per_qtype": {q: sum(r["qtype"] == q for r in records) for q in qtypes},
        "accuracy": accuracy,
        "metrics": metrics,
        "lower_is_better": sorted(LOWER_IS_BETTER & set(names)),
        "skipped": by_reason("skipped"),
        "errors": by_reason("error"),
        "seconds": {"total": round(sum(seconds), 2), "mean_per_sample": sum(seconds) / n if n else math.nan},
    }


def versions() -> dict:
    import transformers

    from . import __version__

    return {
        "vlm_focus": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def format_table(summary: dict) -> str:
    """A compact text table of ``summary``: mean +- CI half-width per metric and question type."""
    qtypes = [q for q, c in summary["n_per_qtype"].items() if c]

    def cell(ci: dict | None) -> str:
        if not ci or ci.get("mean") is None or not math.isfinite(ci["mean"]):
            return "-"
        low, high = ci.get("low"), ci.get("high")
        if low is None or high is None or not math.isfinite(low):
            return f"{ci['mean']:.3f}"
        return f"{ci['mean']:.3f} ±{(high - low) / 2:.3f}"

    rows = [
        ["", "all"] + qtypes,
        ["n (ok)", f"{summary['n_samples']} ({summary['n_ok']})"]
        + [str(summary["n_per_qtype"][q]) for q in qtypes],
        ["accuracy", cell(summary["accuracy"]["overall"])]
        + [cell(summary["accuracy"]["per_qtype"].get(q)) for q in qtypes],
    ]
    for name, m in summary["metrics"].items():
        label = name + (" (lower better)" if name in summary.get("lower_is_better", []) else "")
        rows.append([label, cell(m["overall"])] + [cell(m["per_qtype"].get(q)) for q in qtypes])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for kind in ("skipped", "errors"):
        for reason, c in summary[kind]["by_reason"].items():
            lines.append(f"{kind}: {c['count']} ({c['share']:.0%}) {reason}")
    lines.append("values: mean ± half-width of the 95% t-interval over samples with a heatmap")
    return "\n".join(lines)


# ----- command line --------------------------------------------------------------------
def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``vlm-focus evaluate`` to the CLI's subparsers (built in :mod:`vlm_focus.cli.evaluate`,
    which imports nothing heavy, so that ``vlm-focus --help`` needs no torch)."""
    from .cli.evaluate import add_evaluate_parser as add

    return add(subparsers)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .cli import lens_from_args

    check_out(args.out, args.resume)  # before loading a large model for nothing
    qtypes = [q.strip() for q in args.qtypes.split(",") if q.strip()] if args.qtypes else None
    dataset_sampler(args.dataset, args.seed, qtypes)  # validate the question types early
    lens = lens_from_args(args)
    recorded = {k: _clean(v) for k, v in vars(args).items() if k != "func"}
    try:
        summary = run_evaluation(
            lens,
            args.dataset,
            args.limit,
            args.out,
            args.resume,
            args.seed,
            qtypes,
            args.sanity,
            args.tolerance,
            progress=not args.no_progress,
            args=recorded,
        )
    except KeyboardInterrupt:
        print(
            f"vlm-focus: stopped; finished samples are in {Path(args.out) / RESULTS}. "
            "Continue with the same command and --resume.",
            file=sys.stderr,
        )
        raise
    print(format_table(summary))
    print(f"wrote {Path(args.out) / RESULTS}, {Path(args.out) / SUMMARY}")
    return 1 if summary["errors"]["count"] else 0
