"""``vlm-focus list``: zoo models, heatmap methods (with their options) and adapter families.

Answered from :mod:`vlm_focus.catalog` and the zoo folder: no torch, no model loading.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from .. import catalog
from .common import HelpFormatter

SECTIONS = ("models", "methods", "adapters")


def add_list_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "list",
        help="list shipped models, methods (with options) and adapters",
        description="List the zoo models, the heatmap methods with their -O options and defaults,\n"
        "and the adapter families. Without a section flag, all three.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--models", action="store_true", help="only the zoo models")
    p.add_argument("--methods", action="store_true", help="only the methods, with their options")
    p.add_argument("--adapters", action="store_true", help="only the adapter families")
    p.add_argument("--json", action="store_true", help="machine-readable JSON instead of text")
    p.set_defaults(func=cmd_list)
    return p


def _literal(value: Any) -> str:
    """An option value as it is written after -O (``none``, ``true``, numbers, bare text)."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _plain(text: str) -> str:
    return text.replace("``", "`")


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def data(sections: tuple[str, ...] = SECTIONS) -> dict:
    """The JSON form: ``models``, ``methods``, ``adapters`` (lists of names) and ``details``."""
    out: dict = {}
    details: dict = {}
    if "models" in sections:
        out["models"] = catalog.list_zoo()
        details["models"] = {m: {"model_type": catalog.zoo_model_type(m)} for m in out["models"]}
    if "methods" in sections:
        out["methods"] = catalog.list_methods()
        details["methods"] = {
            m: {"summary": _plain(catalog.METHODS[m].summary), "options": dict(catalog.METHODS[m].options)}
            for m in out["methods"]
        }
        details["pipeline_options"] = dict(catalog.LENS_OPTIONS)
    if "adapters" in sections:
        out["adapters"] = catalog.list_adapters()
        details["adapters"] = {a: {"model_types": list(catalog.ADAPTERS[a])} for a in out["adapters"]}
    out["details"] = details
    return out


def text(sections: tuple[str, ...] = SECTIONS) -> str:
    lines: list[str] = []
    if "models" in sections:
        lines.append("models (--model NAME; also any Hugging Face id owner/name or local directory):")
        models = catalog.list_zoo()
        rows = [[m, f"model_type {catalog.zoo_model_type(m) or '?'}"] for m in models]
        lines += _table(rows) if rows else ["  (none shipped)"]
        lines.append("")
    if "methods" in sections:
        lines.append("methods (--method NAME; set an option, shown with its default, with -O KEY=VALUE):")
        for name in catalog.list_methods():
            info = catalog.METHODS[name]
            default = "  [default]" if name == catalog.DEFAULT_METHOD else ""
            lines.append(f"  {name}{default}")
            lines += textwrap.wrap(_plain(info.summary), 96, initial_indent="    ", subsequent_indent="    ")
            if info.options:
                lines += _table([[k, _literal(v)] for k, v in info.options.items()], indent="      ")
            else:
                lines.append("      (no options)")
        lines.append("")
        lines.append("pipeline options (any method; -O KEY=VALUE, most also as --key flags):")
        lines += _table([[k, _literal(v)] for k, v in catalog.LENS_OPTIONS.items()])
        lines.append("")
    if "adapters" in sections:
        lines.append("adapters (model families, chosen by the config's model_type):")
        lines += _table([[a, ", ".join(catalog.ADAPTERS[a])] for a in catalog.list_adapters()])
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_list(args: argparse.Namespace) -> int:
    chosen = tuple(s for s in SECTIONS if getattr(args, s, False)) or SECTIONS
    print(json.dumps(data(chosen), indent=2) if args.json else text(chosen))
    return 0
