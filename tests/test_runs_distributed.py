"""Runs under ``torchrun`` (2 processes, gloo on CPU) equal the single-process run, and a
killed run resumes with another number of processes, giving every sample exactly once.

The tiny random LLaVA with an LLR threshold of -100 explains every token; the reference is
the single-process run of the same command, in this process (one torch thread, as each
torchrun worker).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST_CLI

from vlm_focus.cli import main
from vlm_focus.runs.shards import owner
from vlm_focus.runs.store import read_results, shard_files

LIMIT = 6
SEED = 0  # shapes-0-0..5: three ids on each of 2 ranks
COMPARED = ("id", "index", "category", "question", "status", "answer", "correct", "tokens", "selected")
NUMBERS = (
    "llr",
    "deletion",
    "insertion",
    "pointing_game",
    "relevance_mass",
    "relevance_rank",
    "energy_pointing",
)


def command(model: Path, out: Path, limit: int = LIMIT) -> list[str]:
    return [
        "evaluate",
        "--model",
        str(model),
        "--limit",
        str(limit),
        "--seed",
        str(SEED),
        "--out",
        str(out),
        *FAST_CLI,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}


def torchrun(args: list[str], nproc: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "vlm_focus.cli",
        *args,
    ]


def run_torchrun(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(torchrun(args), env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def lines(out: Path) -> list[dict]:
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def assert_same(records: list[dict], reference: list[dict]) -> None:
    """Sample for sample: same ids in the same order, same answers and tokens, numbers to 1e-6."""
    assert [r["id"] for r in records] == [r["id"] for r in reference]
    for r, ref in zip(records, reference, strict=True):
        for key in COMPARED:
            assert r.get(key) == ref.get(key), (r["id"], key)
        for key in NUMBERS:
            assert r.get(key) == pytest.approx(ref.get(key), rel=1e-6, abs=1e-6), (r["id"], key)


@pytest.fixture(scope="module")
def reference(tiny_llava_dir, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("single")
    assert main(command(tiny_llava_dir, out)) == 0
    recs = lines(out)
    assert [r["id"] for r in recs] == [f"shapes-{SEED}-{i}" for i in range(LIMIT)]
    assert all(r["status"] == "ok" for r in recs)
    return recs


def test_the_shards_of_the_test_ids_are_both_used():
    ranks = [owner(f"shapes-{SEED}-{i}", 2) for i in range(LIMIT)]
    assert sorted(set(ranks)) == [0, 1] and ranks.count(0) == 3


def test_two_processes_give_the_single_process_results(tiny_llava_dir, reference, tmp_path):
    proc = run_torchrun(command(tiny_llava_dir, tmp_path))
    assert proc.stdout.count("pointing_game") == 1  # rank 0 alone prints the table
    recs = lines(tmp_path)
    assert_same(recs, reference)
    assert {r["rank"] for r in recs} == {0, 1}
    assert all(r["rank"] == owner(r["id"], 2) for r in recs)
    assert shard_files(tmp_path) == []  # merged and removed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["n_samples"] == LIMIT and summary["n_ok"] == LIMIT
    for r in recs:
        assert (tmp_path / r["heatmap"]).exists()


def wait_for_lines(paths, proc: subprocess.Popen, at_least: int, deadline: float) -> None:
    while sum(p.read_bytes().count(b"\n") for p in paths() if p.exists()) < at_least:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no result line in time"
        time.sleep(0.005)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (torchrun starts its workers in sessions of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """True once every thread of ``pid`` has ended. A killed process's main thread can be a
    zombie while its other threads still run their exit; its files (and the run's lock) are
    closed only when the last one is done."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # this thread has just ended
        if state not in ("Z", "X"):
            return False
    return True


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children and so on, the deepest first."""
    found: list[int] = []
    for child in children(pid):
        found = [*descendants(child), child, *found]
    return found


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every process under it at once, as a crash of the machine would
    (the workers' own children too: any of them may hold the run's lock)."""
    pids = [*descendants(proc.pid), proc.pid]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "the workers outlived SIGKILL"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers in /proc")
def test_a_killed_two_process_run_resumes_with_one_process(tiny_llava_dir, reference, tmp_path):
    args = command(tiny_llava_dir, tmp_path)
    proc = subprocess.Popen(torchrun(args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_lines(lambda: shard_files(tmp_path), proc, 1, time.monotonic() + 300)
    finally:
        kill_all(proc)
    shards = shard_files(tmp_path)
    assert {p.name for p in shards} <= {"results.rank0-of2.jsonl", "results.rank1-of2.jsonl"}
    before = {r["id"]: r for p in shards for r in read_results(p, repair=False)}
    assert 1 <= len(before) < LIMIT and not (tmp_path / "results.jsonl").exists()
    with open(shards[0], "a") as f:  # a write cut off by the kill
        f.write('{"id": "shapes-0-5", "status": "o')

    assert main([*args, "--resume"]) == 0
    recs = lines(tmp_path)
    assert_same(recs, reference)  # each sample once, in order, with the numbers of one run
    assert shard_files(tmp_path) == []
    for sid, old in before.items():  # what the killed run finished was kept, not redone
        (new,) = [r for r in recs if r["id"] == sid]
        assert new["finished_at"] == old["finished_at"] and new["rank"] == owner(sid, 2)
    assert {r["rank"] for r in recs if r["id"] not in before} == {0}  # the single process did the rest


def test_a_killed_one_process_run_resumes_with_two_processes(tiny_llava_dir, reference, tmp_path):
    # The state a kill leaves: two finished lines and a truncated third, no summary.
    args = command(tiny_llava_dir, tmp_path)
    assert main([*command(tiny_llava_dir, tmp_path, limit=2)]) == 0
    (tmp_path / "summary.json").unlink()
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"id": "shapes-0-2", "category": "co')
    before = {r["id"]: r for r in read_results(tmp_path / "results.jsonl", repair=False)}
    assert sorted(before) == ["shapes-0-0", "shapes-0-1"]

    run_torchrun([*args, "--resume"])
    recs = lines(tmp_path)
    assert_same(recs, reference)
    for sid, old in before.items():
        (new,) = [r for r in recs if r["id"] == sid]
        assert new["finished_at"] == old["finished_at"]
    assert all(r["rank"] == owner(r["id"], 2) for r in recs if r["id"] not in before)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_samples"] == LIMIT and summary["world_size"] == 2
