"""Scoped forward hooks, eager attention, and the adapter hook points, for internal-signal methods.

Every hook registered here is removed in a ``finally`` block, also when the forward or
backward pass raises; :func:`eager_attention` restores the model's attention implementation
the same way. Grad-CAM, T-MM, IIA and raw attention use these, never
``register_forward_hook`` directly, and reach the adapter's hook points only through the
helpers below, which turn "this model has no such hook point" into :class:`MethodError`.

Example::

    with capture_outputs(adapter.vision_layers()) as outs:
        score = target.f(pixels[None]).sum()
    acts = [calls[-1] for calls in outs]   # one list per module, one entry per forward call
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from ..errors import MethodError
from .base import Target, normalize_map

Hook = Callable[[torch.nn.Module, Any, Any], Any]


@contextmanager
def hooks(modules: Iterable[torch.nn.Module], fn: Hook) -> Iterator[list[RemovableHandle]]:
    """Register ``fn(module, inputs, output)`` as a forward hook on each module, for the block."""
    handles: list[RemovableHandle] = []
    try:
        for m in modules:
            handles.append(m.register_forward_hook(fn))
        yield handles
    finally:
        for h in handles:
            h.remove()


def first(output: Any) -> Any:
    """A layer's main output: element 0 of a tuple/list output, else the output itself."""
    return output[0] if isinstance(output, (tuple, list)) else output


def attention_weights(output: Any) -> torch.Tensor | None:
    """Attention probabilities ``[B, heads, N, N]`` from an attention module's output tuple
    (``(out, weights, ...)`` as Hugging Face modules return under eager attention), else None."""
    if not isinstance(output, (tuple, list)):
        return None
    for item in output[1:]:
        if isinstance(item, torch.Tensor) and item.ndim == 4 and item.shape[-1] == item.shape[-2]:
            return item
    return None


@contextmanager
def capture_outputs(
    modules: Sequence[torch.nn.Module], select: Callable[[Any], Any] = first
) -> Iterator[list[list]]:
    """Record ``select(output)`` of every forward call of each module: ``captured[i]`` lists
    the calls of ``modules[i]`` in order. Hooks are removed when the block exits."""
    captured: list[list] = [[] for _ in modules]

    def recorder(store: list) -> Hook:
        def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            store.append(select(output))

        return record

    with ExitStack() as stack:
        for m, store in zip(modules, captured):
            stack.enter_context(hooks([m], recorder(store)))
        yield captured


def _configs(model: torch.nn.Module) -> list[Any]:
    """Every config object (and nested sub-config) of the model that has an attention setting."""
    seen: dict[int, Any] = {}
    queue = [getattr(m, "config", None) for m in model.modules()]
    while queue:
        cfg = queue.pop()
        if cfg is None or id(cfg) in seen or not hasattr(cfg, "_attn_implementation"):
            continue
        seen[id(cfg)] = cfg
        queue.extend(getattr(cfg, key, None) for key in (getattr(cfg, "sub_configs", None) or {}))
    return list(seen.values())


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run the block with eager attention (the only kind that returns attention weights),
    then put every config's previous implementation back, also after an error."""
    saved = [(cfg, getattr(cfg, "_attn_implementation_internal", None)) for cfg in _configs(model)]
    try:
        if saved and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        else:
            for cfg, _ in saved:
                cfg._attn_implementation_internal = "eager"
        yield
    finally:
        # Set the stored values directly: the public setter would re-validate and cascade.
        for cfg, value in saved:
            cfg._attn_implementation_internal = value


RECORDING = "vlm_focus_recording"  # the attention implementation recorded_attention installs


def recording_eager_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, ``softmax(q k^T * scaling + mask) v`` (``[B, heads, L, d]`` inputs,
    output ``[B, L, heads, d]`` as Hugging Face's attention functions), that also appends its
    probabilities to the module's record while :func:`recorded_attention` is active."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
    scores = query @ key.transpose(2, 3) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    weights = scores.softmax(-1, dtype=torch.float32).to(query.dtype)
    record = getattr(module, "_vlm_focus_record", None)
    if record is not None:
        record.append(weights)
    return (weights @ value).transpose(1, 2).contiguous(), weights


@contextmanager
def recorded_attention(modules: Sequence[torch.nn.Module]) -> Iterator[list[list[torch.Tensor]]]:
    """Run the block with :func:`recording_eager_attention` in the given attention modules (the
    ones that read their implementation from ``module.config``): ``records[i]`` lists the
    attention probabilities of every call ``modules[i]`` made to its attention function - one
    per attention window for encoders that attend within windows and discard the weights
    (Qwen2-VL's family). Configs and modules are restored when the block exits."""
    from transformers import AttentionInterface

    AttentionInterface.register(RECORDING, recording_eager_attention)
    records: list[list[torch.Tensor]] = [[] for _ in modules]
    configs = {id(c): c for m in modules if (c := getattr(m, "config", None)) is not None}
    saved = [(c, getattr(c, "_attn_implementation_internal", None)) for c in configs.values()]
    try:
        for m, record in zip(modules, records):
            m._vlm_focus_record = record  # type: ignore[assignment]
        for c, _ in saved:
            c._attn_implementation_internal = RECORDING
        yield records
    finally:
        for c, value in saved:
            c._attn_implementation_internal = value
        for m in modules:
            m.__dict__.pop("_vlm_focus_record", None)


# ----- adapter hook points, with MethodError where a model lacks one --------------------
def require_adapter(target: Target, method: str) -> Any:
    if target.adapter is None:
        raise MethodError(f"{method} reads the model's internals: build the Target with its adapter")
    return target.adapter


def hook_point(method: str, adapter: Any, name: str, *args: Any) -> Any:
    """``adapter.<name>(*args)``; NotImplementedError becomes a MethodError naming the method."""
    try:
        return getattr(adapter, name)(*args)
    except NotImplementedError as e:
        raise MethodError(
            f"{method} cannot be applied to {getattr(adapter, 'name', type(adapter).__name__)}: {e}"
        ) from e
    except MethodError as e:
        raise MethodError(f"{method}: {e}") from e


def vision_layers(adapter: Any, method: str) -> list[torch.nn.Module]:
    layers = list(hook_point(method, adapter, "vision_layers"))
    if not layers:
        raise MethodError(f"{method}: the adapter lists no vision layers")
    return layers


def attention_modules(layers: Sequence[torch.nn.Module]) -> list[torch.nn.Module]:
    """The outermost self-attention module inside each layer (found by class name, so no
    model names are needed here); layers without one (conv blocks) are skipped."""
    found = []
    for layer in layers:
        for _, module in layer.named_modules():
            if "Attention" in type(module).__name__:
                found.append(module)
                break  # named_modules is pre-order: the first hit is the outermost
    return found


def patch_values(adapter: Any, tokens: torch.Tensor, method: str) -> torch.Tensor:
    """Per-token values ``[n_inputs, N]`` of one image's encoder inputs -> per-patch values
    ``[P]`` (class/register tokens dropped, inputs in :meth:`Adapter.patch_tokens` order)."""
    patches = hook_point(method, adapter, "patch_tokens", tokens[:, :, None])
    if patches.shape[0] != 1:
        raise MethodError(f"{method}: expected the patch tokens of one image, got {patches.shape[0]}")
    return patches[0, :, 0]


def to_heatmap(
    adapter: Any, values: torch.Tensor, pixels: torch.Tensor, method: str, tokens: str = "patches"
) -> torch.Tensor:
    """Per-token values -> heatmap ``[H, W]`` in [0, 1]. ``tokens="patches"``: one value per
    patch token of every view the encoder sees (:meth:`Adapter.patches_to_pixels`);
    ``"image_tokens"``: one per image token of the language model's input
    (:meth:`Adapter.image_tokens_to_pixels`)."""
    name = "patches_to_pixels" if tokens == "patches" else "image_tokens_to_pixels"
    heat = hook_point(method, adapter, name, values.detach().float(), pixels)
    if not torch.isfinite(heat).all():
        raise MethodError(f"{method}: the heatmap is not finite (the model's scores overflowed)")
    return normalize_map(heat).to(pixels.device)
