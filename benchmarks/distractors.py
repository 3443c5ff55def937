"""Does the model use the other objects? Object-level deletion and insertion beside iGOS++.

Asked for the circle's colour, a zoo model's iGOS++ map also puts heat on the other objects
(see BENCHMARKS.md). This checks whether the *model* depends on them: on colour and shape
questions about scenes with at least two objects (seed 2026, fresh scenes), after
``lens.explain`` has selected the key tokens and drawn the map, it scores the selected
tokens' mean probability ``p`` with whole objects replaced by the blur baseline:

- deletion: the asked-about object deleted, one other object deleted, all others deleted;
- insertion (from the blurred image): only the asked-about object shown, only one other
  object shown;

and reads the map's mean heat on every object. Per model it prints the means, how often the
asked-about object has the most heat of all objects, and the Spearman correlation, over
(scene, other object) pairs, between an object's heat and what deleting or showing it
alone does to ``p``. Masks are widened by 1 px to take the shapes' anti-aliased edges.

    python benchmarks/distractors.py --models shapes-llava,shapes-qwen2.5-vl --n 40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_dilation
from scipy.stats import spearmanr
from tqdm import tqdm

import vlm_focus
from vlm_focus.baselines import make_baseline
from vlm_focus.data.shapes import make_sample
from vlm_focus.images import to_tensor
from vlm_focus.methods.compose import phi

SEED = 2026


def object_masks(sample, shape: tuple[int, int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The asked-about object's mask and the others', widened by 1 px, on the pixel grid."""
    masks = []
    for o in sample.objects:
        m = torch.from_numpy(binary_dilation(o.mask, iterations=1).astype(np.float32))
        if m.shape != shape:
            m = torch.nn.functional.interpolate(m[None, None], size=shape, mode="nearest")[0, 0]
        masks.append(m)
    target = [i for i, o in enumerate(sample.objects) if (o.mask & sample.evidence).any()]
    if len(target) != 1:
        raise ValueError(f"{sample.id}: expected one evidence object, got {len(target)}")
    t = target[0]
    return masks[t], [m for i, m in enumerate(masks) if i != t]


def probe(lens, sample) -> dict | None:
    """Scores and heat for one sample; None when no answer token depends on the image."""
    ex = lens.explain(sample.image, sample.question, metrics=False)
    if not ex.selected:
        return None
    adapter = lens.adapter
    pixels = to_tensor(sample.image, lens.options["working_size"]).to(adapter.device)
    base = make_baseline(lens.options["baseline"], pixels)
    target, others = object_masks(sample, tuple(pixels.shape[-2:]))
    every_other = torch.clamp(sum(others), max=1.0)

    def delete(m):  # the object becomes baseline
        return phi(pixels, base, 1 - m)

    def show(m):  # only the object is the image
        return phi(pixels, base, m)

    images = [pixels, delete(target), delete(every_other), show(target)]
    images += [delete(m) for m in others] + [show(m) for m in others]
    scorer = adapter.scorer(pixels, sample.question, torch.tensor(ex.token_ids), batch_size=16)
    with torch.no_grad():
        p = scorer(torch.stack(images)).float().exp()[:, ex.selected].mean(1).cpu().numpy()
    k = len(others)
    heat = torch.from_numpy(ex.heatmap)

    def mean_heat(m):
        m = torch.nn.functional.interpolate(m[None, None].cpu(), size=heat.shape, mode="nearest")[0, 0] > 0
        return float(heat[m].mean())

    return {
        "id": sample.id,
        "qtype": sample.qtype,
        "p": float(p[0]),
        "p_delete_target": float(p[1]),
        "p_delete_others": float(p[2]),
        "p_show_target": float(p[3]),
        "p_delete_other": p[4 : 4 + k].tolist(),
        "p_show_other": p[4 + k :].tolist(),
        "heat_target": mean_heat(target),
        "heat_other": [mean_heat(m) for m in others],
        "heat_background": float(heat[(torch.clamp(target + every_other, max=1) == 0).cpu()].mean()),
    }


def summarise(rows: list[dict]) -> dict:
    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    pairs = [
        (h, r["p"] - d, s)
        for r in rows
        for h, d, s in zip(r["heat_other"], r["p_delete_other"], r["p_show_other"])
    ]
    heat, drop, shown = (np.array(x) for x in zip(*pairs))
    return {
        "scenes": len(rows),
        "p": mean("p"),
        "p_delete_target": mean("p_delete_target"),
        "p_delete_one_other": float(np.mean([np.mean(r["p_delete_other"]) for r in rows])),
        "p_delete_others": mean("p_delete_others"),
        "p_show_target": mean("p_show_target"),
        "p_show_one_other": float(np.mean([np.mean(r["p_show_other"]) for r in rows])),
        "heat_target": mean("heat_target"),
        "heat_other": float(np.mean([np.mean(r["heat_other"]) for r in rows])),
        "heat_background": mean("heat_background"),
        "target_hottest": float(np.mean([r["heat_target"] > max(r["heat_other"]) for r in rows])),
        "spearman_heat_vs_deletion_drop": float(spearmanr(heat, drop).statistic),
        "spearman_heat_vs_shown_alone": float(spearmanr(heat, shown).statistic),
    }


HEADER = (
    "| model | scenes | p | p, object deleted | p, one other deleted | p, all others deleted "
    "| p, only object shown | p, only one other shown | heat object / others / background "
    "| object hottest | ρ(heat, drop when deleted) | ρ(heat, p when shown alone) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(model: str, s: dict) -> str:
    cells = [
        model,
        str(s["scenes"]),
        *(f"{s[k]:.3f}" for k in ("p", "p_delete_target", "p_delete_one_other", "p_delete_others")),
        *(f"{s[k]:.3f}" for k in ("p_show_target", "p_show_one_other")),
        f"{s['heat_target']:.2f} / {s['heat_other']:.2f} / {s['heat_background']:.2f}",
        f"{s['target_hottest']:.2f}",
        f"{s['spearman_heat_vs_deletion_drop']:.2f}",
        f"{s['spearman_heat_vs_shown_alone']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(m for m in vlm_focus.list_zoo()))
    ap.add_argument("--method", default="igos++")
    ap.add_argument("--baseline", default="blur", help="what deleted pixels become (blur, blank, noise)")
    ap.add_argument("--n", type=int, default=40, help="scenes per model (half colour, half shape questions)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/distractors"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for model in args.models.split(","):
        path = args.out / f"{Path(model).name}.jsonl"
        done = {json.loads(line)["id"]: json.loads(line) for line in path.open()} if path.exists() else {}
        lens = vlm_focus.load(model, method=args.method, baseline=args.baseline, device="cpu")
        with path.open("a") as f:
            for i in tqdm(range(args.n), desc=Path(model).name):
                sample = make_sample(SEED, i, ("color", "shape")[i % 2], min_objects=2)
                if sample.id in done:
                    continue
                row = probe(lens, sample) or {"id": sample.id, "skipped": True}
                done[sample.id] = row
                f.write(json.dumps(row) + "\n")
                f.flush()
        rows = [r for r in done.values() if not r.get("skipped")]
        summary = summarise(rows)
        lines.append(table_row(Path(model).name, summary))
        print(json.dumps({"model": model, **summary}), flush=True)
    table = HEADER + "\n" + "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
