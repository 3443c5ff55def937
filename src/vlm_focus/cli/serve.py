"""``vlm-focus serve``: the web app (Gradio, in the ``[app]`` extra).

Building the parser imports neither gradio nor torch; both load when the command runs, and a
missing ``gradio`` is answered with the install command. The app binds to 127.0.0.1 unless
``--host`` says otherwise, and never makes a share link.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import catalog
from ..errors import InputError
from .common import HelpFormatter


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="start the web app (pip install 'vlm-focus[app]')",
        description="Start the vlm-focus web app: upload an image (or pick an example), ask a\n"
        "question, choose model and method, and see the answer with its image-dependent tokens,\n"
        "the heatmap with a colour bar, per-token maps and the scores; download the explanation.",
        epilog="example: vlm-focus serve --port 7860   (then open http://127.0.0.1:7860)",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME_OR_PATH",
        help="model to offer and load at start, repeatable (zoo name, hub id, local path); "
        f"the zoo models are always offered (default first: {catalog.DEFAULT_MODEL})",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the app to the network"
    )
    p.add_argument("--port", type=int, default=7860, help="port (0: any free port)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted, in MB")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=16_000_000,
        help="largest image accepted, in pixels (width x height)",
    )
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in [0, 65535], got {args.port}")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise InputError("--max-upload-mb and --max-pixels must be positive")
    for name in args.model:
        catalog.check_model_name(name)  # a typo is answered before gradio and torch load
    from ..app import serve

    serve(
        models=args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        dtype=args.dtype,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
    )
    return 0
