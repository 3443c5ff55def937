"""Deletion / insertion of the same heatmaps under both protocols (``ours`` and ``paper``).

Reads a finished ``vlm-focus evaluate`` folder (shapes scenes), rebuilds each explained
sample's scorer (same answer: greedy generation again, checked against the recorded tokens;
same selected tokens, baseline, score, grid and steps) and scores the saved heatmap with
``protocol="ours"`` and ``protocol="paper"``. The ``ours`` value must equal the recorded one
(printed as a check): the two protocols then differ only by the procedure, not the maps.

    python benchmarks/metric_protocols.py --run runs/compare/runs/shapes-llava --model shapes-llava
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import vlm_focus
from vlm_focus.baselines import make_baseline
from vlm_focus.batching import CPU_BATCH
from vlm_focus.data import get_dataset
from vlm_focus.images import to_tensor
from vlm_focus.metrics import deletion_insertion, score_fn


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="an evaluate folder on the shapes dataset")
    ap.add_argument("--model", required=True, help="the model that run explained")
    ap.add_argument("--limit", type=int, default=None, help="at most this many explained samples")
    args = ap.parse_args(argv)
    cfg = json.loads((args.run / "run.json").read_text())
    o, d = cfg["lens_options"], cfg["dataset_options"]
    records = [json.loads(line) for line in (args.run / "results.jsonl").read_text().splitlines()]
    records = [r for r in records if r.get("status") == "ok"][: args.limit]
    data = get_dataset(
        "shapes",
        None,
        seed=d["seed"],
        qtypes=d["qtypes"],
        size=d["size"],
        limit=1 + max(r["index"] for r in records),
    )
    adapter = vlm_focus.load(args.model, device="cpu").adapter
    batch = o["batch_size"] if isinstance(o["batch_size"], int) else CPU_BATCH  # "auto" on CPU
    rows, t0 = [], time.perf_counter()
    for rec in records:
        sample = data.get(rec["id"])
        pixels = to_tensor(sample.load_image(), o["working_size"])
        base = make_baseline(o["baseline"], pixels)
        ids = adapter.generate(pixels, sample.question, max_new_tokens=o["max_new_tokens"])
        if adapter.decode_tokens(ids) != rec["tokens"]:
            raise SystemExit(f"{rec['id']}: the answer differs from the recorded one")
        fn = score_fn(
            adapter.scorer(pixels, sample.question, ids, batch_size=batch),
            rec["selected"],
            o["metric_score"],
        )
        heat = torch.from_numpy(np.load(args.run / rec["heatmap"]))
        row = {"id": rec["id"], "recorded": (rec["deletion"], rec["insertion"])}
        for protocol in ("ours", "paper"):
            out = deletion_insertion(
                fn, pixels, base, heat, o["metric_grid"], o["metric_steps"], batch, protocol
            )
            row[protocol] = (out["deletion_auc"], out["insertion_auc"])
        rows.append(row)
    seconds = time.perf_counter() - t0
    check = max(abs(r["ours"][k] - r["recorded"][k]) for r in rows for k in (0, 1))
    print(f"{len(rows)} heatmaps of {args.run}; max |ours - recorded| = {check:.2g}; {seconds:.0f} s")
    print("| metric | ours | paper | paper − ours (mean) | Spearman across samples |")
    print("|---|---|---|---|---|")
    for k, name in enumerate(("deletion", "insertion")):
        a = np.array([r["ours"][k] for r in rows])
        b = np.array([r["paper"][k] for r in rows])
        rho = stats.spearmanr(a, b).statistic if len(rows) > 2 else math.nan
        print(f"| {name} | {a.mean():.3f} | {b.mean():.3f} | {np.mean(b - a):+.3f} | {rho:.3f} |")


if __name__ == "__main__":
    main()
