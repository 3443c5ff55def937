"""Method contract and registry.

A method turns a :class:`Target` (the score ``f`` to explain, as a function of pixels)
plus the image and its baseline into a heatmap ``[H, W]`` in ``[0, 1]`` on the pixel grid.
Methods never touch the model: black-box and gradient methods use ``target.f``;
internal-signal methods (Grad-CAM, T-MM, ...) use the hook points of ``target.adapter``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import InputError
from ..models.base import Adapter, Scorer

METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a method available as ``name`` (CLI choices come from here)."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            warnings.warn(f"method {name!r} registered again; the new one replaces the old", stacklevel=2)
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def list_methods() -> list[str]:
    return sorted(METHODS)


def get_method(name: str, **options) -> Method:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; choose from {list_methods()}")
    return METHODS[name](**options)


@dataclass
class Target:
    """The score to explain: ``f(pixels[B,3,H,W]) = sum_{t in selected} log P_t`` -> ``[B]``."""

    scorer: Scorer
    selected: list[int]
    adapter: Adapter | None = None
    index: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        if not self.selected:
            raise InputError("no answer token selected: nothing to explain")
        self.index = torch.tensor(self.selected, dtype=torch.long)

    def f(self, pixels: torch.Tensor) -> torch.Tensor:
        logp = self.scorer(pixels)
        return logp[:, self.index.to(logp.device)].sum(-1)

    @property
    def batch_size(self) -> int:
        return self.scorer.batch_size


class Method:
    """Base class: one override point, :meth:`explain`."""

    name: str = "base"
    needs_gradients: bool = True
    needs_attention: bool = False
    black_box: bool = False

    def __init__(self, **options) -> None:
        unknown = set(options) - set(self.defaults())
        if unknown:
            raise InputError(
                f"{self.name}: unknown option(s) {sorted(unknown)}; known: {sorted(self.defaults())}"
            )
        self.options = {**self.defaults(), **options}

    @classmethod
    def defaults(cls) -> dict:
        return {}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """Heatmap ``[H, W]`` in [0, 1] for ``pixels``/``baseline`` ``[3, H, W]``."""
        raise NotImplementedError

    def token_maps(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """One heatmap per selected token, ``[K, H, W]`` in ``target.selected`` order: here one
        :meth:`explain` of each token's own score ``log P_t`` (an optimisation per token for
        iGOS++); forward-only methods override it to read all tokens from one pass."""
        maps = [
            self.explain(Target(target.scorer, [t], target.adapter), pixels, baseline)
            for t in target.selected
        ]
        return torch.stack(maps)


def normalize_map(h: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] (a constant map becomes zeros)."""
    h = h.detach().float()
    lo, hi = h.min(), h.max()
    return (h - lo) / (hi - lo) if hi > lo else torch.zeros_like(h)
