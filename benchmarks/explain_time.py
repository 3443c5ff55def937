"""Wall time of model loading and of one explanation on the shipped model (this machine's CPU).

python benchmarks/explain_time.py --model shapes-llava --n 10 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import vlm_focus
from vlm_focus.data.shapes import make_sample


def load_seconds(model: str, repeats: int) -> list[float]:
    """Time ``vlm_focus.load`` in fresh processes (imports excluded, weights from disk)."""
    code = (
        f"import time, vlm_focus; t = time.perf_counter(); vlm_focus.load({model!r}, device='cpu'); "
        "print(time.perf_counter() - t)"
    )
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={"HF_HUB_OFFLINE": "1", "PATH": ""},
            ).stdout.split()[-1]
        )
        for _ in range(repeats)
    ]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-llava")
    ap.add_argument("--method", default="igos++")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    loads = load_seconds(args.model, 3)
    lens = vlm_focus.load(args.model, method=args.method, device="cpu")
    totals, parts = [], {}
    for i in range(args.n):
        s = make_sample(4242, i, "color", min_objects=2)
        t = time.perf_counter()
        ex = lens.explain(s.image, s.question)
        totals.append(time.perf_counter() - t)
        for k, v in ex.timings.items():
            parts.setdefault(k, []).append(v)
    result = {
        "model": args.model,
        "method": args.method,
        "threads": args.threads,
        "n": args.n,
        "load_seconds_median": round(statistics.median(loads), 2),
        "explain_seconds_median": round(statistics.median(totals), 2),
        "explain_seconds_min_max": [round(min(totals), 2), round(max(totals), 2)],
        "stage_seconds_median": {k: round(statistics.median(v), 3) for k, v in parts.items()},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
