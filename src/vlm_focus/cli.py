"""``vlm-focus`` command line: explain, evaluate, list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError, VlmFocusError


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


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
    from .methods import list_methods

    p.add_argument("--model", default="shapes-llava", help="zoo name, Hugging Face id or local path")
    p.add_argument("--method", default="igos++", choices=list_methods())
    p.add_argument("--alpha", type=float, default=1.0, help="LLR threshold for visually relevant tokens")
    p.add_argument("--strategy", default="llr", choices=["llr", "joint", "keywords"])
    p.add_argument("--baseline", default="blur", choices=["blur", "blank", "noise"])
    p.add_argument("--drop-first", action="store_true", help="never select the first answer token")
    p.add_argument("--drop-stopwords", action="store_true", help="never select stop-word/punctuation tokens")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--working-size", type=int, default=448, help="longest image side used while explaining")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--metric-score", default="prob", choices=["prob", "logprob"])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16, auto")
    p.add_argument("--device-map", default=None, help="e.g. auto, to spread a large model over GPUs")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--attn-implementation", default=None)
    p.add_argument(
        "--trust-remote-code", action="store_true", help="run code shipped with the model (unsafe)"
    )
    p.add_argument(
        "--option",
        "-O",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, e.g. -O iterations=10 -O size=16",
    )


def lens_from_args(args: argparse.Namespace):
    from .explain import load

    return load(
        args.model,
        method=args.method,
        device=args.device,
        dtype=args.dtype,
        device_map=args.device_map,
        trust_remote_code=args.trust_remote_code,
        attn_implementation=args.attn_implementation,
        gradient_checkpointing=args.gradient_checkpointing,
        alpha=args.alpha,
        strategy=args.strategy,
        baseline=args.baseline,
        drop_first=args.drop_first,
        drop_stopwords=args.drop_stopwords,
        max_new_tokens=args.max_new_tokens,
        working_size=args.working_size,
        batch_size=args.batch_size,
        metric_score=args.metric_score,
        **parse_options(args.option),
    )


def cmd_explain(args: argparse.Namespace) -> int:
    lens = lens_from_args(args)
    ex = lens.explain(args.image, args.question, answer=args.answer)
    out = ex.save(args.out)
    print(f"question: {ex.question}")
    print(f"answer:   {ex.answer}")
    if ex.depends_on_image:
        print(f"image-dependent tokens: {[t.strip() for t in ex.selected_text]}")
        print(
            f"deletion {ex.scores.get('deletion', float('nan')):.3f} (lower is better), "
            f"insertion {ex.scores.get('insertion', float('nan')):.3f} (higher is better)"
        )
    for w in ex.warnings:
        print(f"note: {w}")
    print(f"time: {ex.timings.get('total', 0):.1f} s; wrote {out}/explanation.json, overlay.png, report.html")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import list_adapters, list_methods, list_models

    print(
        json.dumps(
            {"models": list_models(), "methods": list_methods(), "adapters": list_adapters()}, indent=2
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-focus", description="Where does a vision-language model look?")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="explain one answer about one image")
    p.add_argument("--image", required=True, type=Path)
    p.add_argument("--question", required=True)
    p.add_argument("--answer", default=None, help="explain this answer instead of generating one")
    p.add_argument("--out", default="vlm-focus-out", type=Path)
    add_model_args(p)
    p.set_defaults(func=cmd_explain)
    p = sub.add_parser("list", help="list shipped models, methods and adapters")
    p.set_defaults(func=cmd_list)
    try:
        from .evaluate import add_evaluate_parser
    except ImportError:
        pass
    else:
        add_evaluate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*requires torchvision.*")
    # Our own warnings are printed as notes by the commands; keep stderr to one line each.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"vlm_focus\.")
    args = build_parser().parse_args(argv)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        return int(args.func(args) or 0)
    except VlmFocusError as e:
        print(f"vlm-focus: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlm-focus: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
