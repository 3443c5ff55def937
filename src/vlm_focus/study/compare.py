"""``compare``: do several models look at the same regions, and do their maps explain their
scores equally well? (the paper's Table 4; it replaces the former ``benchmarks/architectures.py``).

Every model explains the same samples (``--models``, run with ``evaluate`` into
``OUT/runs/<label>``, resumable; or finished ``--runs`` folders). Then, on the samples both
models of a pair explained:

- **map agreement**: per sample, the Spearman rank correlation and the soft IoU of the two
  heatmaps (:func:`~vlm_focus.metrics.rank_correlation`, :func:`~vlm_focus.metrics.soft_iou`),
  averaged over the samples;
- **faithfulness**: deletion and insertion of each model and the two-sided **Wilcoxon
  signed-rank test** on the per-sample differences (paired: the same samples), one test for
  deletion and one for insertion; with three models or more, the **Friedman test** across
  all of them on the samples every model explained.

``--reference A:B`` names a same-architecture pair (e.g. two training runs of one recipe):
for every other model X, the per-sample correlation of (A, B) is compared with that of
(B, X) by the Wilcoxon signed-rank test - how much of a difference between architectures
is more than training noise. ``--tags LABEL=VISION:LLM`` tags models; the pairs with the same
vision tag and different LLM tags form the contrast "same vision, different LLM", and
the pairs with the same LLM tag and different vision tags the contrast "same LLM, different
vision" (the paper's two contrasts, p = 0.121 and p = 0.0008). Per sample, a contrast's value is the mean
correlation over its pairs that explained the sample; the two contrasts are compared by the
Wilcoxon signed-rank test over the samples both have. The paper does not name its test;
these are ours.
"""

from __future__ import annotations

import argparse
import itertools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .base import Study, StudyResult, register_study
from .common import add_data_arguments
from .folders import RunFolder, add_models_and_runs, collect, labelled

COLUMNS = [
    "kind",
    "model_a",
    "model_b",
    "tags",
    "n",
    "deletion_a",
    "deletion_b",
    "deletion_p",
    "insertion_a",
    "insertion_b",
    "insertion_p",
    "map_spearman",
    "map_soft_iou",
    "spearman_vs",
    "spearman_p",
]
SAME_VISION = "same vision, different LLM"
SAME_LLM = "same LLM, different vision"


# ----- statistics (pure) ---------------------------------------------------------------------
def _finite_pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InputError(f"paired values need equal lengths, got {len(x)} and {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the Wilcoxon signed-rank test of the pairs ``(a_i, b_i)``.

    scipy's defaults: zero differences dropped, the exact null distribution for small
    samples without ties, else the normal approximation. Pairs with a NaN are left out;
    NaN when no pair differs (nothing to test)."""
    from scipy import stats

    x, y = _finite_pairs(a, b)
    if not np.any(x != y):
        return math.nan
    return float(stats.wilcoxon(x, y).pvalue)


def friedman_p(columns: Sequence[Sequence[float]]) -> float:
    """p of the Friedman test across ``k >= 3`` paired samples (one sequence per model, the
    same samples in the same order); rows with a NaN are left out; NaN when undefined."""
    from scipy import stats

    data = np.asarray(columns, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 3:
        return math.nan
    data = data[:, np.isfinite(data).all(axis=0)]
    if data.shape[1] < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(stats.friedmanchisquare(*data).pvalue)
    return p if math.isfinite(p) else math.nan


def _mean(values: Sequence[float]) -> float:
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


# ----- the comparison ----------------------------------------------------------------------
class Comparison:
    """The run folders of several models on one set of samples, with cached per-sample map
    agreement of each pair."""

    def __init__(self, folders: Sequence[RunFolder]) -> None:
        self.folders = {f.label: f for f in folders}
        self._agree: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}

    def shared(self, *labels: str) -> list[str]:
        """Ids every one of ``labels`` explained, in the first one's order."""
        oks = [self.folders[label].ok for label in labels]
        return [sid for sid in oks[0] if all(sid in ok for ok in oks[1:])]

    def agreement(self, a: str, b: str) -> dict[str, tuple[float, float]]:
        """``id -> (Spearman, soft IoU)`` of the heatmaps of ``a`` and ``b`` per shared sample."""
        from ..metrics import rank_correlation, soft_iou

        key = (a, b) if a <= b else (b, a)
        if key not in self._agree:
            fa, fb = self.folders[key[0]], self.folders[key[1]]
            out = {}
            for sid in self.shared(*key):
                ha, hb = fa.heatmap(sid), fb.heatmap(sid)
                out[sid] = (rank_correlation(ha, hb), soft_iou(ha, hb))
            self._agree[key] = out
        return self._agree[key]

    def values(self, label: str, metric: str, ids: Sequence[str]) -> list[float]:
        ok = self.folders[label].ok
        return [math.nan if ok[i].get(metric) is None else float(ok[i][metric]) for i in ids]

    # ----- rows ----------------------------------------------------------------------------
    def model_rows(self, tags: dict[str, tuple[str, str]]) -> list[dict]:
        rows = []
        for label, f in self.folders.items():
            ids = list(f.ok)
            rows.append(
                {
                    "kind": "model",
                    "model_a": label,
                    "tags": " / ".join(tags[label]) if label in tags else None,
                    "n": len(ids),
                    "deletion_a": _mean(self.values(label, "deletion", ids)),
                    "insertion_a": _mean(self.values(label, "insertion", ids)),
                }
            )
        return rows

    def pair_row(self, a: str, b: str) -> dict:
        agree = self.agreement(a, b)
        ids = list(agree)
        row: dict[str, Any] = {"kind": "pair", "model_a": a, "model_b": b, "n": len(ids)}
        for metric in ("deletion", "insertion"):
            va, vb = self.values(a, metric, ids), self.values(b, metric, ids)
            row.update(
                {f"{metric}_a": _mean(va), f"{metric}_b": _mean(vb), f"{metric}_p": wilcoxon_p(va, vb)}
            )
        row["map_spearman"] = _mean([v[0] for v in agree.values()])
        row["map_soft_iou"] = _mean([v[1] for v in agree.values()])
        return row

    def reference_rows(self, ref: str, model: str) -> list[dict]:
        """Per other model X: Spearman (ref, model) vs (model, X) on the samples all three explained."""
        rows = []
        for other in self.folders:
            if other in (ref, model):
                continue
            ids = self.shared(ref, model, other)
            same = [self.agreement(ref, model)[i][0] for i in ids]
            cross = [self.agreement(model, other)[i][0] for i in ids]
            rows.append(
                {
                    "kind": "reference",
                    "model_a": f"{ref}~{model}",
                    "model_b": other,
                    "n": len(ids),
                    "map_spearman": _mean(same),
                    "spearman_vs": _mean(cross),
                    "spearman_p": wilcoxon_p(same, cross),
                }
            )
        return rows

    def contrast(self, pairs: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
        """``id -> (mean Spearman, mean soft IoU)`` over the ``pairs`` that explained the sample."""
        acc: dict[str, list[tuple[float, float]]] = {}
        for a, b in pairs:
            for sid, v in self.agreement(a, b).items():
                acc.setdefault(sid, []).append(v)
        return {sid: (_mean([v[0] for v in vs]), _mean([v[1] for v in vs])) for sid, vs in acc.items()}

    def contrast_rows(self, tags: dict[str, tuple[str, str]]) -> tuple[list[dict], list[str]]:
        kinds = contrast_pairs(tags, list(self.folders))
        rows, notes, per_scene = [], [], {}
        for kind, pairs in kinds.items():
            if not pairs:
                notes.append(f"no two tagged models form the contrast '{kind}'")
                continue
            per_scene[kind] = values = self.contrast(pairs)
            rows.append(
                {
                    "kind": kind,
                    "model_a": f"{len(pairs)} pair(s)",
                    "n": len(values),
                    "map_spearman": _mean([v[0] for v in values.values()]),
                    "map_soft_iou": _mean([v[1] for v in values.values()]),
                }
            )
            notes.append(f"{kind}: " + "; ".join(f"{a}~{b}" for a, b in pairs))
        if len(per_scene) == 2:
            a, b = per_scene[SAME_VISION], per_scene[SAME_LLM]
            ids = [sid for sid in a if sid in b]
            x, y = [a[i][0] for i in ids], [b[i][0] for i in ids]
            rows.append(
                {
                    "kind": "contrast test",
                    "model_a": SAME_VISION,
                    "model_b": SAME_LLM,
                    "n": len(ids),
                    "map_spearman": _mean(x),
                    "spearman_vs": _mean(y),
                    "spearman_p": wilcoxon_p(x, y),
                }
            )
        return rows, notes

    def friedman_row(self) -> dict | None:
        labels = list(self.folders)
        if len(labels) < 3:
            return None
        ids = self.shared(*labels)
        row: dict[str, Any] = {"kind": "friedman", "model_a": f"all {len(labels)} models", "n": len(ids)}
        for metric in ("deletion", "insertion"):
            row[f"{metric}_p"] = friedman_p([self.values(label, metric, ids) for label in labels])
        return row


def contrast_pairs(
    tags: dict[str, tuple[str, str]], labels: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """The tagged pairs of each contrast: same vision and different LLM; same LLM and
    different vision (pairs of ``labels`` order; untagged models take no part)."""
    tagged = [label for label in labels if label in tags]
    out: dict[str, list[tuple[str, str]]] = {SAME_VISION: [], SAME_LLM: []}
    for a, b in itertools.combinations(tagged, 2):
        (va, la), (vb, lb) = tags[a], tags[b]
        if va == vb and la != lb:
            out[SAME_VISION].append((a, b))
        elif la == lb and va != vb:
            out[SAME_LLM].append((a, b))
    return out


def parse_tags(items: Sequence[str] | None, labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``["m=CLIP:Llama"]`` -> ``{"m": ("CLIP", "Llama")}``; unknown labels are refused."""
    out = {}
    for label, value in labelled(items, "--tags", need_label=True).items():
        if label not in labels:
            raise InputError(f"--tags: {label!r} is not one of the models {list(labels)}")
        vision, sep, llm = value.partition(":")
        if not sep or not vision.strip() or not llm.strip() or ":" in llm:
            raise InputError(f"--tags: {label}={value!r} is not LABEL=VISION:LLM")
        out[label] = (vision.strip(), llm.strip())
    return out


def parse_reference(text: str | None, labels: Sequence[str]) -> tuple[str, str] | None:
    """``"A:B"`` -> ``("A", "B")``, both model labels; ``None`` for no reference."""
    if text is None:
        return None
    a, sep, b = text.partition(":")
    if not sep or a == b or a not in labels or b not in labels:
        raise InputError(f"--reference {text!r}: give A:B, two different labels of {list(labels)}")
    return a, b


def compare_table(
    folders: Sequence[RunFolder],
    tags: dict[str, tuple[str, str]] | None = None,
    reference: tuple[str, str] | None = None,
) -> StudyResult:
    """The comparison table of ``folders`` (at least two models)."""
    if len(folders) < 2:
        raise InputError(f"compare needs at least two models, got {[f.label for f in folders]}")
    tags = tags or {}
    c = Comparison(folders)
    rows = c.model_rows(tags)
    rows += [c.pair_row(a, b) for a, b in itertools.combinations(c.folders, 2)]
    friedman = c.friedman_row()
    if friedman is not None:
        rows.append(friedman)
    notes = []
    if reference is not None:
        rows += c.reference_rows(*reference)
    if tags:
        more, contrast_notes = c.contrast_rows(tags)
        rows += more
        notes += contrast_notes
    notes += [
        "pair: means over the samples both models explained; deletion_p / insertion_p: two-sided "
        "Wilcoxon signed-rank test on the paired per-sample values",
        "map_spearman / map_soft_iou: per-sample Spearman rank correlation / soft IoU of the two heatmaps, mean",
        "friedman: Friedman test across all models on the samples every model explained",
    ]
    if reference is not None:
        notes.append(
            "reference: map_spearman of the same-architecture pair vs spearman_vs of (its second model, "
            "model_b), per sample; spearman_p: Wilcoxon signed-rank"
        )
    if tags:
        notes.append(
            "contrast test: per-sample mean correlation over each contrast's pairs, compared by the "
            "Wilcoxon signed-rank test over the samples both contrasts have (paper: p = 0.121 same "
            "vision; p = 0.0008 same LLM; its test is not named)"
        )
    details = {
        "pairs": {
            f"{a}~{b}": {
                "ids": list(v),
                "spearman": [x[0] for x in v.values()],
                "soft_iou": [x[1] for x in v.values()],
            }
            for (a, b), v in c._agree.items()
        },
        "folders": {f.label: str(f.path) for f in folders},
        "tags": {k: list(v) for k, v in tags.items()},
        "reference": list(reference) if reference else None,
    }
    return StudyResult(
        "Model comparison on the same samples (paper Table 4)",
        COLUMNS,
        rows,
        notes,
        details,
        plot=plot_compare,
    )


def plot_compare(fig: Any, result: StudyResult) -> None:
    """Left: deletion and insertion per model; right: map correlation per pair."""
    models = [r for r in result.rows if r["kind"] == "model"]
    pairs = [r for r in result.rows if r["kind"] in ("pair", "reference")]
    ax = fig.add_subplot(1, 2, 1)
    xs = np.arange(len(models))
    for j, key in enumerate(("deletion_a", "insertion_a")):
        ax.bar(xs + (j - 0.5) * 0.4, [r.get(key) for r in models], width=0.4, label=key[:-2])
    ax.set_xticks(xs)
    ax.set_xticklabels([r["model_a"] for r in models], rotation=30, ha="right", fontsize=7)
    ax.set_title("faithfulness per model", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    labels = [f"{r['model_a']} / {r['model_b']}" for r in pairs]
    ax.barh(np.arange(len(pairs)), [r.get("map_spearman") for r in pairs], color="tab:green")
    ax.set_yticks(np.arange(len(pairs)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.set_xlabel("mean per-sample Spearman of the heatmaps", fontsize=8)
    ax.set_title("map agreement per pair", fontsize=9)


@register_study("compare")
class Compare(Study):
    summary = (
        "Several models on the same samples: per-sample map correlation, paired Wilcoxon tests on "
        "deletion and insertion, a same-architecture reference pair and the paper's two contrasts (Table 4)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_data_arguments(parser)
        g = parser.add_argument_group("compare")
        add_models_and_runs(g)
        g.add_argument(
            "--tags",
            nargs="+",
            default=None,
            metavar="LABEL=VISION:LLM",
            help="vision and LLM tags of models, for the contrasts same vision / different LLM and "
            "same LLM / different vision, e.g. shapes-llava=CLIP:Llama",
        )
        g.add_argument(
            "--reference",
            default=None,
            metavar="A:B",
            help="A and B are the same architecture (e.g. two training runs): the scale of training noise",
        )

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        models = labelled(args.models, "--models")
        runs = labelled(args.runs, "--runs", need_label=True)
        if not models and not runs:
            models = {args.model: args.model}
        labels = [*models, *runs]
        tags = parse_tags(args.tags, labels)
        reference = parse_reference(args.reference, labels)
        if len(labels) < 2:
            raise InputError(f"compare needs at least two models (--models / --runs), got {labels}")
        folders = collect(args, Path(out), models, runs)
        if folders is None:
            return None
        result = compare_table(folders, tags, reference)
        result.details["settings"] = {
            "models": models,
            "runs": runs,
            "method": getattr(args, "method", None),
            "metric_protocol": getattr(args, "metric_protocol", None),
        }
        return result
