"""Speed of every method: wall time, model passes, the pass-count floor, memory, the
reference code's structure against ours, cost curves and the README command's start-up.

One run prints Markdown tables (issue 17):

1. per method (every registered method, default options) on fresh shapes scenes: seconds
   per explanation (heatmap only and total), images scored (by the method and in all: token
   selection and deletion/insertion included, counted at the scorer), the pass-count floor
   (each scorer call priced at the measured time of one call of the same batch size and
   grad mode: the median of timings taken right after each scene, interleaved with the
   explanations) and actual / floor,
   peak RSS during the method's explanations (psutil, sampled every 5 ms; on CUDA also
   ``torch.cuda.max_memory_allocated``), deletion / insertion AUC and pointing
   (:func:`vlm_focus.metrics.pointing_game`, tolerance 3 % of the side, against the
   asked-about object);
2. the reference code's structure (``benchmarks/reference_structure.py``: one image per
   forward pass, the K graphs kept and summed, two integrated-gradient calls per
   iteration) with the reference step (``preset=paper``) and with ours, against our
   igos++ on the same scenes, interleaved: speed ratio, deletion / insertion / pointing;
3. cost curves (heatmap only, igos++ defaults): answer length, selected tokens, image
   size, mask size (``size=``), batch size (the lens's ``batch_size``), plotted to ``--plot``;
4. the README command in fresh processes: ``import vlm_focus``, model load, first and
   second explanation in one process, and ``vlm-focus explain ... --out`` end to end.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg \\
        nice -n 5 python benchmarks/speed.py --models shapes-llava --n 8 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import torch

import vlm_focus
from vlm_focus.baselines import make_baseline
from vlm_focus.cli.common import batch_size_flag, parse_options
from vlm_focus.explain import Lens
from vlm_focus.images import to_tensor
from vlm_focus.methods import list_methods
from vlm_focus.metrics import deletion_insertion, pointing_game, score_fn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from igos_convergence import study_scene  # noqa: E402
from reference_structure import ReferenceIGOS, ReferenceIGOS2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


# ----- counting and pricing passes -------------------------------------------------------------
class CallLog:
    """Records every scorer call of ``adapter`` as ``(images, grad enabled)``, split into the
    calls made inside ``method.explain`` (:meth:`watch`) and all calls."""

    def __init__(self, adapter) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.in_method = False
        self.method_calls: list[tuple[int, bool]] = []
        self.last_scorer = None
        make = adapter.scorer

        def scorer(*args, **kwargs):
            s = make(*args, **kwargs)
            score = s._score
            s._raw_score = score

            def counted(pixels):
                key = (int(pixels.shape[0]), torch.is_grad_enabled())
                self.calls.append(key)
                if self.in_method:
                    self.method_calls.append(key)
                return score(pixels)

            s._score = counted
            self.last_scorer = s
            return s

        adapter.scorer = scorer

    def watch(self, method) -> None:
        explain = method.explain

        def watched(*args, **kwargs):
            self.in_method = True
            try:
                return explain(*args, **kwargs)
            finally:
                self.in_method = False

        method.explain = watched

    def mark(self) -> tuple[int, int]:
        return len(self.calls), len(self.method_calls)


def time_call(scorer, pixels: torch.Tensor, batch: int, grad: bool, repeats: int) -> float:
    """Median seconds of one scorer call on ``batch`` noisy copies of ``pixels`` (with ``grad``:
    forward and backward to the pixels, as a gradient method pays it)."""
    x = (pixels[None] + 0.05 * torch.randn(batch, *pixels.shape, device=pixels.device)).clamp(0, 1)
    out = []
    for _ in range(repeats):
        sync(x.device)
        t = time.perf_counter()
        if grad:
            xi = x.clone().requires_grad_(True)
            s = scorer._raw_score(xi)
            (g,) = torch.autograd.grad(s.sum(), xi)
        else:
            with torch.no_grad():
                scorer._raw_score(x)
        sync(x.device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Prices:
    """Seconds of one scorer call per ``(batch, grad)``: the median of timings taken after each
    scene (interleaved with the explanations, so that load on shared cores weighs on both)."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.samples: dict[tuple[int, bool], list[float]] = {}

    def measure(self, keys, scorer, pixels) -> None:
        for key in sorted(set(keys)):
            t = time_call(scorer, pixels, key[0], key[1], self.repeats)
            self.samples.setdefault(key, []).append(t)

    @property
    def seconds(self) -> dict[tuple[int, bool], float]:
        return {k: statistics.median(v) for k, v in self.samples.items()}

    def floor(self, calls) -> float:
        seconds = self.seconds
        return sum(seconds[k] * n for k, n in Counter(calls).items())


# ----- memory ---------------------------------------------------------------------------------
class PeakRSS:
    """Samples this process's RSS every ``interval`` seconds in a thread; ``window()`` gives the
    peak within a block (and, on CUDA, ``max_memory_allocated`` after a reset)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self.stop = False
        self.interval = interval
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    @contextmanager
    def window(self, device: torch.device, record: dict):
        self.peak = self.proc.memory_info().rss
        record.setdefault("rss_before", self.peak)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        yield
        record["rss_peak"] = max(record.get("rss_peak", 0), self.peak, self.proc.memory_info().rss)
        if device.type == "cuda":
            record["cuda_peak"] = max(record.get("cuda_peak", 0), torch.cuda.max_memory_allocated(device))


# ----- one explanation --------------------------------------------------------------------------
def scene(args, i: int, size: int | None = None):
    return study_scene(args.seed, i, size or args.size)


def explain_one(lens: Lens, log: CallLog, sample, args, mem: PeakRSS, record: dict, **kw) -> dict | None:
    device = lens.adapter.device
    total0, method0 = log.mark()
    with mem.window(device, record):
        sync(device)
        t = time.perf_counter()
        ex = lens.explain(sample.image, sample.question, **kw)
        sync(device)
        wall = time.perf_counter() - t
    if not ex.selected or ex.heatmap is None:
        return None
    side = max(sample.image.size)
    row = {
        "wall": wall,
        "heatmap": ex.timings.get("heatmap", float("nan")),
        "generate": ex.timings.get("generate", float("nan")),
        "calls": log.calls[total0:],
        "method_calls": log.method_calls[method0:],
        "deletion": ex.scores.get("deletion", float("nan")),
        "insertion": ex.scores.get("insertion", float("nan")),
        "pointing": pointing_game(ex.heatmap, sample.evidence, tolerance=0.03 * side),
        "selected": len(ex.selected),
        "answer_tokens": len(ex.tokens),
        "heat": ex.heatmap,
    }
    return row


def mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None and not np.isnan(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def images(calls) -> int:
    return sum(n for n, _ in calls)


def batches(calls) -> str:
    c = Counter(calls)
    return ", ".join(f"{n}×{b}{'∇' if g else ''}" for (b, g), n in sorted(c.items()))


def probe(model: str, variant: str, args) -> dict:
    """In this (fresh) process: load, then one explanation of the first scene with a selected
    token, with :class:`PeakRSS` sampling the RSS during the explanation only (``ru_maxrss``
    would report the transient of loading the weights); on CUDA ``max_memory_allocated``."""
    import gc

    lens = vlm_focus.load(
        model,
        device=args.device or "cpu",
        dtype=args.dtype,
        gradient_checkpointing=args.gradient_checkpointing,
        method="igos++" if variant.startswith("reference") else variant,
        batch_size=args.batch_size,
    )
    if variant == "reference-paper":
        lens.method = ReferenceIGOS(preset="paper")
    elif variant == "reference-ours":
        lens.method = ReferenceIGOS()
    elif variant == "reference-igos2":
        lens.method = ReferenceIGOS2()
    gc.collect()
    mem = PeakRSS(interval=0.002)
    record: dict = {}
    for i in range(args.n):
        s = scene(args, i)
        record = {}
        with mem.window(lens.adapter.device, record):
            ex = lens.explain(s.image, s.question)
        if ex.selected:
            break
    mem.stop = True
    return {
        "rss_loaded": record["rss_before"],
        "rss_peak": record["rss_peak"],
        "cuda_peak": record.get("cuda_peak"),
    }


def memory(model: str, variants: list[str], args) -> dict[str, dict]:
    out = {}
    for v in variants:
        argv = [
            sys.executable,
            __file__,
            "--probe",
            v,
            "--models",
            model,
            "--n",
            str(args.n),
            "--seed",
            str(args.seed),
            "--size",
            str(args.size),
            "--threads",
            str(args.threads),
            "--batch-size",
            str(args.batch_size),
        ]
        for flag in ("device", "dtype"):
            if getattr(args, flag):
                argv += [f"--{flag}", getattr(args, flag)]
        if args.gradient_checkpointing:
            argv.append("--gradient-checkpointing")
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **ENV}, check=True)
        out[v] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ----- 1. every method ---------------------------------------------------------------------------
def method_table(adapter, log: CallLog, args, mem: PeakRSS, lens_kw: dict) -> list[dict]:
    results = []
    methods = args.methods.split(",") if args.methods else list_methods()
    for name in methods:
        opts = parse_options(args.options) if name == "igos++" else {}
        lens = Lens(adapter, method=name, batch_size=args.batch_size, **opts, **lens_kw)
        log.watch(lens.method)
        record: dict = {}
        rows = []
        prices = Prices(args.repeats)
        for i in range(args.n):
            sample = scene(args, i)
            r = explain_one(lens, log, sample, args, mem, record)
            if r is not None:
                rows.append(r)
                # priced on this scene's scorer (its prompt and answer) and image, right after it
                pixels = to_tensor(sample.image, lens.options["working_size"]).to(adapter.device)
                prices.measure(r["calls"], log.last_scorer, pixels)
        if not rows:
            results.append({"method": name, "n": 0})
            continue
        n = len(rows)
        res = {
            "method": name,
            "n": n,
            "heatmap": mean(rows, "heatmap"),
            "wall": mean(rows, "wall"),
            "generate": mean(rows, "generate"),
            "passes_method": sum(images(r["method_calls"]) for r in rows) / n,
            "passes_total": sum(images(r["calls"]) for r in rows) / n,
            "floor_method": sum(prices.floor(r["method_calls"]) for r in rows) / n,
            "floor_total": sum(prices.floor(r["calls"]) for r in rows) / n,
            "deletion": mean(rows, "deletion"),
            "insertion": mean(rows, "insertion"),
            "pointing": mean(rows, "pointing"),
            "prices": {f"{b}{'g' if g else ''}": s for (b, g), s in prices.seconds.items()},
            **record,
        }
        res["batches_method"] = batches(rows[0]["method_calls"])
        results.append(res)
        print(f"  {name}: {res['heatmap']:.3f} s heatmap, {res['passes_method']:.0f} passes", flush=True)
    return results


def mib(x) -> str:
    return "-" if x is None else f"{x / 2**20:.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def print_methods(model: str, results: list[dict], cuda: bool) -> None:
    print(f"\n### {model}: every method\n")
    head = (
        "| method | scenes | heatmap s | total s | passes method / all | method calls (n×batch, ∇ = grad) "
        "| floor method s | heatmap / floor | floor all s | (total − generate) / floor all |"
    )
    cols = head.count("|") - 1
    if cuda:
        head += " CUDA peak MiB |"
        cols += 1
    head += " deletion ↓ | insertion ↑ | pointing ↑ |"
    cols += 3
    print(head + "\n" + "|---" * cols + "|")
    for r in results:
        if not r["n"]:
            print(f"| {r['method']} | 0 | (no token selected) |")
            continue
        cells = [
            r["method"],
            str(r["n"]),
            f"{r['heatmap']:.3f}",
            f"{r['wall']:.3f}",
            f"{r['passes_method']:.0f} / {r['passes_total']:.0f}",
            r["batches_method"] or "(none: no scorer call)",
            f"{r['floor_method']:.3f}",
            ratio(r["heatmap"], r["floor_method"]),
            f"{r['floor_total']:.3f}",
            ratio(r["wall"] - r["generate"], r["floor_total"]),
        ]
        if cuda:
            cells.append(mib(r.get("cuda_peak")))
        cells += [f"{r['deletion']:.3f}", f"{r['insertion']:.3f}", f"{r['pointing']:.3f}"]
        print("| " + " | ".join(cells) + " |")


# ----- 2. the reference structure ------------------------------------------------------------
def reference_table(adapter, log: CallLog, args, mem: PeakRSS, lens_kw: dict) -> dict:
    opts = parse_options(args.options)
    variants = {
        "ours (igos++ default)": Lens(
            adapter, method="igos++", batch_size=args.batch_size, **opts, **lens_kw
        ),
        "ours, preset=paper": Lens(
            adapter, method="igos++", batch_size=args.batch_size, preset="paper", **lens_kw
        ),
        "ours, preset=fast (trades quality for speed)": Lens(
            adapter, method="igos++", batch_size=args.batch_size, preset="fast", **lens_kw
        ),
        "reference structure, reference step (preset=paper)": None,
        "reference structure, our step": None,
        "igos2 (two masks), ours": Lens(adapter, method="igos2", batch_size=args.batch_size, **lens_kw),
        "igos2 (two masks), reference structure": None,
    }
    for label, preset in (
        ("reference structure, reference step (preset=paper)", "paper"),
        ("reference structure, our step", None),
    ):
        lens = Lens(adapter, method="igos++", batch_size=args.batch_size, **lens_kw)
        lens.method = ReferenceIGOS(**({"preset": preset} if preset else opts))
        variants[label] = lens
    lens = Lens(adapter, method="igos2", batch_size=args.batch_size, **lens_kw)
    lens.method = ReferenceIGOS2()
    variants["igos2 (two masks), reference structure"] = lens
    for lens in variants.values():
        assert lens is not None
        log.watch(lens.method)
    rows: dict[str, list[dict]] = {k: [] for k in variants}
    records: dict[str, dict] = {k: {} for k in variants}
    diffs: dict[str, list[float]] = {"our step": [], "preset=paper": [], "igos2": []}
    pairs = {
        "our step": ("reference structure, our step", "ours (igos++ default)"),
        "preset=paper": ("reference structure, reference step (preset=paper)", "ours, preset=paper"),
        "igos2": ("igos2 (two masks), reference structure", "igos2 (two masks), ours"),
    }
    for i in range(args.n_reference):
        sample = scene(args, i)
        got = {}
        for label, lens in variants.items():  # interleaved: the same load on every variant
            assert lens is not None
            got[label] = explain_one(lens, log, sample, args, mem, records[label])
        if any(v is None for v in got.values()):
            continue
        for label, r in got.items():
            rows[label].append(r)
        for key, (a, b) in pairs.items():
            diffs[key].append(float(np.abs(got[a]["heat"] - got[b]["heat"]).max()))
    out = {"rows": {}, "diffs": {k: max(v) if v else float("nan") for k, v in diffs.items()}}
    for label, rs in rows.items():
        out["rows"][label] = {
            "n": len(rs),
            "heatmap": mean(rs, "heatmap"),
            "wall": mean(rs, "wall"),
            "passes_method": images([k for r in rs for k in r["method_calls"]]) / max(1, len(rs)),
            "calls": batches(rs[0]["method_calls"]) if rs else "",
            "deletion": mean(rs, "deletion"),
            "insertion": mean(rs, "insertion"),
            "pointing": mean(rs, "pointing"),
            **records[label],
        }
    return out


def print_reference(model: str, ref: dict, cuda: bool) -> None:
    rows = ref["rows"]
    ours = rows["ours (igos++ default)"]["heatmap"]
    fast = rows["ours, preset=fast (trades quality for speed)"]["heatmap"]
    print(f"\n### {model}: the reference code's structure against ours (same scenes, interleaved)\n")
    head = "| variant | scenes | heatmap s | reference s / this s | passes | calls per map |"
    cols = 6
    if cuda:
        head += " CUDA peak MiB |"
        cols += 1
    print(head + " deletion ↓ | insertion ↑ | pointing ↑ |\n" + "|---" * (cols + 3) + "|")
    ref_paper = rows["reference structure, reference step (preset=paper)"]["heatmap"]
    ref_two = rows["igos2 (two masks), reference structure"]["heatmap"]
    for label, r in rows.items():
        cells = [
            label,
            str(r["n"]),
            f"{r['heatmap']:.3f}",
            ratio(ref_two if label.startswith("igos2") else ref_paper, r["heatmap"]),
            f"{r['passes_method']:.0f}",
            r["calls"],
        ]
        if cuda:
            cells.append(mib(r.get("cuda_peak")))
        cells += [f"{r['deletion']:.3f}", f"{r['insertion']:.3f}", f"{r['pointing']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nours (igos++ default) is {ref_paper / ours:.2f}× faster than the reference structure of the "
        f"paper's single-mask method with its step, preset=fast {ref_paper / fast:.2f}×; "
        f"largest |heat difference|, same step: ours vs reference structure {ref['diffs']['our step']:.2e} "
        f"(our step), {ref['diffs']['preset=paper']:.2e} (preset=paper), {ref['diffs']['igos2']:.2e} (igos2); "
        f"igos2: ours {ref_two / rows['igos2 (two masks), ours']['heatmap']:.2f}× faster than its reference "
        "structure (igos2 rows: reference s / this s against that)"
    )


def print_memory(model: str, mem: dict[str, dict]) -> None:
    print(f"\n### {model}: peak memory of one explanation (fresh process per row)\n")
    print("| method | RSS loaded MiB | peak RSS MiB | explanation adds MiB | CUDA peak allocated MiB |")
    print("|---|---|---|---|---|")
    for v, r in mem.items():
        print(
            f"| {v} | {mib(r['rss_loaded'])} | {mib(r['rss_peak'])} | "
            f"{mib(r['rss_peak'] - r['rss_loaded'])} | {mib(r['cuda_peak'])} |"
        )


# ----- the deletion / insertion metric with fewer steps ------------------------------------------
METRIC_STEPS = (50, 25, 20, 10)


def metric_steps(adapter, args) -> dict:
    """On igos++ maps (defaults) of ``args.n`` scenes: the deletion / insertion AUCs at fewer
    curve steps against the default 50, on the same map, scorer and baseline; images scored."""
    lens = Lens(adapter, method="igos++", batch_size=args.batch_size, metrics=False)
    o = lens.options
    aucs: dict[int, list[tuple[float, float]]] = {k: [] for k in METRIC_STEPS}
    images_per: dict[int, int] = {}
    for i in range(args.n):
        sample = scene(args, i)
        ex = lens.explain(sample.image, sample.question)
        if not ex.selected:
            continue
        pixels = to_tensor(sample.image, o["working_size"]).to(adapter.device)
        base = make_baseline(o["baseline"], pixels)
        scorer = adapter.scorer(pixels, sample.question, torch.tensor(ex.token_ids), batch_size=16)
        fn = score_fn(scorer, ex.selected, o["metric_score"])
        heat = torch.from_numpy(ex.heatmap)
        for k in METRIC_STEPS:
            c = deletion_insertion(fn, pixels, base, heat, o["metric_grid"], k, 16)
            aucs[k].append((c["deletion_auc"], c["insertion_auc"]))
            images_per[k] = 2 * len(c["x"])
    ref = np.array(aucs[METRIC_STEPS[0]])
    out = {}
    for k in METRIC_STEPS:
        a = np.array(aucs[k])
        err = np.abs(a - ref)
        out[k] = {
            "n": len(a),
            "images": images_per.get(k, 0),
            "del_err_mean": float(err[:, 0].mean()),
            "del_err_max": float(err[:, 0].max()),
            "ins_err_mean": float(err[:, 1].mean()),
            "ins_err_max": float(err[:, 1].max()),
            "rank_del": spearman(a[:, 0], ref[:, 0]),
            "rank_ins": spearman(a[:, 1], ref[:, 1]),
        }
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def print_metric_steps(model: str, res: dict) -> None:
    print(f"\n### {model}: the deletion / insertion metric with fewer steps (igos++ maps, vs 50 steps)\n")
    print(
        "| metric_steps | scenes | images scored | deletion: mean / max abs. ΔAUC | insertion: mean / max abs. ΔAUC "
        "| Spearman over scenes, deletion / insertion |\n|---|---|---|---|---|---|"
    )
    for k, r in res.items():
        print(
            f"| {k} | {r['n']} | {r['images']} | {r['del_err_mean']:.4f} / {r['del_err_max']:.4f} "
            f"| {r['ins_err_mean']:.4f} / {r['ins_err_max']:.4f} | {r['rank_del']:.3f} / {r['rank_ins']:.3f} |"
        )


# ----- 3. cost curves ---------------------------------------------------------------------------
def sweep(adapter, log: CallLog, args, mem: PeakRSS, lens_kw: dict) -> dict:
    """Seconds per heatmap (no metrics) and images scored, igos++ defaults unless varied."""
    opts = parse_options(args.options)
    n = args.n_sweep
    curves: dict[str, list[tuple[float, float, float]]] = {}

    def point(lens: Lens, size: int | None = None, **kw) -> tuple[float, float]:
        log.watch(lens.method)
        secs, passes = [], []
        for i in range(n):
            sample = scene(args, i, size)
            r = explain_one(lens, log, sample, args, mem, {}, metrics=False, **kw)
            if r is not None:
                secs.append(r["heatmap"])
                passes.append(images(r["method_calls"]))
        return (float(np.mean(secs)) if secs else float("nan")), (float(np.mean(passes)) if passes else 0)

    base = Lens(adapter, method="igos++", batch_size=args.batch_size, **opts, **lens_kw)
    # answer length: the given answer = the key word repeated T times, its first token explained
    for t in (1, 4, 16):
        s, p = point(base, answer=" ".join(["red"] * t), selected=[0])
        curves.setdefault("answer length (tokens given)", []).append((t, s, p))
    for k in (1, 4, 16):
        s, p = point(base, answer=" ".join(["red"] * 16), selected=list(range(k)))
        curves.setdefault("selected tokens (of 16)", []).append((k, s, p))
    for size in (64, 128, 256):
        s, p = point(base, size=size)
        curves.setdefault("image side (px)", []).append((size, s, p))
    for m in (8, 16, 32, 64):
        lens = Lens(adapter, method="igos++", batch_size=args.batch_size, **{**opts, "size": m}, **lens_kw)
        s, p = point(lens)
        curves.setdefault("mask side (-O size=)", []).append((m, s, p))
    for b in (1, 2, 5, 10, 16):
        lens = Lens(adapter, method="igos++", batch_size=b, **opts, **lens_kw)
        s, p = point(lens)
        curves.setdefault("batch size (lens batch_size)", []).append((b, s, p))
    return curves


def print_sweep(model: str, curves: dict, n: int) -> None:
    print(f"\n### {model}: cost curves (igos++ defaults, heatmap only, mean of {n} scenes)\n")
    print("| varied | value | heatmap s | passes |\n|---|---|---|---|")
    for name, pts in curves.items():
        for x, s, p in pts:
            print(f"| {name} | {x:g} | {s:.3f} | {p:.0f} |")


def plot(all_curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(all_curves.values())).keys())
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4))
    for ax, name in zip(axes, names):
        for model, curves in all_curves.items():
            pts = curves[name]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=model)
        ax.set_xlabel(name)
        ax.set_ylabel("s per heatmap")
        if name.startswith(("batch", "image", "mask")):
            ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("igos++ (defaults) cost per heatmap, CPU", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ----- 4. the README command ----------------------------------------------------------------------
def cli() -> list[str]:
    script = Path(sys.executable).with_name("vlm-focus")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vlm_focus.cli"]


def readme_command(model: str, device: str | None, threads: int) -> dict:
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": str(threads)}
    scene_png = "examples/scene.png"
    q = "What color is the circle?"
    code = (
        "import time, json; t0 = time.perf_counter(); import torch, vlm_focus; "
        f"torch.set_num_threads({threads}); t1 = time.perf_counter(); "
        f"lens = vlm_focus.load({model!r}, device={device!r}); t2 = time.perf_counter(); "
        f"lens.explain({scene_png!r}, {q!r}); t3 = time.perf_counter(); "
        f"lens.explain({scene_png!r}, {q!r}); t4 = time.perf_counter(); "
        "print(json.dumps({'import': t1 - t0, 'load': t2 - t1, 'first': t3 - t2, 'second': t4 - t3}))"
    )
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    parts = json.loads(proc.stdout.strip().splitlines()[-1])
    parts["process"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as out:
        argv = [*cli(), "explain", "--image", scene_png, "--question", q, "--out", out]
        if model != "shapes-llava":
            argv += ["--model", model]
        if device:
            argv += ["--device", device]
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, text=True, env=env, check=True, cwd=ROOT)
        parts["cli"] = time.perf_counter() - t
        parts["argv"] = " ".join(["vlm-focus", *argv[len(cli()) :]]).replace(out, "OUT")
    t = time.perf_counter()
    subprocess.run([*cli(), "--help"], capture_output=True, env=env, check=True)
    parts["help"] = time.perf_counter() - t
    return parts


def print_readme(model: str, r: dict) -> None:
    print(f"\n### {model}: the README command, fresh processes\n")
    print(
        "| `vlm-focus --help` s | import torch + vlm_focus s | model load s | first explanation s "
        "| second explanation s | whole process s | `vlm-focus explain ... --out` s |\n|---|---|---|---|---|---|---|"
    )
    print(
        f"| {r['help']:.2f} | {r['import']:.2f} | {r['load']:.2f} | {r['first']:.2f} | {r['second']:.2f} "
        f"| {r['process']:.2f} | {r['cli']:.2f} |"
    )
    print(f"\n`{r['argv']}`")


# ----- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="shapes-llava", help="comma-separated zoo names or hub ids")
    ap.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu)")
    ap.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument(
        "--batch-size", type=batch_size_flag, default=16, help="the lens's batch_size (an int, or auto)"
    )
    ap.add_argument("--options", nargs="*", default=[], metavar="KEY=VALUE", help="igos++ options")
    ap.add_argument("--methods", default="", help="comma-separated (default: every registered method)")
    ap.add_argument("--seed", type=int, default=3131)
    ap.add_argument("--size", type=int, default=64, help="scene side in pixels")
    ap.add_argument("--n", type=int, default=8, help="scenes per method")
    ap.add_argument("--n-reference", type=int, default=8, help="scenes for the reference comparison")
    ap.add_argument("--n-sweep", type=int, default=2, help="scenes per point of the cost curves")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per priced (batch, grad) call")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--skip", default="", help="comma-separated of methods,reference,memory,metric,sweep,readme"
    )
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "speed_curves.png")
    ap.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(probe(args.models.split(",")[0], args.probe, args)))
        return {}
    warnings.filterwarnings("ignore", message="the blur baseline does not remove")
    skip = set(filter(None, args.skip.split(",")))
    device = args.device or "cpu"
    mem = PeakRSS()
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "models": {}}
    curves_all = {}
    for model in args.models.split(","):
        t = time.perf_counter()
        lens = vlm_focus.load(
            model, device=device, dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing
        )
        print(f"{model}: loaded in {time.perf_counter() - t:.2f} s on {device}", flush=True)
        adapter = lens.adapter
        log = CallLog(adapter)
        cuda = adapter.device.type == "cuda"
        res: dict = {}
        if "methods" not in skip:
            res["methods"] = method_table(adapter, log, args, mem, {})
            print_methods(model, res["methods"], cuda)
        if "reference" not in skip:
            res["reference"] = reference_table(adapter, log, args, mem, {})
            print_reference(model, res["reference"], cuda)
        if "memory" not in skip:
            methods = args.methods.split(",") if args.methods else list_methods()
            res["memory"] = memory(
                model, [*methods, "reference-paper", "reference-ours", "reference-igos2"], args
            )
            print_memory(model, res["memory"])
        if "metric" not in skip:
            res["metric_steps"] = metric_steps(adapter, args)
            print_metric_steps(model, res["metric_steps"])
        if "sweep" not in skip:
            res["sweep"] = curves_all[model] = sweep(adapter, log, args, mem, {})
            print_sweep(model, res["sweep"], args.n_sweep)
        if "readme" not in skip:
            res["readme"] = readme_command(model, args.device, args.threads)
            print_readme(model, res["readme"])
        results["models"][model] = res
        sys.stdout.flush()
    if curves_all:
        plot(curves_all, args.plot)
        print(f"\nplot: {args.plot}")
    print(
        f"\nseed {args.seed}, {args.size}-px scenes of 2-4 objects (colour / shape questions alternating), "
        f"{args.threads} thread(s), device {device}, dtype {args.dtype or 'float32'}, "
        f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, batch size {args.batch_size}; "
        f"process peak RSS (ru_maxrss) {peak_maxrss_mib():.0f} MiB"
    )
    if args.out:
        args.out.write_text(json.dumps(results, default=str, indent=1))
    mem.stop = True
    return results


def peak_maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
