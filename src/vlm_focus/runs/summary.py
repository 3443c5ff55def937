"""Statistics of a run, fit for each kind of number, and the table the CLI prints.

- accuracy and the shares of skipped / failed samples are proportions: Wilson score
  interval (:func:`~vlm_focus.metrics.wilson_ci`);
- the continuous metrics (deletion, insertion, localisation, human-map agreement, sanity)
  are means: Student-t interval (:func:`~vlm_focus.metrics.mean_ci`) over the samples where
  the metric is defined (NaN / null values are left out, e.g. an empty evidence mask);
- fewer than 3 values give no interval (``low`` = ``high`` = NaN, written as null): two
  points say nothing useful about a spread.

Every interval is 95 %, reported overall and per sample category (shapes: the question
type; MMStar / CV-Bench: the benchmark's categories).

Runs with ``hallucination`` (:mod:`vlm_focus.hallucination`) add ``summary["hallucination"]``
over every record that carries the fields, explained or not: the shares (Wilson)
``hallucination_rate`` (a "yes" where the label is "no", over those questions),
``miss_rate`` (a "no" where it is "yes") and ``correction_success`` (the wrong yes/no
answers that flip with at most the budget's share of the image removed), and the means
(t) ``correction_area`` (the minimal correction region's share of the image, over the
answers that flipped at all) and ``correction_passes``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from ..metrics import mean_ci, wilson_ci

MIN_N_FOR_INTERVAL = 3
LEVEL = 0.95
LOCALISATION = ("pointing_game", "relevance_mass", "relevance_rank", "energy_pointing")
METRICS = ("deletion", "insertion", *LOCALISATION)
HUMAN_METRICS = ("human_soft_iou", "human_rank_correlation", "human_topk_iou")
SANITY_METRICS = ("sanity_spearman", "sanity_ssim")
ALL_METRICS = (*METRICS, *HUMAN_METRICS, *SANITY_METRICS)
LOWER_IS_BETTER = frozenset({"deletion", "sanity_spearman", "sanity_ssim"})
#: name -> the record field counted (a share) for summary["hallucination"]
HALLUCINATION_SHARES = {
    "hallucination_rate": "hallucinated",
    "miss_rate": "missed",
    "correction_success": "correction_success",
}
HALLUCINATION_MEANS = ("correction_area", "correction_passes")


def mean_interval(values: Sequence[float | None]) -> dict:
    """``{"mean", "low", "high", "n"}``: mean and t-interval of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    mean, low, high = mean_ci(finite, LEVEL)
    if len(finite) < MIN_N_FOR_INTERVAL:
        low = high = math.nan
    return {"mean": mean, "low": low, "high": high, "n": len(finite)}


def share_interval(hits: int, n: int) -> dict:
    """``{"mean", "low", "high", "n", "k"}``: the share ``k / n`` and its Wilson interval."""
    share, low, high = wilson_ci(hits, n, LEVEL)
    if n < MIN_N_FOR_INTERVAL:
        low = high = math.nan
    return {"mean": share, "low": low, "high": high, "n": n, "k": hits}


def _accuracy(records: list[dict]) -> dict:
    judged = [r for r in records if r.get("correct") is not None]
    return share_interval(sum(bool(r["correct"]) for r in judged), len(judged))


def _by_reason(records: list[dict], kind: str) -> dict:
    n = len(records)
    reasons = Counter(r.get("reason", "") for r in records if r.get("status") == kind)
    count = sum(reasons.values())
    overall = share_interval(count, n)
    return {
        "count": count,
        "share": overall["mean"],
        "low": overall["low"],
        "high": overall["high"],
        "by_reason": {k: {"count": c, "share": c / n} for k, c in reasons.most_common()},
    }


def metric_names(records: list[dict], sanity: bool = False) -> list[str]:
    """The metrics the ``ok`` records carry, in the order of :data:`ALL_METRICS` (the
    localisation and human-map metrics only where samples have an evidence mask or a human
    map; the sanity metrics also when asked for)."""
    ok = [r for r in records if r.get("status") == "ok"]
    present = {k for r in ok for k in r}
    names = [m for m in ALL_METRICS if m in present]
    if sanity:
        names += [m for m in SANITY_METRICS if m not in names]
    return names


def summarize(records: list[dict], categories: Sequence[str] | None = None, sanity: bool = False) -> dict:
    """Counts, accuracy and per-metric means with intervals, overall and per category, over
    ``records`` (one per sample). ``categories``: the columns, in order (default: the
    categories of the records in order of appearance)."""
    if categories is None:
        categories = list(dict.fromkeys(str(r["category"]) for r in records if r.get("category") is not None))
    cats = list(categories)
    n = len(records)
    ok = [r for r in records if r.get("status") == "ok"]
    names = metric_names(records, sanity)

    def of(rs: list[dict], cat: str) -> list[dict]:
        return [r for r in rs if r.get("category") == cat]

    metrics = {
        name: {
            "overall": mean_interval([r.get(name) for r in ok]),
            "per_category": {c: mean_interval([r.get(name) for r in of(ok, c)]) for c in cats},
        }
        for name in names
    }
    seconds = [float(r.get("seconds") or 0.0) for r in records]
    out = {
        "n_samples": n,
        "n_ok": len(ok),
        "n_per_category": {c: len(of(records, c)) for c in cats},
        "accuracy": {
            "overall": _accuracy(records),
            "per_category": {c: _accuracy(of(records, c)) for c in cats},
        },
        "metrics": metrics,
        "lower_is_better": sorted(LOWER_IS_BETTER & set(names)),
        "skipped": _by_reason(records, "skipped"),
        "errors": _by_reason(records, "error"),
        "seconds": {"total": round(sum(seconds), 2), "mean_per_sample": sum(seconds) / n if n else math.nan},
        "intervals": {
            "level": LEVEL,
            "accuracy_and_shares": "Wilson score",
            "metrics": "Student t over samples where the metric is defined",
            "min_n": MIN_N_FOR_INTERVAL,
        },
    }
    halluc = hallucination_summary(records, cats)
    if halluc:
        out["hallucination"] = halluc
    return out


def _share_of(records: list[dict], field: str) -> dict:
    judged = [r for r in records if isinstance(r.get(field), bool)]
    return share_interval(sum(r[field] for r in judged), len(judged))


def hallucination_summary(records: list[dict], categories: Sequence[str] = ()) -> dict:
    """``{name: {"overall", "per_category"}}`` for the shares of
    :data:`HALLUCINATION_SHARES` and the means of :data:`HALLUCINATION_MEANS`, plus the
    ``budget``; empty when no record carries them."""
    fields = (*HALLUCINATION_SHARES.values(), *HALLUCINATION_MEANS)
    if not any(f in r for r in records for f in fields):
        return {}

    def of(cat: str) -> list[dict]:
        return [r for r in records if r.get("category") == cat]

    out: dict = {}
    for name, field in HALLUCINATION_SHARES.items():
        out[name] = {
            "overall": _share_of(records, field),
            "per_category": {c: _share_of(of(c), field) for c in categories},
        }
    for name in HALLUCINATION_MEANS:
        out[name] = {
            "overall": mean_interval([r.get(name) for r in records]),
            "per_category": {c: mean_interval([r.get(name) for r in of(c)]) for c in categories},
        }
    budgets = sorted(
        {float(r["correction_budget"]) for r in records if r.get("correction_budget") is not None}
    )
    out["budget"] = budgets[0] if len(budgets) == 1 else budgets or None
    return out


def _cell(ci: dict | None, digits: int = 3) -> str:
    if not ci or ci.get("mean") is None or not math.isfinite(ci["mean"]):
        return "-"
    low, high = ci.get("low"), ci.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_table(summary: dict) -> str:
    """A compact text table of ``summary``: mean [95% interval] per metric, overall and
    per category, then the skipped and failed samples by reason."""
    cats = [c for c, k in summary["n_per_category"].items() if k]
    rows = [
        ["", "all", *cats],
        ["n (ok)", f"{summary['n_samples']} ({summary['n_ok']})"]
        + [str(summary["n_per_category"][c]) for c in cats],
        ["accuracy", _cell(summary["accuracy"]["overall"])]
        + [_cell(summary["accuracy"]["per_category"].get(c)) for c in cats],
    ]
    for name, m in summary["metrics"].items():
        label = name + (" (lower better)" if name in summary.get("lower_is_better", []) else "")
        rows.append([label, _cell(m["overall"])] + [_cell(m["per_category"].get(c)) for c in cats])
    halluc = summary.get("hallucination") or {}
    for name in (*HALLUCINATION_SHARES, *HALLUCINATION_MEANS):
        m = halluc.get(name)
        if m and m["overall"].get("n"):
            label = name + (
                f" @ {halluc['budget']:.0%} area"
                if name == "correction_success" and isinstance(halluc.get("budget"), float)
                else ""
            )
            rows.append([label, _cell(m["overall"])] + [_cell(m["per_category"].get(c)) for c in cats])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for kind in ("skipped", "errors"):
        for reason, c in summary[kind]["by_reason"].items():
            lines.append(f"{kind}: {c['count']} ({c['share']:.0%}) {reason}")
    lines.append(
        "values: mean [95% interval]; accuracy: Wilson interval; metrics: t-interval over the "
        f"samples with a heatmap; no interval below n = {MIN_N_FOR_INTERVAL}"
    )
    return "\n".join(lines)
