"""Dataset runs: records, summary, resume after an interruption or a kill, refusals, CLI.

Real runs use the tiny random LLaVA with an LLR threshold of -100 so that every token is
selected even though the model knows nothing; bookkeeping edge cases use a fake lens.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FAST_CLI
from fakes import red_answer
from scipy import ndimage

import vlm_focus
from vlm_focus.errors import DataError, ImageError, InputError
from vlm_focus.runs import (
    METRICS,
    NO_IMAGE,
    format_table,
    pointing_tolerance,
    read_results,
    run_evaluation,
)

FAST = {
    "iterations": 1,
    "ig_iter": 2,
    "size": 8,
    "alpha": -100.0,
    "metric_steps": 5,
    "metric_grid": 8,
    "max_new_tokens": 4,
}


@pytest.fixture(scope="module")
def lens(tiny_llava_dir):
    return vlm_focus.load(str(tiny_llava_dir), method="igos++", device="cpu", **FAST)


def lines(out: Path) -> list[dict]:
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def full_run(lens, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    summary = run_evaluation(lens, "shapes", limit=4, out=out, seed=0, progress=False)
    return out, summary


def test_run_writes_one_line_per_sample_heatmaps_and_summary(full_run):
    out, summary = full_run
    recs = lines(out)
    assert [r["id"] for r in recs] == [f"shapes-0-{i}" for i in range(4)]
    assert [r["category"] for r in recs] == ["color", "shape", "count", "exist"]
    for r in recs:
        assert r["status"] == "ok" and r["seconds"] > 0 and isinstance(r["correct"], bool)
        assert r["selected_text"] and len(r["llr"]) == len(r["tokens"])
        assert set(METRICS) <= set(r)
        heat = np.load(out / r["heatmap"])
        assert heat.shape == (64, 64) and heat.dtype == np.float32
    saved = json.loads((out / "summary.json").read_text())
    assert saved["n_samples"] == 4 and saved["n_ok"] == 4
    assert set(saved["metrics"]) == set(METRICS)
    assert set(saved["metrics"]["deletion"]["per_category"]) == {"color", "shape", "count", "exist"}
    overall = saved["metrics"]["insertion"]["overall"]
    assert overall["mean"] == pytest.approx(np.mean([r["insertion"] for r in recs]))
    assert overall["low"] < overall["mean"] < overall["high"]
    assert set(saved["versions"]) >= {"vlm_focus", "torch", "transformers", "python"}
    assert saved["args"]["limit"] == 4 and saved["args"]["method_options"]["iterations"] == 1
    assert saved["skipped"]["count"] == 0
    assert "relevance_mass" in format_table(summary)


def test_interrupted_then_resumed_run_has_every_sample_once_with_the_same_numbers(
    lens, full_run, tmp_path, monkeypatch
):
    calls = []
    explain = lens.explain

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return explain(*args, **kwargs)

    monkeypatch.setattr(lens, "explain", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(lens, "shapes", limit=4, out=tmp_path, seed=0, progress=False)
    assert len(lines(tmp_path)) == 2
    with open(tmp_path / "results.jsonl", "a") as f:  # a write cut off by the kill
        f.write('{"id": "shapes-0-2", "qtype": "co')
    monkeypatch.undo()

    run_evaluation(lens, "shapes", limit=4, out=tmp_path, seed=0, resume=True, progress=False)
    recs = lines(tmp_path)
    assert sorted(r["id"] for r in recs) == [f"shapes-0-{i}" for i in range(4)]
    reference = {r["id"]: r for r in lines(full_run[0])}
    for r in recs:  # same seed, same numbers, interrupted or not
        assert r["answer"] == reference[r["id"]]["answer"]
        for key in METRICS:
            assert r[key] == pytest.approx(reference[r["id"]][key], rel=1e-6)


def test_existing_results_need_resume(full_run, lens):
    out, _ = full_run
    before = (out / "results.jsonl").read_bytes()
    with pytest.raises(InputError, match="--resume"):
        run_evaluation(lens, "shapes", limit=4, out=out, seed=0, progress=False)
    assert (out / "results.jsonl").read_bytes() == before


def test_a_failing_sample_is_recorded_as_skipped_and_the_run_goes_on(lens, tmp_path, monkeypatch):
    explain = lens.explain

    def broken_image(image, question, answer=None):
        if "shape" in question:  # the second sample
            raise ImageError("image file is truncated")
        return explain(image, question, answer)

    monkeypatch.setattr(lens, "explain", broken_image)
    summary = run_evaluation(lens, "shapes", limit=3, out=tmp_path, seed=0, progress=False)
    recs = lines(tmp_path)
    assert [r["status"] for r in recs] == ["ok", "skipped", "ok"]
    assert recs[1]["reason"] == "ImageError: image file is truncated"
    assert not (tmp_path / "heatmaps" / "shapes-0-1.npy").exists()
    assert summary["skipped"]["by_reason"] == {
        "ImageError: image file is truncated": {"count": 1, "share": 1 / 3}
    }
    assert summary["metrics"]["deletion"]["overall"]["n"] == 2


def test_cli_evaluate(tiny_llava_dir, tmp_path, capsys):
    from vlm_focus.cli import main

    args = [
        "evaluate",
        "--dataset",
        "shapes",
        "--model",
        str(tiny_llava_dir),
        "--method",
        "igos++",
        "--limit",
        "2",
        "--out",
        str(tmp_path),
        "--seed",
        "5",
        "--qtypes",
        "color,shape",
        *FAST_CLI,
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pointing_game" in out and "accuracy" in out
    recs = lines(tmp_path)
    assert [(r["id"], r["category"]) for r in recs] == [("shapes-5-0", "color"), ("shapes-5-1", "shape")]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["args"]["cli"]["option"][0] == "iterations=1"
    assert summary["args"]["lens_options"]["alpha"] == -100.0 and summary["args"]["qtypes"] == [
        "color",
        "shape",
    ]
    assert main(args) == 2  # refused: results exist
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # nothing left to do
    assert len(lines(tmp_path)) == 2


# ----- bookkeeping with a fake lens ---------------------------------------------------------
class FakeLens:
    """Answers the reference, with a heatmap of dark pixels (the objects on a light ground)."""

    def __init__(self, method_options=None, fail=None):
        self.adapter = SimpleNamespace(name="fake")
        self.method = SimpleNamespace(name="fake", options=method_options or {})
        self.options = {"batch_size": 16, "alpha": 1.0}
        self.fail = fail or {}
        self.calls = 0

    def explain(self, image, question, answer=None):
        self.calls += 1
        if question in self.fail:
            raise self.fail[question]
        objects = (np.asarray(image).min(-1) < 150).astype(np.float32)  # the ground is light grey
        depends = not question.startswith("How many")
        return red_answer(question, objects if depends else None)


def test_no_image_dependence_is_skipped_and_localisation_uses_the_evidence(tmp_path):
    from vlm_focus.data.shapes import make_sample

    summary = run_evaluation(FakeLens(), "shapes", limit=4, out=tmp_path, seed=1, progress=False)
    recs = lines(tmp_path)
    assert [r["status"] for r in recs] == ["ok", "ok", "skipped", "ok"]
    assert recs[2]["reason"] == NO_IMAGE and recs[2]["answer"] == "The x is red."
    # the heatmap marks every object alike: the evidence's share of the object pixels
    for r in (recs[0], recs[1], recs[3]):
        sample = make_sample(
            1, r["index"], r["category"], min_objects=2 if r["category"] in ("color", "shape") else 1
        )
        objects = np.logical_or.reduce([o.mask for o in sample.objects])
        share = sample.evidence.sum() / objects.sum()
        assert 0 < share < 1
        assert r["relevance_mass"] == pytest.approx(share) and r["relevance_rank"] == pytest.approx(share)
        assert r["energy_pointing"] == pytest.approx(share)
        # every object pixel is a tied maximum: the share of them near the evidence
        near = ndimage.distance_transform_edt(~sample.evidence) <= pointing_tolerance(64, 64)
        assert r["pointing_game"] == pytest.approx(near[objects].mean())
    assert summary["skipped"]["by_reason"][NO_IMAGE] == {"count": 1, "share": 0.25}
    assert summary["accuracy"]["overall"]["n"] == 4
    assert summary["metrics"]["deletion"]["per_category"]["count"]["n"] == 0


def test_unexpected_errors_are_recorded_and_retried_on_resume(tmp_path):
    lens = FakeLens()
    from vlm_focus.data.shapes import make_sample

    q1 = make_sample(0, 1, "shape", min_objects=2).question
    lens.fail = {q1: RuntimeError("CUDA out of memory")}
    summary = run_evaluation(lens, "shapes", limit=2, out=tmp_path, seed=0, progress=False)
    assert summary["errors"]["count"] == 1 and lines(tmp_path)[1]["status"] == "error"
    assert "CUDA out of memory" in lines(tmp_path)[1]["reason"]
    lens.fail, lens.calls = {}, 0
    # also extends the run
    run_evaluation(lens, "shapes", limit=3, out=tmp_path, seed=0, resume=True, progress=False)
    recs = lines(tmp_path)
    assert lens.calls == 2 and sorted(r["id"] for r in recs) == ["shapes-0-0", "shapes-0-1", "shapes-0-2"]
    assert [r["status"] for r in sorted(recs, key=lambda r: r["index"])] == ["ok", "ok", "skipped"]


def test_resume_refuses_other_settings(tmp_path):
    run_evaluation(FakeLens({"iterations": 5}), "shapes", limit=1, out=tmp_path, seed=0, progress=False)
    with pytest.raises(InputError, match="method_options"):
        run_evaluation(
            FakeLens({"iterations": 9}), "shapes", limit=2, out=tmp_path, seed=0, resume=True, progress=False
        )
    with pytest.raises(InputError, match="seed"):
        run_evaluation(
            FakeLens({"iterations": 5}), "shapes", limit=2, out=tmp_path, seed=1, resume=True, progress=False
        )
    lens = FakeLens({"iterations": 5})
    lens.options["batch_size"] = 2  # speed settings may change
    run_evaluation(lens, "shapes", limit=2, out=tmp_path, seed=0, resume=True, progress=False)
    assert len(lines(tmp_path)) == 2


def test_read_results_repairs_only_the_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "x": 1')
    assert [r["id"] for r in read_results(path)] == ["a", "b"]
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    path.write_text('{"id": "a"}\n{"id": "b"}')  # complete, only the newline is missing
    assert [r["id"] for r in read_results(path)] == ["a", "b"] and path.read_text().endswith("}\n")
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(DataError, match="line 2"):
        read_results(path)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="question type"):
        run_evaluation(FakeLens(), "shapes", limit=1, out=tmp_path, qtypes=["colour"])
    with pytest.raises(DataError, match="unknown dataset"):
        run_evaluation(FakeLens(), dataset="nope", limit=1, out=tmp_path)
    with pytest.raises(InputError, match="limit"):
        run_evaluation(FakeLens(), "shapes", limit=0, out=tmp_path)


# ----- a real kill ---------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_subprocess_run_resumes_without_loss_or_duplicates(tiny_llava_dir, tmp_path):
    from vlm_focus.cli import main

    limit = 30
    args = [
        "evaluate",
        "--model",
        str(tiny_llava_dir),
        "--limit",
        str(limit),
        "--out",
        str(tmp_path),
        *FAST_CLI,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlm_focus.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = tmp_path / "results.jsonl"
    deadline = time.monotonic() + 180
    try:
        while not (results.exists() and results.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no result line within 180 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = len(read_results(results, repair=False))
    assert 1 <= killed_at < limit
    assert main([*args, "--resume"]) == 0
    recs = lines(tmp_path)
    assert sorted(r["index"] for r in recs) == list(range(limit))
    assert len({r["id"] for r in recs}) == limit
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_samples"] == limit and not math.isnan(summary["metrics"]["deletion"]["overall"]["mean"])
