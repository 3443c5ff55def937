"""The sanity study: the per-method row by hand, the CLI on a zoo model, the move out of metrics."""

import csv
import math

import pytest

import vlm_focus.metrics
from vlm_focus.cli import main
from vlm_focus.study.sanity import sanity_row


def test_row_by_hand():
    recs = [
        {"sanity_spearman": 0.9, "sanity_ssim": 0.8},
        {"sanity_spearman": -0.2, "sanity_ssim": 0.1},
        {"sanity_spearman": 0.1, "sanity_ssim": None},
        {"sanity_spearman": None},  # a flat map: left out
        {"status": "skipped"},
    ]
    row = sanity_row("m", recs, threshold=0.5)
    assert row["n"] == 3
    assert row["spearman"] == pytest.approx(0.8 / 3)
    assert row["|spearman|"] == pytest.approx(1.2 / 3)
    assert row["ssim"] == pytest.approx(0.45)
    assert row["passed %"] == pytest.approx(200 / 3)
    assert math.isnan(sanity_row("m", [])["spearman"])


def test_metrics_keeps_only_the_pure_comparison():
    assert not hasattr(vlm_focus.metrics, "sanity_check") and hasattr(vlm_focus.metrics, "similarity")
    from vlm_focus.randomization import sanity_check  # noqa: F401  the check runs a model: not in metrics


def test_sanity_cli_on_a_zoo_model(tmp_path, capsys):
    out = tmp_path / "sanity"
    argv = ["study", "sanity", "--methods", "gradcam,attention", "--limit", "3", "--max-new-tokens", "4"]
    argv += ["--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["method"] for r in rows] == ["gradcam", "attention"]
    for r in rows:
        assert 1 <= int(r["n"]) <= 3
        assert -1 <= float(r["spearman"]) <= 1 and 0 <= float(r["|spearman|"]) <= 1
        assert 0 <= float(r["passed %"]) <= 100
    assert (out / "runs" / "gradcam" / "results.jsonl").exists()
    assert "sanity check" in capsys.readouterr().out
