"""``vlm-focus evaluate``: explain a dataset, in one process or under ``torchrun``.

Building the parser imports nothing heavy (dataset names come from
:data:`vlm_focus.catalog.DATASETS`); the run itself (:mod:`vlm_focus.runs`, torch) is
imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import catalog
from .common import EPILOG, HelpFormatter, add_model_args, check_model_args
from .report import add_overlay_args, overlay_options

EXAMPLES = """examples:
  vlm-focus evaluate --dataset shapes --method igos++ --limit 50 --out runs/eval
  vlm-focus evaluate --dataset shapes-pope --hallucination --limit 100 --out runs/pope
  vlm-focus evaluate --dataset mmstar --data-dir data/MMStar --prompt-format open --out runs/mmstar
  torchrun --nproc-per-node 4 -m vlm_focus.cli evaluate --dataset cv-bench --data-dir data/CV-Bench \\
      --model llava-hf/llava-1.5-7b-hf --out runs/cvb      (one shard per process, merged by rank 0)
"""


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``vlm-focus evaluate`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "evaluate",
        help="explain a dataset and score the heatmaps (resumable, torchrun-ready)",
        description="Explain every sample of a dataset; write results.jsonl (one line per sample),\n"
        "heatmaps/ and summary.json to --out. A killed run continues with the same command and\n"
        "--resume, with the same or another number of processes (torchrun / accelerate launch).",
        epilog=EXAMPLES + EPILOG,
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("run")
    g.add_argument("--dataset", default="shapes", choices=list(catalog.DATASETS), help="dataset to explain")
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding the dataset in its published layout (default: $VLM_FOCUS_DATA/<dataset>; "
        "shapes needs none)",
    )
    g.add_argument(
        "--ids",
        type=Path,
        default=None,
        metavar="FILE",
        help="explain only these samples: a text file of ids (one per line) or a JSON list",
    )
    g.add_argument(
        "--limit", type=int, default=None, help="at most this many samples (default: all; shapes: 200)"
    )
    g.add_argument(
        "--prompt-format",
        default="open",
        choices=list(catalog.PROMPT_FORMATS),
        help="multiple-choice questions: open (options dropped, as the paper) or mc (options and letters)",
    )
    g.add_argument("--out", type=Path, default=Path("vlm-focus-eval"), help="output directory")
    g.add_argument("--resume", action="store_true", help="continue the run recorded in --out")
    g.add_argument(
        "--seed",
        type=int,
        default=catalog.EVAL_SEED,
        help="run seed (per-sample torch seeds; shapes: also the scenes). The zoo models trained on seeds 0-1",
    )
    g.add_argument(
        "--qtypes",
        default=None,
        help="shapes: question types to cycle through, e.g. color,shape (default: all)",
    )
    g.add_argument(
        "--question",
        default=None,
        help="files: the question to ask of every image when --data-dir is a folder of images",
    )
    g.add_argument(
        "--sanity",
        action="store_true",
        help="also run the model-randomisation sanity check per sample (one more heatmap each, "
        "and a CPU copy of the weights while they are randomised)",
    )
    g.add_argument(
        "--hallucination",
        action="store_true",
        help="per wrong yes/no answer, also its minimal correction region: the smallest set of "
        "regions whose removal flips the answer (2 passes per image tried); summary: hallucination "
        "rate, correction success under --correction-budget, mean region size",
    )
    g.add_argument(
        "--correction-budget",
        type=float,
        default=0.10,
        metavar="SHARE",
        help="with --hallucination: the share of the image area a correction may remove to count "
        "as a success",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="pointing-game tolerance in pixels (default: 3%% of the longer image side)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--no-report",
        action="store_true",
        help="skip the HTML report (index.html; vlm-focus report writes it later)",
    )
    add_model_args(p)
    add_overlay_args(p)
    p.set_defaults(func=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    """Check everything that needs no model, open the dataset, load the model, run."""
    check_model_args(args)  # a typo is answered before torch is even imported
    from ..viz.colors import check_style, colormap

    check_style(args.overlay_style, args.opacity, args.top_k)
    colormap(args.cmap)
    if args.limit is not None and args.limit < 1:
        from ..errors import InputError

        raise InputError(f"--limit must be a positive number of samples, got {args.limit}")
    from ..data import dataset_options, get_dataset
    from ..methods.correction import check_budget
    from ..runs import format_table, read_ids, run, store
    from ..runs import shards as shards_mod

    if args.hallucination:
        check_budget(args.correction_budget)

    store.check_out(args.out, args.resume)  # before loading a large model for nothing
    ids = read_ids(args.ids) if args.ids is not None else None
    known = dataset_options(args.dataset)
    options: dict[str, Any] = {"prompt_format": args.prompt_format}
    if "seed" in known:
        options["seed"] = args.seed
    if args.limit is not None and ids is None and "limit" in known:
        options["limit"] = args.limit
    if args.qtypes is not None:
        options["qtypes"] = args.qtypes.split(",")
    if args.question is not None:
        if "question" not in known:
            from ..errors import InputError

            raise InputError(f"--question is for the files dataset, not {args.dataset!r}")
        options["question"] = args.question
    dataset = get_dataset(args.dataset, args.data_dir, **options)
    shard = shards_mod.from_env()
    if args.device_map is None:  # one GPU per process under torchrun
        args.device = shards_mod.device_for(shard, args.device)
    from .common import lens_from_args

    lens = lens_from_args(args)
    recorded = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    try:
        summary = run(
            lens,
            dataset,
            args.out,
            limit=args.limit,
            ids=ids,
            resume=args.resume,
            seed=args.seed,
            sanity=args.sanity,
            tolerance=args.tolerance,
            progress=not args.no_progress,
            args=recorded,
            hallucination=args.hallucination,
            correction_budget=args.correction_budget,
        )
    except KeyboardInterrupt:
        print(
            f"vlm-focus: stopped; finished samples are in {args.out}. "
            "Continue with the same command and --resume.",
            file=sys.stderr,
        )
        raise
    if shard.main:
        print(format_table(summary))
        print(f"wrote {args.out / store.RESULTS}, {args.out / store.SUMMARY}")
        if not args.no_report:
            from ..viz.run_report import write_run_report

            print(f"wrote {write_run_report(args.out, **overlay_options(args))} (open it in a browser)")
    return 1 if summary["errors"]["count"] else 0
