"""Token Activation Map (TAM; Li et al., ICCV 2025, arXiv 2506.23270): the language model's
own head read at the image tokens, cleaned of the context's share, then denoised.

One forward pass, no backward. ``h_p`` are the language model's last hidden states after its
final norm (:meth:`Adapter.hidden_states`, the states the scorer reads its log-probabilities
from) and ``W`` its LM head (``model.get_output_embeddings()``); ``z_p = W h_p`` the logits.

1. **Activation.** For a selected answer token ``a_t`` and each image token ``i``
   (``adapter.image_token_mask``, prompt order): ``A_t[i] = ReLU(z_i[a_t])``.
2. **Estimated causal inference** (``causal=True``). The context tokens ``k`` of ``a_t`` are
   the text tokens whose states come before the one that predicts ``a_t`` (prompt text -
   ``context="question"``: after the last image token; ``"all"``: all of it - then the
   earlier answer tokens), special tokens and tokens equal to ``a_t`` left out. Each has
   its own map ``M_k[i] = ReLU(z_i[c_k])`` (``c_k`` its id) and a relevance to ``a_t`` read
   at its own position, ``w_k = ReLU(z_k[a_t])``. The interference
   ``I_t = sum_k w_k M_k / sum_k w_k`` is scaled by least squares,
   ``s = <A_t, I_t> / <I_t, I_t>`` (``argmin_s |A_t - s I_t|^2``; ``s >= 0`` as all maps
   are non-negative), and removed: ``A_t <- ReLU(A_t - s I_t)``. No context, or zero
   relevance: ``A_t`` stays.
3. Min-max normalised per token, mapped to pixels by ``adapter.image_tokens_to_pixels``
   (which knows crops, tiles, row-end tokens and pixel-shuffled blocks).
4. **Rank Gaussian filter** (``filter_size`` k > 1). The pixel map is average-pooled to a
   token-density grid (cells of side ``sqrt(H W / N)`` px for ``N`` image tokens: the token
   grid itself for one-view models), filtered there and resized back bilinearly. The
   filter sorts each ``k x k`` window (mirror padding, ``d c b | a b c d | c b a``) and
   returns the sorted values weighted by a Gaussian over the rank offset from the median
   rank, ``exp(-(r - (k^2 - 1)/2)^2 / (2 sigma^2))`` normalised; ``sigma=None`` takes the
   window's coefficient of variation ``std / mean`` (population std), and a window whose
   mean is not positive gives 0. A uniform window returns its median, a varied one tends
   to its mean: an adaptive median/mean filter that removes isolated hot tokens.
5. Each token's map is normalised to [0, 1]; the heatmap is their mean over the selected
   tokens (paper Eq. 7's ``K``), normalised. :meth:`TAM.token_maps` gives the per-token maps.

Where we differ from the paper / the reference code (xmed-lab/TAM), as we read them:

- the reference shows one map per generated token; :meth:`TAM.explain` averages the
  selected tokens so that it explains the same score as the other methods;
- the reference is told the boundaries of the user prompt; we take the text after the last
  image token (the question and the chat template's tail), special tokens excluded;
- every context token's relevance is read at its own position (the reference pairs the
  earlier answer tokens with the state that predicted them, one position earlier);
- the scale ``s`` is the closed-form least-squares solution (the reference minimises
  numerically);
- the filter runs on a token-density grid over the image instead of the token grid, so it
  applies alike to multi-view models whose image tokens form several grids.

TAM reads activations, not attributions (no baseline, no gradient): it explains how the
head reads each image token, not what the score depends on.

Example::

    lens = vlm_focus.load("shapes-llava", method="tam", filter_size=3)
    ex = lens.explain("scene.png", "What color is the circle?")      # ex.heatmap: [H, W]
    # one map per token: a Target as Lens builds it (here every answer token)
    adapter, pixels = lens.adapter, to_tensor(load_image("scene.png"))
    scorer = adapter.scorer(pixels, ex.question, torch.tensor(ex.token_ids))
    maps = lens.method.token_maps(Target(scorer, list(range(len(ex.tokens))), adapter), pixels)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, MethodError, ModelError
from ..models.base import resize_map
from .base import Method, Target, normalize_map, register_method
from .hooks import hook_point, require_adapter, to_heatmap


def causal_subtract(
    own: torch.Tensor, context: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Estimated causal inference: ``(ReLU(own - s I), s)`` with the interference
    ``I = sum_k w_k context_k / sum_k w_k`` (weights clamped at 0) and the least-squares
    scale ``s = <own, I> / <I, I>``. ``own [N]``, ``context [C, N]``, ``weights [C]``.
    Without context, positive weight or a non-zero interference: ``(ReLU(own), 0)``."""
    own = own.float()
    w = weights.float().clamp(min=0)
    if context.numel() == 0 or float(w.sum()) <= 0:
        return own.clamp(min=0), 0.0
    interference = (w[:, None] * context.float()).sum(0) / w.sum()
    norm = float((interference * interference).sum())
    if norm <= 0:
        return own.clamp(min=0), 0.0
    scale = float((own * interference).sum()) / norm
    return (own - scale * interference).clamp(min=0), scale


def rank_gaussian_filter(grid: np.ndarray, size: int = 3, sigma: float | None = None) -> np.ndarray:
    """Rank Gaussian filter of a 2-D map (see the module docstring): each ``size x size``
    window sorted (mirror padding), weighted by a Gaussian over the rank offset from the
    median; ``sigma=None``: the window's ``std / mean`` (0 output where the mean <= 0);
    ``sigma=0``: the median filter. ``size <= 1`` returns a copy."""
    x = np.asarray(grid, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"rank_gaussian_filter needs a 2-D map, got shape {x.shape}")
    size = int(size)
    if size <= 1:
        return x.copy()
    if size % 2 == 0:
        raise InputError(f"filter_size must be odd, got {size}")
    pad = size // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad, mode="reflect"), (size, size))
    ranked = np.sort(windows.reshape(*x.shape, size * size), axis=-1)
    offset = np.arange(size * size) - (size * size - 1) / 2
    if sigma is None:
        mean, std = ranked.mean(-1), ranked.std(-1)
        positive = mean > 0
        width = np.where(positive, std / np.where(positive, mean, 1.0), 0.0)
    else:
        if sigma < 0:
            raise InputError(f"sigma must be >= 0 or None, got {sigma}")
        positive = np.ones(x.shape, dtype=bool)
        width = np.full(x.shape, float(sigma))
    w = width[..., None]
    weights = np.where(
        w > 0, np.exp(-(offset**2) / (2 * np.maximum(w, 1e-12) ** 2)), (offset == 0).astype(np.float64)
    )
    out = (ranked * weights).sum(-1) / weights.sum(-1)
    return np.where(positive, out, 0.0)


def denoise(heat: torch.Tensor, n_tokens: int, size: int, sigma: float | None) -> torch.Tensor:
    """The rank Gaussian filter on a token-density grid: ``heat [H, W]`` average-pooled to
    cells of side ``sqrt(H W / n_tokens)`` px, filtered, resized back to ``[H, W]``."""
    if size <= 1:
        return heat
    H, W = heat.shape
    cell = math.sqrt(H * W / max(1, n_tokens))
    rows, cols = max(1, round(H / cell)), max(1, round(W / cell))
    grid = F.adaptive_avg_pool2d(heat[None, None].float().cpu(), (rows, cols))[0, 0]
    filtered = torch.from_numpy(rank_gaussian_filter(grid.numpy(), size, sigma)).float()
    return resize_map(filtered, H, W).to(heat.device)


def head_logits(model: Any, hidden: torch.Tensor, classes: torch.Tensor, method: str) -> torch.Tensor:
    """Logits ``[P, C]`` (float32) of the LM head for the states ``hidden [P, D]``, only for
    ``classes``: a linear head is sliced to those rows, any other head applied whole."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise MethodError(f"{method}: the model exposes no output embeddings (LM head)")
    if isinstance(head, torch.nn.Linear):
        h = hidden.to(head.weight.device).float()
        c = classes.to(head.weight.device)
        bias = None if head.bias is None else head.bias[c].float()
        return F.linear(h, head.weight[c].float(), bias)
    logits = head(hidden.to(next(head.parameters()).device))
    return logits[..., classes.to(logits.device)].float()


@register_method("tam")
class TAM(Method):
    """Token Activation Map: LM-head activations of the image tokens per selected token,
    with estimated causal inference and a rank Gaussian filter (see the module docstring)."""

    needs_gradients = False

    @classmethod
    def defaults(cls) -> dict:
        return {"causal": True, "context": "question", "filter_size": 3, "sigma": None}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        if o["context"] not in ("question", "all"):
            raise InputError(f"tam: context must be 'question' or 'all', got {o['context']!r}")
        size = o["filter_size"]
        if not isinstance(size, int) or size < 0 or (size > 1 and size % 2 == 0):
            raise InputError(f"tam: filter_size must be 0, 1 or an odd int, got {size!r}")
        if o["sigma"] is not None and not (isinstance(o["sigma"], (int, float)) and o["sigma"] >= 0):
            raise InputError(f"tam: sigma must be None or a number >= 0, got {o['sigma']!r}")

    def token_values(self, target: Target, pixels: torch.Tensor) -> torch.Tensor:
        """Per-token activations ``[K, N]`` of the ``N`` image tokens (prompt order), one row
        per selected token (``target.selected`` order), after causal inference if enabled."""
        o = self.options
        adapter = require_adapter(target, self.name)
        scorer = target.scorer
        ids = scorer.input_ids
        image = hook_point(self.name, adapter, "image_token_mask", ids)[0].cpu()
        if not bool(image.any()):
            raise MethodError(f"{self.name}: no image token in the prompt")
        inputs = adapter.cast(adapter.preprocess(pixels[None].to(adapter.device)))
        try:
            with torch.no_grad():
                hidden = adapter.hidden_states(ids, inputs)[0]
        except ModelError as e:
            raise MethodError(f"{self.name} cannot be applied to {adapter.name}: {e}") from e
        token_ids = ids[0].cpu()
        answer = scorer.answer_ids.cpu()
        start = len(token_ids) - len(answer)
        selected = [int(t) for t in target.selected]
        context: list[int] = []
        if o["causal"]:
            # Every context state before the state that predicts the last selected token.
            last = start - 1 + max(selected)
            prompt = self._context_positions(adapter, token_ids, image, start)
            context = [p for p in prompt if p < last] + list(range(start, last))
        with torch.no_grad():
            classes = torch.unique(torch.cat([answer[selected], token_ids[context]]))
            img = head_logits(adapter.model, hidden[image.to(hidden.device)], classes, self.name)
            img = img.clamp(min=0).cpu()  # [N, C]
            column = {int(c): j for j, c in enumerate(classes)}
            wanted = answer[selected]
            rel = head_logits(adapter.model, hidden[context], wanted, self.name).clamp(min=0).cpu()
        self.trace: list[dict] = []
        rows = []
        for k, t in enumerate(selected):
            a = int(answer[t])
            own = img[:, column[a]]
            if not o["causal"]:
                rows.append(own)
                continue
            keep = [j for j, p in enumerate(context) if p < start - 1 + t and int(token_ids[p]) != a]
            maps = img[:, [column[int(token_ids[context[j]])] for j in keep]].T  # [C, N]
            values, scale = causal_subtract(own, maps, rel[keep, k])
            rows.append(values)
            self.trace.append({"token": t, "context": len(keep), "scale": scale})
        values = torch.stack(rows)
        if not torch.isfinite(values).all():
            raise MethodError(f"{self.name}: the activations are not finite (the model's logits overflowed)")
        return values

    def _context_positions(
        self, adapter: Any, token_ids: torch.Tensor, image: torch.Tensor, start: int
    ) -> list[int]:
        """Prompt text positions that can be context: not image, not special (the tokenizer's
        special ids and added tokens marked special); for
        ``context="question"`` only those after the last image token."""
        tok = adapter.tokenizer
        special = set(getattr(tok, "all_special_ids", None) or [])
        added = getattr(tok, "added_tokens_decoder", None) or {}
        special |= {int(i) for i, t in added.items() if getattr(t, "special", False)}
        first = int(image.nonzero().max()) + 1 if self.options["context"] == "question" else 0
        return [p for p in range(first, start) if not bool(image[p]) and int(token_ids[p]) not in special]

    def token_maps(
        self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One heatmap per selected token, ``[K, H, W]`` in [0, 1] (``target.selected`` order),
        all from one forward pass (``baseline`` is not used)."""
        values = self.token_values(target, pixels)
        adapter = target.adapter
        o = self.options
        maps = []
        for v in values:
            heat = to_heatmap(adapter, normalize_map(v), pixels, self.name, tokens="image_tokens")
            heat = denoise(heat, values.shape[1], int(o["filter_size"]), o["sigma"])
            maps.append(normalize_map(heat))
        return torch.stack(maps).to(pixels.device)

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        return normalize_map(self.token_maps(target, pixels).mean(0)).to(pixels.device)
