"""The study contract: a registry of dataset-level analyses and the one writer of their tables.

A study is a class registered with :func:`register_study`::

    @register_study("reliance")
    class Reliance(Study):
        summary = "Share of samples whose answer probability drops < 30 % / 30-70 % / > 70 % ..."

        def add_arguments(self, parser):      # its own options (torch-free)
            parser.add_argument("--bins", ...)

        def run(self, args, out):             # heavy imports here, not at module level
            ...
            return StudyResult("Table 1 ...", columns=[...], rows=[{...}, ...])

``vlm-focus study NAME [options] --out DIR`` builds its parser from :func:`list_studies`
(so study modules must import neither torch nor transformers at module level: ``--help``
stays instant), calls ``run(args, out)`` and then :meth:`StudyResult.write`, which writes
``table.csv``, ``table.json`` and ``plot.png`` into ``out`` and returns the printed table.

Studies read the run folders that ``vlm-focus evaluate`` writes, or run what they need with
the same runner into sub-folders of ``out`` (:mod:`vlm_focus.study.common`), so they resume
(rerun the same command) and shard (``torchrun``) like ``evaluate``. Under ``torchrun``
only rank 0 returns a result to write; the others return ``None``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import atomic_write_bytes, atomic_write_text

TABLE_CSV, TABLE_JSON, PLOT_PNG = "table.csv", "table.json", "plot.png"

#: ``plot(figure, result)`` draws into an empty :class:`matplotlib.figure.Figure`.
PlotFn = Callable[[Any, "StudyResult"], None]


@dataclass
class StudyResult:
    """One table: ``rows`` are dicts keyed by ``columns`` (numbers, strings or None).

    ``notes`` are printed under the table and saved; ``details`` is any further JSON-safe
    data saved in ``table.json`` (e.g. per-sample values, the settings). ``plot`` draws the
    PNG; without it :func:`bar_plot` draws the numeric columns against the first column.
    """

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plot: PlotFn | None = None

    def __post_init__(self) -> None:
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise InputError(f"a study table needs distinct column names, got {self.columns!r}")
        for row in self.rows:
            extra = set(row) - set(self.columns)
            if extra:
                raise InputError(f"row {row!r} has values outside the columns: {sorted(extra)}")

    # ----- text -------------------------------------------------------------------------
    def format(self, digits: int = 3) -> str:
        """The table as aligned text: title, header, rows, then the notes."""
        cells = [[format_cell(row.get(c), digits) for c in self.columns] for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths))
        out = [self.title, line, "  ".join("-" * w for w in widths)]
        out += [
            "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)) for r in cells
        ]
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)

    def to_csv(self) -> str:
        """CSV text: the columns as header, empty cells for None / NaN."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow(["" if _missing(row.get(c)) else row.get(c) for c in self.columns])
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> null): title, columns, rows, notes, details."""
        from ..runs.store import clean

        return clean(
            {
                "title": self.title,
                "columns": self.columns,
                "rows": self.rows,
                "notes": self.notes,
                "details": self.details,
            }
        )

    # ----- files ------------------------------------------------------------------------
    def write(self, out: str | Path) -> dict[str, Path]:
        """Write ``table.csv``, ``table.json`` and ``plot.png`` into ``out`` (created),
        each replaced atomically. Returns ``{"csv", "json", "png"}`` -> path."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} is a file, not a directory")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / TABLE_CSV, "json": out / TABLE_JSON, "png": out / PLOT_PNG}
        atomic_write_text(paths["csv"], self.to_csv())
        atomic_write_text(paths["json"], json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")
        atomic_write_bytes(paths["png"], self.png())
        return paths

    def png(self) -> bytes:
        """The plot as PNG bytes (matplotlib on an Agg canvas, no pyplot state)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8, 4.5), dpi=100)
        FigureCanvasAgg(fig)
        (self.plot or bar_plot)(fig, self)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_cell(v: Any, digits: int = 3) -> str:
    """A table cell: ``-`` for None / NaN, floats to ``digits`` decimals, else ``str``."""
    if _missing(v):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.{digits}f}"
    return str(v)


def numeric_columns(result: StudyResult) -> list[str]:
    """The columns (after the first) whose values are all numbers or missing, and not all missing."""
    out = []
    for c in result.columns[1:]:
        values = [r.get(c) for r in result.rows]
        nums = [v for v in values if not _missing(v)]
        if nums and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in nums):
            out.append(c)
    return out


def bar_plot(
    fig: Any, result: StudyResult, columns: Sequence[str] | None = None, labels: Sequence[str] | None = None
) -> None:
    """Grouped bars: one group per row, one bar per column of ``columns`` (default: the
    numeric columns), each group labelled by the row's ``labels`` cells (default: its
    non-numeric cells). The default plot of a :class:`StudyResult`."""
    ax = fig.add_subplot(1, 1, 1)
    cols = list(columns) if columns is not None else numeric_columns(result)
    names = list(labels) if labels is not None else [c for c in result.columns if c not in cols]
    ax.set_title(result.title, fontsize=10)
    if not cols or not result.rows:
        ax.text(0.5, 0.5, "no numeric values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ticks = [" / ".join(format_cell(r.get(c)) for c in names) or str(i) for i, r in enumerate(result.rows)]
    width = 0.8 / len(cols)
    for j, c in enumerate(cols):
        ys = [math.nan if _missing(r.get(c)) else float(r[c]) for r in result.rows]
        xs = [i + (j - (len(cols) - 1) / 2) * width for i in range(len(result.rows))]
        ax.bar(xs, ys, width=width, label=c)
    ax.set_xticks(range(len(result.rows)))
    ax.set_xticklabels(ticks, rotation=30 if len(result.rows) > 3 else 0, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


# ----- the registry ------------------------------------------------------------------------
class Study:
    """Base class of a study. Subclasses set ``summary`` (one line) and override
    :meth:`add_arguments` and :meth:`run`; :func:`register_study` sets ``name``.

    ``uses_model``: the CLI adds ``vlm-focus explain``'s model and method options
    (``--model --method -O --alpha --strategy --baseline --device ...``) to the study's
    parser, and parses ``-O KEY=VALUE`` into ``args.options`` (a dict) before :meth:`run`.
    A study that only reads run folders sets it False.
    """

    name: str = ""
    summary: str = ""
    uses_model: bool = True

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this study's own options to its ``vlm-focus study NAME`` parser."""

    def run(self, args: argparse.Namespace, out: Path) -> StudyResult | None:
        """Run the study with the parsed ``args``, keeping its working files in ``out``.
        Returns the table (``None`` on every rank but rank 0 of a distributed run)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


STUDIES: dict[str, type[Study]] = {}


def register_study(name: str) -> Callable[[type[Study]], type[Study]]:
    """Class decorator: register a :class:`Study` subclass under ``name``."""

    def wrap(cls: type[Study]) -> type[Study]:
        if not (isinstance(cls, type) and issubclass(cls, Study)):
            raise TypeError(f"@register_study({name!r}) needs a Study subclass, got {cls!r}")
        if name in STUDIES and STUDIES[name] is not cls:
            import warnings

            warnings.warn(f"study {name!r} registered again; the new one replaces the old", stacklevel=2)
        cls.name = name
        STUDIES[name] = cls
        return cls

    return wrap


def list_studies() -> list[str]:
    """The registered study names, sorted."""
    from . import load_all

    load_all()
    return sorted(STUDIES)


def get_study(name: str) -> Study:
    """A fresh instance of the study ``name``; :class:`InputError` with the known names if unknown."""
    names = list_studies()
    if name not in STUDIES:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown study {name!r}{hint} (known: {', '.join(names)})")
    return STUDIES[name]()
