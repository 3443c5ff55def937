"""The result object: everything about one explanation, saved as JSON + ``.npy`` + PNG."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError

FORMAT_VERSION = 1


@dataclass
class Explanation:
    """Question, answer, per-token scores, selected tokens, heatmap and faithfulness scores.

    ``heatmap`` is float32 ``[H, W]`` in [0, 1] on the *input image's* grid, or ``None`` when
    no answer token depends on the image (``depends_on_image`` is then False).
    ``token_maps``: answer-token index -> its own map (same grid), when asked for with
    ``lens.explain(..., per_token=True)``.
    """

    model: str
    method: str
    question: str
    answer: str
    tokens: list[str]
    token_ids: list[int]
    logprob: list[float]
    logprob_baseline: list[float]
    llr: list[float]
    selected: list[int]
    alpha: float
    heatmap: np.ndarray | None = field(repr=False)
    image: Image.Image | None = field(default=None, repr=False)
    scores: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    token_maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def depends_on_image(self) -> bool:
        return bool(self.selected)

    @property
    def selected_text(self) -> list[str]:
        return [self.tokens[t] for t in self.selected]

    # ----- saving ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        arrays = ("heatmap", "image", "token_maps")
        d = {k: v for k, v in asdict(self).items() if k not in arrays}
        d["depends_on_image"] = self.depends_on_image
        d["heatmap"] = "heatmap.npy" if self.heatmap is not None else None
        d["token_maps"] = "token_maps.npz" if self.token_maps else None
        d["token_map_tokens"] = sorted(self.token_maps)
        d["image"] = "image.png" if self.image is not None else None
        d["format_version"] = FORMAT_VERSION
        return d

    def save(self, directory: str | Path, figures: bool = True) -> Path:
        """Write ``explanation.json``, ``heatmap.npy``, ``token_maps.npz`` (per-token maps, if
        any), ``image.png``, ``overlay.png`` and ``report.html`` (the last two when ``figures``)
        to ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if self.heatmap is not None:
            np.save(out / "heatmap.npy", self.heatmap.astype(np.float32), allow_pickle=False)
        if self.token_maps:
            maps = {f"token_{t}": np.asarray(m, dtype=np.float32) for t, m in self.token_maps.items()}
            np.savez_compressed(out / "token_maps.npz", **maps)  # type: ignore[arg-type]  # numpy stubs: kwargs can be arrays
        if self.image is not None:
            self.image.save(out / "image.png")
        (out / "explanation.json").write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        if figures and self.image is not None:
            from .viz import save_overlay

            save_overlay(out / "overlay.png", *self._overlay_args(), title=self._title())
            (out / "report.html").write_text(self.to_html())
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Explanation:
        """Read an explanation written by :meth:`save` (no pickle involved)."""
        d = Path(directory)
        path = d / "explanation.json"
        if not path.exists():
            raise InputError(f"no explanation.json in {d}")
        data = json.loads(path.read_text())
        heat = np.load(d / data["heatmap"], allow_pickle=False) if data.get("heatmap") else None
        token_maps: dict[int, np.ndarray] = {}
        if data.get("token_maps"):
            with np.load(d / data["token_maps"], allow_pickle=False) as z:
                token_maps = {int(t): z[f"token_{t}"] for t in data.get("token_map_tokens", [])}
        image = None
        if data.get("image"):
            with Image.open(d / data["image"]) as im:
                image = im.convert("RGB")
        arrays = ("heatmap", "image", "token_maps")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in arrays}
        return cls(heatmap=heat, image=image, token_maps=token_maps, **fields)

    # ----- showing --------------------------------------------------------------------
    def figure(self):
        from .viz import overlay_figure

        return overlay_figure(*self._overlay_args(), title=self._title())

    def _overlay_args(self) -> tuple[Image.Image, np.ndarray | None, str, list[str], list[int]]:
        if self.image is None:
            raise InputError("this explanation holds no image to draw on")
        return self.image, self.heatmap, self.question, self.tokens, self.selected

    def _title(self) -> str:
        return f"{self.model} · {self.method}"

    def show(self) -> None:
        """Display the overlay (inline in notebooks; a window elsewhere when available)."""
        fig = self.figure()
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(fig)
                return
        except ImportError:
            pass
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        Image.open(buf).show()

    def to_html(self) -> str:
        from .viz import render_report

        return render_report(self)

    def _repr_html_(self) -> str:
        return self.to_html()


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (Path,)):
        return str(o)
    return str(o)
