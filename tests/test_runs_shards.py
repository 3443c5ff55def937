"""Shards: disjoint, complete, stable under --limit, the same in every process; ranks from env."""

import os
import subprocess
import sys

import pytest

from vlm_focus.errors import InputError
from vlm_focus.runs import shards
from vlm_focus.runs.shards import Shard, owner

IDS = [f"mmstar-{i}" for i in range(200)]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_disjoint_complete_and_keep_the_order(world):
    parts = [Shard(rank=r, world_size=world).select(IDS) for r in range(world)]
    assert sorted(i for p in parts for i in p) == sorted(IDS)
    assert sum(len(p) for p in parts) == len(IDS)
    for p in parts:
        assert p == [i for i in IDS if i in set(p)]
        assert len(p) > len(IDS) / world / 2  # no rank starves (hash spread)


def test_shards_do_not_change_with_the_limit_or_the_id_list():
    full = Shard(rank=1, world_size=3).select(IDS)
    for subset in (IDS[:17], IDS[50:120], IDS[::7]):
        assert Shard(rank=1, world_size=3).select(subset) == [i for i in full if i in set(subset)]


def test_the_owner_is_the_same_in_every_process():
    here = [owner(i, 4) for i in IDS[:20]]
    code = f"from vlm_focus.runs.shards import owner; print([owner(i, 4) for i in {IDS[:20]!r}])"
    for seed in ("1", "2"):  # Python's str hash is salted per process; ours must not be
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(here)


def test_ranks_from_the_torchrun_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert shards.from_env() == Shard(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    shard = shards.from_env()
    assert (shard.rank, shard.world_size, shard.local_rank, shard.main) == (3, 4, 1, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InputError, match="rank 4"):
        shards.from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE"):
        shards.from_env()


def test_a_single_process_needs_no_process_group(monkeypatch):
    import torch.distributed as dist

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with shards.distributed("cpu") as shard:
        assert shard.main and shard.group is None and shard.all_ok(True) and not shard.all_ok(False)
        shard.barrier()
    assert not (dist.is_available() and dist.is_initialized())
    assert shards.device_for(shard) is None and shards.device_for(shard, "cuda") == "cuda"
    assert shards.device_for(Shard(1, 2, 1), "cpu") == "cpu"
