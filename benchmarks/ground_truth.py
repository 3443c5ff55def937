"""The ground-truth comparison of heatmap methods (paper Table 2, on scenes with known evidence).

For each method: ``vlm-focus evaluate`` on ``--limit`` fresh scenes (all question types),
then a sanity-check run (model-parameter randomisation) on ``--sanity-limit`` of them.
Runs are resumable (re-running the command continues them). Prints a Markdown table.

    python benchmarks/ground_truth.py --model shapes-llava --limit 200 --sanity-limit 40 --out runs/gt
    python benchmarks/ground_truth.py --methods subset --options segments=slic --limit 50 --out runs/gt-slic
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import vlm_focus
from vlm_focus.cli.common import parse_options
from vlm_focus.runs import run_evaluation


def _m(summary: dict, name: str, qtype: str | None = None) -> float:
    m = summary["metrics"].get(name)
    if m is None:
        return math.nan
    ci = m["overall"] if qtype is None else m["per_category"].get(qtype)
    return ci["mean"] if ci and ci.get("mean") is not None else math.nan


def row(method: str, s: dict, sanity: dict | None) -> str:
    cs = [_m(s, "pointing_game", q) for q in ("color", "shape")]
    cells = [
        method,
        f"{_m(s, 'deletion'):.3f}",
        f"{_m(s, 'insertion'):.3f}",
        f"{_m(s, 'insertion') - _m(s, 'deletion'):.3f}",
        f"{sum(cs) / 2:.3f}",
        f"{_m(s, 'pointing_game'):.3f}",
        f"{_m(s, 'relevance_mass'):.3f}",
        f"{_m(s, 'relevance_rank'):.3f}",
        f"{_m(sanity, 'sanity_spearman'):.3f}" if sanity else "-",
        f"{s['seconds']['mean_per_sample']:.2f}",
        f"{s['n_ok']}/{s['n_samples']}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| method | deletion ↓ | insertion ↑ | ins − del ↑ | pointing (colour+shape) ↑ | pointing (all) ↑ "
    "| relevance mass ↑ | relevance rank ↑ | sanity Spearman ↓ | s / sample | explained |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-llava")
    ap.add_argument("--methods", default=",".join(vlm_focus.list_methods()))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--sanity-limit", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/gt"))
    ap.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE", help="method options (-O)")
    args = ap.parse_args(argv)
    options = parse_options(args.options)
    torch.set_num_threads(args.threads)
    rows = []
    for method in args.methods.split(","):
        lens = vlm_focus.load(args.model, method=method, device="cpu", **options)
        summary = run_evaluation(lens, "shapes", args.limit, args.out / method, resume=True)
        sanity = None
        if args.sanity_limit:
            sanity = run_evaluation(
                lens, "shapes", args.sanity_limit, args.out / f"{method}-sanity", resume=True, sanity=True
            )
        label = " ".join([method, *args.options])
        rows.append(row(label, summary, sanity))
        print(rows[-1], flush=True)
    table = HEADER + "\n" + "\n".join(rows)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    print(json.dumps({"model": args.model, "limit": args.limit, "sanity_limit": args.sanity_limit}))


if __name__ == "__main__":
    main()
