"""Fakes for the study tests: a dataset of tiny samples and a lens with known probabilities."""

from __future__ import annotations

import math
from types import SimpleNamespace

from PIL import Image

from vlm_focus.data.base import Dataset, Sample


class ListDataset(Dataset):
    """A dataset holding the given samples."""

    name = "fake"

    def __init__(self, samples):
        super().__init__()
        for s in samples:
            self.add(s.id, s)


def samples(n: int, categories=("a", "b")) -> list[Sample]:
    img = Image.new("RGB", (16, 16), (120, 60, 30))
    return [
        Sample(id=f"s{i}", question=f"q{i}", image=img, category=categories[i % len(categories)])
        for i in range(n)
    ]


class KnownLens:
    """Scores sample ``s<i>``'s two-token answer with P(answer | image) = 0.9 * 0.8 and
    P(answer | baseline) = that times ``1 - drops[i]``, split evenly over the two tokens."""

    def __init__(self, drops, name="known"):
        self.drops = list(drops)
        self.adapter = SimpleNamespace(name=name, device="cpu")
        self.options = {"baseline": "blur", "working_size": 448, "max_new_tokens": 4, "batch_size": 2}
        self.calls = 0

    def explain(self, image, question, selected=None, metrics=None):
        self.calls += 1
        i = int(question[1:])
        keep = 1 - self.drops[i]  # P(base) / P(image)
        logp = [math.log(0.9), math.log(0.8)]
        base = [v + 0.5 * math.log(keep) for v in logp]
        return SimpleNamespace(
            answer="red",
            tokens=["re", "d"],
            logprob=logp,
            logprob_baseline=base,
            llr=[a - b for a, b in zip(logp, base)],
        )


def args(**kw):
    """The namespace fields the score pass reads."""
    return SimpleNamespace(seed=0, no_progress=True, **kw)
