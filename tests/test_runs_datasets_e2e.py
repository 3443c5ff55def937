"""Every registered dataset through ``vlm-focus evaluate`` end to end on the shipped model,
from fixture files written in the dataset's published layout."""

import json

import pytest
from data_fixtures import write

from vlm_focus.cli import main
from vlm_focus.data import list_datasets

FAST = ["-O", "iterations=1", "-O", "ig_iter=2", "-O", "size=8", "-O", "metric_steps=4"]


@pytest.mark.parametrize("name", list_datasets())
def test_evaluate_runs_every_dataset_on_the_zoo_model(tmp_path, name):
    data_dir, options = write(name, tmp_path / "data")
    out = tmp_path / "run"
    argv = ["evaluate", "--dataset", name, "--data-dir", str(data_dir), "--limit", "2", "--out", str(out)]
    argv += ["--model", "shapes-llava", "--device", "cpu", "--no-progress", *FAST]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 and len({r["id"] for r in records}) == 2
    assert all(r["status"] in ("ok", "skipped") for r in records), records
    for r in records:
        assert r["question"] and r["answer"]
        if r["status"] == "ok":  # explained: selected tokens, faithfulness and localisation
            assert r["selected"] and "deletion" in r and "insertion" in r
            if name == "shapes":
                assert "pointing_game" in r
            if name == "vqa-hat":
                assert "human_rank_correlation" in r
        if name == "llava-bench":
            assert r["correct"] is None  # free-form answers are not graded
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 2 and summary["dataset"]["name"] == name


def test_a_folder_of_images_with_one_question(tmp_path):
    from vlm_focus.data.shapes import make_sample

    for i in range(2):
        make_sample(2026, i, "color").image.save(tmp_path / f"scene{i}.png")
    out = tmp_path / "run"
    argv = ["evaluate", "--dataset", "files", "--data-dir", str(tmp_path), "--out", str(out)]
    assert main([*argv, "--question", "What color is the circle?", "--no-progress", *FAST]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["question"] for r in records] == ["What color is the circle?"] * 2
    assert main(["evaluate", "--dataset", "shapes", "--question", "x", "--out", str(tmp_path / "r2")]) == 2
