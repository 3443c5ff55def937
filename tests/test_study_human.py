"""The human study: the fixture (evidence masks as VQA-HAT maps), hand-checked scores on
known maps with their chance level, and one end-to-end run of the CLI on a zoo model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FAST_CLI

from vlm_focus.cli import main
from vlm_focus.data import get_dataset
from vlm_focus.errors import InputError
from vlm_focus.metrics import human_map_scores
from vlm_focus.study.folders import read_run
from vlm_focus.study.human import ensure_fixture, human_table, write_fixture

LEFT = np.zeros((4, 4), np.float32)
LEFT[:, :2] = 1.0
RIGHT = 1.0 - LEFT


def test_fixture_maps_are_the_evidence_masks(tmp_path):
    folder = write_fixture(tmp_path / "fx", 3, seed=11, qtypes=["color", "shape"])
    data = get_dataset("vqa-hat", folder)
    scenes = list(get_dataset("shapes", None, seed=11, limit=3, qtypes=["color", "shape"]))
    assert data.ids() == ["1000", "1001", "1002"]
    for sample, scene in zip(data, scenes):
        assert sample.question == scene.question
        assert np.array_equal(sample.human_map, scene.evidence.astype(np.float32))
        pixels = np.asarray(sample.load_image(), dtype=np.int16)
        assert np.abs(pixels - np.asarray(scene.load_image(), dtype=np.int16)).max() <= 8  # JPEG, quality 100
    assert ensure_fixture(tmp_path / "fy", 2, seed=11) == tmp_path / "fy"
    assert ensure_fixture(tmp_path / "fy", 2, seed=11) == tmp_path / "fy"  # reused
    with pytest.raises(InputError, match="written with"):
        ensure_fixture(tmp_path / "fy", 3, seed=11)


def write_run(folder, heatmaps, humans):
    """A run folder whose records carry the runner's human-map scores."""
    (folder / "heatmaps").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"dataset": "vqa-hat", "dataset_options": {}, "seed": 1}))
    lines = []
    for i, (heat, human) in enumerate(zip(heatmaps, humans)):
        np.save(folder / "heatmaps" / f"q{i}.npy", heat)
        rec = {
            "id": f"q{i}",
            "status": "ok",
            "heatmap": f"heatmaps/q{i}.npy",
            **human_map_scores(heat, human),
        }
        lines.append(json.dumps(rec))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    return read_run("m", folder)


def test_maps_equal_to_the_human_maps_score_one_and_the_swapped_pairing_scores_chance(tmp_path):
    humans = [LEFT, RIGHT, LEFT, RIGHT]
    folder = write_run(tmp_path / "m", humans, humans)
    result = human_table([folder], {f"q{i}": h for i, h in enumerate(humans)})
    own, other = result.rows
    assert own["maps"] == "own human map" and own["n"] == 4
    assert (own["soft_iou"], own["rank_correlation"], own["topk_iou"]) == (1.0, 1.0, 1.0)
    # each map against the next sample's (the complementary half): disjoint, ranks reversed
    assert other["soft_iou"] == pytest.approx(0.0) and other["rank_correlation"] == pytest.approx(-1.0)
    assert own["rank_p"] == pytest.approx(0.125)  # four positive differences: 2 / 2^4
    assert own["rank_low"] == pytest.approx(1.0) and own["rank_high"] == pytest.approx(1.0)


def test_no_human_maps_is_refused(tmp_path):
    (tmp_path / "r" / "heatmaps").mkdir(parents=True)
    (tmp_path / "r" / "run.json").write_text(json.dumps({"dataset": "shapes"}))
    np.save(tmp_path / "r" / "heatmaps" / "a.npy", LEFT)
    (tmp_path / "r" / "results.jsonl").write_text(
        json.dumps({"id": "a", "status": "ok", "heatmap": "heatmaps/a.npy"}) + "\n"
    )
    with pytest.raises(InputError, match="human attention map"):
        human_table([read_run("r", tmp_path / "r")])


def test_human_cli_on_the_fixture(tmp_path, capsys):
    out = tmp_path / "hu"
    args = ["study", "human", "--fixture", "--limit", "3", "--qtypes", "color", "--seed", "4"]
    assert main([*args, "--models", "shapes-llava", "--out", str(out), *FAST_CLI]) == 0
    printed = capsys.readouterr().out
    assert "own human map" in printed and "another sample's map" in printed
    table = json.loads((out / "table.json").read_text())
    own = table["rows"][0]
    assert own["model"] == "shapes-llava" and own["n"] >= 1 and 0 <= own["soft_iou"] <= 1
    assert (out / "fixture" / "vqahat_val").is_dir() and (out / "plot.png").exists()
