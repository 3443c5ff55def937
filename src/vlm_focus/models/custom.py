"""Bring your own model: an adapter from a few functions, for models outside ``transformers``.

Cambrian, Mini-Gemini and research code load their own way and preprocess with their own
utilities; wrap them with :class:`CustomAdapter` (worked examples in ``docs/custom_models.md``)::

    adapter = CustomAdapter(
        preprocess_fn=lambda px: {"images": clip_prep(px), "images_aux": convnext_prep(px)},
        logits_fn=lambda ids, inputs, positions: model(ids, **inputs).logits[:, -ids.shape[1]:],
        tokenizer=tokenizer,
        prompt_fn=lambda question, pixels: tokenizer_image_token(template(question), tokenizer),
        model=model,
    )
    ex = vlm_focus.Lens(adapter, method="igos++").explain("cat.jpg", "What is the cat doing?")

The functions:

- ``preprocess_fn(pixels[B, 3, H, W] in [0, 1]) -> dict[str, Tensor]``: the model's image
  inputs, **differentiable** torch operations only (resize with ``F.interpolate``, crops by
  slicing, normalise): every encoder's input must come from these pixels, so one mask
  reaches all of them. A PIL/numpy round trip cuts the gradient (the scorer raises
  :class:`ModelError` when asked for a gradient it cannot give).
- ``logits_fn(input_ids[B, L], inputs, positions[T]) -> logits``: either ``[B, T, V]`` at
  ``positions`` (cheap: apply the LM head there only) or ``[B, L, V]`` aligned with
  ``input_ids`` (we gather ``positions``; this costs the head over all L positions, an
  ``L x V`` float tensor per image: ~0.5 GB for L = 800, V = 150k in fp32, with its
  gradient). ``positions`` is optional in the signature. Models that splice image features
  into the sequence (LLaVA-style ``<image>`` expansion) return ``L' > L`` positions; the
  text after the image keeps its order at the end, so ``logits[:, -L:]`` is aligned there.
- ``prompt_fn(question, pixels[3, H, W]) -> token ids`` (list, ``[L]`` or ``[1, L]``): the
  prompt up to where the answer starts, image placeholders included.
- ``generate_fn(pixels[3, H, W], question, max_new_tokens) -> answer ids`` (optional): the
  model's own generation. Without it, greedy (or sampled) decoding runs ``logits_fn`` once per
  new token on the whole sequence - no KV cache, fine for explaining short answers.

Hook points for internal-signal methods are optional: ``vision_layers`` (modules whose
outputs are ``[B, N, D]`` tokens), ``vision_grid_fn(pixels) -> (rows, cols)``,
``patch_tokens_fn`` (default: the tokens are the grid, row-major), ``grid_to_pixels_fn``
(default: the grid covers the whole image, a plain resize), ``image_token_id``.

Where this differs from the transformers adapters: nothing checks ``preprocess_fn`` against
the model's own preprocessing - test that yourself (``docs/custom_models.md`` shows how).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from ..errors import InputError, ModelError
from .base import Adapter, Scorer


class CustomAdapter(Adapter):
    """An :class:`Adapter` from user functions (see the module docstring)."""

    family = "custom"

    def __init__(
        self,
        preprocess_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        logits_fn: Callable[..., torch.Tensor],
        tokenizer: Any,
        prompt_fn: Callable[[str, torch.Tensor], Any],
        generate_fn: Callable[[torch.Tensor, str, int], Any] | None = None,
        *,
        model: torch.nn.Module | None = None,
        name: str = "custom",
        image_token_id: int | None = None,
        vision_layers: Sequence[torch.nn.Module] | None = None,
        vision_grid_fn: Callable[[torch.Tensor], tuple[int, int]] | None = None,
        patch_tokens_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        grid_to_pixels_fn: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        for label, fn in {
            "preprocess_fn": preprocess_fn,
            "logits_fn": logits_fn,
            "prompt_fn": prompt_fn,
        }.items():
            if not callable(fn):
                raise InputError(f"CustomAdapter: {label} must be callable, got {type(fn).__name__}")
        super().__init__(model if model is not None else torch.nn.Module(), processor=None, name=name)
        self.preprocess_fn = preprocess_fn
        self.logits_fn = logits_fn
        self.prompt_fn = prompt_fn
        self.generate_fn = generate_fn
        self._tokenizer = tokenizer
        self._takes_positions = "positions" in inspect.signature(logits_fn).parameters
        self._image_token_id = image_token_id
        self._vision_layers = list(vision_layers) if vision_layers is not None else None
        self._vision_grid_fn = vision_grid_fn
        self._patch_tokens_fn = patch_tokens_fn
        self._grid_to_pixels_fn = grid_to_pixels_fn
        self._device = torch.device(device) if device is not None else None

    # ----- devices and text --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        if self._device is not None:
            return self._device
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        floats = (p.dtype for p in self.model.parameters() if p.is_floating_point())
        return next(floats, torch.float32)

    @property
    def tokenizer(self):
        return self._tokenizer

    def prompt(self, question: str) -> str:
        raise ModelError(f"{self.name}: a custom adapter builds prompt ids with prompt_fn, not a text prompt")

    def prompt_ids(self, pixels: torch.Tensor, question: str) -> torch.Tensor:
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        ids = torch.as_tensor(self.prompt_fn(question.strip(), pixels), dtype=torch.long).cpu()
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
            raise ModelError(
                f"{self.name}: prompt_fn must return ids of shape [L] or [1, L], got {tuple(ids.shape)}"
            )
        return ids

    # ----- model calls -------------------------------------------------------------------
    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = self.preprocess_fn(pixels)
        if not isinstance(inputs, dict) or not all(isinstance(v, torch.Tensor) for v in inputs.values()):
            raise ModelError(
                f"{self.name}: preprocess_fn must return a dict of tensors, got {type(inputs).__name__}"
            )
        return inputs

    def answer_logits(
        self, input_ids: torch.Tensor, inputs: dict[str, torch.Tensor], positions: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` at ``positions``, from ``logits_fn`` (gathered if it returns all L)."""
        if self._takes_positions:
            logits = self.logits_fn(input_ids, inputs, positions=positions)
        else:
            logits = self.logits_fn(input_ids, inputs)
        B, L = input_ids.shape
        if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[0] != B:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ModelError(f"{self.name}: logits_fn must return [B, T, V] or [B, L, V] logits, got {shape}")
        if logits.shape[1] == len(positions):
            return logits
        if logits.shape[1] == L:
            return logits[:, positions.to(logits.device)]
        raise ModelError(
            f"{self.name}: logits_fn returned {logits.shape[1]} positions; expected {len(positions)} "
            f"(the answer positions) or {L} (aligned with input_ids; slice spliced sequences with [:, -L:])"
        )

    def hidden_states(self, input_ids: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        raise ModelError(f"{self.name}: a custom adapter exposes logits (logits_fn), not hidden states")

    def scorer(
        self, pixels: torch.Tensor, question: str, answer_ids: torch.Tensor, batch_size: int = 16
    ) -> Scorer:
        return CustomScorer(self, self.prompt_ids(pixels, question), answer_ids, batch_size)

    @torch.no_grad()
    def generate(
        self, pixels: torch.Tensor, question: str, max_new_tokens: int = 32, do_sample: bool = False, **kwargs
    ) -> torch.Tensor:
        """Answer ids ``[T]``: ``generate_fn`` if given, else decoding with ``logits_fn``
        (one full forward per token), greedy unless ``do_sample``."""
        stops = self.stop_ids()
        if self.generate_fn is not None:
            out = [
                int(t) for t in torch.as_tensor(self.generate_fn(pixels, question, max_new_tokens)).flatten()
            ]
        else:
            ids = self.prompt_ids(pixels, question).to(self.device)
            inputs = self.cast(self.preprocess(pixels[None].to(self.device)))
            out = []
            for _ in range(max_new_tokens):
                logits = self.answer_logits(ids, inputs, torch.tensor([ids.shape[1] - 1], device=ids.device))
                scores = logits[0, -1].float()
                token = int(torch.multinomial(scores.softmax(-1), 1)) if do_sample else int(scores.argmax())
                if token in stops:
                    break
                out.append(token)
                ids = torch.cat([ids, torch.tensor([[token]], device=ids.device)], dim=1)
        return self.until_stop(out, question)

    # ----- hook points -------------------------------------------------------------------
    def vision_layers(self) -> list[torch.nn.Module]:
        if self._vision_layers is None:
            return super().vision_layers()
        return self._vision_layers

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        if self._vision_grid_fn is None:
            return super().vision_grid(pixels)
        rows, cols = self._vision_grid_fn(pixels)
        return int(rows), int(cols)

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden if self._patch_tokens_fn is None else self._patch_tokens_fn(hidden)

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        if self._grid_to_pixels_fn is not None:
            return self._grid_to_pixels_fn(grid_map, height, width)
        return super().grid_to_pixels(grid_map, height, width)

    def image_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self._image_token_id is None:
            raise NotImplementedError(f"{self.name}: pass image_token_id to mark the image placeholders")
        return input_ids == self._image_token_id


class CustomScorer(Scorer):
    """:class:`Scorer` over ``CustomAdapter.answer_logits`` (no hidden states needed)."""

    def _score(self, pixels: torch.Tensor) -> torch.Tensor:
        adapter = cast(CustomAdapter, self.adapter)
        inputs = adapter.cast(adapter.preprocess(pixels.to(adapter.device)))
        if (
            torch.is_grad_enabled()
            and pixels.requires_grad
            and not any(v.requires_grad for v in inputs.values())
        ):
            raise ModelError(
                f"{adapter.name}: preprocess_fn cuts the gradient (use torch operations, no PIL/numpy)"
            )
        ids = self.input_ids.expand(pixels.shape[0], -1)
        logits = adapter.answer_logits(ids, inputs, self.positions).float()
        target = self.answer_ids.to(logits.device).view(1, -1, 1).expand(pixels.shape[0], -1, 1)
        return logits.log_softmax(-1).gather(-1, target).squeeze(-1).to(pixels.device)
