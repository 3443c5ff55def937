"""``vlm-focus report RUN_DIR``: the browsable HTML report of a run folder.

``vlm-focus evaluate`` writes the same report when a run ends; this command (re)builds it
for any run folder: an older run, a killed or still running one (it reads what is there and
never changes the results), or with another overlay style. Only ``RUN_DIR/index.html`` and
``RUN_DIR/report/`` are written. Building the parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import HelpFormatter

STYLES = ("heat", "contour")


def add_overlay_args(p: argparse.ArgumentParser) -> None:
    """The options that style overlays (shared by report, explain and evaluate)."""
    g = p.add_argument_group("overlay")
    g.add_argument("--cmap", default="inferno", help="colormap of the heat (any matplotlib name)")
    g.add_argument(
        "--overlay-style",
        default="heat",
        choices=STYLES,
        help="heat: colormap over the greyed image; contour: a line around the hottest region",
    )
    g.add_argument("--opacity", type=float, default=0.85, help="opacity of the hottest heat, in [0, 1]")
    g.add_argument(
        "--top-k", type=float, default=0.2, help="contour style: share of the heat inside the line"
    )


def overlay_options(args: argparse.Namespace) -> dict[str, Any]:
    """The overlay options of ``args`` as keyword arguments of the viz functions."""
    return {"cmap": args.cmap, "style": args.overlay_style, "opacity": args.opacity, "top_k": args.top_k}


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write the browsable HTML report of a run folder (index.html)",
        description="Write RUN_DIR/index.html (summary, plots, a sortable, filterable table of the\n"
        "samples with thumbnails) and one page per sample in RUN_DIR/report/. Open index.html\n"
        "in a browser; it loads nothing from the network.",
        epilog="example: vlm-focus report runs/eval && xdg-open runs/eval/index.html",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder written by vlm-focus evaluate")
    p.add_argument("--no-pages", action="store_true", help="only index.html and thumbnails (faster)")
    add_overlay_args(p)
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from ..viz.run_report import write_run_report

    o = overlay_options(args)
    index = write_run_report(
        args.run_dir,
        cmap=o["cmap"],
        opacity=o["opacity"],
        style=o["style"],
        top_k=o["top_k"],
        pages=not args.no_pages,
    )
    print(f"wrote {index}")
    return 0
