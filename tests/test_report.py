"""Tests of the run report (vlm_focus.viz.run_report, ``vlm-focus report``), on run folders
built by hand: no model runs here."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from vlm_focus.cli import main
from vlm_focus.errors import InputError
from vlm_focus.runs import store
from vlm_focus.runs.summary import summarize
from vlm_focus.viz.run_report import page_name, write_run_report

EVIL = '<script>alert("x")</script>'


def _record(i: int, **over: object) -> dict:
    rec = {
        "id": f"shapes-2026-{i}",
        "index": i,
        "category": "color",
        "question": f"What color is the square? {EVIL}" if i == 0 else "What color is the square?",
        "reference": "yellow",
        "answer": "The square is yellow.",
        "correct": i != 2,
        "grading": "key word",
        "tokens": [" The", " square", " is", " yellow", "."],
        "llr": [0.0, 0.2, 0.1, 3.0, 0.0],
        "selected": [3],
        "selected_text": [" yellow"],
        "deletion": [0.30, 0.05, 0.12][i % 3],
        "insertion": [0.7, 0.95, 0.8][i % 3],
        "pointing_game": 1.0,
        "status": "ok",
        "heatmap": f"heatmaps/shapes-2026-{i}.npy",
        "seconds": 1.5 + i,
        "warnings": [],
    }
    rec.update(over)
    return rec


def _run(tmp_path: Path, records: list[dict]) -> Path:
    run = tmp_path / "run"
    (run / "heatmaps").mkdir(parents=True)
    for rec in records:
        if isinstance(rec.get("heatmap"), str) and rec["heatmap"].startswith("heatmaps/"):
            heat = np.zeros((64, 64), np.float32)
            heat[10:30, 10:30] = 1.0
            store.write_npy(run / rec["heatmap"], heat)
    store.write_results(run / store.RESULTS, records)
    cfg = {
        "dataset": "shapes",
        "dataset_options": {"name": "shapes", "prompt_format": "open", "seed": 2026, "size": 64},
        "model": "shapes-llava",
        "method": "attention",
        "lens_options": {"alpha": 1.0},
    }
    store.write_json(run / store.CONFIG, cfg)
    store.write_json(run / store.SUMMARY, summarize(records))
    return run


def test_index_and_pages(tmp_path: Path) -> None:
    records = [_record(i) for i in range(3)]
    records.append(_record(3, status="skipped", reason="answer does not depend on the image", selected=[],
                           heatmap=None, deletion=None, insertion=None))  # fmt: skip
    run = _run(tmp_path, records)
    index = write_run_report(run)
    assert index == run / "index.html"
    html = index.read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing from the network
    assert html.count('<tr class="status-') == 4
    assert "shapes-llava" in html and "accuracy" in html and "lower is better" in html
    assert re.search(r'class="tok sel"[^>]*>yellow<', html)
    for rec in records[:3]:
        name = page_name(rec["id"])
        assert f'href="report/{name}.html"' in html
        assert (run / "report" / f"{name}.png").stat().st_size > 100
        page = (run / "report" / f"{name}.html").read_text(encoding="utf-8")
        assert 'href="../index.html"' in page and "Reference answer" in page
        assert EVIL not in page
    # the images came back from the dataset: no note that they are missing
    assert "could not be opened" not in html and "records no dataset" not in html


def test_writes_stay_inside_the_run_folder(tmp_path: Path) -> None:
    records = [_record(0, id="../../escape/../x"), _record(1, heatmap="../../outside.npy")]
    run = _run(tmp_path, records)
    np.save(tmp_path / "outside.npy", np.ones((4, 4), np.float32))
    before = {p for p in tmp_path.rglob("*") if not str(p).startswith(str(run))}
    write_run_report(run)
    after = {p for p in tmp_path.rglob("*") if not str(p).startswith(str(run))}
    assert before == after
    assert all(p.parent == run / "report" for p in (run / "report").iterdir())
    assert page_name("a/b") != page_name("a_b")


def test_refuses_a_linked_report_folder_and_an_empty_run(tmp_path: Path) -> None:
    run = _run(tmp_path, [_record(0)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, run / "report")
    with pytest.raises(InputError, match="symbolic link"):
        write_run_report(run)
    assert list(elsewhere.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no results"):
        write_run_report(empty)


def test_without_dataset_the_heatmaps_are_shown_alone(tmp_path: Path) -> None:
    run = _run(tmp_path, [_record(0)])
    cfg = json.loads((run / store.CONFIG).read_text())
    cfg["dataset"] = "mmstar"  # its folder is not here
    store.write_json(run / store.CONFIG, cfg)
    html = write_run_report(run).read_text(encoding="utf-8")
    assert "could not be opened again" in html
    assert (run / "report" / f"{page_name('shapes-2026-0')}.png").exists()


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, [_record(0), _record(1)])
    assert main(["report", str(run), "--overlay-style", "contour", "--no-pages"]) == 0
    assert "index.html" in capsys.readouterr().out
    assert not list((run / "report").glob("*.html"))
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert main(["report", str(run), "--opacity", "3"]) == 2


@pytest.mark.slow
def test_index_sorts_and_filters_in_a_browser(tmp_path: Path) -> None:
    from test_app import CHROMIUM, CHROMIUM_FLAGS

    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    run = _run(tmp_path, [_record(i) for i in range(3)])
    index = write_run_report(run, pages=False)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(index.as_uri())

        def column(i: int) -> list[str]:
            return page.eval_on_selector_all(
                "#samples tbody tr",
                f"rows => rows.filter(r => r.style.display !== 'none').map(r => r.cells[{i}].textContent.trim())",
            )

        heads = page.eval_on_selector_all("#samples thead th", "hs => hs.map(h => h.textContent.trim())")
        deletion = next(i for i, h in enumerate(heads) if h.startswith("deletion"))
        page.click(f"#samples thead th:nth-child({deletion + 1})")
        assert column(deletion) == ["0.050", "0.120", "0.300"]
        page.click(f"#samples thead th:nth-child({deletion + 1})")
        assert column(deletion) == ["0.300", "0.120", "0.050"]
        page.select_option("#graded", "wrong")
        assert column(2) == ["shapes-2026-2"]
        page.select_option("#graded", "")
        page.fill("#filter", "2026-1")
        assert column(2) == ["shapes-2026-1"]
        assert page.inner_text("#shown") == "1 of 3 samples shown"
        page.fill("#filter", "")
        assert page.eval_on_selector_all("#samples img", "imgs => imgs.every(i => i.naturalWidth > 0)")
        page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
        browser.close()
