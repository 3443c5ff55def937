"""What the studies share: dataset options, models and lenses from the CLI's arguments, and
two resumable, shardable ways to get per-sample records.

- :func:`evaluate_into` runs the ``evaluate`` runner (:func:`vlm_focus.runs.run`) into a
  sub-folder of the study's ``--out`` and returns its records: a killed study is continued
  by rerunning the same command; ``torchrun`` shards it like ``evaluate``.
- :func:`score_into` is the cheap pass the reliance and filter studies need: per sample,
  generate the answer and teacher-force it on the image and on the baseline (one scorer
  call of two images), no heatmap. Same folder layout, resume and shards as the runner
  (:mod:`vlm_focus.runs.store`, :mod:`vlm_focus.runs.shards`).

Only the argument builders are imported by the CLI; torch comes in with the functions
that load or run a model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import InputError, VlmFocusError
from ..options import pipeline_options

# ----- arguments (torch-free) ----------------------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser, default_limit: int | None = 40) -> None:
    """``--dataset --data-dir --ids --limit --prompt-format --seed --qtypes --no-progress``,
    as ``vlm-focus evaluate`` takes them. ``default_limit``: the default of ``--limit``
    (None: all; shapes: its 200 scenes); with ``--ids`` and ``--limit`` left at its default,
    :func:`limit_of` takes every id of the file."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="shapes", choices=list(catalog.DATASETS), help="dataset to study")
    g.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding the dataset (default: $VLM_FOCUS_DATA/<dataset>; shapes needs none)",
    )
    g.add_argument(
        "--ids",
        type=Path,
        default=None,
        metavar="FILE",
        help="only these samples: a text file of ids (one per line) or a JSON list (e.g. from the filter study)",
    )
    g.add_argument(
        "--limit",
        type=int,
        default=default_limit,
        help=f"at most this many samples (default: {default_limit or 'all'}; with --ids: all of them)",
    )
    parser.set_defaults(default_limit=default_limit)
    g.add_argument(
        "--prompt-format",
        default="open",
        choices=list(catalog.PROMPT_FORMATS),
        help="multiple-choice questions: open (options dropped, as the paper) or mc",
    )
    g.add_argument("--seed", type=int, default=catalog.EVAL_SEED, help="run seed (shapes: also the scenes)")
    g.add_argument("--qtypes", default=None, help="shapes: question types, e.g. color,shape (default: all)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_models_argument(parser: argparse.ArgumentParser) -> None:
    """``--models A B ...``: several models on the same samples (default: ``--model``)."""
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="NAME_OR_PATH",
        help="models to compare on the same samples (zoo names, hub ids, paths; default: --model)",
    )


def models_of(args: argparse.Namespace) -> list[str]:
    """The models a study runs: ``--models``, else ``--model``; each checked (no download)."""
    names = list(dict.fromkeys(args.models or [args.model]))
    for name in names:
        catalog.check_model_name(name)
    return names


def parse_list(text: str, cast: Any, what: str) -> list[Any]:
    """``"0.5,1,2"`` -> ``[0.5, 1.0, 2.0]`` with ``cast``; :class:`InputError` on a bad item."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError(f"{what}: empty list")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise InputError(f"{what}: cannot read {text!r} as a comma-separated list") from None


def limit_of(args: argparse.Namespace) -> int | None:
    """``--limit``, or None (every sample) when ``--ids`` is given and ``--limit`` was left
    at the study's default."""
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be a positive number of samples, got {args.limit}")
    if args.ids is not None and args.limit == getattr(args, "default_limit", None):
        return None
    return None if args.limit is None else int(args.limit)


def is_main() -> bool:
    """True on rank 0 (or when alone): the process that writes the study's table."""
    from ..runs import shards

    return shards.from_env().main


def slug(value: Any) -> str:
    """A folder name for a model or a grid value (``llava-hf/llava-1.5-7b-hf`` -> ``llava-hf_llava-1.5-7b-hf``)."""
    from ..runs.store import safe_name

    return safe_name(str(value).strip("/")) or "_"


# ----- data and models ---------------------------------------------------------------------


def open_dataset(args: argparse.Namespace) -> Any:
    """The dataset named by ``args`` (as ``vlm-focus evaluate`` opens it)."""
    from ..data import dataset_options, get_dataset

    limit = limit_of(args)
    known = dataset_options(args.dataset)
    options: dict[str, Any] = {"prompt_format": args.prompt_format}
    if "seed" in known:
        options["seed"] = args.seed
    if limit is not None and args.ids is None and "limit" in known:
        options["limit"] = limit
    if args.qtypes is not None:
        options["qtypes"] = args.qtypes.split(",")
    return get_dataset(args.dataset, args.data_dir, **options)


def chosen_ids(args: argparse.Namespace, dataset: Any) -> list[str]:
    """The study's samples, in dataset order: ``--ids`` (if given), then the first ``--limit``."""
    from ..runs.runner import read_ids, select_ids

    ids = read_ids(args.ids) if args.ids is not None else None
    return select_ids(list(dataset.ids()), ids, limit_of(args))


def lens_options(args: argparse.Namespace, method: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The pipeline and method options of the CLI's model arguments, then ``overrides``.

    ``args.options`` holds the ``-O KEY=VALUE`` pairs (parsed by the CLI, checked against
    ``--method``). For another ``method`` (a study running several), the pairs that method
    does not take are left out, so ``-O iterations=2`` reaches igos++ but not gradcam."""
    pipeline = pipeline_options(args)
    given = dict(getattr(args, "options", {}))
    if method is not None and method != args.method and method in catalog.METHODS:
        known = set(catalog.METHODS[method].options) | set(catalog.LENS_OPTIONS)
        given = {k: v for k, v in given.items() if k in known}
    return {**pipeline, **given, **overrides}


class Models:
    """Loads each model once (its adapter) and makes lenses on it with varied options."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._adapters: dict[str, Any] = {}

    def adapter(self, name: str) -> Any:
        if name not in self._adapters:
            import warnings

            from ..models import load_adapter
            from ..runs import shards

            a = self.args
            catalog.check_model_name(name)
            device = shards.device_for(shards.from_env(), a.device) if a.device_map is None else a.device
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:
                pass
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*requires torchvision.*")
                self._adapters[name] = load_adapter(
                    name,
                    device=device,
                    dtype=a.dtype,
                    device_map=a.device_map,
                    trust_remote_code=a.trust_remote_code,
                    attn_implementation=a.attn_implementation,
                    gradient_checkpointing=a.gradient_checkpointing,
                )
        return self._adapters[name]

    def drop(self, name: str) -> None:
        """Forget model ``name`` (free its memory before the next model loads)."""
        if self._adapters.pop(name, None) is not None:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def lens(self, name: str, method: str | None = None, **overrides: Any) -> Any:
        """A :class:`~vlm_focus.explain.Lens` on model ``name`` with the CLI's options and
        ``overrides`` (pipeline options or method options)."""
        from ..explain import Lens

        method = method or self.args.method
        return Lens(self.adapter(name), method=method, **lens_options(self.args, method, **overrides))


# ----- records -------------------------------------------------------------------------------


def evaluate_into(
    lens: Any,
    dataset: Any,
    folder: Path,
    ids: Sequence[str],
    args: argparse.Namespace,
    sanity: bool = False,
) -> list[dict]:
    """Run ``evaluate`` on ``ids`` into ``folder`` (resuming what is there) and return the
    records of ``ids``, in their order (on every rank). ``args`` gives ``seed``,
    ``no_progress`` and (if present) ``tolerance``; ``sanity`` adds the per-sample
    model-randomisation check (``evaluate --sanity``)."""
    from ..runs import run, store

    run(
        lens,
        dataset,
        folder,
        ids=list(ids),
        resume=True,
        seed=args.seed,
        sanity=sanity,
        tolerance=getattr(args, "tolerance", None),
        progress=not args.no_progress,
    )
    found = store.read_all(folder, repair=False)
    return [found[i] for i in ids if i in found]


def score_record(lens: Any, sample: Any, index: int, seed: int) -> dict:
    """Answer, per-token log-probabilities on the image and on the baseline, and their LLR,
    for one sample; no heatmap (``Lens.explain(selected=[])``). Never raises for a bad sample."""
    import torch

    from ..runs.runner import sample_seed

    rec: dict[str, Any] = {"id": sample.id, "index": index, "category": sample.category}
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(seed, index))
            ex = lens.explain(sample.load_image(), sample.question, selected=[], metrics=False)
        rec.update(
            status="ok",
            question=sample.question,
            answer=ex.answer,
            tokens=ex.tokens,
            logprob=ex.logprob,
            logprob_baseline=ex.logprob_baseline,
            llr=ex.llr,
        )
    except VlmFocusError as e:
        rec.update(status="skipped", reason=f"{type(e).__name__}: {e}")
    except Exception as e:  # one bad sample must not end a long study; the record says why
        rec.update(status="error", reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=6))
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    rec["finished_at"] = round(time.time(), 3)
    return rec


def score_into(
    lens: Any, dataset: Any, folder: Path, ids: Sequence[str], args: argparse.Namespace
) -> list[dict]:
    """:func:`score_record` for every id into ``folder/results.jsonl`` (resumable: finished
    ids are kept; shardable: each ``torchrun`` rank scores its share, rank 0 merges).
    Returns the records of ``ids`` in their order (on every rank)."""
    from tqdm.auto import tqdm

    from ..runs import shards as shards_mod
    from ..runs import store
    from ..runs.runner import describe_dataset, open_folder

    all_ids = list(dataset.ids())
    position = {sid: i for i, sid in enumerate(all_ids)}
    o = lens.options
    cfg = store.clean(
        {
            "kind": "score",
            "dataset": dataset.name,
            "dataset_options": describe_dataset(dataset),
            "seed": args.seed,
            "model": lens.adapter.name,
            "lens_options": {k: o[k] for k in ("baseline", "working_size", "max_new_tokens", "batch_size")},
        }
    )
    cfg = json.loads(json.dumps(cfg))
    with (
        shards_mod.distributed(getattr(lens.adapter, "device", None)) as shard,
        contextlib.ExitStack() as stack,
    ):
        done = open_folder(folder, cfg, True, shard, stack)
        mine = shard.select(ids)
        todo = [sid for sid in mine if sid not in done]
        shard.barrier()
        bar = tqdm(
            total=len(mine),
            initial=len(mine) - len(todo),
            file=sys.stderr,
            disable=args.no_progress or not shard.main,
            unit="sample",
            desc=f"score {lens.adapter.name}",
        )
        with bar, open(folder / store.shard_name(shard.rank, shard.world_size), "a", encoding="utf-8") as f:
            for sid in todo:
                try:
                    rec = score_record(lens, dataset.get(sid), position[sid], args.seed)
                except VlmFocusError as e:
                    rec = {"id": sid, "status": "skipped", "reason": f"{type(e).__name__}: {e}"}
                rec.update(index=position[sid], rank=shard.rank)
                store.append(f, rec)
                bar.update(1)
        shard.barrier()
        if shard.main:
            store.merge(folder, all_ids)
        shard.barrier()
    found = store.read_all(folder, repair=False)
    return [found[i] for i in ids if i in found]


def answer_drop(record: dict) -> float:
    """``1 - P(a | baseline, Q) / P(a | I, Q) = 1 - exp(-sum_t LLR_t)`` of one record (paper
    Eq. 6: the whole answer's LLR); NaN when the record has no LLRs."""
    llr = record.get("llr")
    if not llr or any(v is None for v in llr):
        return math.nan
    total = float(sum(llr))
    if not math.isfinite(total):
        return math.nan
    return 1.0 - math.exp(-total) if total > -700 else -math.inf


def read_run(folder: str | Path) -> tuple[dict, list[dict]]:
    """``(settings, records)`` of a folder written by ``vlm-focus evaluate`` or by
    :func:`score_into` (``run.json`` and every results file, one record per id, in the
    dataset's order). :class:`InputError` when the folder holds no run."""
    from ..runs import store

    folder = Path(folder)
    cfg_path = folder / store.CONFIG
    if not folder.is_dir() or not cfg_path.is_file():
        raise InputError(
            f"{folder}: not a run folder (no {store.CONFIG}); run vlm-focus evaluate into it first"
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{cfg_path}: cannot read the run settings ({e})") from None
    records = sorted(store.read_all(folder, repair=False).values(), key=lambda r: r.get("index", 0))
    if not records:
        raise InputError(f"{folder}: the run holds no results yet")
    return cfg, records


def check_limit(args: argparse.Namespace) -> None:
    """:class:`InputError` unless ``--limit`` is unset or a positive number."""
    limit_of(args)
