"""Hallucination metrics of the zoo models on the POPE-style scenes (``shapes-pope``).

Per model, ``n`` balanced yes/no questions ("Is there a {color} {shape}?", half present,
half absent; absent pairs are adversarial binding near misses) go through ``evaluate
--hallucination`` (:func:`vlm_focus.runs.run_evaluation`): accuracy, hallucination rate
("yes" where the label is "no"), miss rate ("no" where it is "yes"), and for every wrong
answer its minimal correction region (:mod:`vlm_focus.hallucination`): the correction success
under the 10 % area budget, the mean region size (over the answers that flipped), the model
passes per search and the seconds.

The regions of a wrong answer are ordered three ways, on the same wrong answers:

- ``occlusion``: by how much removing each region alone lowers the wrong answer's margin
  (the default lens's yes/no answers have no token above alpha = 1, so this is what
  ``evaluate --hallucination`` uses for them);
- ``heat``: by the heatmap of ``--heat-method`` (default ``subset``) explaining the wrong
  answer's tokens with LLR above ``--heat-alpha`` (default 0; answers without such a token
  fall back to occlusion, counted in the table);
- ``random``: a random permutation of the regions (seed 0), the control.

"Touches the evidence": the share of the flipping regions that overlap the question's
evidence mask (a hallucination: the near misses, objects sharing the asked colour or shape;
a miss: the asked object itself). "s / search" is the correction search alone; the heat
rows add the heatmap's own seconds (only where the answer had a token to explain).

Example::

    python benchmarks/hallucination.py --n 400 --threads 1 --out benchmarks/hallucination.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

KINDS = {"hallucinations": "hallucinated", "misses": "missed"}
MODELS = ("shapes-llava", "shapes-qwen2.5-vl", "shapes-onevision", "shapes-multi-encoder")


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def _stats(rows: list[dict]) -> dict:
    """Correction success, mean area, passes and seconds over the records of wrong answers
    (and the success on the hallucinations and on the misses apart)."""
    n = len(rows)
    flipped = [r["correction_area"] for r in rows if r.get("correction_area") is not None]
    explain = [r["timings"]["heatmap"] for r in rows if "heatmap" in (r.get("timings") or {})]
    kinds = {kind: [r for r in rows if r.get(field) is True] for kind, field in KINDS.items()}
    touched = [r["on_evidence"] for r in rows if r.get("on_evidence") is not None]
    return {
        "on_evidence": sum(touched) / len(touched) if touched else math.nan,
        "by_kind": {
            kind: {"n": len(rs), "success": sum(bool(r["correction_success"]) for r in rs)}
            for kind, rs in kinds.items()
        },
        "explain_seconds": sum(explain) / len(explain) if explain else math.nan,
        "n_wrong": n,
        "success": sum(bool(r["correction_success"]) for r in rows) / n if n else math.nan,
        "flipped": len(flipped) / n if n else math.nan,
        "area": sum(flipped) / len(flipped) if flipped else math.nan,
        "passes": sum(r["correction_passes"] for r in rows) / n if n else math.nan,
        "seconds": sum(r["correction_seconds"] for r in rows) / n if n else math.nan,
        "orders": sorted({r["correction_order"] for r in rows}),
        "n_heat": sum(r["correction_order"] == "heat" for r in rows),
    }


def _mask(run: Path, rec: dict):
    import numpy as np

    rel = rec.get("correction_mask")
    return np.load(run / rel) > 0.5 if rel else None


def _on_evidence(evidence, mask) -> bool | None:
    """Whether a flipping region touches the question's evidence (None: no flip or no evidence):
    for a hallucination the near misses (objects sharing the colour or the shape), for a miss
    the object itself."""
    if mask is None or evidence is None or not evidence.any():
        return None
    return bool((mask & evidence).any())


def run_model(name: str, n: int, seed: int, heat_method: str, heat_alpha: float, root: Path) -> dict:
    import vlm_focus
    from vlm_focus.data import get_dataset
    from vlm_focus.hallucination import correct_answer
    from vlm_focus.runs import read_results, run_evaluation

    t0 = time.perf_counter()
    lens = vlm_focus.load(name, method="occlusion", device="cpu", metrics=False)
    summary = run_evaluation(
        lens, "shapes-pope", limit=n, seed=seed, out=root / name, progress=False, hallucination=True
    )
    seconds = time.perf_counter() - t0
    records = read_results(root / name / "results.jsonl")
    wrong = [r for r in records if "correction_success" in r]
    ds = get_dataset("shapes-pope", limit=n, seed=seed)
    for r in wrong:
        r["on_evidence"] = _on_evidence(ds.get(r["id"]).evidence, _mask(root / name, r))
    h = summary["hallucination"]
    out = {
        "model": name,
        "n": summary["n_samples"],
        "accuracy": summary["accuracy"]["overall"]["mean"],
        "hallucination_rate": h["hallucination_rate"]["overall"]["mean"],
        "hallucinations": h["hallucination_rate"]["overall"]["k"],
        "miss_rate": h["miss_rate"]["overall"]["mean"],
        "misses": h["miss_rate"]["overall"]["k"],
        "seconds": seconds,
        "orders": {"auto (evaluate)": _stats(wrong)},
    }
    if not wrong:
        return out
    # The same wrong answers, regions ordered by a heatmap explaining the wrong answer.
    heat_lens = vlm_focus.load(name, method=heat_method, device="cpu", metrics=False, alpha=heat_alpha)
    run_evaluation(
        heat_lens,
        ds,
        seed=seed,
        out=root / f"{name}-heat",
        progress=False,
        hallucination=True,
        ids=[r["id"] for r in wrong],
    )
    heat_rows = [
        r for r in read_results(root / f"{name}-heat" / "results.jsonl") if "correction_success" in r
    ]
    for r in heat_rows:
        r["on_evidence"] = _on_evidence(ds.get(r["id"]).evidence, _mask(root / f"{name}-heat", r))
    out["orders"][f"heat ({heat_method}, alpha {heat_alpha:g})"] = _stats(heat_rows)
    # Two controls on the same answers: occlusion order always, and a random order.
    for kind in ("occlusion", "random"):
        rows = []
        for r in wrong:
            s = ds.get(r["id"])
            res = correct_answer(lens, s.load_image(), s.question, r["answer"], s.answer or "", order=kind)
            assert res is not None
            touched = _on_evidence(s.evidence, res.mask if res.correction.flipped else None)
            kind_of = {"hallucinated": r.get("hallucinated"), "missed": r.get("missed")}
            rows.append({**res.record(), **kind_of, "on_evidence": touched})
        out["orders"][kind] = _stats(rows)
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| model | n | accuracy | hallucination rate (yes when absent) | miss rate (no when present) | s (evaluate) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        half = r["n"] // 2
        lines.append(
            f"| {r['model']} | {r['n']} | {_fmt(r['accuracy'], True)} | "
            f"{_fmt(r['hallucination_rate'], True)} ({r['hallucinations']}/{half}) | "
            f"{_fmt(r['miss_rate'], True)} ({r['misses']}/{r['n'] - half}) | {r['seconds']:.1f} |"
        )
    lines += [
        "",
        "| model | region order | wrong answers | correction success @ 10 % | of hallucinations | "
        "of misses | flipped at all | mean minimal correction region | touches the evidence | "
        "passes / search | s / search |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for order, s in r["orders"].items():
            note = f" ({s['n_heat']} by heat)" if s["n_heat"] else ""
            k = s["by_kind"]
            extra = (
                f" (+ {s['explain_seconds']:.2f} s heatmap)" if math.isfinite(s["explain_seconds"]) else ""
            )
            lines.append(
                f"| {r['model']} | {order}{note} | {s['n_wrong']} | {_fmt(s['success'], True)} | "
                f"{k['hallucinations']['success']}/{k['hallucinations']['n']} | "
                f"{k['misses']['success']}/{k['misses']['n']} | "
                f"{_fmt(s['flipped'], True)} | {_fmt(s['area'], True)} | {_fmt(s['on_evidence'], True)} | "
                f"{s['passes']:.1f} | "
                f"{s['seconds']:.2f}{extra} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--n", type=int, default=400, help="questions per model (half present, half absent)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--heat-method", default="subset")
    p.add_argument("--heat-alpha", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            results.append(run_model(name, args.n, args.seed, args.heat_method, args.heat_alpha, Path(tmp)))
            print(table(results[-1:]), flush=True)
    print()
    print(table(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
