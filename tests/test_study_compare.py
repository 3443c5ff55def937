"""The compare study: hand-checked tests and correlations on known run folders, then one
end-to-end run of the CLI on two zoo models (resumed, and read back with --runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import FAST_CLI

from vlm_focus.cli import main
from vlm_focus.errors import InputError
from vlm_focus.study.compare import compare_table, contrast_pairs, friedman_p, parse_tags, wilcoxon_p
from vlm_focus.study.folders import labelled, read_run

BASE = np.arange(16, dtype=np.float32).reshape(4, 4)
IDS = [f"s{i}" for i in range(5)]


def write_run(folder, maps, deletion, insertion, seed=7, skip=()):
    """A run folder as `evaluate` writes it: run.json, results.jsonl, heatmaps/."""
    (folder / "heatmaps").mkdir(parents=True)
    cfg = {"dataset": "shapes", "dataset_options": {"name": "shapes", "seed": seed}, "seed": seed}
    (folder / "run.json").write_text(json.dumps(cfg))
    lines = []
    for i, sid in enumerate(IDS):
        rec = {"id": sid, "index": i, "status": "skipped" if sid in skip else "ok"}
        if sid not in skip:
            np.save(folder / "heatmaps" / f"{sid}.npy", maps[i])
            rec.update(heatmap=f"heatmaps/{sid}.npy", deletion=deletion[i], insertion=insertion[i])
        lines.append(json.dumps(rec))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_wilcoxon_and_friedman_by_hand():
    # five positive differences: exact two-sided p = 2 / 2^5
    assert wilcoxon_p([1, 2, 3, 4, 5], [0, 0, 0, 0, 0]) == pytest.approx(0.0625)
    assert math.isnan(wilcoxon_p([1, 2], [1, 2]))  # no difference: nothing to test
    assert wilcoxon_p([1, 2, 3, 4, 5, math.nan], [0, 0, 0, 0, 0, 9]) == pytest.approx(0.0625)
    # k = 3, n = 2, the same ranks in each row: chi2 = 12 / 24 * (4 + 16 + 36) - 24 = 4, p = e^-2
    assert friedman_p([[1, 1], [2, 2], [3, 3]]) == pytest.approx(math.exp(-2))
    assert math.isnan(friedman_p([[1, 2], [3, 4]]))  # two models: no Friedman test


def test_tags_and_contrasts():
    tags = parse_tags(["a=V1:L1", "b=V1:L2", "c=V2:L1", "d=V3:L3"], ["a", "b", "c", "d"])
    assert tags["b"] == ("V1", "L2")
    pairs = contrast_pairs(tags, ["a", "b", "c", "d"])
    assert pairs == {"same vision, different LLM": [("a", "b")], "same LLM, different vision": [("a", "c")]}
    for bad in (["x=V:L"], ["a=V1"], ["a=V:L:M"], ["a"]):
        with pytest.raises(InputError):
            parse_tags(bad, ["a", "b"])
    assert labelled(["x", "b=path/b"], "--models") == {"x": "x", "b": "path/b"}
    with pytest.raises(InputError, match="twice"):
        labelled(["x", "x=y"], "--models")


def test_compare_table_on_known_maps(tmp_path):
    delta = [0.01, 0.02, 0.03, 0.04, 0.05]
    del_a = [0.1, 0.2, 0.3, 0.4, 0.5]
    a = write_run(tmp_path / "a", [BASE] * 5, del_a, [0.9] * 5)
    b = write_run(tmp_path / "b", [BASE] * 5, [x - d for x, d in zip(del_a, delta)], [0.9] * 5)
    c = write_run(tmp_path / "c", [BASE.max() - BASE] * 5, [x + d for x, d in zip(del_a, delta)], [0.8] * 5)
    folders = [read_run(label, p) for label, p in (("A", a), ("B", b), ("C", c))]
    tags = {"A": ("V1", "L1"), "B": ("V1", "L2"), "C": ("V2", "L1")}
    result = compare_table(folders, tags, reference=("A", "B"))
    rows = {(r["kind"], r["model_a"], r.get("model_b")): r for r in result.rows}
    ab, ac = rows[("pair", "A", "B")], rows[("pair", "A", "C")]
    assert ab["n"] == 5 and ab["map_spearman"] == pytest.approx(1) and ab["map_soft_iou"] == pytest.approx(1)
    # unit(m) vs 1 - unit(m), m = 0..15: sum(min) = 2 * 28 / 15, sum(max) = 2 * 92 / 15
    assert ac["map_spearman"] == pytest.approx(-1) and ac["map_soft_iou"] == pytest.approx(56 / 184)
    assert ab["deletion_a"] == pytest.approx(0.3) and ab["deletion_b"] == pytest.approx(0.27)
    assert ab["deletion_p"] == pytest.approx(0.0625) and math.isnan(ab["insertion_p"])
    # B < A < C in every sample: chi2 = 12 / 60 * (25 + 100 + 225) - 60 = 10, p = e^-5
    assert rows[("friedman", "all 3 models", None)]["deletion_p"] == pytest.approx(math.exp(-5))
    ref = rows[("reference", "A~B", "C")]
    assert (ref["map_spearman"], ref["spearman_vs"]) == (pytest.approx(1), pytest.approx(-1))
    assert ref["spearman_p"] == pytest.approx(0.0625)
    assert rows[("same vision, different LLM", "1 pair(s)", None)]["map_spearman"] == pytest.approx(1)
    assert rows[("same LLM, different vision", "1 pair(s)", None)]["map_spearman"] == pytest.approx(-1)
    test = rows[("contrast test", "same vision, different LLM", "same LLM, different vision")]
    assert test["n"] == 5 and test["spearman_p"] == pytest.approx(0.0625)
    assert len(result.write(tmp_path / "out")) == 3


def test_pairs_use_the_shared_samples_and_other_samples_are_refused(tmp_path):
    a = write_run(tmp_path / "a", [BASE] * 5, [0.1] * 5, [0.9] * 5)
    b = write_run(tmp_path / "b", [BASE] * 5, [0.2] * 5, [0.9] * 5, skip=("s0", "s3"))
    result = compare_table([read_run("A", a), read_run("B", b)])
    pair = next(r for r in result.rows if r["kind"] == "pair")
    assert pair["n"] == 3 and pair["deletion_b"] == pytest.approx(0.2)
    assert [r["n"] for r in result.rows if r["kind"] == "model"] == [5, 3]
    other = write_run(tmp_path / "other", [BASE] * 5, [0.1] * 5, [0.9] * 5, seed=8)
    from vlm_focus.study.folders import check_same_samples

    with pytest.raises(InputError, match="different samples"):
        check_same_samples([read_run("A", a), read_run("O", other)])
    with pytest.raises(InputError, match="at least two"):
        compare_table([read_run("A", a)])


def test_compare_cli_on_two_zoo_models_resumes_and_reads_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["--limit", "2", "--qtypes", "color", "--seed", "3", *FAST_CLI]
    args = ["study", "compare", "--models", "shapes-llava", "me=shapes-multi-encoder", "--out", str(out)]
    assert main([*args, "--tags", "shapes-llava=CLIP:Llama", "me=CLIP+ConvNeXt:Llama", *common]) == 0
    first = json.loads((out / "table.json").read_text())
    assert "same LLM, different vision" in capsys.readouterr().out
    pair = next(r for r in first["rows"] if r["kind"] == "pair")
    assert (pair["model_a"], pair["model_b"]) == ("shapes-llava", "me") and pair["n"] >= 1
    runs = json.loads((out / "runs" / "shapes-llava" / "run.json").read_text())
    assert runs["lens_options"]["metric_protocol"] == "ours"
    assert main([*args, *common]) == 0  # resumed: nothing left to explain, same pair
    again = next(r for r in json.loads((out / "table.json").read_text())["rows"] if r["kind"] == "pair")
    assert again == pair
    folders = ["study", "compare", "--runs", f"x={out / 'runs' / 'shapes-llava'}", f"y={out / 'runs' / 'me'}"]
    assert main([*folders, "--out", str(tmp_path / "read"), "--no-progress"]) == 0
    read = next(
        r for r in json.loads((tmp_path / "read" / "table.json").read_text())["rows"] if r["kind"] == "pair"
    )
    assert read["map_spearman"] == pytest.approx(pair["map_spearman"])
    assert (tmp_path / "read" / "plot.png").stat().st_size > 0
    assert main(["study", "compare", "--models", "shapes-llava", "--out", str(tmp_path / "x"), *common]) == 2
    assert "at least two" in capsys.readouterr().err
