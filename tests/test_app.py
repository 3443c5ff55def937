"""Tests of the web app: its functions (vlm_focus.app.core) and, end to end, the page in
headless Chromium (Debian's ``chromium`` driven by Playwright) on the zoo model."""

from __future__ import annotations

import os
import shutil
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vlm_focus.app import core
from vlm_focus.errors import ImageError, InputError, ModelError
from vlm_focus.explanation import Explanation

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _explanation(**over: object) -> Explanation:
    yy, xx = np.mgrid[0:32, 0:48]
    heat = np.exp(-((xx - 30) ** 2 + (yy - 10) ** 2) / 30.0).astype(np.float32)
    fields: dict = dict(
        model="m<1>",
        method="attention",
        question="What is <b>this</b>?",
        answer="a red <circle>",
        tokens=[" a", " red", " <circle>"],
        token_ids=[1, 2, 3],
        logprob=[-0.1, -0.2, -0.3],
        logprob_baseline=[-0.2, -3.0, -4.0],
        llr=[0.1, 2.8, 3.7],
        selected=[1, 2],
        alpha=1.0,
        heatmap=heat,
        image=Image.new("RGB", (48, 32), (200, 40, 40)),
        scores={"deletion": 0.1, "insertion": 0.9},
        timings={"heatmap": 0.5},
        warnings=["careful & <quiet>"],
        token_maps={1: heat, 2: heat[::-1].copy()},
    )
    fields.update(over)
    return Explanation(**fields)


# ----- the functions ---------------------------------------------------------------------------------
def test_check_request_refuses_bad_input(tmp_path: Path) -> None:
    good = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(good)
    with pytest.raises(ImageError, match="upload an image"):
        core.check_request(core.Request(None, "Q?"))
    with pytest.raises(InputError, match="type a question"):
        core.check_request(core.Request(str(good), "   "))
    with pytest.raises(InputError, match="at most"):
        core.check_request(core.Request(str(good), "x" * (core.MAX_QUESTION_CHARS + 1)))
    with pytest.raises(InputError, match="unknown method"):
        core.check_request(core.Request(str(good), "Q?", method="gradcm"))
    with pytest.raises(ImageError, match="pixels"):
        core.check_request(core.Request(str(good), "Q?", max_pixels=1000))
    not_image = tmp_path / "x.txt"
    not_image.write_text("hello")
    with pytest.raises(ImageError):
        core.check_request(core.Request(str(not_image), "Q?"))
    assert core.check_request(core.Request(str(good), "Q?")).size == (40, 40)


def test_method_options_are_parsed_and_checked() -> None:
    assert core.parse_method_options("igos++", "iterations=3, size=8") == {"iterations": 3, "size": 8}
    assert core.parse_method_options("attention", "") == {}
    with pytest.raises(InputError, match="did you mean iterations"):
        core.parse_method_options("igos++", "iteration=3")


def test_pool_loads_once_evicts_and_serialises_one_model() -> None:
    loads: list[str] = []
    pool = core.ModelPool(max_models=2, loader=lambda name: loads.append(name) or SimpleNamespace(name=name))
    with pool.use("shapes-llava") as a:
        assert a.name == "shapes-llava"
    with pool.use("shapes-llava"):
        pass
    assert loads == ["shapes-llava"]
    with pool.use("shapes-onevision"), pool.use("shapes-qwen2.5-vl"):
        pass
    assert pool.names() == ["shapes-onevision", "shapes-qwen2.5-vl"]  # the least recent went
    with pytest.raises(ModelError, match="did you mean"):
        with pool.use("shapes-lava"):
            pass
    inside, overlap = [0], [False]

    def work() -> None:
        with pool.use("shapes-onevision"):
            inside[0] += 1
            overlap[0] |= inside[0] > 1
            time.sleep(0.05)
            inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap[0]  # two users never run on one model at once


def test_views_escape_and_mark_tokens(tmp_path: Path) -> None:
    ex = _explanation()
    html = core.answer_html(ex)
    assert "&lt;circle&gt;" in html and "<circle>" not in html
    assert html.count('class="tok sel"') == 2 and "m&lt;1&gt;" in html
    scores = core.scores_html(ex)
    assert "lower is better" in scores and "careful &amp; &lt;quiet&gt;" in scores
    img = core.overlay_image(ex, style="contour")
    assert img.width > img.height > 100
    maps = core.token_map_images(ex)
    assert [c for _, c in maps] == ["red (token 1, LLR 2.80)", "<circle> (token 2, LLR 3.70)"]
    assert core.curves_image(ex) is None
    no_heat = core.answer_html(_explanation(selected=[], heatmap=None))
    assert "does not depend on the image" in no_heat


def test_save_zip_holds_the_explanation_folder(tmp_path: Path) -> None:
    path = core.save_zip(_explanation(), tmp_path, style="contour")
    assert path.parent.parent == tmp_path
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert {"explanation/explanation.json", "explanation/heatmap.npy", "explanation/overlay.png"} <= names
    assert "explanation/report.html" in names and "explanation/token_maps.npz" in names


def test_example_scenes(tmp_path: Path) -> None:
    examples = core.example_scenes(tmp_path, n=2)
    assert len(examples) == 2 and all(Path(p).is_file() and q.endswith("?") for p, q in examples)


def test_serve_parser_is_light_and_checks_its_input(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from vlm_focus.cli import build_parser; build_parser().parse_args(['serve', '--port', '1']);"
        "print(sorted(m for m in ('torch', 'gradio', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from vlm_focus.cli import main

    assert main(["serve", "--model", "shapes-lava"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2


# ----- the page in a browser ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.mark.slow
def test_app_in_a_browser(browser, tmp_path: Path) -> None:
    """Start the server, upload a scene, ask about it, explain, and check the page."""
    pytest.importorskip("gradio")
    from vlm_focus.app import start
    from vlm_focus.data.shapes import make_sample

    sample = make_sample(2026, 0, qtype="color")
    scene = tmp_path / "scene.png"
    sample.image.save(scene)
    t0 = time.perf_counter()
    app = start(models=["shapes-llava"], port=0)
    started = time.perf_counter() - t0
    external: list[str] = []
    try:
        assert app.url.startswith("http://127.0.0.1:")
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else external.append(r.url)
            ),
        )
        page.goto(app.url)
        page.wait_for_selector("#explain", timeout=30_000)
        page.set_input_files("#image input[type=file]", str(scene))
        page.fill("#question textarea", sample.question)
        page.locator("#method input").fill("attention")
        page.keyboard.press("Enter")
        page.get_by_text("options", exact=True).click()
        page.get_by_label("deletion / insertion scores").uncheck()  # keep the test short
        t1 = time.perf_counter()
        page.click("#explain")
        page.wait_for_selector("#answer .tok.sel", timeout=90_000)
        page.wait_for_selector("#overlay img", timeout=30_000)
        explained = time.perf_counter() - t1
        answer = page.inner_text("#answer .vf-answer")
        assert sample.key.lower() in answer.lower(), answer  # the zoo model answers this scene right
        assert page.inner_text("#answer .tok.sel").strip().lower() == sample.key.lower()
        size = page.eval_on_selector("#overlay img", "img => [img.naturalWidth, img.naturalHeight]")
        assert size[0] > 300 and size[1] > 150
        page.wait_for_selector("#download a", timeout=30_000)
        shot = tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(
            f"app start {started:.1f} s, one explanation through the page {explained:.1f} s; screenshot {shot}"
        )
    finally:
        app.close()
    assert external == []  # the page loads nothing from outside this server
    assert not os.path.exists(app.workdir)  # uploads and downloads are removed with the app
