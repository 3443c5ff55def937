"""Dataset-run throughput: samples/s of ``vlm-focus evaluate`` in 1 process vs N processes
(``torchrun``), same samples, same method setting. Prints a Markdown table and the commands.

Each configuration runs the CLI in a fresh folder; "run s" is the run itself as the summary
records it (``seconds_this_session``: from opening the folder to the merged results, model
loading excluded), "wall s" the whole command (interpreter start, model load, rendezvous).
On a CPU machine give each process ``threads`` threads so that the configurations use the
same cores: 1 x 2 threads vs 2 x 1 thread on two cores.

    python benchmarks/runs_throughput.py --limit 24 --out runs/throughput
    python benchmarks/runs_throughput.py --device cuda --procs 1,2,4 --model llava-hf/llava-1.5-7b-hf
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

METHOD = ["--method", "igos++", "-O", "iterations=2", "-O", "ig_iter=4", "-O", "size=8"]
PIPELINE = ["--max-new-tokens", "8", "-O", "metric_steps=10", "-O", "metric_grid=8", "--no-progress"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(procs: int, model: str, limit: int, out: Path, device: str) -> list[str]:
    cli = ["evaluate", "--dataset", "shapes", "--model", model, "--limit", str(limit), "--out", str(out)]
    cli += ["--device", device, *METHOD, *PIPELINE]
    if procs == 1:
        return [sys.executable, "-m", "vlm_focus.cli", *cli]
    launch = [
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(procs),
        "--master-port",
        str(free_port()),
    ]
    return [sys.executable, *launch, "-m", "vlm_focus.cli", *cli]


def measure(procs: int, threads: int, args: argparse.Namespace) -> dict:
    out = args.out / f"p{procs}-t{threads}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = command(procs, args.model, args.limit, out, args.device)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: some samples failed, still a measurement
        sys.exit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    run_s = summary["seconds_this_session"]
    return {
        "procs": procs,
        "threads": threads,
        "n": summary["n_samples"],
        "ok": summary["n_ok"],
        "wall": wall,
        "run": run_s,
        "per_s": summary["n_samples"] / run_s,
        "per_s_wall": summary["n_samples"] / wall,
        "cmd": f"OMP_NUM_THREADS={threads} {shlex.join(cmd)}",
        "results": [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()],
    }


def same_results(a: list[dict], b: list[dict]) -> bool:
    """Same ids, answers and selected tokens, deletion/insertion to 1e-6."""
    if [r["id"] for r in a] != [r["id"] for r in b]:
        return False
    for x, y in zip(a, b, strict=True):
        if (x.get("answer"), x.get("selected")) != (y.get("answer"), y.get("selected")):
            return False
        for k in ("deletion", "insertion"):
            u, v = x.get(k), y.get(k)
            if (u is None) != (v is None) or (u is not None and abs(u - v) > 1e-6 * max(1.0, abs(u))):
                return False
    return True


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-llava")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--procs", default="1,2", help="process counts, e.g. 1,2,4")
    ap.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="CPU cores shared by the processes"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("runs/throughput"))
    args = ap.parse_args(argv)
    procs = [int(p) for p in args.procs.split(",")]
    configs = [(p, max(1, args.cores // p)) for p in procs]
    if 1 in procs and args.cores > 1:
        configs.insert(1, (1, 1))  # one process on one core: the per-process speed
    rows = [measure(p, t, args) for p, t in configs]
    base = next(r for r in rows if r["procs"] == 1 and r["threads"] == configs[0][1])
    # results are compared at one thread per process: thread counts change float reductions
    same_as = next((r for r in rows if r["procs"] == 1 and r["threads"] == 1), base)
    print(
        f"`evaluate --dataset shapes --model {args.model} --limit {args.limit}` on {args.device}, {args.cores} cores\n"
    )
    print(
        "| processes | threads each | samples (ok) | run s | samples/s | speed-up | wall s | samples/s (wall) | same results as 1 x 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        same = "yes" if same_results(r["results"], same_as["results"]) else "NO"
        print(
            f"| {r['procs']} | {r['threads']} | {r['n']} ({r['ok']}) | {r['run']:.1f} | {r['per_s']:.3f} "
            f"| {r['per_s'] / base['per_s']:.2f}x | {r['wall']:.1f} | {r['per_s_wall']:.3f} | {same} |"
        )
    print("\ncommands:\n")
    for r in rows:
        print(f"    {r['cmd']}")


if __name__ == "__main__":
    main()
