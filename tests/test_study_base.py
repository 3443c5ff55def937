"""The study contract: the registry, the table writer, the CLI shell and its torch-free parser."""

import csv
import json
import math
import subprocess
import sys
import textwrap

import pytest

from vlm_focus import catalog
from vlm_focus.cli import main
from vlm_focus.errors import InputError
from vlm_focus.study import STUDIES, Study, StudyResult, get_study, list_studies, register_study
from vlm_focus.study.base import format_cell, numeric_columns


def table():
    return StudyResult(
        "T",
        columns=["name", "n", "score"],
        rows=[{"name": "a", "n": 3, "score": 0.12345}, {"name": "b", "n": 0, "score": math.nan}],
        notes=["a note"],
        details={"x": [1.0, math.inf]},
    )


def test_writer_writes_csv_json_png_and_prints_the_table(tmp_path):
    res = table()
    paths = res.write(tmp_path / "out")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows == [{"name": "a", "n": "3", "score": "0.12345"}, {"name": "b", "n": "0", "score": ""}]
    data = json.loads(paths["json"].read_text())
    assert (
        data["rows"][1]["score"] is None
        and data["details"]["x"] == [1.0, None]
        and data["notes"] == ["a note"]
    )
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    text = res.format()
    assert text.splitlines()[0] == "T" and "0.123" in text and "note: a note" in text
    assert text.splitlines()[4].split() == ["b", "0", "-"]
    assert format_cell(True) == "True" and format_cell(None) == "-" and format_cell(2) == "2"
    assert numeric_columns(res) == ["n", "score"]
    with pytest.raises(InputError, match="outside the columns"):
        StudyResult("T", ["a"], [{"a": 1, "b": 2}])
    with pytest.raises(InputError, match="distinct"):
        StudyResult("T", ["a", "a"], [])
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        res.write(tmp_path / "file")


def test_registry_matches_the_catalogue_and_refuses_typos():
    assert list_studies() == catalog.list_studies()
    for name in list_studies():
        study = get_study(name)
        assert isinstance(study, Study) and study.name == name
        assert study.summary == catalog.STUDIES[name], f"update vlm_focus/catalog.py STUDIES[{name!r}]"
    with pytest.raises(InputError, match="did you mean 'reliance'"):
        get_study("relience")
    with pytest.raises(TypeError):
        register_study("bad")(object)  # type: ignore[arg-type]


def test_a_registered_study_runs_from_the_cli(tmp_path, capsys, monkeypatch):
    class Echo(Study):
        summary = "echo"
        uses_model = False

        def add_arguments(self, parser):
            parser.add_argument("--word", default="hi")

        def run(self, args, out):
            return StudyResult("Echo", ["word"], [{"word": args.word}])

    monkeypatch.setitem(STUDIES, "echo", Echo)
    monkeypatch.setattr(catalog, "STUDIES", {**catalog.STUDIES, "echo": "echo"})
    register_study("echo")(Echo)
    assert main(["study", "echo", "--word", "yo", "--out", str(tmp_path)]) == 0
    assert "yo" in capsys.readouterr().out
    assert (tmp_path / "table.csv").read_text() == "word\nyo\n"


def test_study_help_and_refusals_import_neither_torch_nor_transformers(tmp_path):
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from vlm_focus.cli import main

        def run(*argv):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    rc = main(list(argv))
                except SystemExit as e:
                    rc = e.code
            return rc, err.getvalue()

        results = {name: run("study", name, "--help") for name in ("reliance", "filter", "ablate", "sanity")}
        results["typo"] = run("study", "reliance", "--models", "shapes-lava", "--out", sys.argv[1])
        results["method"] = run("study", "ablate", "-O", "iteration=2", "--out", sys.argv[1])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        print(json.dumps({"results": results, "heavy": heavy}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["heavy"] == []
    r = data["results"]
    assert all(r[n][0] == 0 for n in ("reliance", "filter", "ablate", "sanity"))
    assert (
        r["typo"][0] == 2 and "did you mean 'shapes-llava'" in r["typo"][1] and r["typo"][1].count("\n") == 1
    )
    assert r["method"][0] == 2 and "unknown option" in r["method"][1]
