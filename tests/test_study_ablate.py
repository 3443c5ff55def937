"""The ablation study: the grid and the same-sample means by hand, the CLI on a zoo model."""

import csv
import json

import pytest

from vlm_focus.cli import main
from vlm_focus.study.ablate import ablation_rows, grid_points, point_name

DEFAULT = {"strategy": "llr", "alpha": 1.0, "baseline": "blur", "l2": 0.1}
VALUES = {"strategy": ["llr", "joint"], "alpha": [0.5, 1.0, 2.0], "baseline": ["blur"], "l2": [0.0, 0.1]}


def test_oneway_grid_varies_one_axis_at_a_time():
    points = grid_points(VALUES, DEFAULT, full=False)
    assert points[0] == DEFAULT
    assert len(points) == 1 + 1 + 2 + 0 + 1  # joint; alpha 0.5, 2; l2 0 (defaults not repeated)
    assert all(sum(p[k] != DEFAULT[k] for k in p) == 1 for p in points[1:])
    assert len(grid_points(VALUES, DEFAULT, full=True)) == 2 * 3 * 1 * 2
    assert point_name(DEFAULT) == "strategy-llr_alpha-1.0_baseline-blur_l2-0.1"
    assert point_name({"model": "a/b"}) == "model-a_b"


def test_means_are_over_the_samples_every_point_explained():
    a = [{"id": "x", "status": "ok", "deletion": 0.2}, {"id": "y", "status": "ok", "deletion": 0.4}]
    b = [{"id": "x", "status": "ok", "deletion": 0.6}, {"id": "y", "status": "skipped"}]
    rows, shared = ablation_rows([DEFAULT, {**DEFAULT, "alpha": 2.0}], [a, b], DEFAULT)
    assert shared == 1
    assert rows[0]["point"] == "default" and rows[1]["point"] == "alpha=2.0"
    assert (rows[0]["n"], rows[0]["deletion"]) == (2, pytest.approx(0.2))  # y is left out: b skipped it
    assert (rows[1]["n"], rows[1]["deletion"]) == (1, pytest.approx(0.6))
    none = [{"id": "x", "status": "skipped"}, {"id": "y", "status": "skipped"}]  # e.g. alpha too high
    rows, shared = ablation_rows([DEFAULT, {**DEFAULT, "alpha": 9.0}], [a, none], DEFAULT)
    assert shared == 2 and rows[0]["deletion"] == pytest.approx(0.3) and rows[1]["n"] == 0


def test_ablate_cli_on_a_zoo_model_resumes(tmp_path, capsys):
    out = tmp_path / "ablate"
    argv = ["study", "ablate", "--limit", "3", "--strategies", "llr,joint", "--alphas=-100"]
    argv += [
        "--baselines",
        "blur",
        "--l2",
        "0,0.1",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--no-progress",
    ]
    argv += [
        "-O",
        "iterations=1",
        "-O",
        "ig_iter=2",
        "-O",
        "size=8",
        "-O",
        "metric_steps=5",
        "-O",
        "metric_grid=8",
    ]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["point"] for r in rows] == ["default", "strategy=joint", "alpha=-100.0", "l2=0.0"]
    by = {r["point"]: r for r in rows}
    for r in rows:
        assert int(r["n common"]) <= int(r["n"]) <= 3
        assert 0 <= float(r["deletion"]) <= 1.5 and "pointing_game" in r  # shapes has evidence masks
    # joint selects every token, as llr with alpha = -100: the same score, the same seeded maps
    for m in ("deletion", "insertion", "pointing_game"):
        assert by["strategy=joint"][m] == by["alpha=-100.0"][m]
    default = json.loads(
        (out / "runs" / "strategy-llr_alpha-1.0_baseline-blur_l2-0.1" / "run.json").read_text()
    )
    l2_run = json.loads(
        (out / "runs" / "strategy-llr_alpha-1.0_baseline-blur_l2-0.0" / "run.json").read_text()
    )
    assert default["method_options"]["l2"] == 0.1 and l2_run["method_options"]["l2"] == 0.0
    assert default["method_options"]["blend_with"] == "mean"  # no baseline axis: the default blend
    assert l2_run["lens_options"]["alpha"] == 1.0
    first = (out / "table.json").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # rerun: every point resumes from its folder, nothing recomputed
    assert json.loads((out / "table.json").read_text())["rows"] == json.loads(first)["rows"]


def test_the_baseline_axis_changes_the_optimisation_baseline_too(tmp_path):
    out = tmp_path / "ablate"
    argv = ["study", "ablate", "--limit", "1", "--baselines", "blur,blank", "--max-new-tokens", "4"]
    argv += ["--strategies", "llr", "--alphas", "1", "--l2", "0.1", "--device", "cpu", "--no-progress"]
    for option in ("iterations=1", "ig_iter=2", "size=8", "metric_steps=5", "metric_grid=8", "init=ones"):
        argv += ["-O", option]
    assert main(argv + ["--out", str(out)]) == 0
    for name in ("blur", "blank"):
        point = out / "runs" / f"strategy-llr_alpha-1.0_baseline-{name}_l2-0.1"
        run = json.loads((point / "run.json").read_text())
        assert run["method_options"]["blend_with"] == "baseline" and run["lens_options"]["baseline"] == name
    notes = json.loads((out / "table.json").read_text())["notes"]
    assert any("blend_with=baseline" in note for note in notes)
