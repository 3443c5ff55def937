"""Dataset contract and registry: :class:`Sample`, :class:`Dataset`, ``@register_dataset``.

A dataset is an ordered, indexed collection of :class:`Sample` s read from a local copy of a
benchmark in its published layout (or generated, for ``shapes``). Loaders read the index
(questions, answers, file names) when the dataset is made; images are opened only when a
sample asks for them (:meth:`Sample.load_image`), so listing a dataset is cheap.

Rules every loader follows:

- Sample ids are stable strings, unique within the dataset; :meth:`Dataset.ids` gives them
  in a deterministic order (the order of the published index).
- Image paths are resolved inside the data folder: absolute paths elsewhere, ``..`` and
  symlinks pointing out of it are refused with :class:`~vlm_focus.errors.DataError`.
- A missing image file is *not* checked while reading the index: it raises
  :class:`DataError` naming the file when the sample's image is loaded. Entries the
  published data marks as having no image (e.g. HallusionBench's ``visual_input == "0"``)
  are skipped and counted in :attr:`Dataset.skipped`.
- Multiple-choice questions are open-ended by default (``prompt_format="open"``, the
  paper's protocol): the options and the answer-format instructions are dropped from the
  question, the options stay in :attr:`Sample.options` for grading. ``prompt_format="mc"``
  renders them as ``Question\\nA. ...\\nB. ...\\nAnswer with the option's letter from the
  given choices directly.``
- Every problem with the data raises :class:`DataError` naming the file and the field or
  line; a bad option raises :class:`~vlm_focus.errors.InputError`.

This module imports no torch: ``vlm_focus.images`` is imported on first image load.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import io
import json
import os
import re
import string
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError, ImageError, InputError

PROMPT_FORMATS: tuple[str, ...] = ("open", "mc")
ANSWER_KINDS: tuple[str, ...] = ("choice", "yesno", "short", "free", "shapes")
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
LETTERS = string.ascii_uppercase
DATA_ENV = "VLM_FOCUS_DATA"  # default root: $VLM_FOCUS_DATA/<dataset name>
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


# ----- samples ---------------------------------------------------------------------------
@dataclass
class Sample:
    """One question about one image, with what the dataset knows about it.

    ``image`` is set directly (generated data) or left ``None`` and opened on demand by
    :meth:`load_image` from ``image_path`` (a file) or ``image_loader`` (e.g. bytes inside a
    parquet file). ``answer`` is the reference answer as text (a multiple-choice letter is
    resolved to its option text; the letter is :attr:`answer_letter`). ``source`` holds the
    dataset's own object (for ``shapes``: :class:`vlm_focus.data.shapes.Sample`, whose
    ``objects`` stay reachable as :attr:`objects`); it is never serialised.
    """

    id: str
    question: str
    image: Image.Image | None = None
    image_path: Path | None = None
    answer: str | None = None
    options: list[str] | None = None
    answer_kind: str = "short"
    category: str | None = None
    evidence: np.ndarray | None = None  # bool [H, W] on the image grid
    human_map: np.ndarray | None = None  # float [H, W] in [0, 1] on the image grid
    extras: dict = field(default_factory=dict)  # JSON-serialisable, dataset-specific
    dataset: str = ""
    source: Any = field(default=None, repr=False, compare=False)
    image_loader: Callable[[], Image.Image] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.answer_kind not in ANSWER_KINDS:
            raise InputError(f"answer_kind {self.answer_kind!r}: choose from {list(ANSWER_KINDS)}")

    def load_image(self) -> Image.Image:
        """The image as RGB PIL, validated by :func:`vlm_focus.images.load_image` (size and
        decompression-bomb limits). Nothing is cached on the sample."""
        from ..images import load_image

        where = f"{self.dataset or 'dataset'}: sample {self.id!r}"
        try:
            if self.image is not None:
                return load_image(self.image)
            if self.image_loader is not None:
                return load_image(self.image_loader())
            if self.image_path is not None:
                path = Path(self.image_path)
                try:
                    found = path.is_file()
                except OSError:  # e.g. a name too long for the file system
                    found = False
                if not found:
                    raise DataError(f"{where}: image file not found: {path}")
                return load_image(path)
        except ImageError as e:
            raise DataError(f"{where}: {e}") from e
        raise DataError(f"{where}: has no image")

    @property
    def answer_letter(self) -> str | None:
        """The option letter of the reference answer, for multiple-choice samples."""
        if "answer_letter" in self.extras:
            return str(self.extras["answer_letter"])
        if self.options and self.answer in self.options:
            return LETTERS[self.options.index(self.answer)]
        return None

    @property
    def objects(self) -> list:
        """The scene objects of a ``shapes`` sample (empty for other datasets)."""
        return list(getattr(self.source, "objects", []) or [])

    def to_record(self) -> dict:
        """JSON-serialisable description (no pixels, no maps; their presence is noted)."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "question": self.question,
            "answer": self.answer,
            "options": list(self.options) if self.options is not None else None,
            "answer_kind": self.answer_kind,
            "category": self.category,
            "image_path": str(self.image_path) if self.image_path is not None else None,
            "has_evidence": self.evidence is not None,
            "has_human_map": self.human_map is not None,
            "extras": dict(self.extras),
        }


# ----- datasets --------------------------------------------------------------------------
class Dataset:
    """Base class of every loader: an ordered index ``id -> record`` and :meth:`build`.

    Subclasses read their index in ``__init__`` (calling :meth:`add` per entry and
    :meth:`skip` per entry left out) and override :meth:`build` to turn a record into a
    :class:`Sample`. ``limit`` keeps the first ``limit`` ids (:meth:`get` still finds
    any id of the index). :meth:`describe` names the options that change the samples.
    """

    name: str = "base"

    def __init__(
        self, data_dir: str | Path | None = None, prompt_format: str = "open", limit: int | None = None
    ) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise InputError(
                f"{self.name}: prompt_format {prompt_format!r}; choose from {list(PROMPT_FORMATS)}"
            )
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise InputError(f"{self.name}: limit must be a non-negative integer, got {limit!r}")
        self.data_dir: Path | None = Path(data_dir) if data_dir is not None else None
        self.prompt_format = prompt_format
        self.limit = limit
        self.skipped: dict[str, int] = {}
        self._order: list[str] = []
        self._records: dict[str, Any] = {}

    # --- building the index (subclasses) ---
    def add(self, sample_id: str, record: Any, where: str = "") -> None:
        sample_id = str(sample_id)
        if sample_id in self._records:
            raise DataError(f"{where or self.name}: duplicate sample id {sample_id!r}")
        self._records[sample_id] = record
        self._order.append(sample_id)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def build(self, sample_id: str, record: Any) -> Sample:
        if isinstance(record, Sample):
            return record
        raise NotImplementedError

    # --- the contract ---
    def ids(self) -> list[str]:
        return list(self._order if self.limit is None else self._order[: self.limit])

    def __len__(self) -> int:
        return len(self._order) if self.limit is None else min(self.limit, len(self._order))

    def __iter__(self) -> Iterator[Sample]:
        for sample_id in self.ids():
            yield self.get(sample_id)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._records

    def get(self, sample_id: str) -> Sample:
        sample_id = str(sample_id)
        if sample_id not in self._records:
            close = difflib.get_close_matches(sample_id, self._order, n=3)
            hint = f"; did you mean {close}?" if close else ""
            raise DataError(f"{self.name}: no sample with id {sample_id!r}{hint}")
        sample = self.build(sample_id, self._records[sample_id])
        sample.dataset = self.name
        if not sample.question or not sample.question.strip():
            raise DataError(f"{self.name}: sample {sample_id!r} has an empty question")
        return sample

    def describe(self) -> dict:
        """JSON-serialisable summary: name, data folder, size, skipped entries."""
        return {
            "name": self.name,
            "data_dir": str(self.data_dir) if self.data_dir is not None else None,
            "prompt_format": self.prompt_format,
            "samples": len(self),
            "skipped": dict(self.skipped),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self)} samples from {self.data_dir}>"


# ----- registry --------------------------------------------------------------------------
DATASETS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str) -> Callable[[Any], Any]:
    """Decorator on a :class:`Dataset` subclass (or a factory) taking
    ``(data_dir=None, prompt_format="open", **options)``: make it available as ``name``."""

    def wrap(obj: Any) -> Any:
        if name in DATASETS:
            warnings.warn(f"dataset {name!r} registered again; the new one replaces the old", stacklevel=2)
        if isinstance(obj, type):
            obj.name = name  # type: ignore[attr-defined]
        DATASETS[name] = obj
        return obj

    return wrap


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def dataset_options(name: str) -> dict[str, Any]:
    """The options ``name`` takes, with their defaults (``inspect.Parameter.empty`` when
    required)."""
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    return {
        k: p.default
        for k, p in params.items()
        if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def get_dataset(name: str, data_dir: str | Path | None = None, **options) -> Dataset:
    """Open dataset ``name`` from ``data_dir`` (default ``$VLM_FOCUS_DATA/<name>``)."""
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        known = [k for k in params if k not in ("self", "data_dir")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"dataset {name!r}: unknown option(s) {unknown}; known: {known}")
    return factory(data_dir=data_dir, **options)


def _factory(name: str) -> Callable[..., Dataset]:
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint}; choose from {list_datasets()}")
    return DATASETS[name]


# ----- helpers for loaders ---------------------------------------------------------------
def data_root(name: str, data_dir: str | Path | None, what: str) -> Path:
    """The dataset folder: ``data_dir``, else ``$VLM_FOCUS_DATA/<name>``; it must exist.
    ``what`` says what the folder should hold (for the message)."""
    if data_dir is None:
        env = os.environ.get(DATA_ENV)
        if not env:
            raise DataError(
                f"{name}: no data folder given; pass data_dir (the folder holding {what}) or set {DATA_ENV}"
            )
        data_dir = Path(env) / name
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataError(f"{name}: data folder not found: {root} (expected the folder holding {what})")
    if not root.is_dir():
        raise DataError(
            f"{name}: data folder is not a directory: {root} (expected the folder holding {what})"
        )
    return root


def find_files(root: Path, patterns: list[str], name: str) -> list[Path]:
    """The files of the first pattern (a name or a glob relative to ``root``) that matches
    (all of a glob's matches, sorted)."""
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            hits = sorted(p for p in root.glob(pat) if p.is_file())
        else:
            hits = [root / pat] if (root / pat).is_file() else []
        if hits:
            return hits
    raise DataError(f"{name}: none of {patterns} found in {root}")


def snapshot_files(root: Path, patterns: list[str], name: str, original: str) -> list[Path]:
    """The parquet snapshot's files (:func:`find_files`) of a dataset whose ``original``
    release layout is absent; the error names both layouts."""
    try:
        return find_files(root, patterns, name)
    except DataError:
        raise DataError(
            f"{name}: neither {original} nor a parquet snapshot ({', '.join(patterns)}) found in {root}"
        ) from None


def safe_path(root: Path, rel: str | os.PathLike, where: str) -> Path:
    """``rel`` resolved inside ``root``; a path that leaves ``root`` (absolute elsewhere,
    ``..``, a symlink pointing out) raises :class:`DataError`."""
    text = os.fspath(rel)
    if not text or not str(text).strip():
        raise DataError(f"{where}: empty image path")
    p = Path(text).expanduser()
    candidate = p if p.is_absolute() else root / p
    real_root = root.resolve()
    real = candidate.resolve()
    if not real.is_relative_to(real_root):
        raise DataError(f"{where}: image path {text!r} leaves the data folder {root}; refused")
    return real


def require(row: dict, key: str, where: str) -> Any:
    """``row[key]``, or :class:`DataError` naming the missing field."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with field {key!r}, got {type(row).__name__}")
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r}")
    return row[key]


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {n}: expected a JSON object, got {type(obj).__name__}")
        out.append((n, obj))
    return out


def read_csv(path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` for each row of a CSV file with a header (BOM tolerated,
    header names stripped)."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise DataError(f"{path}: empty CSV file (no header)")
            reader.fieldnames = [h.strip() for h in reader.fieldnames]
            return [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: not a valid CSV file ({e})") from None


def require_pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading parquet files needs pyarrow: pip install -e '.[datasets]' (or pip install pyarrow)"
        ) from None
    return pq


class ParquetTable:
    """Rows of one or more parquet files: the small columns as Python values, the large
    (image) columns fetched one row at a time."""

    def __init__(self, paths: list[Path], lazy: tuple[str, ...] = ("image",)) -> None:
        pq = require_pyarrow()
        import pyarrow as pa

        self.paths = paths
        tables = []
        for p in paths:
            try:
                tables.append(pq.read_table(p))
            except (OSError, pa.ArrowException) as e:
                raise DataError(f"{p}: not a readable parquet file ({e})") from None
        names = [set(t.column_names) for t in tables]
        if any(n != names[0] for n in names[1:]):
            raise DataError(f"{', '.join(map(str, paths))}: the parquet files have different columns")
        try:
            self.table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except pa.ArrowException as e:
            raise DataError(f"{', '.join(map(str, paths))}: cannot combine the parquet files ({e})") from None
        self.columns = list(self.table.column_names)
        small = [c for c in self.columns if c not in lazy]
        try:
            self.rows: list[dict] = self.table.select(small).to_pylist()
        except (UnicodeDecodeError, pa.ArrowException) as e:  # e.g. a string column of bad UTF-8
            raise DataError(f"{', '.join(map(str, paths))}: unreadable values ({e})") from None
        self.where = (
            str(paths[0]) if len(paths) == 1 else f"{paths[0].parent}/{{{','.join(p.name for p in paths)}}}"
        )

    def __len__(self) -> int:
        return len(self.rows)

    def cell(self, column: str, i: int) -> Any:
        try:
            return self.table.column(column)[i].as_py()
        except UnicodeDecodeError as e:
            raise DataError(f"{self.where}: row {i}, column {column!r}: not UTF-8 text ({e})") from None


def image_from_cell(cell: Any, root: Path | None, where: str) -> Callable[[], Image.Image] | Path:
    """A Hugging Face ``Image`` feature value (struct ``{bytes, path}`` or raw bytes): a
    loader for the bytes, or the path inside ``root`` when there are no bytes."""
    if isinstance(cell, (bytes, bytearray)):
        data = bytes(cell)
        return lambda: open_image_bytes(data, where)
    if isinstance(cell, dict):
        if cell.get("bytes"):
            data = bytes(cell["bytes"])
            return lambda: open_image_bytes(data, where)
        if cell.get("path") and root is not None:
            return safe_path(root, cell["path"], where)
    raise DataError(f"{where}: field 'image' holds no image bytes or path")


def image_source(image: Callable[[], Image.Image] | Path | None) -> dict[str, Any]:
    """``Sample`` keyword arguments for an image given as a path or a loader."""
    if image is None:
        return {}
    if isinstance(image, Path):
        return {"image_path": image}
    return {"image_loader": image}


def open_image_bytes(data: bytes, where: str, max_pixels: int | None = None) -> Image.Image:
    """Decode an encoded image with the same decompression-bomb guard as file images."""
    from ..images import DEFAULT_MAX_PIXELS

    limit = max_pixels or DEFAULT_MAX_PIXELS
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return img.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(
            f"{where}: image has too many pixels for the decompression-bomb guard ({e})"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where}: image bytes are not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def image_size(sample: Sample) -> tuple[int, int]:
    """``(width, height)`` of a sample's image, reading only the header of files."""
    if sample.image is None and sample.image_loader is None and sample.image_path is not None:
        path = Path(sample.image_path)
        if not path.is_file():
            raise DataError(f"{sample.dataset}: sample {sample.id!r}: image file not found: {path}")
        try:
            with Image.open(path) as img:
                return img.size
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(
                f"{sample.dataset}: sample {sample.id!r}: {path}: not a readable image ({e})"
            ) from None
    return sample.load_image().size


# ----- multiple choice -------------------------------------------------------------------
_INSTRUCTIONS = [
    r"answer with the option'?s letter from the given choices directly\.?",
    r"answer with the letter of the (correct|best) (option|choice)[^.\n]*\.?",
    r"(please )?(select|choose|pick) (the )?(correct|best|right) (answer|option|choice)[^.\n]*\.?",
    r"select from the following choices\.?",
    r"(please )?answer (the question )?using a single word or phrase\.?",
]
_INSTRUCTION_RE = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTIONS), re.IGNORECASE)


def strip_instructions(text: str) -> str:
    """Drop answer-format instruction sentences (e.g. "Answer with the option's letter
    from the given choices directly.") and tidy the whitespace."""
    text = _INSTRUCTION_RE.sub("", text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def split_inline_options(question: str) -> tuple[str, list[str] | None]:
    """Split MMStar-style ``"...\\nOptions: A: x, B: y, C: z"`` into the stem and the
    option texts (``None`` when there is no such block). Option markers must come in
    letter order (A, B, C, ...), so commas inside an option are kept."""
    m = re.search(r"(?:^|\n)\s*(?:Options|Choices)\s*:\s*", question, flags=re.IGNORECASE)
    if m is None:
        return question.strip(), None
    stem, block = question[: m.start()], question[m.end() :]
    starts = []
    pos = 0
    for i, letter in enumerate(LETTERS):
        if i == 0:
            mm = re.match(r"\s*\(?A\s*[:.)]\s*", block)
        else:
            mm = re.compile(rf"(?:,|;|\n)\s*\(?{letter}\s*[:.)]\s*").search(block, pos)
        if mm is None:
            break
        starts.append((mm.start(), mm.end()))
        pos = mm.end()
    if len(starts) < 2:
        return question.strip(), None
    options = []
    for k, (_, end) in enumerate(starts):
        stop = starts[k + 1][0] if k + 1 < len(starts) else len(block)
        options.append(block[end:stop].strip())
    return stem.strip(), options


def render_question(stem: str, options: list[str] | None, prompt_format: str) -> str:
    """The question as asked: open-ended (stem without instructions) or multiple choice."""
    q = strip_instructions(stem)
    if prompt_format == "open" or not options:
        return q
    lines = [q] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)] + [MC_INSTRUCTION]
    return "\n".join(lines)


def parse_letter(text: Any, n_options: int | None, where: str) -> str:
    """An answer letter from ``"C"``, ``"(C)"``, ``"c"``, ``"C."``; DataError otherwise."""
    m = re.fullmatch(r"\s*\(?\s*([A-Za-z])\s*[).:]?\s*", str(text))
    if m is None:
        raise DataError(f"{where}: answer {text!r} is not an option letter")
    letter = m.group(1).upper()
    if n_options is not None and LETTERS.index(letter) >= n_options:
        raise DataError(f"{where}: answer {text!r} is beyond the {n_options} options")
    return letter
