"""Shared fixtures: tiny randomly-initialised models built from real configs, seeded."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
warnings.filterwarnings("ignore", message=".*requires torchvision.*")
# The test models are tiny: one thread is as fast, and two threads spin-wait badly when
# the two cores are shared with other jobs.
torch.set_num_threads(1)

# `vlm-focus evaluate` arguments that make a run on a tiny or zoo model take seconds.
FAST_CLI = [
    "--alpha=-100",
    "--max-new-tokens",
    "4",
    "--device",
    "cpu",
    "--no-progress",
    "-O",
    "iterations=1",
    "-O",
    "ig_iter=2",
    "-O",
    "size=8",
    "-O",
    "metric_steps=5",
    "-O",
    "metric_grid=8",
]


def _builders() -> dict:
    from functools import partial

    from tiny_idefics3 import build_tiny_idefics3
    from tiny_internvl import build_tiny_internvl
    from tiny_models import (
        build_tiny_llava,
        build_tiny_llava_next,
        build_tiny_multi_encoder,
        build_tiny_onevision,
        build_tiny_qwen,
    )

    return {
        "llava": build_tiny_llava,
        "qwen2_vl": partial(build_tiny_qwen, variant="qwen2_vl"),
        "qwen2_5_vl": partial(build_tiny_qwen, variant="qwen2_5_vl"),
        "qwen3_vl": partial(build_tiny_qwen, variant="qwen3_vl"),
        "llava_onevision": build_tiny_onevision,
        "llava_next": build_tiny_llava_next,
        "idefics3": build_tiny_idefics3,
        "smolvlm": partial(build_tiny_idefics3, variant="smolvlm"),
        "internvl": build_tiny_internvl,
        "multi_encoder": build_tiny_multi_encoder,
    }


# Every tiny model the contract tests run on: one or more per registered adapter family.
VARIANTS = [
    "llava",
    "qwen2_vl",
    "qwen2_5_vl",
    "qwen3_vl",
    "llava_onevision",
    "llava_next",
    "idefics3",
    "smolvlm",
    "internvl",
    "multi_encoder",
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """``tiny(name) -> (directory, adapter)``: a tiny random model of a real config, saved
    like a hub checkpoint and loaded with ``load_adapter``; built once per session."""
    from vlm_focus.models import load_adapter

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            path = _builders()[name](tmp_path_factory.mktemp(name))
            cache[name] = (path, load_adapter(str(path), device="cpu"))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tiny_llava_dir(tiny) -> Path:
    return tiny("llava")[0]


@pytest.fixture(scope="session")
def tiny_adapter(tiny):
    return tiny("llava")[1]


@pytest.fixture(scope="session")
def adapters(tiny) -> dict:
    """One tiny model per registered adapter family (the method x adapter tests use this):
    the first variant of each family in ``VARIANTS``."""
    out: dict = {}
    for name in VARIANTS:
        adapter = tiny(name)[1]
        out.setdefault(type(adapter).family, adapter)
    return out


@pytest.fixture()
def scene():
    from vlm_focus.data.shapes import make_sample

    return make_sample(seed=123, index=0, qtype="color", min_objects=2, max_objects=3)
