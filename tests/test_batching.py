"""The batch size: ``auto`` from free device memory, the arithmetic, the CLI flag."""

import argparse

import pytest
import torch

import vlm_focus.batching as batching
from vlm_focus import Lens
from vlm_focus.batching import CPU_BATCH, MAX_BATCH, batch_from_memory, check_batch_size, measure_batch_size
from vlm_focus.cli.common import batch_size_flag
from vlm_focus.errors import InputError

GIB = 1 << 30


def test_batch_from_memory_by_hand():
    assert batch_from_memory(10 * GIB, GIB) == 8  # 10 GiB, 20 % kept free, 1 GiB per image
    assert batch_from_memory(10 * GIB, GIB, reserve=0.0) == 10
    assert batch_from_memory(GIB // 2, GIB) == 1  # never below one image
    assert batch_from_memory(1000 * GIB, GIB) == MAX_BATCH
    assert batch_from_memory(10 * GIB, 0) == MAX_BATCH  # no measurable cost per image


class FakeMemory:
    """A device whose allocations are ``fixed + per_image * n`` for a pass over ``n`` images."""

    def __init__(self, free: int, fixed: int, per_image: int) -> None:
        self.free_bytes, self.fixed, self.per_image = free, fixed, per_image
        self.current = 0
        self.resets = 0

    def score(self, x: torch.Tensor) -> torch.Tensor:
        self.current = max(self.current, self.fixed + self.per_image * x.shape[0])
        return x.flatten(1).sum(1)

    def free(self) -> int:
        return self.free_bytes

    def reset_peak(self) -> None:
        self.current = 0
        self.resets += 1

    def peak(self) -> int:
        return self.current


def test_measure_batch_size_takes_the_cost_of_one_more_image():
    mem = FakeMemory(free=20 * GIB, fixed=5 * GIB, per_image=GIB)
    # 20 GiB free, 4 GiB of it kept, 1 GiB per image (the fixed 5 GiB is paid once).
    assert measure_batch_size(mem.score, torch.zeros(3, 8, 8), mem) == 16


def test_check_batch_size_refuses_what_is_not_auto_or_a_positive_int():
    assert check_batch_size("auto") == "auto" and check_batch_size(3) == 3
    for bad in (0, -1, 2.0, True, "16", None):
        with pytest.raises(InputError, match="batch_size must be 'auto' or an int >= 1"):
            check_batch_size(bad)


def test_cli_flag_parses_auto_and_ints_and_refuses_the_rest():
    assert batch_size_flag("auto") == "auto" and batch_size_flag("4") == 4
    for bad in ("0", "-3", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            batch_size_flag(bad)


def test_lens_auto_batch_is_16_on_cpu_and_recorded(tiny_adapter, scene):
    lens = Lens(tiny_adapter, method="gradcam", metrics=False)
    assert lens.options["batch_size"] == "auto" and lens.batch_size == CPU_BATCH
    ex = lens.explain(scene.image, scene.question, selected=[0])
    assert ex.args["batch_size"] == CPU_BATCH
    ex = Lens(tiny_adapter, method="gradcam", metrics=False, batch_size=3).explain(
        scene.image, scene.question, selected=[0]
    )
    assert ex.args["batch_size"] == 3


def test_lens_auto_batch_measures_once_per_shape_on_a_measurable_device(tiny_adapter, scene, monkeypatch):
    mem = FakeMemory(free=7 * GIB, fixed=GIB, per_image=GIB // 2)
    seen = []

    def fake_memory_of(device):
        seen.append(device)
        return mem

    monkeypatch.setattr(batching, "memory_of", fake_memory_of)
    # The fake device prices a pass by its number of images (it sees no real allocations).
    monkeypatch.setattr(
        batching, "measure_batch_size", lambda score, px, m: measure_batch_size(mem.score, px, m)
    )
    lens = Lens(tiny_adapter, method="gradcam", metrics=False)
    for _ in range(2):
        ex = lens.explain(scene.image, scene.question, selected=[0])
        assert ex.args["batch_size"] == 11  # 7 GiB * 0.8 / 0.5 GiB
    assert len(seen) == 1 and lens.batch_size == 11  # measured once for this shape and prompt
