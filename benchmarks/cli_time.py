"""Wall time of the quick ``vlm-focus`` commands in fresh processes, against ``import torch``.

python benchmarks/cli_time.py --repeats 7

Each command runs ``--repeats`` times as a subprocess (the first run is a warm-up, not
counted); the table gives min and median seconds. ``--pythonpath DIR`` puts DIR first on
PYTHONPATH, e.g. the ``src`` of an older checkout, to time that version's CLI the same way.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cli() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m vlm_focus.cli``."""
    script = Path(sys.executable).with_name("vlm-focus")
    if script.exists():
        return [str(script)]
    found = shutil.which("vlm-focus")
    return [found] if found else [sys.executable, "-m", "vlm_focus.cli"]


def commands(scene: str) -> dict[str, list[str]]:
    vf = cli()
    return {
        "vlm-focus --help": [*vf, "--help"],
        "vlm-focus explain --help": [*vf, "explain", "--help"],
        "vlm-focus list": [*vf, "list"],
        "vlm-focus list --methods": [*vf, "list", "--methods"],
        "vlm-focus explain --model shapes-lava ... (refused)": [
            *vf,
            "explain",
            "--image",
            scene,
            "--question",
            "What color is the circle?",
            "--model",
            "shapes-lava",
        ],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }


def seconds(argv: list[str], repeats: int, env: dict) -> list[float]:
    out = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t
        if proc.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        if i:  # the first run warms the file cache
            out.append(dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per command (after one warm-up)")
    ap.add_argument("--pythonpath", default=None, help="directory put first on PYTHONPATH")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH")]))
    scene = str(Path(__file__).resolve().parents[1] / "examples" / "scene.png")
    print(
        f"{args.repeats} runs each after a warm-up; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs{f', PYTHONPATH={args.pythonpath}' if args.pythonpath else ''}\n"
    )
    print("| command | min (s) | median (s) |")
    print("|---|---:|---:|")
    for label, argv in commands(scene).items():
        t = seconds(argv, args.repeats, env)
        print(f"| `{label}` | {min(t):.2f} | {statistics.median(t):.2f} |", flush=True)


if __name__ == "__main__":
    main()
