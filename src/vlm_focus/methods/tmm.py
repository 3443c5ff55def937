"""T-MM (Chefer, Gur & Wolf, ICCV 2021a, "Generic attention-model explainability ..."),
applied to the vision encoder with the score ``f`` of the selected answer tokens.

For each vision self-attention layer ``l``, with attention probabilities ``A_l``
``[heads, N, N]`` and their gradient ``df/dA_l`` (paper Eq. 2)::

    Abar_l = mean_heads(ReLU(df/dA_l * A_l))
    R = I;  R <- R + Abar_l @ R   for l = 1..L

and the heatmap is the class token's row of ``R`` over the patch tokens, on the vision grid.
Gradients go to the image only (the language model runs; text relevance is not tracked).
Encoders that run several inputs per image (OneVision's crops and base image, Idefics3's
crops and global image, InternVL's tiles and thumbnail) get one rollout per input, each
within its own attention; the inputs' relevances are put back on the image by
``adapter.patches_to_pixels`` and added.

Where we differ from the paper / Chefer:

- the rollout starts from ``R = I`` as in Chefer's code, i.e. ``(I + Abar_L)...(I + Abar_1)``;
  paper Sec. 4.3 writes the first factor as ``Abar_1`` without the identity;
- an encoder without a class token (N equals the patch count) uses the mean of the rows;
- ``rows="patches"`` reads the mean of the patch tokens' rows instead of the class token's:
  LLaVA-style models feed the patch tokens, not the class token, to the language model, so
  the class row only sees relevance that reaches it through earlier layers;
- layers after the one the model reads its features from get no gradient: ``Abar = 0``;
- attention weights exist only under eager attention: the model is switched to eager for
  the call and restored afterwards (also on error). Vision attention modules that discard
  their weights (Qwen2-VL's family, which attends within windows) run a recording eager
  attention function instead, and their per-window weights form a block-diagonal ``A_l``;
- an encoder without a class token can declare it (``adapter.class_token = False``) where
  the token count cannot tell (Qwen's patches are merged after the encoder).

Example::

    lens = vlm_focus.load("shapes-llava", method="tmm", rows="cls")
"""

from __future__ import annotations

import torch

from ..errors import InputError, MethodError
from .base import Method, Target, register_method
from .hooks import (
    attention_modules,
    attention_weights,
    capture_outputs,
    eager_attention,
    hook_point,
    patch_values,
    recorded_attention,
    require_adapter,
    to_heatmap,
    vision_layers,
)


def attention_modules_of(adapter, method: str) -> list[torch.nn.Module]:
    modules = attention_modules(vision_layers(adapter, method))
    if not modules:
        raise MethodError(
            f"{method} needs a transformer vision encoder: no self-attention in the vision layers"
        )
    return modules


def weighted_attention(
    target: Target, images: torch.Tensor, modules: list[torch.nn.Module], method: str
) -> list[torch.Tensor | None]:
    """``sum_b df/dA_l(images_b) * A_l(images_b)`` per layer for a batch ``[B, 3, H, W]``:
    ``[n_inputs, heads, N, N]``, one per encoder input of an image (crops, tiles, the global
    image: ``n_inputs`` is 1 for single-input encoders); None for a layer the score does not
    reach. ``A_l`` is the attention module's returned weights, or, for modules that attend
    within windows and return none (Qwen2-VL's family), the recorded per-window weights
    placed on the block diagonal (attention outside a window is 0)."""
    x = images.detach().clone().requires_grad_(True)
    with (
        torch.enable_grad(),
        capture_outputs(modules, select=attention_weights) as outs,
        recorded_attention(modules) as records,
    ):
        score = target.f(x).sum()
    layers: list[list[torch.Tensor]] = []  # per layer: the full weights, or the windows' weights
    for calls, windows in zip(outs, records):
        if len(calls) != 1 or (calls[0] is None and not windows):
            raise MethodError(
                f"{method}: a vision attention layer returned no attention weights (ran {len(calls)} times); "
                "the model must support eager attention and run its encoder once per image"
            )
        layers.append([calls[0]] if calls[0] is not None else windows)
    live = [a for pieces in layers for a in pieces if a.requires_grad]
    if not live:
        raise MethodError(f"{method}: the attention weights do not depend on the image")
    grads = dict(zip(map(id, live), torch.autograd.grad(score, live, allow_unused=True)))
    out: list[torch.Tensor | None] = []
    for pieces in layers:
        cams = [
            None if grads.get(id(a)) is None else grads[id(a)].float() * a.detach().float() for a in pieces
        ]
        if all(c is None for c in cams):
            out.append(None)
        elif len(pieces) == 1:  # [B * n_inputs, heads, N, N]
            cam = cams[0]
            assert cam is not None
            out.append(cam.reshape(x.shape[0], -1, *cam.shape[1:]).sum(0))
        else:
            out.append(window_cam(pieces, cams, x.shape[0], method))
    if all(o is None for o in out):
        raise MethodError(f"{method}: no vision attention layer reaches the answer score")
    return out


def window_cam(
    windows: list[torch.Tensor], cams: list[torch.Tensor | None], batch: int, method: str
) -> torch.Tensor:
    """Per-window ``[1, heads, n, n]`` products over the whole batch's token sequence (images
    one after another, windows in order) -> ``[1, heads, N, N]`` summed over the images."""
    sizes = [w.shape[-1] for w in windows]
    total, heads = sum(sizes), windows[0].shape[1]
    if total % batch:
        raise MethodError(f"{method}: {total} attention-window tokens for {batch} images")
    n = total // batch
    full = torch.zeros(heads, total, total)
    start = 0
    for size, cam in zip(sizes, cams):
        if cam is not None:
            full[:, start : start + size, start : start + size] = cam[0].cpu()
        start += size
    return torch.stack([full[:, b * n : (b + 1) * n, b * n : (b + 1) * n] for b in range(batch)]).sum(0)[None]


def rollout(cams: list[torch.Tensor | None]) -> torch.Tensor:
    """Chefer's rule: ``Abar = mean_heads(ReLU(cam))`` per layer, ``R = I; R += Abar @ R``,
    input to output, for each encoder input: ``cams[l]`` is ``df/dA_l * A_l``
    ``[n_inputs, heads, N, N]`` (None: no gradient); returns ``R`` ``[n_inputs, N, N]``."""
    first = next(c for c in cams if c is not None)
    n, size = first.shape[0], first.shape[-1]
    r = torch.eye(size).expand(n, size, size)
    for cam in cams:
        if cam is not None:
            abar = torch.relu(cam.float().cpu()).mean(1)
            r = r + abar @ r
    return r


def token_relevance(r: torch.Tensor, n_patches: int, rows: str, adapter, method: str) -> torch.Tensor:
    """Relevance ``[n_inputs, N]`` of every token of each encoder input. ``rows="cls"``: the
    class token's row (the mean row when there is no class token); ``"patches"``: the mean of
    the patch tokens' rows."""
    if rows == "patches":
        return torch.stack([hook_point(method, adapter, "patch_tokens", ri[None])[0].mean(0) for ri in r])
    has_class_token = getattr(adapter, "class_token", None)
    if has_class_token is None:  # not declared: a class token is a token beyond the patches
        has_class_token = r.shape[1] != n_patches
    return r[:, 0] if has_class_token else r.mean(1)


def relevance_heatmap(
    target: Target, cams: list[torch.Tensor | None], pixels: torch.Tensor, rows: str, method: str
) -> torch.Tensor:
    if rows not in ("cls", "patches"):
        raise InputError(f"{method}: rows must be 'cls' or 'patches', got {rows!r}")
    adapter = target.adapter
    grid_rows, grid_cols = hook_point(method, adapter, "vision_grid", pixels)
    relevance = token_relevance(rollout(cams), grid_rows * grid_cols, rows, adapter, method)
    return to_heatmap(adapter, patch_values(adapter, relevance, method), pixels, method)


@register_method("tmm")
class TMM(Method):
    """Chefer 2021a gradient-weighted attention rollout over the vision encoder."""

    needs_attention = True

    @classmethod
    def defaults(cls) -> dict:
        return {"rows": "cls"}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        adapter = require_adapter(target, self.name)
        modules = attention_modules_of(adapter, self.name)
        with eager_attention(adapter.model):
            cams = weighted_attention(target, pixels[None], modules, self.name)
        return relevance_heatmap(target, cams, pixels, self.options["rows"], self.name)
