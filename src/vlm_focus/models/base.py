"""The adapter contract: everything vlm-focus needs to know about a model family.

An :class:`Adapter` wraps a loaded model and its processor and provides

- :meth:`Adapter.prompt` - the question in the model's chat format;
- :meth:`Adapter.preprocess` - a *differentiable* torch version of the processor:
  pixels ``[B, 3, H, W]`` in ``[0, 1]`` -> the model's image inputs (``pixel_values`` ...);
- :meth:`Adapter.generate` - greedy (by default) answer token ids;
- :meth:`Adapter.scorer` - a :class:`Scorer`: pixels ``[B, 3, H, W]`` ->
  ``log P(a_t | a_<t, image, question)`` ``[B, T]`` for a fixed answer, differentiable
  in the pixels. The language-model head is applied at the answer positions only.

Methods see only scorers (and, for internal-signal methods, the adapter's hook points),
never the model itself. A new family is one subclass in its own file.

Adapters keep no per-call state, so one adapter serves several threads at once. What a
hook point needs to know about the image just preprocessed (Qwen's patch grid, the crops
of OneVision and Idefics3, InternVL's tiles) is its *layout*: :meth:`Adapter.preprocess`
records it with :meth:`Adapter.remember_layout` in a context variable - private to the
calling thread (and asyncio task), never stored on the adapter - and ``patch_tokens`` reads
it back (or takes it explicitly, ``layout=``). What changes the model itself (eager
attention, forward hooks, randomised weights) runs under :attr:`Adapter.lock`, which
:meth:`Lens.explain <vlm_focus.explain.Lens.explain>` holds around its model work.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError, MethodError, ModelError
from ..images import tensor_to_pil

#: ``{adapter key: layout}`` of the images this context (thread or asyncio task) preprocessed
#: last. Replaced, never mutated, so contexts that share a copy never see each other's.
_LAYOUTS: ContextVar[dict[object, Any]] = ContextVar("vlm_focus_layouts")


class Adapter(ABC):
    """Base class for model-family adapters. Subclasses implement :meth:`preprocess`."""

    family: str = "base"

    def __init__(self, model: torch.nn.Module, processor: Any, name: str = "") -> None:
        self.model: Any = model
        self.processor = processor
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.model.eval()
        self.model.requires_grad_(False)
        #: Held around everything that runs or changes the model on behalf of one call (see
        #: the module docstring); re-entrant, so a holder may call ``Lens.explain`` inside.
        self.lock = threading.RLock()
        self._layout_key = object()

    # ----- per-call layout, private to the calling thread ----------------------------------
    def remember_layout(self, layout: Any) -> None:
        """Record ``layout`` (what the hook points need about the image just preprocessed)
        for later calls from this thread / task only."""
        key = self.__dict__.setdefault("_layout_key", object())
        _LAYOUTS.set({**_LAYOUTS.get({}), key: layout})

    def recalled_layout(self) -> Any:
        """The layout this thread / task last recorded for this adapter (None: none yet)."""
        key = self.__dict__.get("_layout_key")
        return None if key is None else _LAYOUTS.get({}).get(key)

    # ----- devices -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embeddings (works with device_map)."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    # ----- text ----------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def prompt(self, question: str) -> str:
        """The question wrapped in the model's chat template, ready for the answer."""
        if not question or not question.strip():
            raise InputError("the question is empty")
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question.strip()}]}
        ]
        template = getattr(self.processor, "chat_template", None)
        if not template:
            raise ModelError(f"{self.name}: the processor has no chat template; pass a prompt format")
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    def prompt_ids(self, pixels: torch.Tensor, question: str) -> torch.Tensor:
        """Token ids ``[1, L]`` of the prompt, image placeholders expanded for ``pixels``."""
        enc = self.processor(
            text=[self.prompt(question)], images=[tensor_to_pil(pixels)], return_tensors="pt"
        )
        return enc["input_ids"]

    def decode_tokens(self, ids: torch.Tensor) -> list[str]:
        """Each id decoded on its own (as shown to users; spaces kept)."""
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos])
        return {i for i in ids if i is not None}

    def encode_answer(self, answer: str) -> torch.Tensor:
        """Token ids ``[T]`` of a given answer text (to explain an answer not generated)."""
        ids = self.tokenizer(" " + answer.strip(), add_special_tokens=False, return_tensors="pt")[
            "input_ids"
        ][0]
        if len(ids) == 0:
            raise InputError("the answer is empty")
        return ids

    # ----- images --------------------------------------------------------------------
    def image_processor(self) -> Any:
        """The processor's image processor (:class:`ModelError` if it has none)."""
        ip = getattr(self.processor, "image_processor", None)
        if ip is None:
            raise ModelError(f"{self.name}: the processor has no image processor")
        return ip

    @property
    def fast(self) -> bool:
        """Whether the image processor is torchvision-backed: its resizes round like torch's
        uint8 kernels, not Pillow's (see :func:`preprocess.resize`)."""
        from .preprocess import is_fast

        return is_fast(getattr(self.processor, "image_processor", None))

    @abstractmethod
    def preprocess(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable processor: ``[B, 3, H, W]`` in [0, 1] -> image model inputs."""

    # ----- generation ----------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, pixels: torch.Tensor, question: str, max_new_tokens: int = 32, do_sample: bool = False, **kwargs
    ) -> torch.Tensor:
        """Answer ids ``[T]`` (end-of-sequence and padding removed), greedy by default."""
        ids = self.prompt_ids(pixels, question).to(self.device)
        inputs = self.cast(self.preprocess(pixels[None].to(self.device)))
        out = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=self.tokenizer.pad_token_id,
            **self.extra_inputs(ids),
            **inputs,
            **kwargs,
        )[0, ids.shape[1] :]
        return self.until_stop([int(t) for t in out.tolist()], question)

    def until_stop(self, ids: list[int], question: str) -> torch.Tensor:
        """Generated ids up to the first end/padding token, as ``[T]``; an empty answer is
        a :class:`ModelError`."""
        stops = self.stop_ids()
        keep = next((ids[:i] for i, t in enumerate(ids) if t in stops), ids)
        if not keep:
            raise ModelError(f"{self.name} generated an empty answer to {question!r}")
        return torch.tensor(keep, dtype=torch.long)

    def cast(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in inputs.items()}

    # ----- scoring -------------------------------------------------------------------
    def scorer(
        self, pixels: torch.Tensor, question: str, answer_ids: torch.Tensor, batch_size: int = 16
    ) -> Scorer:
        """A :class:`Scorer` for this question and answer (prompt built for ``pixels``' size)."""
        return Scorer(self, self.prompt_ids(pixels, question), answer_ids, batch_size)

    def extra_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model inputs derived from the token ids beside ``input_ids`` (e.g. Qwen's
        ``mm_token_type_ids``); none by default."""
        return {}

    def hidden_states(self, input_ids: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states ``[B, L, D]`` of the language model for these inputs."""
        out = self.model.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            use_cache=False,
            **self.extra_inputs(input_ids),
            **inputs,
        )
        return out.last_hidden_state

    def language_attentions(self, input_ids: torch.Tensor, inputs: dict[str, torch.Tensor]) -> tuple:
        """Attention probabilities of every language-model layer, each ``[B, heads, L, L]``
        (needs eager attention; see ``methods.hooks.eager_attention``)."""
        out = self.model.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            use_cache=False,
            output_attentions=True,
            **self.extra_inputs(input_ids),
            **inputs,
        )
        return tuple(out.attentions or ())

    # ----- hook points for internal-signal methods (Grad-CAM, T-MM, IIA, attention) ------
    #: Whether the vision encoder's tokens start with a class token (None: T-MM infers it
    #: from the token count, a token beyond the patch grid being one).
    class_token: bool | None = None

    def vision_layers(self) -> list[torch.nn.Module]:
        """The vision encoder's transformer/conv blocks, input to output."""
        raise NotImplementedError(f"{type(self).__name__} exposes no vision layers")

    def vision_grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid the vision layers see for ``pixels``."""
        raise NotImplementedError(f"{type(self).__name__} exposes no vision grid")

    def patch_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """A vision layer's output ``[B, N, D]`` -> its patch tokens ``[B, rows*cols, D]``
        (class/register tokens removed), row-major over the grid."""
        raise NotImplementedError(f"{type(self).__name__} exposes no patch tokens")

    def grid_to_pixels(self, grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """A map on the patch grid ``[rows, cols]`` -> ``[height, width]`` on the image,
        undoing the processor's resize and crop (areas the model never sees get 0). By
        default a plain resize: the model sees the whole image, resized."""
        return resize_map(grid_map, height, width)

    def patches_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Per-patch values ``[P]``, in :meth:`patch_tokens` order -> ``[H, W]`` on ``pixels``.

        By default one grid (:meth:`vision_grid`) mapped by :meth:`grid_to_pixels`. Adapters
        whose encoder sees several views of the image (crops or tiles plus a global image)
        map every view onto the part of the image it shows and add the views up."""
        rows, cols = self.vision_grid(pixels)
        check_count(values, rows * cols, f"the {rows}x{cols} vision grid")
        return self.grid_to_pixels(values.reshape(rows, cols), *pixels.shape[-2:])

    def image_tokens_to_pixels(self, values: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Values ``[T]`` of the language model's image tokens, in prompt order -> ``[H, W]``.
        By default the image tokens are the patch tokens (:meth:`patches_to_pixels`);
        adapters whose connector merges or rearranges patches override this."""
        return self.patches_to_pixels(values, pixels)

    def image_token_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the image placeholder positions in ``input_ids``."""
        image_id = getattr(self.model.config, "image_token_id", None)
        if image_id is None:
            image_id = getattr(self.model.config, "image_token_index", None)
        return torch.as_tensor(input_ids == image_id)


def resize_map(grid_map: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a 2-D map to ``[height, width]`` (pixel centres, no corner alignment)."""
    up = F.interpolate(
        grid_map[None, None].float(), size=(height, width), mode="bilinear", align_corners=False
    )
    return up[0, 0]


def check_count(values: torch.Tensor, expected: int, what: str) -> None:
    """:class:`MethodError` unless ``values`` holds ``expected`` numbers (one per cell of ``what``)."""
    if values.numel() != expected:
        raise MethodError(f"{values.numel()} values do not fill {what} ({expected} cells)")


class Scorer:
    """``scorer(pixels[B, 3, H, W]) -> log P(a_t | a_<t, image, question)`` ``[B, T]``.

    The answer is teacher-forced; gradients flow to ``pixels``. Batches larger than
    ``batch_size`` are split (forward only; callers that need gradients chunk themselves
    so that each chunk's graph is freed after its backward pass).
    """

    def __init__(
        self, adapter: Adapter, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, batch_size: int = 16
    ):
        self.adapter = adapter
        self.answer_ids = answer_ids.to(torch.long).cpu()
        self.batch_size = batch_size
        device = adapter.device
        self.input_ids = torch.cat([prompt_ids[0].cpu(), self.answer_ids]).to(device)[None]
        start = prompt_ids.shape[1]
        # The logit predicting answer token t sits one position before it.
        self.positions = torch.arange(start - 1, start - 1 + len(self.answer_ids), device=device)
        self.n_tokens = len(self.answer_ids)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim == 3:
            pixels = pixels[None]
        if torch.is_grad_enabled() or pixels.shape[0] <= self.batch_size:
            return self._score(pixels)
        return torch.cat([self._score(c) for c in pixels.split(self.batch_size)])

    def _score(self, pixels: torch.Tensor) -> torch.Tensor:
        adapter = self.adapter
        inputs = adapter.cast(adapter.preprocess(pixels.to(adapter.device)))
        ids = self.input_ids.expand(pixels.shape[0], -1)
        hidden = adapter.hidden_states(ids, inputs)[:, self.positions]
        head = adapter.model.get_output_embeddings()
        logits = head(hidden.to(head.weight.device)).float()
        target = self.answer_ids.to(logits.device).view(1, -1, 1).expand(pixels.shape[0], -1, 1)
        return logits.log_softmax(-1).gather(-1, target).squeeze(-1).to(pixels.device)
