"""What is the randomised model's iGOS++ map made of? The diagnostic behind the sanity-check
entry D7 of ``benchmarks/igos_convergence_log.md``.

For each scene (fresh shapes scenes, colour and shape questions alternating) it explains the
answer with the trained model and again with every parameter randomised
(:func:`vlm_focus.randomization.randomize_top_down`, as ``sanity_check`` does), and prints
per scene and as ranges over the scenes: the largest data gradient of the first iteration,
the mean score on the deletion path, the share of pixels with heat, the mean heat on the
evidence object, and the Spearman correlation of the two maps - over the whole map, on the
evidence only, off it, after cutting each map's low tail, and of the random map with the
evidence mask.

    python benchmarks/igos_sanity_diagnostic.py --model shapes-onevision --n 10
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from scipy import stats

import vlm_focus
from igos_convergence import study_scene
from vlm_focus.metrics.sanity import similarity
from vlm_focus.randomization import fixed_heatmap, randomize_top_down

CUTS = (0.01, 0.05, 0.1, 0.2)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a.ravel(), b.ravel())[0])


def cut(x: np.ndarray, share: float) -> np.ndarray:
    """``x`` with the values below ``share`` of its maximum set to 0."""
    return np.where(x < share * x.max(), 0.0, x)


def first_step(trace: list[dict]) -> dict:
    """The first gradient iteration's record (after the superpixel start, if any)."""
    return next(t for t in trace if "grad_max" in t)


def scene(lens: vlm_focus.Lens, sample, seed: int) -> dict | None:
    ex = lens.explain(sample.image, sample.question)
    if not ex.selected or ex.heatmap is None:
        return None
    trained = first_step(lens.method.trace)
    with lens.adapter.lock, randomize_top_down(lens.adapter.model, None, seed=seed):
        random_map = fixed_heatmap(lens, sample.image, sample.question, ex.token_ids, ex.selected)
        randomised = first_step(lens.method.trace)
    t, r, ev = ex.heatmap, random_map, sample.evidence
    out = {
        "grad_max": (trained["grad_max"], randomised["grad_max"]),
        "f_deletion": (trained["f_deletion"], randomised["f_deletion"]),
        "heat_share": (float((t > 1e-3).mean()), float((r > 1e-3).mean())),
        "heat_evidence": (float(t[ev].mean()), float(r[ev].mean())),
        "rho": similarity(t, r)["spearman"],
        "rho_evidence": spearman(t[ev], r[ev]),
        "rho_elsewhere": spearman(t[~ev], r[~ev]),
        "rho_random_vs_evidence": spearman(r, ev.astype(float)),
    }
    for share in CUTS:
        out[f"rho_cut_{share}"] = spearman(cut(t, share), cut(r, share))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-onevision")
    ap.add_argument("--seed", type=int, default=4242, help="scene stream and randomisation seed")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="the blur baseline does not remove")
    lens = vlm_focus.load(args.model, method="igos++", device="cpu")
    rows = []
    for i in range(args.n):
        sample = study_scene(args.seed, i, args.size)
        row = scene(lens, sample, args.seed)
        if row is None:
            continue
        rows.append(row)
        print(sample.id, {k: np.round(v, 3).tolist() for k, v in row.items()}, flush=True)
    print(f"\n{args.model}, {len(rows)} scenes (trained, randomised): min … max")
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        if v.ndim == 2:
            print(
                f"  {key}: trained {v[:, 0].min():.3g} … {v[:, 0].max():.3g}, "
                f"randomised {v[:, 1].min():.3g} … {v[:, 1].max():.3g}"
            )
        else:
            print(f"  {key}: mean {v.mean():.3f} ({v.min():.3f} … {v.max():.3f})")


if __name__ == "__main__":
    main()
