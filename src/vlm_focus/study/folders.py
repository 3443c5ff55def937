"""Run folders as study inputs: ``LABEL=VALUE`` items, reading an ``evaluate`` folder, and
the check that several folders explained the same samples.

The ``compare`` and ``human`` studies take models to run (``--models [LABEL=]NAME_OR_PATH``)
and finished ``vlm-focus evaluate`` folders (``--runs LABEL=DIR``); both end here as a
:class:`RunFolder`: the folder's settings (``run.json``), one record per sample and the
saved heatmaps. Torch-free (numpy only), so the CLI can import it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InputError


def labelled(items: Iterable[str] | None, what: str, need_label: bool = False) -> dict[str, str]:
    """``["a=x", "y"]`` -> ``{"a": "x", "y": "y"}``, in order; a label given twice is refused.
    ``need_label``: every item must be ``LABEL=VALUE``."""
    out: dict[str, str] = {}
    for item in items or []:
        label, sep, value = str(item).partition("=")
        if not sep:
            if need_label:
                raise InputError(f"{what}: {item!r} is not LABEL=VALUE")
            label = value = str(item)
        label, value = label.strip(), value.strip()
        if not label or not value:
            raise InputError(f"{what}: {item!r} has an empty label or value")
        if label in out:
            raise InputError(f"{what}: the label {label!r} is given twice")
        out[label] = value
    return out


def add_models_and_runs(parser: Any) -> None:
    """``--models [LABEL=]NAME_OR_PATH ...`` (run them) and ``--runs LABEL=DIR ...`` (read them)."""
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="[LABEL=]NAME_OR_PATH",
        help="models to run on the same samples (zoo names, hub ids, paths; LABEL= names one, e.g. "
        "a second training run of an architecture); default: --model unless --runs is given",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=None,
        metavar="LABEL=DIR",
        help="finished `vlm-focus evaluate` folders to read instead of running a model (same samples)",
    )


@dataclass
class RunFolder:
    """One model's per-sample records in an ``evaluate`` folder."""

    label: str
    path: Path
    config: dict[str, Any]
    records: dict[str, dict] = field(repr=False)

    @property
    def ok(self) -> dict[str, dict]:
        """``id -> record`` of the explained samples (those with a heatmap), in file order."""
        return {sid: r for sid, r in self.records.items() if r.get("status") == "ok" and r.get("heatmap")}

    def heatmap(self, sample_id: str) -> np.ndarray:
        """The saved heatmap of ``sample_id`` (``[H, W]`` float32 on the image grid)."""
        rec = self.ok.get(sample_id)
        if rec is None:
            raise InputError(f"{self.label}: sample {sample_id!r} has no heatmap in {self.path}")
        p = self.path / rec["heatmap"]
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{self.label}: cannot read the heatmap {p}: {e}") from None


def read_run(label: str, path: str | Path) -> RunFolder:
    """The run folder ``path`` (``run.json`` and results files) as a :class:`RunFolder`."""
    from ..runs import store

    path = Path(path)
    cfg_path = path / store.CONFIG
    if not cfg_path.is_file():
        raise InputError(f"{label}: {path} is not a `vlm-focus evaluate` folder (no {store.CONFIG})")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{label}: cannot read {cfg_path}: {e}") from None
    if not isinstance(config, dict):
        raise DataError(f"{label}: {cfg_path} is not a JSON object")
    return RunFolder(label, path, config, store.read_all(path, repair=False))


SAMPLE_KEYS = ("dataset", "dataset_options", "seed")


def check_same_samples(folders: Sequence[RunFolder]) -> None:
    """Refuse folders that explained different samples (other dataset, options or seed):
    their maps could not be compared scene by scene."""
    if not folders:
        return
    first = folders[0]
    for other in folders[1:]:
        diff = [k for k in SAMPLE_KEYS if first.config.get(k) != other.config.get(k)]
        if diff:
            details = "; ".join(f"{k}: {first.config.get(k)!r} vs {other.config.get(k)!r}" for k in diff)
            raise InputError(
                f"{first.label} ({first.path}) and {other.label} ({other.path}) explained different "
                f"samples ({details}); compare runs of one dataset, options and seed"
            )


def collect(
    args: argparse.Namespace, out: Path, models: dict[str, str], runs: dict[str, str], dataset: Any = None
) -> list[RunFolder] | None:
    """Run each of ``models`` with ``evaluate`` on ``dataset`` (default: the one ``args``
    names) into ``out/runs/<label>`` (resumed when there), read each of ``runs``, check they
    share their samples. ``None`` on ranks other than 0."""
    from .common import Models, chosen_ids, evaluate_into, is_main, open_dataset, slug

    both = sorted(set(models) & set(runs))
    if both:
        raise InputError(f"the label(s) {both} name both a model (--models) and a folder (--runs)")
    folders: list[tuple[str, Path]] = []
    if models:
        dataset = open_dataset(args) if dataset is None else dataset
        ids = chosen_ids(args, dataset)
        loader = Models(args)
        for label, name in models.items():
            folder = out / "runs" / slug(label)
            # study.common.lens_options does not carry --metric-protocol: pass it here (-O wins).
            protocol = (
                {}
                if "metric_protocol" in getattr(args, "options", {})
                else {"metric_protocol": getattr(args, "metric_protocol", "ours")}
            )
            lens = loader.lens(name, **protocol)
            evaluate_into(lens, dataset, folder, ids, args)
            folders.append((label, folder))
    if not is_main():
        return None
    folders += [(label, Path(p)) for label, p in runs.items()]
    result = [read_run(label, p) for label, p in folders]
    check_same_samples(result)
    return result
