"""The pipeline: answer, per-token LLR, token selection, heatmap, deletion/insertion.

``Lens`` binds a model adapter to a method and its options::

    lens = vlm_focus.load("shapes-llava", method="igos++")
    ex = lens.explain("scene.png", "What color is the circle?")
    ex.save("out/")
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import make_baseline
from .batching import AUTO, CPU_BATCH, BatchSizes, check_batch_size
from .errors import InputError
from .explanation import Explanation
from .images import ImageLike, load_image, to_tensor
from .methods import Method, Target, get_method
from .metrics import deletion_insertion, score_fn
from .metrics.deletion_insertion import PROTOCOLS
from .models.base import Adapter
from .tokens import select_tokens

BASELINE_MAX_PROB = 0.05  # the paper keeps samples whose selected tokens fall below 5 %
MIN_WORKING_SIZE = 16  # smaller working grids leave a few pixels: nothing left to explain
MAX_WORKING_SIZE = 8192


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _positive_int(name: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        span = f"an int >= {lo}" if hi is None else f"an int in [{lo}, {hi}]"
        raise InputError(f"{name} must be {span}, got {value!r}")
    return int(value)


def _holding_model_lock(fn: Callable[..., Explanation]) -> Callable[..., Explanation]:
    """Run the decorated :class:`Lens` method under the lens's model lock."""

    @functools.wraps(fn)
    def wrapper(self: Lens, *args: Any, **kwargs: Any) -> Explanation:
        with self._lock:
            return fn(self, *args, **kwargs)

    return wrapper


class Lens:
    """A model adapter, a heatmap method and the pipeline options.

    Thread safety: one lens (or several lenses over one adapter) may be called from many
    threads at once, e.g. by a web app serving several users; each call's result equals
    that of the same call made alone. Two things make it so:

    - the adapters keep no per-call state: what the hook points need about the image being
      explained (patch grid, crops, tiles) lives in a context variable of the calling thread
      (:meth:`Adapter.remember_layout <vlm_focus.models.base.Adapter.remember_layout>`);
    - :meth:`explain` holds the adapter's re-entrant lock (``adapter.lock``) for the whole
      call, because methods change the shared model while they run: attention-reading
      methods (``attention``, ``tmm``, ``iia``) switch it to eager attention, Grad-CAM and
      T-MM put forward hooks on its layers (which would record other threads' passes), and
      the sanity check randomises weights in place. Calls on one model therefore run one at
      a time (they would compete for the same device anyway); calls on different models run
      in parallel. Code that changes the model outside ``explain`` holds the same lock:
      ``with lens.adapter.lock: ...`` (``explain`` may be called inside).
    """

    #: Longest question accepted, in characters (a denial-of-service guard); set it on the
    #: class or on one lens (``lens.max_question_chars = 20_000``) to allow longer ones.
    max_question_chars: int = 4000

    def __init__(
        self,
        adapter: Adapter,
        method: str = "igos++",
        alpha: float = 1.0,
        strategy: str = "llr",
        baseline: str = "blur",
        drop_first: bool = False,
        drop_stopwords: bool = False,
        max_new_tokens: int = 32,
        working_size: int | None = 448,
        batch_size: int | str = AUTO,
        metrics: bool = True,
        metric_score: str = "prob",
        metric_steps: int = 50,
        metric_grid: int = 32,
        metric_protocol: str = "ours",
        **method_options: Any,
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
            raise InputError(f"alpha must be a finite number (the LLR threshold), got {alpha!r}")
        if working_size is not None:
            _positive_int("working_size", working_size, MIN_WORKING_SIZE, MAX_WORKING_SIZE)
        _positive_int("max_new_tokens", max_new_tokens)
        check_batch_size(batch_size)
        _positive_int("metric_steps", metric_steps)
        _positive_int("metric_grid", metric_grid)
        if metric_protocol not in PROTOCOLS:
            raise InputError(f"metric_protocol must be one of {PROTOCOLS}, got {metric_protocol!r}")
        self.adapter: Adapter = adapter
        # The adapter's lock, shared by every lens over it (a per-lens one for duck-typed adapters).
        lock = getattr(adapter, "lock", None)
        self._lock: Any = lock if lock is not None else threading.RLock()
        self.method: Method = get_method(method, **method_options)
        self._batches: BatchSizes = BatchSizes()
        self.options: dict[str, Any] = {
            "alpha": alpha,
            "strategy": strategy,
            "baseline": baseline,
            "drop_first": drop_first,
            "drop_stopwords": drop_stopwords,
            "max_new_tokens": max_new_tokens,
            "working_size": working_size,
            "batch_size": batch_size,
            "metrics": metrics,
            "metric_score": metric_score,
            "metric_steps": metric_steps,
            "metric_grid": metric_grid,
            "metric_protocol": metric_protocol,
        }

    def _check_question(self, question: str) -> None:
        """Refuse, before any generation, a question that cannot be encoded or is too long."""
        try:
            question.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(
                f"the question holds a character that is not valid Unicode text at position {e.start} "
                "(a lone surrogate?)"
            ) from None
        limit = _positive_int("max_question_chars", self.max_question_chars)
        if len(question) > limit:
            raise InputError(
                f"the question is {len(question):,} characters long, over max_question_chars={limit:,}"
            )
        context = _context_length(self.adapter)
        if context is None:
            return
        try:
            n = len(self.adapter.tokenizer(question, add_special_tokens=False)["input_ids"])
        except Exception:  # a tokenizer without this call: leave the check to the model
            return
        if n >= context:
            raise InputError(
                f"the question is {n:,} tokens long, beyond the model's context of {context:,} tokens"
            )

    def _batch_size(self, scorer: Any, pixels: torch.Tensor) -> int:
        """The ``batch_size`` option, or with ``"auto"`` the one chosen for this image shape and
        prompt length (:mod:`vlm_focus.batching`)."""
        if self.options["batch_size"] != AUTO:
            return int(self.options["batch_size"])
        ids = getattr(scorer, "input_ids", None)
        key = (tuple(pixels.shape), 0 if ids is None else int(ids.shape[-1]))
        return self._batches.choose(scorer, pixels, key)

    @property
    def batch_size(self) -> int:
        """The batch size in effect: the ``batch_size`` option, or with ``"auto"`` the largest
        chosen so far (:data:`~vlm_focus.batching.CPU_BATCH` before the first explanation)."""
        if self.options["batch_size"] != AUTO:
            return int(self.options["batch_size"])
        return max(self._batches.sizes.values(), default=CPU_BATCH)

    def __repr__(self) -> str:
        return f"Lens(model={self.adapter.name!r}, method={self.method.name!r})"

    @_holding_model_lock
    def explain(
        self,
        image: ImageLike,
        question: str,
        answer: str | None = None,
        answer_ids: Sequence[int] | None = None,
        selected: Sequence[int] | None = None,
        metrics: bool | None = None,
        per_token: bool = False,
    ) -> Explanation:
        """Explain the model's answer to ``question`` about ``image``.

        ``answer`` / ``answer_ids``: explain this answer (text or token ids) instead of
        generating one. ``selected``: explain these token indices instead of selecting by
        LLR (the LLRs are still computed and reported). ``metrics``: override the lens's
        deletion/insertion setting for this call. ``per_token``: also one map per selected
        token (``Explanation.token_maps``; nearly free for forward-only methods such as
        ``tam``, one optimisation per token for ``igos++``).
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty")
        o = self.options
        self._check_question(question)
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal t0
            now = time.perf_counter()
            timings[name] = round(now - t0, 4)
            t0 = now

        img = load_image(image)
        pixels = to_tensor(img, o["working_size"]).to(self.adapter.device)
        base = make_baseline(o["baseline"], pixels)
        lap("load")
        if answer_ids is not None:
            ids = torch.as_tensor(list(answer_ids), dtype=torch.long)
        elif answer is not None:
            ids = self.adapter.encode_answer(answer)
        else:
            ids = self.adapter.generate(pixels, question, max_new_tokens=o["max_new_tokens"])
        tokens = self.adapter.decode_tokens(ids)
        answer_text = self.adapter.tokenizer.decode(ids.tolist(), skip_special_tokens=True).strip()
        lap("generate")
        scorer = self.adapter.scorer(pixels, question, ids, batch_size=CPU_BATCH)
        batch = scorer.batch_size = self._batch_size(scorer, pixels)
        with torch.no_grad():
            both = scorer(torch.stack([pixels, base])).float().cpu()
        logp, logp_base = both[0], both[1]
        llr = logp - logp_base
        if selected is None:
            chosen = select_tokens(
                llr, o["alpha"], o["strategy"], tokens, answer_text, o["drop_first"], o["drop_stopwords"]
            )
        else:
            chosen = _selected_indices(selected)
            if any(not 0 <= t < len(tokens) for t in chosen):
                raise InputError(
                    f"selected token indices {chosen} out of range for {len(tokens)} answer tokens"
                )
        lap("tokens")
        notes: list[str] = []
        result = Explanation(
            model=self.adapter.name,
            method=self.method.name,
            question=question.strip(),
            answer=answer_text,
            tokens=tokens,
            token_ids=ids.tolist(),
            logprob=logp.tolist(),
            logprob_baseline=logp_base.tolist(),
            llr=llr.tolist(),
            selected=chosen,
            alpha=o["alpha"],
            heatmap=None,
            image=img,
            timings=timings,
            warnings=notes,
            args={
                **o,
                "batch_size": batch,
                "method": self.method.name,
                "method_options": self.method.options,
                "answer_given": answer is not None or answer_ids is not None,
                "selected_given": selected is not None,
                "per_token": per_token,
            },
        )
        if not chosen:
            notes.append(f"no answer token has LLR > {o['alpha']}: the answer does not depend on the image")
            return result
        p_base = float(logp_base[chosen].exp().mean())
        result.scores["baseline_prob"] = p_base
        if p_base >= BASELINE_MAX_PROB:
            msg = (
                f"the {o['baseline']} baseline does not remove the evidence: the selected tokens keep "
                f"{p_base:.1%} mean probability on it (the paper requires < 5%); try another baseline"
            )
            notes.append(msg)
            warnings.warn(msg, stacklevel=3)  # past the lock wrapper, at the caller
        target = Target(scorer, chosen, self.adapter)
        heat = self.method.explain(target, pixels, base)
        lap("heatmap")
        if o["metrics"] if metrics is None else metrics:
            curves = deletion_insertion(
                score_fn(scorer, chosen, o["metric_score"]),
                pixels,
                base,
                heat,
                o["metric_grid"],
                o["metric_steps"],
                batch,
                o["metric_protocol"],
            )
            result.scores.update(deletion=curves["deletion_auc"], insertion=curves["insertion_auc"])
            result.curves = {k: curves[k] for k in ("x", "deletion", "insertion")}
            lap("metrics")
        if per_token:
            maps = self.method.token_maps(target, pixels, base)
            result.token_maps = {t: to_image_grid(m, img.height, img.width) for t, m in zip(chosen, maps)}
            lap("token_maps")
        result.heatmap = to_image_grid(heat, img.height, img.width)
        timings["total"] = round(sum(timings.values()), 4)
        return result


def _selected_indices(selected: Sequence[int]) -> list[int]:
    if isinstance(selected, (str, bytes)):
        raise InputError(f"selected must be a sequence of token indices (ints), got {selected!r}")
    try:
        items = list(selected)
    except TypeError:
        raise InputError(f"selected must be a sequence of token indices (ints), got {selected!r}") from None
    bad = [t for t in items if not _is_int(t)]
    if bad:
        raise InputError(f"selected token indices must be ints, got {bad!r}")
    chosen = [int(t) for t in items]
    if len(set(chosen)) != len(chosen):
        dup = sorted({t for t in chosen if chosen.count(t) > 1})
        raise InputError(f"selected token indices {dup} are given more than once")
    return chosen


def _context_length(adapter: Adapter) -> int | None:
    """``max_position_embeddings`` of the model's text config, when it declares one."""
    config = getattr(getattr(adapter, "model", None), "config", None)
    if config is None:
        return None
    text = getattr(config, "text_config", None) or config
    n = getattr(text, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def to_image_grid(heat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Working-resolution heatmap -> float32 ``[height, width]`` in [0, 1]."""
    h = heat.detach().float().cpu()
    if tuple(h.shape) != (height, width):
        h = F.interpolate(h[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return h.clamp(0, 1).numpy().astype(np.float32)


def load(
    model: str = "shapes-llava",
    method: str = "igos++",
    device: str | None = None,
    dtype: str | None = None,
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    **options: Any,
) -> Lens:
    """Load ``model`` (zoo name, hub id or path) and return a :class:`Lens` for ``method``."""
    from .models import load_adapter

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*requires torchvision.*")
        adapter = load_adapter(
            model,
            device=device,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            gradient_checkpointing=gradient_checkpointing,
        )
    return Lens(adapter, method=method, **options)
