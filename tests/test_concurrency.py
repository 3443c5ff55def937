"""One Lens called from several threads (as the web app does): results equal sequential ones.

Adapters keep no per-call state (the layout of the image being explained lives in the
calling thread's context), and ``Lens.explain`` holds the adapter's lock while methods
change the shared model (eager attention, forward hooks). The zoo models are used, with
attention-reading methods (``attention``, ``tmm``) and Grad-CAM mixed in one thread pool.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import vlm_focus
from vlm_focus.data.shapes import make_sample
from vlm_focus.errors import ModelError

MODELS = ["shapes-llava", "shapes-onevision", "shapes-qwen2.5-vl"]
METHODS = ["attention", "tmm", "gradcam"]
FAST = {"alpha": -1e9, "metrics": False, "max_new_tokens": 3}
# Image sizes with different Qwen patch grids and different OneVision crop counts.
SIZES = [(64, 64), (96, 48), (48, 96)]


@pytest.fixture(scope="module")
def adapters():
    return {name: vlm_focus.load(name, device="cpu").adapter for name in MODELS}


def scenes():
    """Shapes scenes resized to each of SIZES (width, height), with their questions."""
    out = []
    for i, (w, h) in enumerate(SIZES):
        s = make_sample(seed=777, index=i)
        out.append((s.image.resize((w, h)), s.question))
    return out


def attention_implementations(model) -> list[tuple[str, str | None]]:
    configs = [model.config] + [getattr(model.config, k) for k in model.config.sub_configs]
    return [(type(c).__name__, getattr(c, "_attn_implementation_internal", None)) for c in configs]


def summary(ex) -> tuple:
    return (ex.answer, tuple(ex.token_ids), tuple(ex.selected), tuple(ex.llr), ex.heatmap.tobytes())


# ----- adapters: the layout of the image being explained is private to each thread ----------
@pytest.mark.parametrize("name", ["shapes-onevision", "shapes-qwen2.5-vl"])
def test_layout_is_private_to_each_thread(adapters, name):
    """Thread A preprocesses one size, thread B another in between, then A maps its vision
    tokens: A must see its own layout (with a layout stored on the adapter, it saw B's)."""
    adapter = adapters[name]
    small, wide = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 48, 96)
    layout = {}
    for pixels in (small, wide):
        adapter.preprocess(pixels)
        layout[pixels.shape[-1]] = adapter.recalled_layout()
    assert layout[64] != layout[96]  # the two sizes really differ in layout
    step_a, step_b = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def thread_a():
        adapter.preprocess(small)
        step_a.set()
        step_b.wait(10)  # B has preprocessed its image meanwhile
        seen["a"] = adapter.recalled_layout()
        seen["a_tokens"] = adapter.patch_tokens(tokens_for(adapter, layout[64])).shape

    def thread_b():
        step_a.wait(10)
        adapter.preprocess(wide)
        seen["b"] = adapter.recalled_layout()
        step_b.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert (seen["a"], seen["b"]) == (layout[64], layout[96])
    assert seen["a_tokens"] == adapter.patch_tokens(tokens_for(adapter, layout[64]), layout=layout[64]).shape


def tokens_for(adapter, layout) -> torch.Tensor:
    """A vision-layer output of one image with this layout."""
    if adapter.family == "qwen2_vl":
        gh, gw = layout
        return torch.rand(gh * gw, 8)  # flat [N, D], as the Qwen vision blocks give
    rows, cols = adapter.vision_grid(torch.zeros(3, 64, 64))
    return torch.rand(layout, 1 + rows * cols, 8)  # [n_inputs, 1 + N, D]


def test_a_fresh_thread_has_no_layout(adapters):
    adapter = adapters["shapes-qwen2.5-vl"]
    adapter.preprocess(torch.rand(1, 3, 64, 64))
    got = {}
    t = threading.Thread(target=lambda: got.update(layout=adapter.recalled_layout()))
    t.start()
    t.join(10)
    assert got == {"layout": None}
    with pytest.raises(ModelError, match="forward pass first"):
        ThreadPoolExecutor(1).submit(adapter.patch_tokens, torch.rand(144, 8)).result(10)


def test_adapters_hold_no_per_call_attributes(adapters):
    """Preprocessing leaves the adapter's attributes as they were."""
    for adapter in adapters.values():
        before = {k: v for k, v in vars(adapter).items()}
        adapter.preprocess(torch.rand(2, 3, 48, 96))
        assert vars(adapter).keys() == before.keys()
        assert all(vars(adapter)[k] is v for k, v in before.items())


# ----- Lens: concurrent explanations equal sequential ones ------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_concurrent_explanations_equal_sequential(adapters, name):
    adapter = adapters[name]
    lenses = {m: vlm_focus.Lens(adapter, method=m, **FAST) for m in METHODS}
    jobs = [(m, image, q) for m in METHODS for image, q in scenes()]
    before = attention_implementations(adapter.model)
    sequential = [summary(lenses[m].explain(image, q)) for m, image, q in jobs]
    start = threading.Barrier(len(jobs))

    def run(job):
        m, image, q = job
        start.wait(30)  # all threads call explain together
        return summary(lenses[m].explain(image, q))

    for _ in range(2):
        with ThreadPoolExecutor(len(jobs)) as pool:
            concurrent = list(pool.map(run, jobs))
        assert [c[:4] for c in concurrent] == [s[:4] for s in sequential]
        assert [c[4] for c in concurrent] == [s[4] for s in sequential]  # heatmaps, bit for bit
    # The attention-reading methods switched to eager attention and back, every time.
    assert attention_implementations(adapter.model) == before


def test_one_lens_many_threads_igos(adapters):
    """The default method, several threads on one lens and one image size each."""
    lens = vlm_focus.Lens(
        adapters["shapes-qwen2.5-vl"], method="igos++", iterations=1, ig_iter=2, size=8, **FAST
    )
    jobs = scenes()
    sequential = [summary(lens.explain(image, q)) for image, q in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        concurrent = list(pool.map(lambda job: summary(lens.explain(*job)), jobs))
    assert concurrent == sequential


def test_explain_waits_for_the_model_lock(adapters):
    """Lenses over one adapter share its lock; explain waits while another holder changes
    the model (e.g. the sanity check's randomised weights) and runs once it is released."""
    adapter = adapters["shapes-llava"]
    lens = vlm_focus.Lens(adapter, method="attention", **FAST)
    assert lens._lock is adapter.lock is vlm_focus.Lens(adapter, method="tmm")._lock
    image, q = scenes()[0]
    expected = summary(lens.explain(image, q))
    with ThreadPoolExecutor(1) as pool:
        with adapter.lock:
            future = pool.submit(lambda: summary(lens.explain(image, q)))
            with pytest.raises(TimeoutError):
                future.result(timeout=1.0)
            assert lens.explain(image, q) is not None  # re-entrant for the holder
        assert future.result(timeout=60) == expected
