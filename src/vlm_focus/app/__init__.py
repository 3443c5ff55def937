"""The web app: a thin Gradio shell over :func:`vlm_focus.load` and ``Lens.explain``.

``vlm-focus serve`` calls :func:`serve`; tests call :func:`start` (returns at once with the
local URL) and ``close()``. Gradio is imported only here, after its analytics are switched
off and its upload folder is pointed at a temporary folder of ours, removed on exit.

Example::

    from vlm_focus.app import start
    app = start(port=0)          # a free port on 127.0.0.1
    print(app.url); ...; app.close()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from ..errors import VlmFocusError


class AppError(VlmFocusError):
    """The app cannot start (the ``[app]`` extra is missing, or the port is taken)."""


@dataclass
class RunningApp:
    """A started app: its URL, the Gradio blocks and the temporary folder it owns."""

    url: str
    demo: Any
    workdir: str

    def close(self) -> None:
        try:
            self.demo.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _gradio() -> Any:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SSR_MODE", "False")
    try:
        import gradio
    except ImportError:
        raise AppError("the web app needs Gradio: pip install 'vlm-focus[app]'") from None
    return gradio


def start(
    models: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str | None = None,
    dtype: str | None = None,
    max_upload_mb: float = 20.0,
    max_pixels: int = 16_000_000,
    preload: bool = True,
    block: bool = False,
) -> RunningApp:
    """Build and launch the app; returns once it serves (or, with ``block``, when it stops).

    ``models`` are offered besides the zoo and, with ``preload``, loaded at start. ``port=0``
    picks a free port."""
    workdir = tempfile.mkdtemp(prefix="vlm-focus-app-")
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(workdir, "gradio")  # uploads and outputs, removed on close
    _gradio()
    from . import core, ui

    pool = core.ModelPool(device=device, dtype=dtype)
    try:
        for name in models or []:
            with pool.use(name):
                pass
        demo = ui.build_app(pool, workdir, models, max_pixels=max_pixels)
        demo.queue(default_concurrency_limit=1, max_size=32)
        if port == 0:
            port = _free_port(host)
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            prevent_thread_lock=not block,
            quiet=True,
            show_error=True,
            max_file_size=int(max_upload_mb * 1024 * 1024),
            ssr_mode=False,
            footer_links=[],
            theme=ui.theme(),
            css=ui.CSS,
        )
    except OSError as e:
        shutil.rmtree(workdir, ignore_errors=True)
        raise AppError(f"cannot start the app on {host}:{port}: {e}") from None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return RunningApp(url=url, demo=demo, workdir=workdir)


def serve(**kwargs: Any) -> None:
    """Start the app and serve until interrupted (``vlm-focus serve``)."""
    app = start(block=False, **kwargs)
    print(f"vlm-focus app at {app.url} (Ctrl+C to stop)", flush=True)
    try:
        app.demo.block_thread()
    finally:
        app.close()


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
