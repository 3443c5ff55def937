"""``vlm-focus study NAME``: the paper's dataset-level analyses (:mod:`vlm_focus.study`).

Each study adds its own options; studies that run a model also get ``explain``'s model and
method options. Building the parser imports the study modules, which import nothing heavy;
the study imports torch when it runs. The table is printed and written to ``--out``
(``table.csv``, ``table.json``, ``plot.png``) beside the study's working folders, so the
same command continues a killed study.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import catalog
from .common import EPILOG, HelpFormatter, add_model_args, check_model_args, parse_options

EXAMPLES = """examples:
  vlm-focus study reliance --models shapes-llava shapes-qwen2.5-vl --limit 40 --out studies/reliance
  vlm-focus study filter --models shapes-llava --limit 200 --out studies/filter
  vlm-focus evaluate --ids studies/filter/ids.txt --out runs/filtered
  torchrun --nproc-per-node 4 -m vlm_focus.cli study ablate --dataset mmvp --data-dir data/MMVP \\
      --model llava-hf/llava-1.5-7b-hf --out studies/ablate     (one shard per process)
"""


def add_study_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``vlm-focus study NAME`` (one sub-command per registered study)."""
    from ..study import get_study

    p = subparsers.add_parser(
        "study",
        help="dataset-level studies: the paper's tables (reliance, filter, ablate, sanity, ...)",
        description="Run one study over a dataset; print its table and write table.csv, table.json\n"
        "and plot.png to --out. Rerun the same command to continue a killed study.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(dest="study", required=True, metavar="STUDY")
    for name in catalog.list_studies():
        study = get_study(name)
        sp = sub.add_parser(
            name,
            help=study.summary.replace("%", "%%"),
            description=study.summary,
            epilog=EPILOG if study.uses_model else None,
            formatter_class=HelpFormatter,
        )
        sp.add_argument("--out", type=Path, default=Path("vlm-focus-study") / name, help="output directory")
        study.add_arguments(sp)
        if study.uses_model:
            add_model_args(sp)
        sp.set_defaults(func=run_study)
    return p


def run_study(args: argparse.Namespace) -> int:
    """Check the model options without loading anything, run the study, write its table."""
    from ..study import get_study

    study = get_study(args.study)
    if study.uses_model:
        check_model_args(args)
        args.options = parse_options(args.option)
    result = study.run(args, args.out)
    if result is None:  # not rank 0 of a distributed run
        return 0
    paths = result.write(args.out)
    print(result.format())
    print("wrote " + ", ".join(str(paths[k]) for k in ("csv", "json", "png")))
    return 0
