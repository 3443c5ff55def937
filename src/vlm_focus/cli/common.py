"""Pieces the subcommands share: help formatting, the model/method options, early checks.

Nothing here imports torch or transformers at module level: building the parser and
checking the arguments must stay instant. The model is loaded in :func:`lens_from_args`.
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import ImageError, InputError
from ..options import pipeline_options

EPILOG = "Method options (-O) and their defaults: vlm-focus list --methods"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless it is empty/off or the help already says it."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings:
            return text
        if action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def batch_size_flag(text: str) -> int | str:
    """``--batch-size``: ``auto`` or an int >= 1 (torch-free, for ``--help`` speed)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or an int >= 1, got {text!r}")
    return value


def parse_options(pairs: list[str]) -> dict:
    """``["iterations=3", "lr=5.0"]`` -> ``{"iterations": 3, "lr": 5.0}``."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"method option {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = _value(value.strip())
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options that choose and configure the model, the method and the pipeline."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=catalog.DEFAULT_MODEL,
        metavar="NAME_OR_PATH",
        help="zoo name (vlm-focus list), Hugging Face id owner/name, or local directory",
    )
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    g.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16, auto")
    g.add_argument("--device-map", default=None, help="e.g. auto, to spread a large model over GPUs")
    g.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass: less GPU memory for gradient methods",
    )
    g.add_argument(
        "--attn-implementation",
        default=None,
        help="attention kernel for transformers, e.g. sdpa or eager (default: the model's own)",
    )
    g.add_argument(
        "--trust-remote-code", action="store_true", help="run code shipped with the model (unsafe)"
    )
    g = p.add_argument_group("method")
    g.add_argument(
        "--method",
        default=catalog.DEFAULT_METHOD,
        choices=catalog.list_methods(),
        help="heatmap method",
    )
    g.add_argument(
        "--option",
        "-O",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, repeatable, e.g. -O iterations=10 -O size=16 (vlm-focus list --methods)",
    )
    g.add_argument(
        "--alpha", type=float, default=1.0, help="LLR threshold above which an answer token is explained"
    )
    g.add_argument(
        "--strategy",
        default="llr",
        choices=list(catalog.STRATEGIES),
        help="answer tokens to explain: llr (LLR > alpha), joint (all), keywords (needs YAKE)",
    )
    g.add_argument(
        "--baseline",
        default="blur",
        choices=list(catalog.BASELINES),
        help="image without visual evidence: for the LLR, deletion/insertion and the masks "
        "(igos++ blends its mask with the image's mean colour unless -O blend_with=baseline)",
    )
    g.add_argument("--drop-first", action="store_true", help="never select the first answer token")
    g.add_argument("--drop-stopwords", action="store_true", help="never select stop-word/punctuation tokens")
    g.add_argument("--max-new-tokens", type=int, default=32, help="longest answer generated, in tokens")
    g.add_argument("--working-size", type=int, default=448, help="longest image side used while explaining")
    g.add_argument(
        "--batch-size",
        type=batch_size_flag,
        default="auto",
        help="images per forward pass, or auto: from free GPU memory (16 on CPU)",
    )
    g.add_argument(
        "--metric-score",
        default="prob",
        choices=list(catalog.METRIC_SCORES),
        help="score of the deletion/insertion curves: mean probability or summed log-probability",
    )
    g.add_argument(
        "--metric-protocol",
        default="ours",
        choices=list(catalog.METRIC_PROTOCOLS),
        help="deletion/insertion procedure: ours, or paper (the reference code's, to compare with its tables)",
    )


# ----- checks that run before the model loads -------------------------------------------------
def check_image(path: str | os.PathLike) -> None:
    """A readable file that PIL recognises; the full decode happens later."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image file not found: {p}")
    if p.is_dir():
        raise ImageError(f"expected an image file, got a directory: {p}")
    if not p.is_file():  # a FIFO or device would block the read below
        raise ImageError(f"{p}: not a regular file (a FIFO, socket or device cannot be an image)")
    try:
        with p.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise ImageError(f"cannot read image file {p}: {e.strerror or e}") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p):
            pass
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file, or a format PIL cannot read") from None
    except (OSError, ValueError) as e:
        raise ImageError(f"{p}: cannot read the image ({e})") from None


def check_method_options(method: str, options: dict) -> None:
    """``-O`` keys must be options of the method or pipeline options of the Lens."""
    if method not in catalog.METHODS:
        return
    known = catalog.METHODS[method].options
    unknown = sorted(set(options) - set(known) - set(catalog.LENS_OPTIONS))
    if unknown:
        everything = [*known, *catalog.LENS_OPTIONS]
        hints = [m for u in unknown for m in difflib.get_close_matches(u, everything, n=1)]
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise InputError(
            f"{method}: unknown option(s) {unknown}{hint} (known: {', '.join(sorted(known)) or 'none'}; "
            "see vlm-focus list --methods)"
        )


def check_model_args(args: argparse.Namespace) -> None:
    """Everything about the model and method that can be judged without loading the model."""
    catalog.check_model_name(args.model)
    check_method_options(args.method, parse_options(args.option))


def lens_from_args(args: argparse.Namespace) -> Any:
    """Load the model (torch, transformers) and return the configured :class:`~vlm_focus.Lens`."""
    check_model_args(args)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    from ..explain import load

    pipeline = pipeline_options(args)
    return load(
        args.model,
        method=args.method,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        attn_implementation=args.attn_implementation,
        gradient_checkpointing=args.gradient_checkpointing,
        **{**pipeline, **parse_options(args.option)},  # -O alpha=... wins over --alpha
    )
