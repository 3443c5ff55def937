"""``vlm-focus explain``: one answer about one image -> heatmap, overlay and report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import EPILOG, HelpFormatter, add_model_args, check_image, check_model_args, lens_from_args
from .report import add_overlay_args, overlay_options


def add_explain_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "explain",
        help="explain one answer about one image",
        description="Answer the question about the image (or take --answer), pick the answer tokens\n"
        "that depend on the image, and write the heatmap, an overlay and an HTML report to --out.",
        epilog="example: vlm-focus explain --image examples/scene.png "
        '--question "What color is the circle?" --out out\n' + EPILOG,
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("input and output")
    g.add_argument("--image", required=True, type=Path, help="image file (PNG, JPEG, ... anything PIL reads)")
    g.add_argument("--question", required=True, help="question about the image")
    g.add_argument("--answer", default=None, help="explain this answer instead of generating one")
    g.add_argument("--out", default=Path("vlm-focus-out"), type=Path, help="output directory")
    g.add_argument(
        "--per-token",
        action="store_true",
        help="also one map per image-dependent token (token_maps.npz, drawn in the report); "
        "nearly free for tam, one optimisation per token for igos++",
    )
    add_model_args(p)
    add_overlay_args(p)
    p.set_defaults(func=cmd_explain)
    return p


def cmd_explain(args: argparse.Namespace) -> int:
    check_image(args.image)  # before loading a model for nothing
    check_model_args(args)
    look = overlay_options(args)
    from ..viz.colors import check_style, colormap

    check_style(look["style"], look["opacity"], look["top_k"])
    colormap(look["cmap"])  # an unknown colormap is refused before the model loads
    lens = lens_from_args(args)
    ex = lens.explain(args.image, args.question, answer=args.answer, per_token=args.per_token)
    out = ex.save(
        args.out, cmap=look["cmap"], style=look["style"], alpha_max=look["opacity"], top_k=look["top_k"]
    )
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
