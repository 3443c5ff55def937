"""The loop on dataset objects: human maps, missing images, broken entries, --ids, the CLI on
the ``files`` dataset. A fake lens answers at once; no model is loaded."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vlm_focus.data.base import Dataset, Sample
from vlm_focus.errors import DataError, InputError
from vlm_focus.explanation import Explanation
from vlm_focus.metrics import human_map_scores
from vlm_focus.runs import read_ids, run


class FakeLens:
    """Answers "The cat." with the image's red channel as the heatmap."""

    def __init__(self):
        self.adapter = SimpleNamespace(name="fake")
        self.method = SimpleNamespace(name="fake", options={})
        self.options = {"batch_size": 16}
        self.questions = []

    def explain(self, image, question, answer=None):
        self.questions.append(question)
        heat = np.asarray(image, dtype=np.float32)[..., 0] / 255.0
        return Explanation(
            model="fake",
            method="fake",
            question=question,
            answer="The cat.",
            tokens=["The", " cat", "."],
            token_ids=[1, 2, 3],
            logprob=[-1.0, -1.0, -1.0],
            logprob_baseline=[-1.0, -5.0, -1.0],
            llr=[0.0, 4.0, 0.0],
            selected=[1],
            alpha=1.0,
            heatmap=heat,
            scores={"deletion": 0.2, "insertion": 0.8},
        )


def gradient(flip: bool = False) -> Image.Image:
    ramp = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    red = ramp[:, ::-1] if flip else ramp
    return Image.fromarray(np.stack([red, red.T, np.zeros_like(red)], -1))


class Toy(Dataset):
    """Four samples with human maps, one with a missing image file, one broken entry."""

    name = "toy"

    def __init__(self, tmp_path):
        super().__init__()
        self.tmp_path = tmp_path
        for sid in ("t0", "t1", "missing", "broken", "t4"):
            self.add(sid, sid)

    def build(self, sample_id, record):
        if record == "broken":
            raise DataError("toy: entry 'broken' has no question")
        human = np.tile(np.linspace(0, 1, 8), (8, 1))  # 8x8: resized to the 16x16 heatmap
        sample = Sample(
            id=sample_id,
            question=f"What animal is in {sample_id}?",
            answer="cat" if sample_id != "t1" else "dog",
            answer_kind="short",
            category="pets" if sample_id < "t2" else "other",
            human_map=human,
        )
        if record == "missing":
            sample.image_path = self.tmp_path / "nope.png"
        else:
            sample.image = gradient(flip=sample_id == "t4")
        return sample


def lines(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_human_maps_are_scored_and_problems_recorded(tmp_path):
    summary = run(FakeLens(), Toy(tmp_path), tmp_path / "run", progress=False)
    recs = lines(tmp_path / "run")
    assert [r["id"] for r in recs] == ["t0", "t1", "missing", "broken", "t4"]
    assert [r["status"] for r in recs] == ["ok", "ok", "skipped", "skipped", "ok"]
    assert "image file not found" in recs[2]["reason"] and "no question" in recs[3]["reason"]
    ok = recs[0]
    assert (ok["correct"], ok["grading"], recs[1]["correct"]) == (True, "short", False)
    assert ok["selected_text"] == [" cat"] and ok["reference"] == "cat" and ok["finished_at"] > 0
    assert "pointing_game" not in ok and "evidence_pixels" not in ok  # no evidence mask
    heat = np.load(tmp_path / "run" / ok["heatmap"])
    expected = human_map_scores(heat, np.tile(np.linspace(0, 1, 8), (8, 1)))
    for key, value in expected.items():
        assert ok[key] == pytest.approx(value)
    assert (
        ok["human_rank_correlation"] > 0.9 > 0 > recs[4]["human_rank_correlation"]
    )  # t4 looks the other way
    assert list(summary["metrics"]) == [
        "deletion",
        "insertion",
        "human_soft_iou",
        "human_rank_correlation",
        "human_topk_iou",
    ]
    assert summary["n_per_category"] == {"pets": 3, "other": 1}  # the broken entry has no category
    assert summary["skipped"]["count"] == 2 and summary["accuracy"]["overall"]["n"] == 3
    assert summary["dataset"]["name"] == "toy" and summary["world_size"] == 1


def test_ids_select_samples_in_dataset_order(tmp_path):
    lens = FakeLens()
    summary = run(lens, Toy(tmp_path), tmp_path / "run", ids=["t4", "t0", "t4"], progress=False)
    assert [r["id"] for r in lines(tmp_path / "run")] == ["t0", "t4"] and summary["args"]["ids"] == 2
    assert len(lens.questions) == 2
    run(lens, Toy(tmp_path), tmp_path / "run", resume=True, limit=1, progress=False)  # t0 is done
    assert len(lens.questions) == 2
    with pytest.raises(InputError, match=r"1 id\(s\) not in the dataset: \['t9'\]"):
        run(lens, Toy(tmp_path), tmp_path / "other", ids=["t0", "t9"])


def test_read_ids(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("a\n\n b \nc\n")
    assert read_ids(text) == ["a", "b", "c"]
    js = tmp_path / "ids.json"
    js.write_text('["x", 7]')
    assert read_ids(js) == ["x", "7"]
    js.write_text('["x",')
    with pytest.raises(InputError, match="JSON list"):
        read_ids(js)
    js.write_text("\n")
    with pytest.raises(InputError, match="no sample ids"):
        read_ids(js)
    with pytest.raises(InputError, match="cannot read"):
        read_ids(tmp_path / "missing.txt")


def test_cli_on_the_files_dataset_with_ids_and_mc_prompts(tmp_path, monkeypatch, capsys):
    from vlm_focus.cli import main

    gradient().save(tmp_path / "a.png")
    gradient(flip=True).save(tmp_path / "b.png")
    rows = [
        {"id": "q1", "image": "a.png", "question": "Which animal?", "options": ["dog", "cat"], "answer": "B"},
        {"id": "q2", "image": "b.png", "question": "Which animal?", "options": ["cat", "dog"], "answer": "A"},
        {"id": "q3", "image": "a.png", "question": "What is it?", "answer": "cat"},
    ]
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ids.txt").write_text("q3\nq1\n")
    lens = FakeLens()
    monkeypatch.setattr("vlm_focus.cli.common.lens_from_args", lambda args: lens)
    out = tmp_path / "run"
    argv = ["evaluate", "--dataset", "files", "--data-dir", str(tmp_path), "--out", str(out), "--no-progress"]
    assert main([*argv, "--ids", str(tmp_path / "ids.txt"), "--prompt-format", "mc"]) == 0
    assert "accuracy" in capsys.readouterr().out
    recs = lines(out)
    assert [r["id"] for r in recs] == ["q1", "q3"]
    assert recs[0]["question"].splitlines() == [
        "Which animal?",
        "A. dog",
        "B. cat",
        lens.questions[0].splitlines()[-1],
    ]
    assert recs[0]["grading"] == "choice" and recs[0]["correct"] is True  # "The cat." names option B
    summary = json.loads((out / "summary.json").read_text())
    assert summary["args"]["prompt_format"] == "mc" and summary["args"]["cli"]["ids"].endswith("ids.txt")
    # the prompt format defines the samples: resuming with another one is refused
    assert main([*argv, "--resume"]) == 2
    assert "prompt_format" in capsys.readouterr().err
    assert main([*argv, "--resume", "--prompt-format", "mc"]) == 0  # all three now
    assert [r["id"] for r in lines(out)] == ["q1", "q2", "q3"]
