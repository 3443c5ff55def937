"""``vlm-focus`` command line: explain, evaluate, list.

One module per subcommand (:mod:`.explain`, :mod:`.evaluate`, :mod:`.listing`); the shared
options and the checks that run before a model loads are in :mod:`.common`. Building the
parser imports neither torch nor transformers, so ``--help`` and ``list`` answer at once;
``explain`` and ``evaluate`` check their inputs (image file, model name, method options)
before they import them.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import VlmFocusError
from .common import HelpFormatter, add_model_args, lens_from_args, parse_options
from .evaluate import add_evaluate_parser
from .explain import add_explain_parser, cmd_explain
from .listing import add_list_parser, cmd_list
from .report import add_report_parser
from .serve import add_serve_parser
from .study import add_study_parser

__all__ = [
    "add_model_args",
    "build_parser",
    "cmd_explain",
    "cmd_list",
    "lens_from_args",
    "main",
    "parse_options",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlm-focus",
        description="Where does a vision-language model look when it answers a question?",
        epilog="Run vlm-focus COMMAND --help for the options of a command.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_explain_parser(sub)
    add_evaluate_parser(sub)
    add_list_parser(sub)
    add_report_parser(sub)
    add_serve_parser(sub)
    add_study_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*requires torchvision.*")
    # Our own warnings are printed as notes by the commands; keep stderr to one line each.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"vlm_focus\.")
    args = build_parser().parse_args(argv)
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return rc
    except VlmFocusError as e:
        print(f"vlm-focus: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlm-focus: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. vlm-focus list | head: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
