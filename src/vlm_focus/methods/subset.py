"""Subset search over image regions (after EAGLE, Chen et al. 2025, arXiv 2509.22496), black-box.

The image is split into about ``n_regions`` regions. A greedy search then grows a set ``S``
of regions, one per step: every region not yet chosen is tried as ``S + {r}`` and the one
with the largest objective is added. The objective, on the selected tokens' score ``f``
(a sum of log-probabilities), is

    J(S) = w_insertion * (f(I_S) - f(B)) / D  +  w_deletion * (f(I) - f(I_{~S})) / D

where ``I_S = Phi(I, B, M_S)`` shows only the regions of ``S`` (the rest is the baseline
``B``; sufficiency, an insertion score), ``I_{~S}`` shows everything but ``S`` (necessity,
a deletion score) and ``D = max(|f(I) - f(B)|, 1e-6)`` puts both terms on the scale of the
whole image's evidence (``J`` of all regions is about ``w_insertion + w_deletion``). The
search stops after ``budget`` regions (an int: a count; a float in (0, 1]: a fraction of the
regions, rounded up), or early, when ``patience`` steps in a row do not raise ``J`` above
its best so far by more than ``tolerance``; the regions kept are the prefix of the choices
with the best ``J``. The heatmap is the order of choice: the first region ``1``, the
``k``-th ``(n - k + 1) / n`` of the ``n`` chosen, unchosen regions ``0``.

Regions (``segments``): ``"slic"`` is scikit-image's SLIC superpixels
(``skimage.segmentation.slic(n_segments=n_regions, compactness=compactness)``, a core
dependency; ``"slic"`` raises :class:`InputError` if it does not import). ``"grid"`` is a regular grid of about
``n_regions`` near-square cells (rows and columns follow the aspect ratio), the default: the
same options give the same map on every machine. ``"auto"`` is SLIC when scikit-image can be imported, else the grid. On 50 scenes of
``shapes-llava`` SLIC regions, which follow the objects' edges, gave pointing 0.98 against the
grid's 0.71 (BENCHMARKS.md): pass ``segments="slic"``.

Cost, in model passes (images scored): ``2 + sum_{t < T} 2 (N - t)`` for ``N`` regions and
``T`` steps evaluated (``T <= budget``: the regions kept plus the non-improving steps
that ended the search): the full image and the baseline once, then every remaining candidate twice per
step (shown alone with ``S``, and removed with ``S``). ``N = 36``, ``budget = 9`` (the
defaults, 0.25 of 36): at most ``2 + 2 * (36 + ... + 28) = 578`` passes, scored
``batch_size`` images at a time (after :meth:`explain`: ``last_passes``, ``last_regions``, ``last_chosen``).

Where we differ from EAGLE: this is written from the paper's description (an objective
that adds a sufficiency "insight" score and a necessity score, maximised greedily over
sparsified image regions), not from its code, which we did not check line by line. Our
terms are differences of the log-likelihood sum ``f`` that every vlm-focus method explains,
normalised by the image-versus-baseline gap and weighted by options (EAGLE's own score
definitions are not reproduced); removed regions show the baseline (blur by default)
rather than zeros; ``"auto"`` falls back to a grid when scikit-image does not import;
candidates are scored in batches (both terms of a candidate in the same batch); there is
an early stop; and the heatmap is linear in the order of choice. EAGLE's modality
(language-prior versus perception) analysis is not here; its hallucination study (the
minimal correction region of a wrong yes/no answer) is :mod:`vlm_focus.hallucination`.

Example::

    lens = vlm_focus.load("shapes-llava", method="subset", n_regions=36, budget=9)
"""

from __future__ import annotations

import math
import numbers

import torch

from ..errors import InputError, MethodError
from .base import Method, Target, register_method
from .compose import phi
from .regions import SEGMENTS, SLIC_MISSING, have_skimage, make_regions


def subset_passes(n_regions: int, steps: int) -> int:
    """Model passes of one explanation: ``2 + sum_{t < steps} 2 (n_regions - t)``."""
    steps = min(steps, n_regions)
    return 2 + sum(2 * (n_regions - t) for t in range(steps))


@register_method("subset")
class Subset(Method):
    """Greedy region subset search on a sufficiency + necessity objective; the heatmap is the order of choice."""

    needs_gradients = False
    black_box = True
    option_ranges = {"tolerance": (0.0, None), "compactness": (0.0, None)}

    @classmethod
    def defaults(cls) -> dict:
        return {
            "n_regions": 36,
            "budget": 0.25,
            "w_insertion": 1.0,
            "w_deletion": 1.0,
            "patience": 1,
            "tolerance": 0.0,
            "segments": "grid",
            "compactness": 10.0,
            "batch_size": None,
        }

    def _check(self) -> None:
        o = self.options
        b = o["budget"]
        is_count = isinstance(b, numbers.Integral) and not isinstance(b, bool)
        is_fraction = isinstance(b, numbers.Real) and not isinstance(b, (bool, numbers.Integral))
        if not ((is_count and int(b) >= 1) or (is_fraction and 0 < float(b) <= 1)):
            raise InputError(f"subset: budget must be an int >= 1 or a fraction in (0, 1], got {b!r}")
        if o["w_insertion"] < 0 or o["w_deletion"] < 0 or o["w_insertion"] + o["w_deletion"] <= 0:
            raise InputError(
                f"subset: w_insertion and w_deletion must be >= 0 and not both 0, "
                f"got {o['w_insertion']!r}, {o['w_deletion']!r}"
            )
        if o["segments"] not in SEGMENTS:
            raise InputError(f"subset: segments must be one of {SEGMENTS}, got {o['segments']!r}")
        if o["segments"] == "slic" and not have_skimage():
            raise InputError(SLIC_MISSING)

    def regions(self, pixels: torch.Tensor) -> torch.Tensor:
        """Region labels ``[H, W]`` (0..R-1) of ``pixels`` ``[3, H, W]``."""
        o = self.options
        return make_regions(pixels, int(o["n_regions"]), o["segments"], float(o["compactness"]))

    def steps(self, n: int) -> int:
        b = self.options["budget"]
        k = int(b) if isinstance(b, numbers.Integral) else math.ceil(float(b) * n)
        return max(1, min(n, k))

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        self._check()
        o = self.options
        labels = self.regions(pixels).to(pixels.device)
        n = int(labels.max()) + 1
        onehot = (labels[None] == torch.arange(n, device=labels.device).view(-1, 1, 1)).to(pixels.dtype)
        batch = int(o["batch_size"] or target.batch_size)
        per_call = max(1, batch // 2)  # candidates per call: each is scored shown and removed
        baseline = baseline.to(pixels)
        w_ins, w_del = float(o["w_insertion"]), float(o["w_deletion"])
        self.last_passes, self.last_regions = 0, n

        def score(images: torch.Tensor) -> torch.Tensor:
            f = target.f(images).double().cpu()
            self.last_passes += len(images)
            if not torch.isfinite(f).all():
                raise MethodError("subset: the model's scores are not finite")
            return f

        chosen: list[int] = []
        with torch.no_grad():
            f_full, f_base = score(torch.stack([pixels, baseline])).tolist()
            scale = max(abs(f_full - f_base), 1e-6)
            shown = torch.zeros_like(labels, dtype=pixels.dtype)
            best_j, stale, kept = 0.0, 0, 0  # J(empty set) = 0
            for _ in range(self.steps(n)):
                left = [r for r in range(n) if r not in chosen]
                values = []
                for i in range(0, len(left), per_call):
                    cand = torch.tensor(left[i : i + per_call], device=labels.device)
                    m = (shown[None] + onehot[cand]).clamp(max=1)[:, None]  # [c, 1, H, W]
                    masks = torch.cat([m, 1 - m])
                    f = score(phi(pixels[None], baseline[None], masks))
                    ins, dele = f[: len(cand)], f[len(cand) :]
                    values.append(w_ins * (ins - f_base) / scale + w_del * (f_full - dele) / scale)
                j = torch.cat(values)
                k = int(j.argmax())  # ties: the lowest label
                chosen.append(left[k])
                shown = shown + onehot[left[k]]
                if float(j[k]) > best_j + float(o["tolerance"]):
                    best_j, stale, kept = float(j[k]), 0, len(chosen)
                else:
                    stale += 1
                    if stale >= int(o["patience"]):
                        break
            chosen = chosen[:kept]  # the prefix with the best J
        self.last_chosen = chosen
        heat = torch.zeros(labels.shape, dtype=torch.float32, device=pixels.device)
        for rank, r in enumerate(chosen):
            heat[labels == r] = (len(chosen) - rank) / len(chosen)
        return heat
