"""The jinja2 environment of the HTML pages (templates in ``viz/templates/``).

Autoescaping is on for every template: questions, answers, ids and arguments are untrusted
text and are escaped wherever they are written, unless the code marks a piece as already
escaped HTML (:class:`markupsafe.Markup`, e.g. the output of
:func:`vlm_focus.viz.report.tokens_html`). Undefined names raise, so a typo in a template
fails the tests instead of printing nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> jinja2.Environment:
    """A fresh environment reading the package's templates (cheap; no shared state)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **context: Any) -> str:
    """Render the template ``name`` (e.g. ``"report.html.j2"``) with ``context``."""
    return environment().get_template(name).render(**context)
