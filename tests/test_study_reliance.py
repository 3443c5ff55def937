"""The reliance study (paper Table 1): drops and bins by hand, the score pass, the CLI."""

import csv
import json
import math

import pytest
from study_fakes import KnownLens, ListDataset, args, samples

from vlm_focus.cli import main
from vlm_focus.errors import InputError
from vlm_focus.study.common import answer_drop, score_into
from vlm_focus.study.reliance import bin_shares, check_edges, column_names, reliance_rows

DROPS = [0.1, 0.2, 0.5, 0.9, 0.95, -0.5]  # s5's answer becomes more likely on the baseline


def test_answer_drop_is_one_minus_the_probability_ratio():
    assert answer_drop({"llr": [math.log(2)]}) == pytest.approx(0.5)
    assert answer_drop({"llr": [math.log(2), math.log(2)]}) == pytest.approx(0.75)  # product over tokens
    assert answer_drop({"llr": [-math.log(2)]}) == pytest.approx(-1.0)
    assert math.isnan(answer_drop({"llr": []})) and math.isnan(answer_drop({}))


def test_bins_by_hand():
    s = bin_shares([0.1, 0.2, 0.5, 0.9, 0.95, -0.5])
    assert s["n"] == 6
    assert s["low"] == pytest.approx(50.0)  # 0.1, 0.2, -0.5
    assert s["mid"] == pytest.approx(100 / 6)  # 0.5
    assert s["high"] == pytest.approx(100 / 3)  # 0.9, 0.95
    edges = bin_shares([0.3, 0.7, 0.7000001, float("nan")])  # boundaries belong to the middle bin
    assert (edges["n"], edges["low"], edges["mid"], edges["high"]) == (
        3,
        0.0,
        pytest.approx(200 / 3),
        pytest.approx(100 / 3),
    )
    assert math.isnan(bin_shares([])["low"])
    assert column_names((0.3, 0.7)) == ("drop < 30%", "30-70%", "> 70%")
    with pytest.raises(InputError):
        check_edges([0.7, 0.3])


def test_score_pass_of_known_probabilities_gives_the_hand_bins_and_resumes(tmp_path):
    ds = ListDataset(samples(len(DROPS)))
    lens = KnownLens(DROPS)
    ids = ds.ids()
    recs = score_into(lens, ds, tmp_path / "scores", ids, args())
    assert [r["id"] for r in recs] == ids and lens.calls == len(DROPS)
    assert [answer_drop(r) for r in recs] == pytest.approx(DROPS)
    rows = reliance_rows([("fake", "known", recs)])
    overall = rows[0]
    assert (overall["category"], overall["n"]) == ("all", 6)
    assert (overall["drop < 30%"], overall["30-70%"], overall["> 70%"]) == pytest.approx(
        (50.0, 100 / 6, 100 / 3)
    )
    by_cat = {r["category"]: r for r in rows[1:]}
    # category a: s0, s2, s4 (drops 0.1, 0.5, 0.95); b: s1, s3, s5 (0.2, 0.9, -0.5)
    assert (by_cat["a"]["drop < 30%"], by_cat["a"]["30-70%"], by_cat["a"]["> 70%"]) == pytest.approx(
        (100 / 3,) * 3
    )
    assert (by_cat["b"]["drop < 30%"], by_cat["b"]["> 70%"]) == pytest.approx((200 / 3, 100 / 3))
    again = score_into(lens, ds, tmp_path / "scores", ids, args())  # resumed: nothing scored twice
    assert lens.calls == len(DROPS) and [r["llr"] for r in again] == [r["llr"] for r in recs]
    assert len((tmp_path / "scores" / "results.jsonl").read_text().splitlines()) == len(DROPS)
    other = KnownLens(DROPS, name="another")  # another model in the same folder is refused
    with pytest.raises(InputError, match="settings differ"):
        score_into(other, ds, tmp_path / "scores", ids, args())


def test_reliance_cli_on_two_zoo_models_and_from_their_folders(tmp_path, capsys):
    out = tmp_path / "rel"
    common = ["--limit", "6", "--max-new-tokens", "4", "--device", "cpu", "--no-progress"]
    rc = main(
        ["study", "reliance", "--models", "shapes-llava", "shapes-qwen2.5-vl", *common, "--out", str(out)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "paper Table 1" in printed and "shapes-qwen2.5-vl" in printed
    rows = list(csv.DictReader((out / "table.csv").open()))
    overall = [r for r in rows if r["category"] == "all"]
    assert [r["model"] for r in overall] == ["shapes-llava", "shapes-qwen2.5-vl"]
    for r in overall:
        assert int(r["n"]) == 6
        assert float(r["drop < 30%"]) + float(r["30-70%"]) + float(r["> 70%"]) == pytest.approx(100.0)
    data = json.loads((out / "table.json").read_text())
    drops = data["details"]["drops"]["shapes/shapes-llava"]
    assert len(drops) == 6 and all(d is None or d <= 1 for d in drops.values())
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again"
    folders = [str(out / "scores" / "shapes-llava"), str(out / "scores" / "shapes-qwen2.5-vl")]
    assert main(["study", "reliance", "--runs", *folders, "--out", str(again)]) == 0
    assert json.loads((again / "table.json").read_text())["rows"] == data["rows"]


def test_bad_edges_end_with_one_line_and_status_2(tmp_path, capsys):
    rc = main(["study", "reliance", "--edges", "0.8,0.2", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("vlm-focus: error: --edges") and "\n" not in err
