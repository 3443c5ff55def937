"""The batch size: images per forward pass, chosen from free device memory when not given.

``Lens(batch_size="auto")`` (the default; CLI ``--batch-size auto``) resolves the batch size
on the first explanation of each image shape and prompt length:

- on CUDA, from measured memory: one scored pass with gradients at 1 and at 2 images gives
  the memory one more image costs (``per_image``, from ``torch.cuda.max_memory_allocated``);
  the batch is what the free memory (``torch.cuda.mem_get_info``) holds of those, keeping
  :data:`RESERVE` of it free, at most :data:`MAX_BATCH`;
- elsewhere (CPU, MPS), :data:`CPU_BATCH`: on CPU a pass costs the same per image from
  about 10 images on (``shapes-llava``: 9.5 ms per image at 10, 9.1 ms at 40; batch 1
  costs 2x), so a larger batch only spends memory.

With ``device_map="auto"`` (a model over several GPUs) the measured device is the one that
holds the inputs; a batch that then runs out of memory on another GPU is halved as below.
The batch size changes speed and memory, not results. A batch that still runs out of
memory is halved by :mod:`vlm_focus.runs.retry`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from .errors import InputError

AUTO = "auto"
CPU_BATCH = 16
MAX_BATCH = 128
RESERVE = 0.2
"""Share of the free memory left unused (allocator fragmentation, the deletion/insertion
images, the other tensors of a method)."""


class DeviceMemory(Protocol):
    """What the choice needs from a device: free bytes, and the peak allocated bytes of a block."""

    def free(self) -> int: ...

    def reset_peak(self) -> None: ...

    def peak(self) -> int: ...


class CudaMemory:
    """:class:`DeviceMemory` of one CUDA device, through ``torch.cuda``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def free(self) -> int:
        return int(torch.cuda.mem_get_info(self.device)[0])

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))


def check_batch_size(value: Any) -> int | str:
    """``"auto"`` or an int >= 1, else :class:`InputError`."""
    if value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"batch_size must be 'auto' or an int >= 1, got {value!r}")
    return value


def batch_from_memory(free: int, per_image: int, reserve: float = RESERVE, cap: int = MAX_BATCH) -> int:
    """The most images of ``per_image`` bytes that ``free`` bytes hold, ``reserve`` of it kept
    free; between 1 and ``cap``."""
    if per_image <= 0:
        return cap
    return max(1, min(cap, int(free * (1 - reserve) // per_image)))


def measure_batch_size(
    score: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor, memory: DeviceMemory
) -> int:
    """The batch size for ``score`` (pixels ``[B, 3, H, W]`` -> scores) from ``memory``: a pass
    with gradients at 1 and 2 images gives the bytes per image (:func:`batch_from_memory`).
    The free memory is read after those passes, with their tensors freed."""
    peaks = []
    for n in (1, 2):
        memory.reset_peak()
        x = pixels[None].expand(n, *pixels.shape).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(score(x).sum(), x)
        del x, g
        peaks.append(memory.peak())
    memory.reset_peak()
    return batch_from_memory(memory.free(), peaks[1] - peaks[0])


def memory_of(device: torch.device) -> DeviceMemory | None:
    """The :class:`DeviceMemory` of ``device``, or None where it cannot be measured (CPU, MPS)."""
    return CudaMemory(device) if device.type == "cuda" else None


class BatchSizes:
    """Chosen batch sizes per ``(image shape, prompt length)``: measured once each, then reused."""

    def __init__(self) -> None:
        self.sizes: dict[tuple, int] = {}

    def choose(self, score: Callable[[torch.Tensor], torch.Tensor], pixels: torch.Tensor, key: tuple) -> int:
        if key not in self.sizes:
            memory = memory_of(pixels.device)
            self.sizes[key] = CPU_BATCH if memory is None else measure_batch_size(score, pixels, memory)
        return self.sizes[key]
