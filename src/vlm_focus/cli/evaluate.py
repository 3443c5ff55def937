"""``vlm-focus evaluate``: the parser. The run itself is :func:`vlm_focus.evaluate.cmd_evaluate`,
imported only when the command runs (it needs torch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import catalog
from .common import EPILOG, HelpFormatter, add_model_args, check_model_args


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``vlm-focus evaluate`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="explain a dataset and score the heatmaps (resumable)",
        description="Explain every sample of a dataset; write results.jsonl (one line per sample),\n"
        "heatmaps/ and summary.json to --out. A killed run continues with the same command and --resume.",
        epilog="example: vlm-focus evaluate --dataset shapes --method igos++ --limit 50 --out runs/eval\n"
        + EPILOG,
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument("--dataset", default="shapes", choices=list(catalog.DATASETS), help="dataset to explain")
    g.add_argument("--limit", type=int, default=100, help="number of samples")
    g.add_argument("--out", type=Path, default=Path("vlm-focus-eval"), help="output directory")
    g.add_argument("--resume", action="store_true", help="continue the run recorded in --out")
    g.add_argument(
        "--seed",
        type=int,
        default=catalog.EVAL_SEED,
        help="dataset seed: same seed, same samples and numbers (the zoo models trained on seeds 0-1)",
    )
    g.add_argument(
        "--qtypes", default=None, help="question types to cycle through, e.g. color,shape (default: all)"
    )
    g.add_argument(
        "--sanity",
        action="store_true",
        help="also run the model-randomisation sanity check per sample (one more heatmap each, "
        "and a CPU copy of the weights while they are randomised)",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="pointing-game tolerance in pixels (default: 3%% of the longer image side)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_args(p)
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    check_model_args(args)  # a typo is answered before torch is even imported
    from ..evaluate import cmd_evaluate

    return cmd_evaluate(args)
