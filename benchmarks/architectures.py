"""Does the vision architecture change where a model looks? (the paper's Table 4, on CPU).

The zoo models share one language model initialisation (``shapes-llava``'s) and differ in
their vision side: CLIP ViT (LLaVA-1.5), Qwen2.5-VL's native-resolution ViT with window
attention and token merging, LLaVA-OneVision's SigLIP with any-resolution crops, and a
ViT + ConvNeXt multi-encoder. For each model, iGOS++ explains the same ``--limit`` scenes
(``benchmarks/ground_truth.py``: deletion/insertion, pointing game, sanity check; resumable),
then every pair of models is compared on the scenes both explained:

- focus similarity: Spearman rank correlation of the two heatmaps, per scene (mean);
- faithfulness difference: paired Wilcoxon signed-rank test on insertion - deletion.

and all models together with the Friedman test on insertion - deletion (scenes explained
by every model). The paper does not say which test gave its p-values; these are ours.

How high would the heatmap correlation be *without* an architecture change? ``--models``
takes ``label=path`` items, so a second training run of one architecture (another
``--seed``) joins as its own model, and ``--reference label:model`` names it: then, for
every other model ``X``, the per-scene correlation of the same-architecture pair is compared
with that of ``model`` and ``X`` (paired Wilcoxon on the scenes all three explained).

    python benchmarks/architectures.py --limit 100 --sanity-limit 20 --out runs/arch
    python benchmarks/architectures.py --models shapes-llava,shapes-qwen2.5-vl,shapes-onevision,\
        shapes-multi-encoder,onevision-seed1=runs/ov-s1-3 --reference onevision-seed1:shapes-onevision
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import ground_truth  # noqa: E402

MODELS = {  # zoo name: (vision architecture, language model)
    "shapes-llava": ("CLIP ViT", "Llama"),
    "shapes-qwen2.5-vl": ("Qwen2.5-VL ViT (window attention, 2x2 merge)", "Qwen2"),
    "shapes-onevision": ("SigLIP, any-resolution crops", "Qwen2"),
    "shapes-multi-encoder": ("CLIP ViT + ConvNeXt", "Llama"),
}


def load_run(run: Path) -> dict[str, dict]:
    """``id -> record`` of the explained samples of one evaluation run, with its heatmap."""
    out = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("status") == "ok":
            rec["map"] = np.load(run / rec["heatmap"], allow_pickle=False)
            out[rec["id"]] = rec
    return out


def gain(rec: dict) -> float:
    return rec["insertion"] - rec["deletion"]


def map_spearman(a: dict, b: dict) -> float:
    return float(stats.spearmanr(a["map"].ravel(), b["map"].ravel())[0])


def compare(a: dict[str, dict], b: dict[str, dict]) -> tuple[int, float, float]:
    """``(n, mean Spearman of the heatmaps, Wilcoxon p on insertion - deletion)``."""
    common = sorted(a.keys() & b.keys())
    rho = [map_spearman(a[i], b[i]) for i in common]
    p = stats.wilcoxon([gain(a[i]) for i in common], [gain(b[i]) for i in common]).pvalue
    return len(common), float(np.nanmean(rho)), float(p)


def reference_lines(runs: dict[str, dict], reference: str, model: str) -> list[str]:
    """Per other model ``X``: mean Spearman of (reference, model) vs (model, X) on the scenes
    all three explained, and the paired Wilcoxon p of the difference."""
    lines = [
        f"| other model X | scenes | Spearman ({reference}, {model}) | Spearman ({model}, X) | Wilcoxon p |",
        "|---|---|---|---|---|",
    ]
    for other in runs:
        if other in (reference, model):
            continue
        common = sorted(runs[reference].keys() & runs[model].keys() & runs[other].keys())
        same = [map_spearman(runs[reference][i], runs[model][i]) for i in common]
        cross = [map_spearman(runs[model][i], runs[other][i]) for i in common]
        p = stats.wilcoxon(same, cross).pvalue
        lines.append(f"| {other} | {len(common)} | {np.mean(same):.3f} | {np.mean(cross):.3f} | {p:.2g} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--sanity-limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/arch"))
    ap.add_argument(
        "--reference",
        default=None,
        help="label:model - the model 'label' is another training run of 'model' (same architecture)",
    )
    args = ap.parse_args(argv)
    models = dict(item.split("=", 1) if "=" in item else (item, item) for item in args.models.split(","))
    names = list(models)
    rows = []
    for name, model in models.items():
        out = args.out / name
        ground_truth.main(
            ["--model", model, "--methods", "igos++", "--limit", str(args.limit), "--threads", str(args.threads),
             "--sanity-limit", str(args.sanity_limit), "--out", str(out)]
        )  # fmt: skip
        rows.append((out / "table.md").read_text().splitlines()[-1].replace("| igos++ |", f"| {name} |", 1))
    runs = {n: load_run(args.out / n / "igos++") for n in names}
    lines = [ground_truth.HEADER.replace("| method |", "| model |", 1), *rows, ""]
    lines += [
        "| model A | model B | scenes | heatmap Spearman (mean) | Wilcoxon p (ins − del) |",
        "|---|---|---|---|---|",
    ]
    for a, b in itertools.combinations(names, 2):
        n, rho, p = compare(runs[a], runs[b])
        lines.append(f"| {a} | {b} | {n} | {rho:.3f} | {p:.2g} |")
    if len(names) >= 3:  # the Friedman test needs three models or more
        shared = sorted(set.intersection(*(set(r) for r in runs.values())))
        p = stats.friedmanchisquare(*([gain(runs[n][i]) for i in shared] for n in names)).pvalue
        lines += [
            "",
            f"Friedman test, all {len(names)} models (ins − del, {len(shared)} scenes): p = {p:.2g}",
        ]
    if args.reference:
        reference, model = args.reference.split(":")
        lines += ["", *reference_lines(runs, reference, model)]
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
