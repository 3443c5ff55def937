"""Method contract and registry.

A method turns a :class:`Target` (the score ``f`` to explain, as a function of pixels)
plus the image and its baseline into a heatmap ``[H, W]`` in ``[0, 1]`` on the pixel grid.
Methods never touch the model: black-box and gradient methods use ``target.f``;
internal-signal methods (Grad-CAM, T-MM, ...) use the hook points of ``target.adapter``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..errors import InputError
from ..models.base import Adapter, Scorer

METHODS: dict[str, type[Method]] = {}

#: Int options that count something (iterations, grid cells, masks, steps): must be >= 1.
COUNT_OPTIONS = frozenset({"iterations", "ig_iter", "size", "n_masks", "grid", "steps"})
#: Positive-int defaults that may legitimately be 0 or negative (tam's filter_size 0 = off, iGOS++'s
#: init_coarse 0 = never cut again).
NON_COUNT_OPTIONS = frozenset({"filter_size", "layer", "seed", "init_coarse"})


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


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
        for key, value in options.items():
            self.check_option(key, value, self.defaults()[key])
        self.options = {**self.defaults(), **options}

    #: Per-method bounds ``{option: (low, high)}`` (``None`` = unbounded), checked on top of
    #: the generic rule of :meth:`check_option`.
    option_ranges: ClassVar[dict[str, tuple[float | None, float | None]]] = {}

    def check_option(self, key: str, value: Any, default: Any) -> None:
        """Generic check of one option against its default: an int default wants an int, a
        float default a finite number; a count (a positive int default, or one of
        :data:`COUNT_OPTIONS`) must be >= 1; ``batch_size`` is ``None`` or an int >= 1.
        Options whose default is ``None``, a string or a bool are left to the method."""
        if key == "batch_size" and value is not None:
            if not _is_int(value) or value < 1:
                raise InputError(f"{self.name}: option batch_size must be None or an int >= 1, got {value!r}")
        elif _is_int(default):
            if not _is_int(value):
                raise InputError(f"{self.name}: option {key} must be an int, got {value!r}")
            if (key in COUNT_OPTIONS or default > 0) and key not in NON_COUNT_OPTIONS and value < 1:
                raise InputError(f"{self.name}: option {key} must be an int >= 1, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise InputError(f"{self.name}: option {key} must be a finite number, got {value!r}")
        lo, hi = self.option_ranges.get(key, (None, None))
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            v = float(value)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                span = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
                raise InputError(f"{self.name}: option {key} must be in {span}, got {value!r}")

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
