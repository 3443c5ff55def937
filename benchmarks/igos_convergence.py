"""Does iGOS++ converge, and does its map find the asked-about object? The driver behind the
iGOS++ optimiser study (BENCHMARKS.md, "iGOS++ that converges").

On fresh shapes scenes of 2-4 objects (colour and shape questions, alternating) it explains
each answer with ``igos++`` and the given options and, per model, prints a Markdown row:

- pointing: the heat maximum within 3 % of the side of the asked-about object
  (:func:`vlm_focus.metrics.pointing_game`; tied maxima count by their share);
- object hottest: share of scenes whose asked-about object has a higher mean heat than
  every other object;
- ins − del: insertion AUC minus deletion AUC (``ex.scores``, the lens's metric);
- passes: images scored per scene, by the method (the superpixel start's ``trace[0]["passes"]``,
  then (iterations − 1) × ig_iter × 2; from ``init=ones``: iterations × ig_iter × 2) and in all
  (with token selection and the deletion/insertion metric), counted at the scorer;
- change: the mask's mean absolute change per cell in the first (the start) and the last iteration;
- sanity: with ``--sanity K``, the mean Spearman correlation of the map with the map of a
  model whose parameters are all randomised (:func:`vlm_focus.randomization.sanity_check`,
  the seed of ``benchmarks/ground_truth.py``'s evaluation), on the first K scenes;
- seconds per scene (wall clock, one thread);
- answer right: the share of explained answers whose key word is right
  (:func:`vlm_focus.data.shapes.answer_correct`).

``--blur-scale S`` (an experiment) makes the blur baseline's kernel ``max(101, S x width)``
px wide, sigma = kernel - 1, for the explanation and its metric alike, instead of the
reference code's fixed 101 px below 500 px (relatively weaker the larger the image).

``--scenes other`` takes the scenes of a second, independent generator
(``benchmarks/other_scenes.py``: 128-300 px per side, not square, other backgrounds, sizes
and drawing) instead of the study's stream; pointing's tolerance is 3 % of the longer side.

The second table splits the scenes by whether another object carries the same answer
(same colour for a colour question, same shape for a shape question) and asks the model
which object it needs: each object is deleted (blur baseline) in turn, and the "needed"
object is the one whose deletion lowers the answer's probability most. "Pointing on the
needed object" is the pointing game against that object instead of the asked-about one.
The third table gives, for the shared-answer scenes, the probability with the asked-about
object or its twin deleted or kept alone (every other object deleted), and how often the
object with the most heat after the first iteration is the final one.

``--trace`` also prints, per iteration, the mean heat on the asked-about object, the
highest mean heat on another object, the mask's change and the pointing game (the
convergence trace).

    python benchmarks/igos_convergence.py --models shapes-llava --seed 4242 --n 20 \\
        --options normalize=max lr=0.2
    python benchmarks/igos_convergence.py --seed 9090 --size 96 --n 40 --sanity 5
    python benchmarks/igos_convergence.py --options preset=paper --trace
    python benchmarks/igos_convergence.py --scenes other --seed 6161 --n 40 --sanity 40
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import vlm_focus
from other_scenes import other_scene
from vlm_focus import baselines
from vlm_focus.baselines import make_baseline
from vlm_focus.cli.common import parse_options
from vlm_focus.data.shapes import answer_correct, make_sample
from vlm_focus.images import to_tensor
from vlm_focus.methods.compose import upsample
from vlm_focus.metrics import pointing_game
from vlm_focus.randomization import sanity_check

ZOO = ("shapes-llava", "shapes-qwen2.5-vl", "shapes-onevision", "shapes-multi-encoder")


class PassCounter:
    """Counts the images every scorer of ``lens`` scores (forward calls × batch)."""

    def __init__(self, lens: vlm_focus.Lens) -> None:
        self.total = 0
        adapter = lens.adapter
        make = adapter.scorer

        def scorer(*args, **kwargs):
            s = make(*args, **kwargs)
            score = s._score

            def counted(pixels):
                self.total += int(pixels.shape[0])
                return score(pixels)

            s._score = counted
            return s

        adapter.scorer = scorer
        method = lens.method
        explain = method.explain
        self.method = 0

        def explain_counted(*args, **kwargs):
            before = self.total
            try:
                return explain(*args, **kwargs)
            finally:
                self.method += self.total - before

        method.explain = explain_counted


def object_heat(heat: np.ndarray, sample) -> tuple[float, float]:
    """Mean heat on the asked-about object and the highest mean heat on another object."""
    others = [o.mask for o in sample.objects if not (o.mask & sample.evidence).any()]
    return float(heat[sample.evidence].mean()), max(float(heat[m].mean()) for m in others)


def answer_objects(sample) -> tuple[np.ndarray, int, list[int]]:
    """The mask of every object carrying the answer (the asked-about object and any other of
    the same colour, for a colour question, or shape, for a shape question), the asked-about
    object's index in ``sample.objects`` and the other ones' ("twins"; a "shared answer"
    when there is one)."""
    objects = sample.objects
    target = next(k for k, o in enumerate(objects) if (o.mask & sample.evidence).any())
    key = getattr(objects[target], sample.qtype)
    twins = [k for k, o in enumerate(objects) if k != target and getattr(o, sample.qtype) == key]
    union = sample.evidence.copy()
    for k in twins:
        union |= objects[k].mask
    return union, target, twins


def p_region_deleted(lens, sample, ex, region: np.ndarray) -> float:
    """Mean probability of the selected tokens with ``region`` (widened by 1 px) replaced by
    the blur baseline."""
    pixels = to_tensor(sample.image, None)
    base = make_baseline("blur", pixels)
    m = torch.from_numpy(region).float()[None, None]
    m = torch.nn.functional.max_pool2d(m, 3, 1, 1)[0, 0]
    scorer = lens.adapter.scorer(pixels, sample.question, torch.tensor(ex.token_ids))
    with torch.no_grad():
        logp = scorer((pixels * (1 - m) + base * m)[None])[0]
    return float(logp[ex.selected].exp().mean())


def model_evidence(lens, sample, ex) -> dict:
    """What the model itself needs, object by object: the probability with each object deleted
    and with every other object deleted (the object kept alone), and the "needed" object, the
    one whose deletion lowers the probability most (ties within 0.05 broken by the higher
    probability when kept alone)."""
    objects = sample.objects
    deleted = [p_region_deleted(lens, sample, ex, o.mask) for o in objects]
    kept = []
    for o in objects:
        rest = np.zeros_like(o.mask)
        for other in objects:
            if other is not o:
                rest |= other.mask & ~o.mask
        kept.append(p_region_deleted(lens, sample, ex, rest))
    low = min(deleted)
    needed = max((k for k in range(len(objects)) if deleted[k] <= low + 0.05), key=lambda k: kept[k])
    return {"p_deleted_each": deleted, "p_kept_each": kept, "needed": needed}


def need_summary(ok: list[dict]) -> dict:
    """The third table: in shared-answer scenes, the probability with the asked-about object or
    a twin deleted or kept alone; over all scenes, how often the object hottest after the first
    iteration is the final one, and in how many missed scenes another object was ahead then."""
    shared = [r for r in ok if r["twins"]]
    twin_deleted = [min(r["p_deleted_each"][k] for k in r["twins"]) for r in shared]
    first = [r["trace"][0][0] > r["trace"][0][1] for r in ok]
    misses = [f for f, r in zip(first, ok, strict=True) if not r["hottest"]]
    return {
        "p_twin_deleted": float(np.mean(twin_deleted)) if shared else math.nan,
        "p_twin_deleted_lowest": min(twin_deleted, default=math.nan),
        "p_twin_kept": float(np.mean([max(r["p_kept_each"][k] for k in r["twins"]) for r in shared]))
        if shared
        else math.nan,
        "p_asked_kept_shared": float(np.mean([r["p_kept_each"][r["target"]] for r in shared]))
        if shared
        else math.nan,
        "first_step_decides": f"{sum(f == r['hottest'] for f, r in zip(first, ok, strict=True))}/{len(ok)}",
        "misses_behind_after_first_step": f"{sum(not f for f in misses)}/{len(misses)}",
    }


def split(ok: list[dict], key: str, shared: bool) -> float:
    values = [r[key] for r in ok if r["shared"] == shared]
    return float(np.mean(values)) if values else math.nan


def study_scene(seed: int, i: int, size: int):
    """Scene ``i`` of this study's stream: 2-4 objects, colour and shape questions alternating
    (also the scenes of ``igos_path_diagnostic.py``, ``igos_sanity_diagnostic.py`` and
    ``speed.py``)."""
    return make_sample(seed, i, ("color", "shape")[i % 2], size=size, min_objects=2, max_objects=4)


def scene(args: argparse.Namespace, i: int):
    """Scene ``i`` of the run: this study's stream, or with ``--scenes other`` the independent
    generator of ``other_scenes.py`` (sizes 128-300 px per side; ``--size`` is not used)."""
    if args.scenes == "other":
        return other_scene(args.seed, i)
    return study_scene(args.seed, i, args.size)


def run_model(model: str, args: argparse.Namespace, options: dict) -> dict:
    lens = vlm_focus.load(model, method="igos++", device="cpu", **options)
    counter = PassCounter(lens)
    rows = []
    t_all = 0.0
    for i in range(args.n):
        sample = scene(args, i)
        tolerance = 0.03 * max(sample.image.size)
        method_before, total_before = counter.method, counter.total
        t0 = time.perf_counter()
        ex = lens.explain(sample.image, sample.question)
        seconds = time.perf_counter() - t0
        if not ex.selected or ex.heatmap is None:
            rows.append({"id": sample.id, "skipped": True})
            continue
        t_all += seconds
        on, off = object_heat(ex.heatmap, sample)
        union, target, twins = answer_objects(sample)
        shared = bool(twins)
        row = {
            "id": sample.id,
            "qtype": sample.qtype,
            "correct": answer_correct(ex.answer, sample),
            "pointing": pointing_game(ex.heatmap, sample.evidence, tolerance=tolerance),
            "hottest": on > off,
            "shared": shared,
            "pointing_answer_objects": pointing_game(ex.heatmap, union, tolerance=tolerance),
            "p_object_deleted": p_region_deleted(lens, sample, ex, sample.evidence),
            "heat_object": on,
            "heat_other": off,
            "ins_del": ex.scores["insertion"] - ex.scores["deletion"],
            "passes_method": counter.method - method_before,
            "passes_total": counter.total - total_before,
            "seconds": seconds,
        }
        evidence = model_evidence(lens, sample, ex)
        needed = sample.objects[evidence["needed"]]
        row |= evidence | {"target": target, "twins": twins}
        row["asked_is_needed"] = bool((needed.mask & sample.evidence).any())
        row["pointing_needed"] = pointing_game(ex.heatmap, needed.mask, tolerance=tolerance)
        method = lens.method
        H, W = ex.heatmap.shape
        trace = []
        for mask, step in zip(method.masks[1:], method.trace, strict=True):
            h = (1 - upsample(mask, (H, W))[0, 0]).clamp(0, 1).cpu().numpy()
            hit = pointing_game(h, sample.evidence, tolerance=tolerance)
            trace.append((*object_heat(h, sample), step["change"], hit))
        row["trace"] = trace
        if i < args.sanity:
            check = sanity_check(lens, sample.image, sample.question, seed=args.seed, explanation=ex)
            row["sanity"] = check.spearman
        rows.append(row)
    ok = [r for r in rows if not r.get("skipped")]
    sanity = [r["sanity"] for r in ok if "sanity" in r]
    traces = np.array([r["trace"] for r in ok])  # scene, iteration, (object, other, change, pointing)
    return {
        "model": model,
        "scenes": f"{len(ok)}/{len(rows)}",
        "correct": float(np.mean([r["correct"] for r in ok])),
        "pointing": float(np.mean([r["pointing"] for r in ok])),
        "hottest": float(np.mean([r["hottest"] for r in ok])),
        "ins_del": float(np.mean([r["ins_del"] for r in ok])),
        "passes_method": float(np.mean([r["passes_method"] for r in ok])),
        "passes_total": float(np.mean([r["passes_total"] for r in ok])),
        "change_first": float(traces[:, 0, 2].mean()),
        "change_last": float(traces[:, -1, 2].mean()),
        "sanity": float(np.mean(sanity)) if sanity else math.nan,
        "shared": f"{sum(r['shared'] for r in ok)}/{len(ok)}",
        "pointing_alone": split(ok, "pointing", False),
        "hottest_alone": split(ok, "hottest", False),
        "pointing_shared": split(ok, "pointing", True),
        "pointing_answer_objects": float(np.mean([r["pointing_answer_objects"] for r in ok])),
        "p_deleted_alone": split(ok, "p_object_deleted", False),
        "p_deleted_shared": split(ok, "p_object_deleted", True),
        "asked_is_needed": float(np.mean([r["asked_is_needed"] for r in ok])),
        "pointing_needed": float(np.mean([r["pointing_needed"] for r in ok])),
        **need_summary(ok),
        "seconds": t_all / max(1, len(ok)),
        "trace": traces.mean(0).tolist(),
        "rows": rows,
    }


def f3(key: str):
    return lambda s: f"{s[key]:.3f}"


def text(key: str):
    return lambda s: s[key]


MAIN_TABLE = [
    ("model", text("model")),
    ("scenes", text("scenes")),
    ("pointing ↑", f3("pointing")),
    ("object hottest ↑", f3("hottest")),
    ("ins − del ↑", f3("ins_del")),
    ("sanity ρ ↓", lambda s: "-" if math.isnan(s["sanity"]) else f"{s['sanity']:.3f}"),
    ("passes (method / all)", lambda s: f"{s['passes_method']:.0f} / {s['passes_total']:.0f}"),
    ("change first → last", lambda s: f"{s['change_first']:.3f} → {s['change_last']:.3f}"),
    ("s / scene", lambda s: f"{s['seconds']:.2f}"),
    ("answer right", f3("correct")),
]
SPLIT_TABLE = [
    ("model", text("model")),
    ("shared answer", text("shared")),
    ("pointing, answer alone ↑", f3("pointing_alone")),
    ("object hottest, answer alone ↑", f3("hottest_alone")),
    ("pointing, answer shared", f3("pointing_shared")),
    ("pointing on any answer object ↑", f3("pointing_answer_objects")),
    (
        "p, object deleted: alone / shared",
        lambda s: f"{s['p_deleted_alone']:.3f} / {s['p_deleted_shared']:.3f}",
    ),
    ("asked object is the needed one", f3("asked_is_needed")),
    ("pointing on the needed object ↑", f3("pointing_needed")),
]
NEED_TABLE = [
    ("model", text("model")),
    ("shared answer", text("shared")),
    ("P, asked-about object deleted", f3("p_deleted_shared")),
    ("P, twin deleted (lowest)", lambda s: f"{s['p_twin_deleted']:.3f} ({s['p_twin_deleted_lowest']:.3f})"),
    ("P, twin kept alone", f3("p_twin_kept")),
    ("P, asked-about object kept alone", f3("p_asked_kept_shared")),
    ("first step decides hottest", text("first_step_decides")),
    ("misses behind after the first step", text("misses_behind_after_first_step")),
]
"""The driver's three Markdown tables: (column header, cell of a model's summary)."""


def table_header(columns: list) -> str:
    return "| " + " | ".join(h for h, _ in columns) + " |\n|" + "---|" * len(columns)


def table_row(s: dict, columns: list = MAIN_TABLE) -> str:
    return "| " + " | ".join(cell(s) for _, cell in columns) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--seed", type=int, default=4242, help="scene stream (training used 0 and 1)")
    ap.add_argument("--n", type=int, default=20, help="scenes per model")
    ap.add_argument("--size", type=int, default=64, help="scene side in pixels")
    ap.add_argument(
        "--scenes",
        choices=("shapes", "other"),
        default="shapes",
        help="scene generator (other: other_scenes.py)",
    )
    ap.add_argument(
        "--blur-scale",
        type=float,
        default=0.0,
        metavar="S",
        help="experiment: the blur baseline's kernel max(101, S x width) px (sigma = kernel - 1) "
        "instead of the reference code's 101 below 500 px (0: the reference's)",
    )
    ap.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE", help="igos++ / lens options")
    ap.add_argument("--sanity", type=int, default=0, metavar="K", help="sanity check on the first K scenes")
    ap.add_argument("--trace", action="store_true", help="print the mean trace over iterations")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the per-scene records here (JSON)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="the blur baseline does not remove")
    options = parse_options(args.options)
    if args.blur_scale > 0:
        scale = args.blur_scale
        baselines.blur_kernel_size = lambda width: max(101, int(scale * width) // 2 * 2 + 1)
    results = []
    for model in args.models.split(","):
        s = run_model(model, args, options)
        results.append(s)
        print(table_row(s), flush=True)
        if args.trace:
            for k, (on, off, change, hit) in enumerate(s["trace"]):
                print(
                    f"    iteration {k}: heat object {on:.3f}, other {off:.3f}, "
                    f"change {change:.4f}, pointing {hit:.3f}"
                )
    size = "128-300 px (other_scenes.py)" if args.scenes == "other" else args.size
    print(f"\nseed {args.seed}, size {size}, options {options or 'defaults'}\n")
    for columns in (MAIN_TABLE, SPLIT_TABLE, NEED_TABLE):
        print(table_header(columns))
        for s in results:
            print(table_row(s, columns))
        print()
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}))


if __name__ == "__main__":
    main()
