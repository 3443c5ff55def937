"""Which samples this process explains: ranks from the ``torch.distributed`` environment.

``torchrun`` and ``accelerate launch`` start one process per GPU (or per CPU worker) and set
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Each process explains a disjoint shard of the
samples and writes its own results file; rank 0 merges them at the end. Without those
variables the run is a single process and nothing distributed is touched.

Shards are assigned by a hash of the sample id modulo the world size, not by position: a
sample's shard does not change with ``--limit`` or ``--ids``, every id belongs to exactly one
rank (disjoint and complete for any id list all ranks agree on), and any process can tell
which rank owns an id without talking to the others.

Example::

    >>> owner("shapes-2026-7", 2) in (0, 1)
    True
    >>> Shard(rank=0, world_size=1).select(["a", "b"])
    ['a', 'b']
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

# Ranks wait for each other at the start and the end; the end can wait for the slowest
# shard (hash shards differ in size by ~sqrt(n) samples), so allow hours, not minutes.
TIMEOUT = datetime.timedelta(hours=float(os.environ.get("VLM_FOCUS_DIST_TIMEOUT_HOURS", "24")))


def owner(sample_id: str, world_size: int) -> int:
    """The rank that explains ``sample_id``: a stable hash (BLAKE2b, not Python's salted
    ``hash``) of the id, modulo ``world_size``."""
    digest = hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world_size


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass
class Shard:
    """This process's place in the run: ``rank`` of ``world_size`` (``local_rank`` on its
    node), and the process group used to wait for the others (None when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise InputError(f"rank {self.rank} is not in a world of {self.world_size} process(es)")

    @property
    def main(self) -> bool:
        """True on rank 0, the process that prepares, merges and summarises."""
        return self.rank == 0

    def owns(self, sample_id: str) -> bool:
        return owner(sample_id, self.world_size) == self.rank

    def select(self, ids: Iterable[str]) -> list[str]:
        """The ids of this shard, in their given order."""
        return [i for i in ids if self.owns(i)]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.group is not None:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def all_ok(self, ok: bool) -> bool:
        """True on every rank if ``ok`` is true on every rank (also a barrier)."""
        if self.group is None:
            return ok
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1 if ok else 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self.group)
        return bool(flag.item())


def from_env() -> Shard:
    """The shard described by ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (no process group)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    return Shard(rank=rank, world_size=world, local_rank=_env_int("LOCAL_RANK", rank))


def device_for(shard: Shard, requested: str | None = None) -> str | None:
    """The device of this rank: on a multi-process run, ``cuda:LOCAL_RANK`` (one GPU per
    process, wrapping around when there are fewer GPUs) when no device or a bare ``cuda`` is
    asked for and CUDA is there; otherwise ``requested`` (None: the loader's default)."""
    if shard.world_size == 1 or requested not in (None, "cuda"):
        return requested
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return requested


@contextlib.contextmanager
def distributed(device: Any = None) -> Iterator[Shard]:
    """The shard of this process, with a process group when ``WORLD_SIZE > 1``.

    Initialises ``torch.distributed`` (NCCL when this rank runs on a CUDA device, else
    gloo) unless it is already initialised (e.g. by ``accelerate``), and destroys only a
    group it created. The ranks only exchange a flag and wait for each other, which is done
    on a gloo group (CPU tensors) whatever the main backend is."""
    shard = from_env()
    if shard.world_size == 1:
        yield shard
        return
    import torch
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        on_cuda = str(device or "").startswith("cuda") and torch.cuda.is_available()
        if on_cuda and torch.device(str(device)).index is not None:
            torch.cuda.set_device(torch.device(str(device)))
        dist.init_process_group(backend="nccl" if on_cuda else "gloo", timeout=TIMEOUT)
    if dist.get_world_size() != shard.world_size or dist.get_rank() != shard.rank:
        raise InputError(
            f"RANK/WORLD_SIZE ({shard.rank}/{shard.world_size}) disagree with torch.distributed "
            f"({dist.get_rank()}/{dist.get_world_size()})"
        )
    backend = dist.get_backend()
    group = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend != "gloo" else dist.group.WORLD
    shard.group = group
    try:
        yield shard
    finally:
        if created:
            dist.destroy_process_group()
