"""The result object: everything about one explanation, saved as JSON + ``.npy`` + PNG."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import ImageError, InputError
from .files import atomic_path, atomic_write_bytes, atomic_write_text
from .images import load_image

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

    def save(self, directory: str | Path, figures: bool = True, **overlay_options: Any) -> Path:
        """Write ``explanation.json``, ``heatmap.npy``, ``token_maps.npz`` (per-token maps, if
        any), ``image.png``, ``overlay.png`` and ``report.html`` (the last two when ``figures``)
        to ``directory``. ``overlay_options`` style the figures: ``cmap`` (default inferno),
        ``alpha_max`` (opacity), ``style`` (``"heat"`` or ``"contour"``), ``top_k`` (see
        :func:`vlm_focus.viz.overlay_figure`).

        Each file is written to a temporary file in ``directory`` and moved into place
        (``os.replace``): a crash never leaves a half-written file, and a symbolic link that
        sits in ``directory`` under one of these names is *replaced* by the new file, never
        written through (the file it pointed to is left as it was)."""
        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the output folder {out}: {e.strerror or e}") from None
        if not out.is_dir():
            raise InputError(f"the output path {out} is not a folder")
        if self.heatmap is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(self.heatmap, dtype=np.float32), allow_pickle=False)
            atomic_write_bytes(out / "heatmap.npy", buf.getvalue())
        if self.token_maps:
            maps = {f"token_{t}": np.asarray(m, dtype=np.float32) for t, m in self.token_maps.items()}
            buf = io.BytesIO()
            np.savez_compressed(buf, **maps)  # type: ignore[arg-type]  # numpy stubs: kwargs can be arrays
            atomic_write_bytes(out / "token_maps.npz", buf.getvalue())
        if self.image is not None:
            buf = io.BytesIO()
            self.image.save(buf, format="PNG")
            atomic_write_bytes(out / "image.png", buf.getvalue())
        text = json.dumps(self.to_dict(), indent=2, default=_json_default)
        atomic_write_text(out / "explanation.json", text)
        if figures and self.image is not None:
            from .viz import save_overlay

            with atomic_path(out / "overlay.png") as tmp:
                save_overlay(tmp, *self._overlay_args(), title=self._title(), **overlay_options)
            atomic_write_text(out / "report.html", self.to_html(**overlay_options))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Explanation:
        """Read an explanation written by :meth:`save` (no pickle involved).

        The ``heatmap`` / ``image`` / ``token_maps`` entries must be plain file names of
        regular files inside ``directory`` (no paths, no links); anything else, and any
        missing, corrupt or mistyped content, raises :class:`InputError` naming the problem."""
        d = Path(directory)
        if not d.is_dir():
            raise InputError(f"{d} is not a folder holding an explanation")
        path = _member(d, "explanation.json", "explanation.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
        _check_types(path, data)
        heat = None
        if data.get("heatmap"):
            heat_path = _member(d, data["heatmap"], "heatmap")
            heat = _load_array(heat_path)
            if heat.ndim != 2:
                raise InputError(f"{heat_path}: the heatmap must be 2-D, got shape {list(heat.shape)}")
        token_maps: dict[int, np.ndarray] = {}
        if data.get("token_maps"):
            maps_path = _member(d, data["token_maps"], "token_maps")
            wanted = data.get("token_map_tokens", [])
            if not isinstance(wanted, list) or not all(_is_int(t) for t in wanted):
                raise InputError(f"{path}: token_map_tokens must be a list of ints")
            try:
                with np.load(maps_path, allow_pickle=False) as z:
                    token_maps = {int(t): np.asarray(z[f"token_{t}"]) for t in wanted}
            except KeyError as e:
                raise InputError(f"{maps_path}: no map for {e}") from None
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise InputError(f"{maps_path}: not a readable .npz file ({e})") from None
        image = None
        if data.get("image"):
            image_path = _member(d, data["image"], "image")
            try:  # the image loader's guards: pixel limit before decoding, EXIF, modes
                image = load_image(image_path)
            except ImageError as e:
                raise InputError(f"{image_path}: not a readable image ({e})") from None
        arrays = ("heatmap", "image", "token_maps")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in arrays}
        missing = sorted(set(_FIELD_TYPES) - set(fields))
        if missing:
            raise InputError(f"{path}: missing field(s) {missing}")
        return cls(heatmap=heat, image=image, token_maps=token_maps, **fields)

    # ----- showing --------------------------------------------------------------------
    def figure(self, **overlay_options: Any):
        """The overlay figure (``overlay_options``: as :meth:`save`)."""
        from .viz import overlay_figure

        return overlay_figure(*self._overlay_args(), title=self._title(), **overlay_options)

    def _overlay_args(self) -> tuple[Image.Image, np.ndarray | None, str, list[str], list[int]]:
        if self.image is None:
            raise InputError("this explanation holds no image to draw on")
        return self.image, self.heatmap, self.question, self.tokens, self.selected

    def _title(self) -> str:
        return f"{self.model} · {self.method}"

    def show(self, **overlay_options: Any) -> None:
        """Display the overlay (inline in notebooks; a window elsewhere when available);
        ``overlay_options`` as :meth:`save`, e.g. ``ex.show(style="contour")``."""
        fig = self.figure(**overlay_options)
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

    def to_html(self, **overlay_options: Any) -> str:
        """The self-contained HTML report (``overlay_options``: as :meth:`save`)."""
        from .viz import render_report

        return render_report(self, **overlay_options)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        """One line: model, method, question, answer, selected tokens and the two scores
        (never the arrays or the per-token lists)."""

        def short(text: str, n: int = 60) -> str:
            return text if len(text) <= n else text[: n - 1] + "…"

        parts = [
            f"model={self.model!r}",
            f"method={self.method!r}",
            f"question={short(self.question)!r}",
            f"answer={short(self.answer)!r}",
            f"selected={[t.strip() for t in self.selected_text][:8]!r}",
        ]
        parts += [f"{k}={self.scores[k]:.3f}" for k in ("deletion", "insertion") if k in self.scores]
        if self.heatmap is not None:
            parts.append(f"heatmap={self.heatmap.shape[1]}x{self.heatmap.shape[0]}")
        return f"Explanation({', '.join(parts)})"


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (Path,)):
        return str(o)
    return str(o)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "method": (str,),
    "question": (str,),
    "answer": (str,),
    "tokens": (list,),
    "token_ids": (list,),
    "logprob": (list,),
    "logprob_baseline": (list,),
    "llr": (list,),
    "selected": (list,),
    "alpha": (int, float),
}
_OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {
    "scores": (dict,),
    "curves": (dict,),
    "timings": (dict,),
    "args": (dict,),
    "warnings": (list,),
}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_types(path: Path, data: dict) -> None:
    for key, types in {**_FIELD_TYPES, **_OPTIONAL_TYPES}.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            want = " or ".join(t.__name__ for t in types)
            raise InputError(f"{path}: field {key!r} must be {want}, got {type(data[key]).__name__}")
    for key in ("token_ids", "selected"):
        if key in data and not all(_is_int(t) for t in data[key]):
            raise InputError(f"{path}: field {key!r} must be a list of ints")
    for key in ("heatmap", "image", "token_maps"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InputError(f"{path}: field {key!r} must be a file name or null")


def _member(directory: Path, name: Any, what: str) -> Path:
    """``directory / name`` when ``name`` is a plain file name of a regular file (no link)."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or Path(name).name != name
        or os.path.isabs(name)
    ):
        raise InputError(f"{what}: {name!r} is not a plain file name inside {directory}")
    path = directory / name
    try:
        st = os.lstat(path)
    except OSError:
        raise InputError(f"{what}: {name} is missing from {directory}") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{what}: {path} is a symbolic link; only regular files are read")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what}: {path} is not a regular file")
    return path


def _load_array(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: expected a numeric array")
    return arr
