"""Every registered method on every adapter's tiny model: a valid heatmap, and no hook or
attention-implementation change left behind - also when the model fails mid-method."""

import pytest
import torch

from vlm_focus.baselines import make_baseline
from vlm_focus.errors import MethodError
from vlm_focus.images import to_tensor
from vlm_focus.methods import Target, get_method, list_methods
from vlm_focus.models import list_adapters

# Small options so the whole grid runs in seconds; methods not listed run with defaults.
FAST = {
    "igos++": {"iterations": 1, "ig_iter": 2, "size": 8},
    "igos2": {"iterations": 1, "ig_iter": 2, "size": 8},
    "rise": {"n_masks": 20},
    "iia": {"steps": 3},
    "occlusion": {"window": 0.25},
}


def ours(hooks: dict) -> tuple:
    # transformers installs its own output-capturing hooks, once and for good, the first time
    # a sub-model is asked for attentions/hidden states: those are not ours to remove.
    return tuple(
        k for k, fn in hooks.items() if not getattr(fn, "__module__", "").startswith("transformers.")
    )


def hook_state(model: torch.nn.Module) -> dict:
    return {
        name: (ours(m._forward_hooks), ours(m._forward_pre_hooks), ours(m._backward_hooks))
        for name, m in model.named_modules()
    }


def attn_state(model: torch.nn.Module) -> list:
    configs = [model.config, *(getattr(model.config, k) for k in model.config.sub_configs)]
    configs += [m.config for m in model.modules() if hasattr(m, "config")]
    state = [c._attn_implementation for c in configs]
    # The tiny models run sdpa (a ConvNeXt sub-config, without attention, says eager):
    # eager at the top means an earlier test left it switched.
    assert model.config._attn_implementation != "eager", "an earlier test left eager attention switched on"
    return state


def make_case(adapter, scene):
    pixels = to_tensor(scene.image)
    answer = adapter.encode_answer(scene.answer)[:4]
    scorer = adapter.scorer(pixels, scene.question, answer, batch_size=8)
    return Target(scorer, list(range(len(answer))), adapter), pixels, make_baseline("blur", pixels)


# Pairs where the method cannot apply and must refuse with a MethodError (none today: the
# set stays for adapters whose models cannot expose what a method reads).
UNSUPPORTED: set[tuple[str, str]] = set()


@pytest.mark.parametrize("family", list_adapters())
@pytest.mark.parametrize("name", list_methods())
def test_method_on_adapter(adapters, family, name, scene):
    adapter = adapters[family]
    target, pixels, baseline = make_case(adapter, scene)
    hooks_before, attn_before = hook_state(adapter.model), attn_state(adapter.model)
    torch.manual_seed(0)
    if (name, family) in UNSUPPORTED:
        with pytest.raises(MethodError, match=name):
            get_method(name, **FAST.get(name, {})).explain(target, pixels, baseline)
        assert hook_state(adapter.model) == hooks_before
        assert attn_state(adapter.model) == attn_before
        return
    heat = get_method(name, **FAST.get(name, {})).explain(target, pixels, baseline)
    assert heat.shape == pixels.shape[-2:]
    assert torch.isfinite(heat).all()
    assert 0 <= float(heat.min()) and float(heat.max()) <= 1
    assert hook_state(adapter.model) == hooks_before
    assert attn_state(adapter.model) == attn_before
    assert not any(p.requires_grad for p in adapter.model.parameters())


@pytest.mark.parametrize("family", list_adapters())
@pytest.mark.parametrize("name", list_methods())
def test_no_hook_left_after_an_error(adapters, family, name, scene):
    adapter = adapters[family]
    target, pixels, baseline = make_case(adapter, scene)
    hooks_before, attn_before = hook_state(adapter.model), attn_state(adapter.model)
    # Fail inside the language model, after the vision encoder (and any method hook) ran.
    last = adapter.model.get_decoder().layers[-1] if hasattr(adapter.model, "get_decoder") else None
    assert last is not None

    def fail(module, inputs, output):
        raise RuntimeError("injected failure")

    handle = last.register_forward_hook(fail)
    try:
        expected = (RuntimeError, MethodError) if (name, family) in UNSUPPORTED else RuntimeError
        with pytest.raises(expected):
            get_method(name, **FAST.get(name, {})).explain(target, pixels, baseline)
    finally:
        handle.remove()
    assert hook_state(adapter.model) == hooks_before
    assert attn_state(adapter.model) == attn_before


class FailingTarget(Target):
    """``f`` works once, then raises: the failure comes midway through a method."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls = 0

    def f(self, pixels):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("f failed")
        return super().f(pixels)


@pytest.mark.parametrize("name", ["gradcam", "tmm", "iia", "rise", "occlusion", "igos++", "igos2"])
def test_no_hook_left_when_f_fails_midway(tiny_adapter, name, scene):
    target, pixels, baseline = make_case(tiny_adapter, scene)
    failing = FailingTarget(target.scorer, target.selected, tiny_adapter)
    hooks_before, attn_before = hook_state(tiny_adapter.model), attn_state(tiny_adapter.model)
    options = {**FAST.get(name, {}), **({"batch_size": 1} if name == "iia" else {})}
    method = get_method(name, **options)
    if name in ("gradcam", "tmm"):  # a single pass: fail on the first call
        failing.calls = 1
    with pytest.raises(RuntimeError, match="f failed"):
        method.explain(failing, pixels, baseline)
    assert hook_state(tiny_adapter.model) == hooks_before
    assert attn_state(tiny_adapter.model) == attn_before
