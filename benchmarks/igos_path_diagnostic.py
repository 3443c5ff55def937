"""Does the integrated-gradient path of iGOS++ pass through images the model misreads? The
diagnostic behind entry D8 of ``benchmarks/igos_convergence_log.md``.

iGOS++ integrates its gradient along ``Phi(I, B, alpha M)``, alpha from 1/K to 1: at the
start (``M = 1``) these are blends ``alpha I + (1 - alpha) B`` of the image and its blurred
baseline. For each scene this prints the selected tokens' log-probability ``f`` along that
path (21 points, no noise) and its *dip*: how far ``f`` falls below both ends. With
``--results`` (a JSON of ``benchmarks/igos_convergence.py --out`` on the same scenes) it
splits the dips by whether the map pointed at the asked-about object; with ``--scene K`` it
also prints, for scene K, the gradient on every object at each alpha: of the deletion term
at the mask of the last iteration, and of both terms at ``M = 1`` (the first step).

    python benchmarks/igos_path_diagnostic.py --model shapes-onevision --seed 5151 --size 128 \\
        --n 40 --results benchmarks/igos_final_5151.json --scene 36 --options score=logprob
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch

import vlm_focus
from igos_convergence import study_scene
from vlm_focus.baselines import make_baseline
from vlm_focus.cli.common import parse_options
from vlm_focus.images import to_tensor
from vlm_focus.methods.compose import phi, upsample
from vlm_focus.methods.igos import scored


def path_scores(scorer, pixels: torch.Tensor, base: torch.Tensor, selected: list[int]) -> np.ndarray:
    """``f`` on ``alpha I + (1 - alpha) B`` for alpha = 0, 0.05, ..., 1."""
    a = torch.linspace(0, 1, 21).view(-1, 1, 1, 1)
    with torch.no_grad():
        return scorer(a * pixels[None] + (1 - a) * base[None])[:, selected].sum(-1).numpy()


def object_gradients(lens, sample, ex, scorer, pixels, base) -> None:
    """The gradient of each term's score (the method's ``score``: ``f`` or ``exp(f)``) summed
    over each object's cells, per alpha: the deletion term at the mask of the last iteration
    (D8) and both terms at the first iteration's mask ``M = 1``, where the whole image is
    blended with its baseline (D10)."""
    score = lens.method.options["score"]
    last = lens.method.masks[-2]
    n = last.shape[-1]
    share = [
        torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(o.mask).float()[None, None], n)[0, 0]
        for o in sample.objects
    ]
    names = [
        ("*" if (o.mask & sample.evidence).any() else "") + f"{o.color} {o.shape}" for o in sample.objects
    ]
    blocks = (
        ("deletion", "the mask of the last iteration", pixels, base, last),
        ("deletion", "M = 1", pixels, base, torch.ones_like(last)),
        ("insertion", "M = 1", base, pixels, torch.ones_like(last)),
    )
    for term, where, start, end, mask in blocks:
        print(f"{sample.id}: {term} gradient of {score} per object at {where} (* asked about)")
        for alpha in torch.linspace(0.1, 1, 10):
            m = mask.clone().requires_grad_(True)
            logp = scorer(phi(start[None], end[None], upsample(m, pixels.shape[-2:]) * alpha))
            f = scored(logp[0, ex.selected].sum(), score)
            (g,) = torch.autograd.grad(f, m)
            parts = "  ".join(f"{name} {float((g[0, 0] * w).sum()):+.3f}" for name, w in zip(names, share))
            print(f"  alpha {float(alpha):.1f}: {score} {float(f.detach()):+.3f}  {parts}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-onevision")
    ap.add_argument("--seed", type=int, default=5151)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--results", type=Path, default=None, help="igos_convergence.py --out JSON")
    ap.add_argument("--scene", type=int, default=None, help="per-object gradients along the path")
    ap.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="the blur baseline does not remove")
    options = parse_options(args.options)
    lens = vlm_focus.load(args.model, method="igos++", device="cpu", **options)
    pointing = {}
    if args.results:
        for result in json.loads(args.results.read_text())["results"]:
            if result["model"] == args.model:
                pointing = {r["id"]: r["pointing"] for r in result["rows"] if not r.get("skipped")}
    dips = []
    for i in range(args.n):
        sample = study_scene(args.seed, i, args.size)
        ex = lens.explain(sample.image, sample.question, metrics=False)
        if not ex.selected or ex.heatmap is None:
            continue
        pixels = to_tensor(sample.image, None)
        base = make_baseline("blur", pixels)
        scorer = lens.adapter.scorer(pixels, sample.question, torch.tensor(ex.token_ids))
        f = path_scores(scorer, pixels, base, ex.selected)
        dip = float(min(f[0], f[-1]) - f.min())
        hit = pointing.get(sample.id)
        dips.append((dip, hit))
        print(f"{sample.id} {sample.qtype} pointing {hit} dip {dip:.2f}: " + " ".join(f"{x:.1f}" for x in f))
        if args.scene == i:
            object_gradients(lens, sample, ex, scorer, pixels, base)
    for label, keep in (
        ("pointing < 1", lambda h: h is not None and h < 1),
        ("pointing 1", lambda h: h == 1),
    ):
        d = np.array([dip for dip, hit in dips if keep(hit)])
        if d.size:
            print(f"{label}: {d.size} scenes, mean dip {d.mean():.2f}, dip > 2 nats in {(d > 2).mean():.0%}")


if __name__ == "__main__":
    main()
