"""The files of a run folder: results (one JSON line per sample), settings, summary, lock.

Layout of ``out/``:

- ``results.jsonl`` - the merged results, in the dataset's sample order; a single-process run
  appends to it directly;
- ``results.rank{r}-of{n}.jsonl`` - the shard of process ``r`` of ``n`` while a multi-process
  run is under way (merged into ``results.jsonl`` and removed at its end);
- ``run.json`` - the settings, checked on resume; ``summary.json`` - the statistics;
- ``heatmaps/<id>.npy`` - one heatmap per explained sample.

Every record is appended and fsync'ed as soon as its sample ends, so a kill loses at most
the line being written. Reading repairs exactly that: a truncated last line is dropped
(and, with ``repair``, the file rewritten without it); a broken line elsewhere is an error.
JSON, results and heatmap files are replaced atomically (:mod:`vlm_focus.files`: temporary
file + ``os.replace``, never through a symbolic link), never half-written; a resumed run
removes the temporary files a kill left (:func:`remove_stale_temps`).

A folder that cannot be written (read-only, disk full) raises :class:`OutputError`, and
what was written before stays intact: a record that does not fit is cut off again, so the
results file ends with the last whole record.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import DataError, InputError, OutputError
from ..files import atomic_write_bytes, atomic_write_text

RESULTS, SUMMARY, CONFIG, HEATMAPS = "results.jsonl", "summary.json", "run.json", "heatmaps"
LOCK = ".lock"
_SHARD = re.compile(r"^results\.rank(\d+)-of(\d+)\.jsonl$")


def shard_name(rank: int, world_size: int) -> str:
    """The results file of process ``rank`` of ``world_size``: ``results.jsonl`` when alone."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank {rank} is not in a world of {world_size} process(es)")
    return RESULTS if world_size == 1 else f"results.rank{rank}-of{world_size}.jsonl"


def shard_files(out: str | Path) -> list[Path]:
    """Every per-process results file in ``out``, whatever world size wrote it, sorted."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m[2]), int(m[1]), p) for p in out.iterdir() if (m := _SHARD.match(p.name))]
    return [p for _, _, p in sorted(found)]


def result_files(out: str | Path) -> list[Path]:
    """``results.jsonl`` (if present) followed by every shard file of ``out``."""
    merged = Path(out) / RESULTS
    return ([merged] if merged.exists() else []) + shard_files(out)


def clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null, numpy scalars and arrays -> Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def dumps(record: dict) -> str:
    """One results line (without the newline)."""
    return json.dumps(clean(record), allow_nan=False)


def open_results(path: str | Path) -> IO[str]:
    """Open a results file for :func:`append` (:class:`OutputError` if it cannot be)."""
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


def append(f: IO[str], record: dict) -> None:
    """Append ``record`` as one line to the open file ``f`` and make it durable. A write that
    fails (disk full, I/O error) is cut back to the file's previous end and raises
    :class:`OutputError`: the file keeps every earlier record whole."""
    data = (dumps(record) + "\n").encode("utf-8")
    f.flush()  # nothing buffered: every record goes through the descriptor below
    fd = f.fileno()
    end = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, end)
        raise OutputError(
            f"cannot write {getattr(f, 'name', 'the results file')}: {e.strerror or e}"
        ) from None


def read_results(path: str | Path, repair: bool = True) -> list[dict]:
    """Records of one results file. A truncated last line (a killed run) is dropped and,
    with ``repair``, the file is rewritten without it; a broken line elsewhere raises
    :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    lines = raw.split(b"\n")
    records, dropped = [], False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "id" not in rec:
                raise ValueError("not a record")
        except ValueError:
            if n == len(lines):  # no newline after it: the write was cut off
                dropped = True
                continue
            raise DataError(f"{path}, line {n}: not a JSON record; repair or remove the line") from None
        records.append(rec)
    if repair and (dropped or (raw and not raw.endswith(b"\n"))):
        write_results(path, records)
    return records


def write_results(path: str | Path, records: Iterable[dict]) -> None:
    """Replace ``path`` atomically by ``records``, one JSON line each."""
    atomic_write_text(path, "".join(dumps(rec) + "\n" for rec in records))


def write_json(path: str | Path, data: dict) -> None:
    """Replace ``path`` atomically by ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(clean(data), indent=2, allow_nan=False) + "\n")


def write_npy(path: str | Path, array: Any) -> None:
    """Save a float32 array atomically (no pickle)."""
    path = Path(path)
    make_dir(path.parent)
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def make_dir(path: str | Path) -> Path:
    """``mkdir -p`` (:class:`OutputError` if the folder cannot be made)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {path}: {e.strerror or e}") from None
    return path


#: Temporary files of the atomic writes (``vlm_focus.files`` names them ``.<name>.<random>.tmp``;
#: older versions wrote ``<name>.tmp``). No results or heatmap file ends so.
_TEMP = re.compile(r"^.+\.tmp$")


def remove_stale_temps(out: str | Path) -> list[Path]:
    """Remove the temporary files a killed run left in ``out`` and ``out/heatmaps`` (call
    while holding :func:`locked`, before any process writes). Returns what was removed."""
    removed = []
    for folder in (Path(out), Path(out) / HEATMAPS):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _TEMP.match(p.name) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


def safe_name(sample_id: str) -> str:
    """A file name for ``sample_id`` (heatmaps)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)


def has_results(out: str | Path) -> bool:
    """True if ``out`` holds a non-empty results file (merged or a shard)."""
    return any(p.stat().st_size > 0 for p in result_files(out))


def check_out(out: str | Path, resume: bool) -> Path:
    """Refuse to overwrite: existing results in ``out`` need ``resume``. Returns the
    path of ``results.jsonl``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory")
    if not resume and has_results(out):
        raise InputError(
            f"{out} already holds results; pass --resume (resume=True) to continue that run, "
            "or choose another --out directory"
        )
    return out / RESULTS


def best(records: Iterable[dict]) -> dict[str, dict]:
    """``id -> record``, one per id: a finished record (``status`` not ``"error"``) over an
    error, then the latest (``finished_at``; the later one read on a tie). Unexpected
    errors are tried again on resume, so an id may hold an error and then a result."""
    chosen: dict[str, dict] = {}

    def rank(rec: dict) -> tuple[bool, float]:
        return (rec.get("status") != "error", float(rec.get("finished_at") or 0.0))

    for rec in records:
        old = chosen.get(rec["id"])
        if old is None or rank(rec) >= rank(old):
            chosen[rec["id"]] = rec
    return chosen


def read_all(out: str | Path, repair: bool = True) -> dict[str, dict]:
    """:func:`best` over every results file of ``out`` (merged and every shard)."""
    return best(rec for path in result_files(out) for rec in read_results(path, repair))


def merge(out: str | Path, order: Iterable[str]) -> list[dict]:
    """Write every record of ``out`` once into ``results.jsonl``, sorted by ``order`` (ids in
    sample order; ids outside it follow in their old order), then remove the shard files.

    Safe against a kill at any point: the merged file is replaced atomically before the shards
    go, and a resumed run reads both and keeps one record per id."""
    out = Path(out)
    records = read_all(out)
    rank = {sid: i for i, sid in enumerate(order)}
    tail = len(rank)
    merged = sorted(records.values(), key=lambda r: rank.get(r["id"], tail))
    write_results(out / RESULTS, merged)
    for path in shard_files(out):
        path.unlink()
    return merged


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` so two runs never write to one folder.

    Advisory (``fcntl.flock``), released when the process ends however it ends; on systems
    without ``fcntl`` (Windows) runs are unguarded."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        f = open(Path(directory) / LOCK, "w")
    except OSError as e:
        raise OutputError(f"cannot write to {directory}: {e.strerror or e}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another run is writing to {directory}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
