"""The filter study: the rule by hand, the id file, and evaluate --ids reading it."""

import csv
import math

from conftest import FAST_CLI

from vlm_focus.cli import main
from vlm_focus.runs import read_ids, read_results
from vlm_focus.study.filtering import depends_on_image, filter_rows, kept_ids


def rec(i, drop, category="a"):
    llr = [math.nan] if drop is None else [-math.log(1 - drop)]
    return {"id": f"s{i}", "category": category, "llr": None if drop is None else llr}


def test_rule_and_intersection_by_hand():
    assert (
        depends_on_image(rec(0, 0.8))
        and not depends_on_image(rec(0, 0.7))
        and not depends_on_image(rec(0, 0.2))
    )
    assert depends_on_image(rec(0, 0.5), min_drop=0.4)
    assert not depends_on_image(rec(0, None))  # could not be scored: not kept
    a = [rec(0, 0.9), rec(1, 0.95, "b"), rec(2, 0.1), rec(3, 0.99, "b")]
    b = [rec(0, 0.8), rec(1, 0.5, "b"), rec(2, 0.95), rec(3, None, "b")]
    groups = [("fake", "A", a), ("fake", "B", b)]
    assert kept_ids(groups[:1]) == ["s0", "s1", "s3"]
    assert kept_ids(groups) == ["s0"]  # kept by every model
    assert kept_ids(groups, min_drop=0.4) == ["s0", "s1"]
    rows = {(r["model"], r["category"]): r for r in filter_rows(groups, kept_ids(groups), 0.7)}
    assert (rows["A", "all"]["n"], rows["A", "all"]["kept"], rows["A", "all"]["kept %"]) == (4, 3, 75.0)
    assert (rows["B", "b"]["kept"], rows["all models", "all"]["kept %"]) == (0, 25.0)
    assert rows["all models", "a"]["kept %"] == 50.0


def test_filter_cli_writes_ids_that_evaluate_takes(tmp_path, capsys):
    out = tmp_path / "filter"
    base = ["--limit", "8", "--max-new-tokens", "4", "--device", "cpu", "--no-progress"]
    assert (
        main(["study", "filter", "--models", "shapes-llava", *base, "--min-drop", "0.5", "--out", str(out)])
        == 0
    )
    ids = (out / "ids.txt").read_text().split()
    row = next(r for r in csv.DictReader((out / "table.csv").open()) if r["category"] == "all")
    assert int(row["n"]) == 8 and int(row["kept"]) == len(ids)
    scores = read_results(out / "scores" / "shapes-llava" / "results.jsonl")
    expected = [r["id"] for r in scores if depends_on_image(r, 0.5)]
    assert ids == expected and ids, "the trained zoo model relies on the image for some scenes"
    assert read_ids(out / "ids.txt") == ids
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["evaluate", "--ids", str(out / "ids.txt"), *FAST_CLI, "--out", str(run)]) == 0
    assert [r["id"] for r in read_results(run / "results.jsonl")] == ids


def test_bad_min_drop_is_refused(tmp_path, capsys):
    assert main(["study", "filter", "--min-drop", "1.5", "--out", str(tmp_path)]) == 2
    assert "--min-drop" in capsys.readouterr().err
