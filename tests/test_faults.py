"""Faults during dataset runs: out of memory, corrupt images and records, kill -9 at random
moments, a full disk and a read-only output folder.

Every fault is injected for real where the code meets it: the scorer raises
``torch.OutOfMemoryError``, ``os.write`` / ``open`` raise ``ENOSPC`` / ``EROFS``, runs are
killed with SIGKILL (forked runs of a fake lens many times; the real CLI on a zoo model in
the slow run). Afterwards every sample is recorded exactly once and no file is half-written.
"""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FAST_CLI
from fakes import red_answer
from PIL import Image

import vlm_focus
from vlm_focus import files as files_mod
from vlm_focus.data.base import Dataset, Sample
from vlm_focus.errors import DataError, OutputError
from vlm_focus.models.base import Scorer
from vlm_focus.runs import read_results, run, run_evaluation, store
from vlm_focus.runs.retry import is_out_of_memory

FAST = {"iterations": 1, "ig_iter": 2, "size": 8, "alpha": -100.0, "metric_steps": 5, "metric_grid": 8}


class FakeLens:
    """Answers at once (optionally after a random pause) with a heatmap from the image;
    ``oom_above``: raises ``torch.OutOfMemoryError`` while its batch size exceeds it."""

    def __init__(self, oom_above: int | None = None, pause: float = 0.0, error=torch.OutOfMemoryError):
        self.adapter = SimpleNamespace(name="fake")
        self.method = SimpleNamespace(name="fake", options={})
        self.options = {"batch_size": 16, "alpha": 1.0}
        self.oom_above, self.pause, self.error = oom_above, pause, error
        self.calls: list[int] = []

    def explain(self, image, question, answer=None):
        self.calls.append(self.options["batch_size"])
        if self.oom_above is not None and self.options["batch_size"] > self.oom_above:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.pause:
            time.sleep(random.uniform(0, self.pause))
        heat = (np.asarray(image).min(-1) < 150).astype(np.float32)
        return red_answer(question, heat)


def records(out: Path) -> list[dict]:
    text = (out / "results.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def check_folder(out: Path, n: int | None = None) -> list[dict]:
    """No half-written file: every result line parses, every heatmap loads, no temporary
    file remains; with ``n``, every one of n samples exactly once."""
    recs = records(out)
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), "a sample was recorded twice"
    if n is not None:
        assert sorted(r["index"] for r in recs) == list(range(n))
    for r in recs:
        if r.get("heatmap"):
            assert np.load(out / r["heatmap"], allow_pickle=False).ndim == 2
    json.loads((out / "run.json").read_text())
    assert not [p.name for p in [*out.iterdir(), *(out / "heatmaps").glob("*")] if p.name.endswith(".tmp")]
    return recs


# ----- out of memory -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error", [torch.OutOfMemoryError, torch.cuda.OutOfMemoryError, RuntimeError], ids=["torch", "cuda", "cpu"]
)
def test_out_of_memory_retries_with_smaller_batches(tmp_path, error):
    lens = FakeLens(oom_above=4, error=error)
    run_evaluation(lens, "shapes", limit=2, out=tmp_path, progress=False)
    recs = records(tmp_path)
    assert [r["status"] for r in recs] == ["ok", "ok"]
    assert [(r["oom_batch_sizes"], r["batch_size"]) for r in recs] == [([16, 8], 4)] * 2
    assert lens.calls == [16, 8, 4] * 2 and lens.options["batch_size"] == 16  # the lens is unchanged


def test_out_of_memory_at_batch_one_is_recorded_and_the_run_goes_on(tmp_path):
    class OnceTooBig(FakeLens):
        def explain(self, image, question, answer=None):
            self.oom_above = 0 if len(self.calls) < 5 else None  # the first sample never fits
            return super().explain(image, question, answer)

    lens = OnceTooBig()
    run_evaluation(lens, "shapes", limit=3, out=tmp_path, progress=False)
    recs = records(tmp_path)
    assert [r["status"] for r in recs] == ["error", "ok", "ok"]
    assert recs[0]["oom_batch_sizes"] == [16, 8, 4, 2, 1] and "OutOfMemoryError" in recs[0]["reason"]
    # Errors are tried again on resume; now it fits.
    run_evaluation(FakeLens(), "shapes", limit=3, out=tmp_path, resume=True, progress=False)
    assert [r["status"] for r in check_folder(tmp_path, 3)] == ["ok", "ok", "ok"]


def test_only_memory_errors_count_as_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_real_lens_out_of_memory_gives_the_small_batch_result(tmp_path, monkeypatch):
    """The zoo model's scorer runs out of memory above 3 images; the retried sample equals a
    run made with the batch size that fits."""
    lens = vlm_focus.load("shapes-llava", method="igos++", device="cpu", batch_size=8, **FAST)
    run_evaluation(
        vlm_focus.Lens(lens.adapter, method="igos++", batch_size=2, **FAST),
        "shapes",
        limit=1,
        out=tmp_path / "small",
        progress=False,
    )
    real_score = Scorer._score

    def score(self, pixels):
        if pixels.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_score(self, pixels)

    monkeypatch.setattr(Scorer, "_score", score)
    run_evaluation(lens, "shapes", limit=1, out=tmp_path / "oom", progress=False)
    (small,), (oom,) = records(tmp_path / "small"), records(tmp_path / "oom")
    assert oom["status"] == "ok" and oom["oom_batch_sizes"] == [8, 4] and oom["batch_size"] == 2
    assert (oom["answer"], oom["selected"]) == (small["answer"], small["selected"])
    assert oom["deletion"] == pytest.approx(small["deletion"], abs=1e-5)
    np.testing.assert_allclose(
        np.load(tmp_path / "oom" / oom["heatmap"]), np.load(tmp_path / "small" / small["heatmap"]), atol=1e-5
    )


# ----- corrupt images and records ------------------------------------------------------------
class Broken(Dataset):
    """Good scenes, corrupt image files, and records whose loader fails in three ways."""

    name = "broken"

    def __init__(self, folder: Path):
        super().__init__()
        folder.mkdir(parents=True, exist_ok=True)
        good = Image.fromarray(np.full((16, 16, 3), 200, np.uint8))
        good.paste((20, 20, 20), (4, 4, 10, 10))
        buf = io.BytesIO()
        good.save(buf, format="PNG")
        png = buf.getvalue()
        variants = {
            "good": png,
            "truncated": png[: len(png) // 2],
            "random": bytes(random.Random(0).randrange(256) for _ in range(300)),
            "empty": b"",
            "header-only": png[:33],
        }
        for name, data in variants.items():
            (folder / f"{name}.png").write_bytes(data)
            self.add(name, folder / f"{name}.png")
        for name in ("data-error", "key-error", "type-error"):
            self.add(name, name)
        self.add("good-2", folder / "good.png")

    def build(self, sample_id, record):
        if record == "data-error":
            raise DataError("broken: entry 'data-error' has no question")
        if record == "key-error":
            return {}["question"]  # a loader bug: a plain KeyError
        if record == "type-error":
            raise TypeError("unsupported operand")
        return Sample(id=sample_id, question="What is dark?", answer="square", image_path=record)


def test_corrupt_images_and_records_are_recorded_and_skipped(tmp_path):
    summary = run(FakeLens(), Broken(tmp_path / "data"), tmp_path / "run", progress=False)
    recs = {r["id"]: r for r in check_folder(tmp_path / "run")}
    assert list(recs) == [
        "good", "truncated", "random", "empty", "header-only", "data-error", "key-error", "type-error", "good-2"
    ]  # fmt: skip
    assert recs["good"]["status"] == recs["good-2"]["status"] == "ok"
    for name in ("truncated", "random", "empty", "header-only"):
        assert recs[name]["status"] == "skipped" and f"{name}.png" in recs[name]["reason"], name
        assert recs[name]["reason"].split(":")[0] in ("ImageError", "DataError"), name
    assert recs["data-error"]["status"] == "skipped"
    assert recs["key-error"]["status"] == recs["type-error"]["status"] == "error"
    assert "KeyError" in recs["key-error"]["reason"] and "Traceback" in recs["key-error"]["traceback"]
    assert summary["n_samples"] == 9


def test_corrupt_results_line_is_our_error_and_nothing_is_rewritten(tmp_path):
    run_evaluation(FakeLens(), "shapes", limit=3, out=tmp_path, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:20] + b"\x00\xff" + lines[1][20:]
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    with pytest.raises(DataError, match="line 2"):
        run_evaluation(FakeLens(), "shapes", limit=3, out=tmp_path, resume=True, progress=False)
    assert path.read_bytes() == before


# ----- kill -9 at random moments --------------------------------------------------------------
def _child(out: str, limit: int, seed: int) -> None:
    random.seed(seed)
    torch.set_num_threads(1)
    run_evaluation(FakeLens(pause=0.06), "shapes", limit=limit, out=out, resume=True, progress=False)


def kill_until_done(out: Path, limit: int, kills: int, rng: random.Random) -> dict:
    """Fork runs of ``limit`` samples (``--resume``) and SIGKILL each at a random moment, up
    to ``kills`` times or until one finishes first, then let one finish. After each kill, no
    record already written is lost."""
    ctx = multiprocessing.get_context("fork")
    seen: set[str] = set()
    stats = {"kills": 0, "mid_run": 0, "runs": 0}  # mid_run: kills that left the run partly done
    finished = False
    while not finished:
        p = ctx.Process(target=_child, args=(str(out), limit, stats["runs"]))
        p.start()
        stats["runs"] += 1
        if stats["kills"] < kills:
            time.sleep(rng.uniform(0.0, 0.2))
            os.kill(p.pid, signal.SIGKILL)
        p.join(60)
        assert p.exitcode is not None, "the run hangs"
        if p.exitcode == -signal.SIGKILL:
            stats["kills"] += 1
        else:
            assert p.exitcode == 0
            finished = True
        ids = {r["id"] for r in read_results(out / "results.jsonl", repair=False)}
        assert seen <= ids, f"records lost by a kill: {sorted(seen - ids)}"
        stats["mid_run"] += not finished and 0 < len(ids) < limit
        seen = ids
    return stats


def test_many_random_kills_lose_and_duplicate_nothing(tmp_path):
    rng = random.Random(16)
    stats = kill_until_done(tmp_path, limit=48, kills=30, rng=rng)
    assert stats["kills"] >= 15 and stats["mid_run"] >= 10, stats
    recs = check_folder(tmp_path, 48)
    assert all(r["status"] == "ok" for r in recs)
    assert json.loads((tmp_path / "summary.json").read_text())["n_samples"] == 48


def test_resume_removes_temporary_files_a_kill_left(tmp_path):
    run_evaluation(FakeLens(), "shapes", limit=2, out=tmp_path, progress=False)
    left = [tmp_path / ".results.jsonl.abc123.tmp", tmp_path / "heatmaps" / ".x.npy.k9.tmp"]
    for p in left:
        p.write_bytes(b"half")
    run_evaluation(FakeLens(), "shapes", limit=3, out=tmp_path, resume=True, progress=False)
    check_folder(tmp_path, 3)
    assert not any(p.exists() for p in left)


@pytest.mark.slow
def test_real_cli_killed_at_random_points_resumes_exactly_once(tmp_path):
    """`vlm-focus evaluate ... --resume` on the zoo model, SIGKILLed at random moments once
    its sample loop runs (mid-sample: a sample takes most of the loop's time)."""
    limit, kills = 5, int(os.environ.get("VLM_FOCUS_CLI_KILLS", "6"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vlm_focus.cli", "evaluate", "--model", "shapes-llava"]
    cmd += ["--limit", str(limit), "--out", str(out), "--resume", *FAST_CLI, "-O", "iterations=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    rng = random.Random(2026)
    done: set[str] = set()
    killed = mid_run = 0
    for _ in range(kills + 10):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        results = out / "results.jsonl"
        deadline = time.monotonic() + 300
        while proc.poll() is None and not run_holds_lock(out):  # the model is loaded, the loop runs
            assert time.monotonic() < deadline, "the run did not start within 300 s"
            time.sleep(0.01)
        if killed < kills and proc.poll() is None:
            time.sleep(rng.uniform(0.0, 1.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert proc.returncode == 0, err.decode()[-2000:]
        ids = {r["id"] for r in read_results(results, repair=False)}
        assert done <= ids
        mid_run += proc.returncode != 0 and len(ids) < limit
        done = ids
        if proc.returncode == 0:
            break
    print(f"\nCLI: {killed} kills, {mid_run} inside the sample loop, then a clean finish")
    assert killed >= min(kills, 3)
    recs = check_folder(out, limit)
    assert all(r["status"] == "ok" for r in recs)


def run_holds_lock(out: Path) -> bool:
    """Whether a process holds the run folder's lock (it does from just before its loop)."""
    import fcntl

    try:
        with open(out / store.LOCK) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return False


# ----- disk full, read-only output -------------------------------------------------------------
def failing_write(monkeypatch, after: int, code: int = errno.ENOSPC, partial: bool = True):
    """``os.write`` of result lines fails after ``after`` whole lines (first writing half of
    the next one, as a full disk does), everything else passes through."""
    real = os.write
    state = {"lines": 0, "half": False}

    def write(fd, data):
        if bytes(data[:6]) == b'{"id":' or state["half"]:
            if state["lines"] >= after:
                if partial and not state["half"]:
                    state["half"] = True
                    return real(fd, data[: len(data) // 2])
                raise OSError(code, os.strerror(code))
            state["lines"] += 1
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_disk_full_on_a_record_is_our_error_and_keeps_every_earlier_record(tmp_path, monkeypatch):
    run_evaluation(FakeLens(), "shapes", limit=2, out=tmp_path, progress=False)
    before = (tmp_path / "results.jsonl").read_bytes()
    failing_write(monkeypatch, after=2)
    with pytest.raises(OutputError, match="No space left on device"):
        run_evaluation(FakeLens(), "shapes", limit=6, out=tmp_path, resume=True, progress=False)
    after = (tmp_path / "results.jsonl").read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 4  # two new whole lines, no half one
    check_folder(tmp_path)
    monkeypatch.undo()
    run_evaluation(FakeLens(), "shapes", limit=6, out=tmp_path, resume=True, progress=False)
    check_folder(tmp_path, 6)


def test_disk_full_on_a_heatmap_stops_the_run_instead_of_skipping(tmp_path, monkeypatch):
    run_evaluation(FakeLens(), "shapes", limit=2, out=tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}

    class Full:
        """A file on a full disk: nothing can be written to it."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode and ".npy." in str(path) else f

    monkeypatch.setattr(files_mod, "open", full_open, raising=False)
    with pytest.raises(OutputError, match="No space left"):
        run_evaluation(FakeLens(), "shapes", limit=4, out=tmp_path, resume=True, progress=False)
    monkeypatch.undo()
    recs = check_folder(tmp_path)
    assert len(recs) == 2  # the sample whose heatmap did not fit is not marked done
    for name, data in before.items():
        if name not in ("run.json",):
            assert next(tmp_path.rglob(name)).read_bytes() == data, name


def test_read_only_output_is_our_error(tmp_path, monkeypatch):
    """EROFS on every write under the folder (a read-only mount), also as root."""
    run_evaluation(FakeLens(), "shapes", limit=2, out=tmp_path / "run", progress=False)
    snapshot = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    readonly(monkeypatch, tmp_path / "run")
    with pytest.raises(OutputError, match="Read-only file system"):
        run_evaluation(FakeLens(), "shapes", limit=4, out=tmp_path / "run", resume=True, progress=False)
    with pytest.raises(OutputError, match="Read-only file system"):
        run_evaluation(FakeLens(), "shapes", limit=1, out=tmp_path / "run" / "new", progress=False)
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == snapshot


def readonly(monkeypatch, folder: Path) -> None:
    """Writes (open for writing, mkstemp, mkdir) under ``folder`` fail with EROFS."""
    import builtins
    import tempfile

    real_open, real_mkstemp, real_mkdir = builtins.open, tempfile.mkstemp, Path.mkdir
    inside = str(folder)

    def refuse(path) -> bool:
        return str(path).startswith(inside)

    def ro_open(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and refuse(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    def ro_mkstemp(*args, dir=None, **kwargs):
        if refuse(dir):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def ro_mkdir(self, *args, **kwargs):
        if refuse(self) and not self.exists():
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", ro_open)
    monkeypatch.setattr(tempfile, "mkstemp", ro_mkstemp)
    monkeypatch.setattr(Path, "mkdir", ro_mkdir)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_chmod_read_only_output_is_our_error(tmp_path):
    run_evaluation(FakeLens(), "shapes", limit=2, out=tmp_path / "run", progress=False)
    snapshot = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    (tmp_path / "run").chmod(0o555)
    try:
        with pytest.raises(OutputError):
            run_evaluation(FakeLens(), "shapes", limit=4, out=tmp_path / "run", resume=True, progress=False)
    finally:
        (tmp_path / "run").chmod(0o755)
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == snapshot


@pytest.fixture(scope="module")
def zoo_cli_args():
    return ["evaluate", "--model", "shapes-llava", *FAST_CLI]


def test_cli_disk_full_exits_2_with_one_line(tmp_path, monkeypatch, capsys, zoo_cli_args):
    from vlm_focus.cli import main

    out = tmp_path / "run"
    failing_write(monkeypatch, after=1)
    assert main([*zoo_cli_args, "--limit", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vlm-focus: error: cannot write") and "No space" in err[0]
    assert len(check_folder(out)) == 1


def test_cli_read_only_exits_2_with_one_line(tmp_path, monkeypatch, capsys, zoo_cli_args):
    from vlm_focus.cli import main

    readonly(monkeypatch, tmp_path)
    assert main([*zoo_cli_args, "--limit", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vlm-focus: error:") and "Read-only" in err[0]
    assert not (tmp_path / "run").exists()


def test_store_writes_are_atomic_and_keep_permissions(tmp_path):
    store.write_json(tmp_path / "a.json", {"x": 1})
    store.write_npy(tmp_path / "h" / "m.npy", np.ones((2, 2)))
    store.write_results(tmp_path / "r.jsonl", [{"id": "a"}])
    umask = os.umask(0)
    os.umask(umask)
    for p in (tmp_path / "a.json", tmp_path / "h" / "m.npy", tmp_path / "r.jsonl"):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p
    # A link in the folder is replaced, the file it points to is left alone.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "run.json").symlink_to(victim)
    store.write_json(tmp_path / "run.json", {"y": 2})
    assert victim.read_text() == "keep" and not (tmp_path / "run.json").is_symlink()
