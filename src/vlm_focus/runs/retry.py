"""Out-of-memory on one sample: try again with smaller batches, then give up on that sample.

:func:`explain_with_retries` calls ``lens.explain``; when the device runs out of memory
(``torch.OutOfMemoryError``, which ``torch.cuda.OutOfMemoryError`` is, or the CPU / MPS
allocators' ``RuntimeError``) it frees what it can and tries again with half the batch size
(the lens's ``batch_size`` and a method's own ``batch_size`` option), down to 1. The batch
size changes speed and memory, not results (it is a free option on resume). Each try
starts from the same torch seed. When batch 1 does not fit either, the last error is
raised for the runner to record; the run goes on with the next sample.
"""

from __future__ import annotations

import copy
import gc
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..explain import Lens
    from ..explanation import Explanation


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device (GPU, MPS or CPU) ran out of memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def with_batch_size(lens: Lens, batch: int) -> Lens:
    """A shallow copy of ``lens`` that scores at most ``batch`` images at a time (adapter,
    lock and every other option shared)."""
    small = copy.copy(lens)
    small.options = {**lens.options, "batch_size": batch}
    method: Any = getattr(lens, "method", None)
    own = getattr(method, "options", {}).get("batch_size")
    if own is not None and own > batch:
        small.method = copy.copy(method)
        small.method.options = {**method.options, "batch_size": batch}
    return small


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def explain_with_retries(lens: Lens, image: Any, question: str, seed: int, rec: dict) -> Explanation:
    """``lens.explain(image, question)`` under torch seed ``seed``, retried with halved batch
    sizes on out-of-memory. ``rec`` gets ``oom_batch_sizes`` (the sizes that ran out of
    memory) and ``batch_size`` (the one that fitted) when a retry happened."""
    batch = int(getattr(lens, "batch_size", None) or lens.options.get("batch_size") or 1)
    failed: list[int] = []
    while True:
        torch.manual_seed(seed)
        try:
            ex = (with_batch_size(lens, batch) if failed else lens).explain(image, question)
        except Exception as e:
            if not is_out_of_memory(e) or batch <= 1:
                if failed:
                    rec["oom_batch_sizes"] = [*failed, batch] if is_out_of_memory(e) else failed
                raise
        else:
            if failed:
                rec.update(oom_batch_sizes=failed, batch_size=batch)
            return ex
        failed.append(batch)  # outside the except block: the error's frames are gone
        free_memory()
        batch = max(1, batch // 2)
