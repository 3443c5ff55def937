"""What vlm-focus ships, readable without importing torch or transformers.

The command line answers ``--help`` and ``list`` from here, and checks model names here
before it loads anything. The method, adapter, baseline, strategy and dataset facts are a
copy of what the live registries hold; ``tests/test_cli.py`` asserts that they are equal
(names, one-line summaries, option defaults), so a new or changed method fails the tests
until it is described here too. Zoo models are read from the ``zoo/`` folder itself.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

ZOO = Path(__file__).resolve().parent / "zoo"
DEFAULT_MODEL = "shapes-llava"
DEFAULT_METHOD = "igos++"


@dataclass(frozen=True)
class MethodInfo:
    """A heatmap method: the first paragraph of its class docstring and its option defaults."""

    summary: str
    options: dict[str, Any] = field(default_factory=dict)


# iGOS++'s options: the objective and its cost (igos++ and igos2), then the step's two presets.
_IGOS_OBJECTIVE: dict[str, Any] = {
    "iterations": 5,
    "ig_iter": 10,
    "l1": 1.0,
    "l2": 0.1,
    "l3": 10.0,
    "gamma": 1.0,
    "noise": 0.05,
    "tv_beta": 2.0,
    "sigma": 0.01,
    "batch_size": None,
    "seed": 0,
    "score": "logprob",
}
_IGOS_CONVERGING: dict[str, Any] = {
    "init": "segments",
    "init_regions": 24,
    "init_floor": 0.01,
    "init_scale": 1.0,
    "init_insertion": True,
    "init_coarse": 12,
    "init_contrast": True,
    "iterations": 4,
    "score": "prob",
    "size": 16,
    "lr": 0.3,
    "momentum": 0.0,
    "normalize": "max",
    "scale_quantile": 1.0,
    "projected_scale": True,
    "schedule": "linear",
    "blend_with": "mean",
}
_IGOS_PAPER: dict[str, Any] = {
    "score": "logprob",
    "size": 32,
    "lr": 10.0,
    "momentum": 5.0,
    "normalize": "none",
    "scale_quantile": 1.0,
    "projected_scale": False,
    "schedule": "constant",
}

# = {name: (first paragraph of the class docstring, cls.defaults())} of vlm_focus.methods.METHODS
METHODS: dict[str, MethodInfo] = {
    "attention": MethodInfo(
        "Language-model attention from the selected answer positions to the image tokens.",
        {"layers": "all", "heads": "mean"},
    ),
    "gradcam": MethodInfo("Grad-CAM at ``layer`` of the adapter's vision layers.", {"layer": -1}),
    "igos++": MethodInfo(
        "Improved iGOS++ with one mask for deletion and insertion (paper Eq. 8).",
        {"preset": "converging", **_IGOS_OBJECTIVE, **_IGOS_CONVERGING},
    ),
    "igos2": MethodInfo(
        "The original iGOS++: separate deletion and insertion masks, heatmap ``1 - D N``.",
        {**_IGOS_OBJECTIVE, **_IGOS_PAPER},
    ),
    "iia": MethodInfo(
        "Integrated-gradient T-MM over the baseline-to-image path (one level of IIA).",
        {"steps": 11, "batch_size": None, "rows": "cls"},
    ),
    "occlusion": MethodInfo(
        "Score drop when a sliding window shows the baseline.",
        {"window": 0.125, "stride": 0.5, "batch_size": None},
    ),
    "rise": MethodInfo(
        "Black-box saliency from randomly masked images.",
        {"n_masks": 500, "grid": 8, "p": 0.5, "seed": 0, "score": "prob", "batch_size": None},
    ),
    "subset": MethodInfo(
        "Greedy region subset search on a sufficiency + necessity objective; the heatmap is the "
        "order of choice.",
        {
            "n_regions": 36,
            "budget": 0.25,
            "w_insertion": 1.0,
            "w_deletion": 1.0,
            "patience": 1,
            "tolerance": 0.0,
            "segments": "grid",
            "compactness": 10.0,
            "batch_size": None,
        },
    ),
    "tam": MethodInfo(
        "Token Activation Map: LM-head activations of the image tokens per selected token, "
        "with estimated causal inference and a rank Gaussian filter (see the module docstring).",
        {"causal": True, "context": "question", "filter_size": 3, "sigma": None},
    ),
    "tmm": MethodInfo(
        "Chefer 2021a gradient-weighted attention rollout over the vision encoder.", {"rows": "cls"}
    ),
}

# = {adapter: its model_type values} of vlm_focus.models.registry (ADAPTERS, MODEL_TYPES)
ADAPTERS: dict[str, tuple[str, ...]] = {
    "idefics3": ("idefics3", "smolvlm"),
    "internvl": ("internvl",),
    "llava": ("llava",),
    "llava_onevision": ("llava_next", "llava_onevision"),
    "multi_encoder": ("vlm_focus_multi_encoder",),
    "qwen2_vl": ("qwen2_5_vl", "qwen2_vl", "qwen3_vl"),
}

# = the keyword defaults of vlm_focus.explain.Lens (pipeline options; -O takes them too)
LENS_OPTIONS: dict[str, Any] = {
    "alpha": 1.0,
    "strategy": "llr",
    "baseline": "blur",
    "drop_first": False,
    "drop_stopwords": False,
    "max_new_tokens": 32,
    "working_size": 448,
    "batch_size": "auto",
    "metrics": True,
    "metric_score": "prob",
    "metric_steps": 50,
    "metric_grid": 32,
    "metric_protocol": "ours",
}

BASELINES = ("blank", "blur", "noise")  # = sorted(vlm_focus.baselines.BASELINES)
STRATEGIES = ("llr", "joint", "keywords")  # = vlm_focus.tokens.STRATEGIES
METRIC_SCORES = ("prob", "logprob")  # = vlm_focus.metrics.deletion_insertion.SCORES
METRIC_PROTOCOLS = ("ours", "paper")  # = vlm_focus.metrics.deletion_insertion.PROTOCOLS
# = vlm_focus.data.list_datasets() (as a set; shapes first, the CLI's default)
DATASETS = (
    "shapes",
    "mmstar",
    "cv-bench",
    "mmvp",
    "llava-bench",
    "vqa-hat",
    "hallusion-bench",
    "files",
    "shapes-pope",
)
PROMPT_FORMATS = ("open", "mc")  # = vlm_focus.data.PROMPT_FORMATS
EVAL_SEED = 2026  # = vlm_focus.runs.EVAL_SEED = the shapes dataset's default seed


def list_methods() -> list[str]:
    return sorted(METHODS)


def list_adapters() -> list[str]:
    return sorted(ADAPTERS)


def list_zoo(zoo: Path = ZOO) -> list[str]:
    """Names of the models shipped inside the package (folders of ``zoo`` with a config.json)."""
    return sorted(p.name for p in zoo.iterdir() if (p / "config.json").exists()) if zoo.is_dir() else []


def zoo_model_type(name: str, zoo: Path = ZOO) -> str | None:
    """The ``model_type`` in a zoo model's config.json (None when it cannot be read)."""
    try:
        return json.loads((zoo / name / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


# ----- model names -------------------------------------------------------------------------
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of its boolean variables


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def _is_hub_id(name: str) -> bool:
    """``owner/name`` and valid for the Hub (huggingface_hub's own check when it is installed)."""
    if name.count("/") != 1:
        return False
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:
        return re.fullmatch(r"[\w][\w.-]*/[\w][\w.-]*", name) is not None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return True  # cannot tell: let the loader decide
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # a malformed cache must not hide the model; the loader reports
        return True


def _suggest(name: str, zoo: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), zoo, n=3, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(Path(name).name.lower(), zoo, n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def check_model_name(name: str | os.PathLike, zoo: Path = ZOO) -> None:
    """Refuse at once, with the closest zoo names, a model that cannot be loaded.

    Passes a zoo name, an existing local path, and a Hugging Face id ``owner/name`` (when
    ``HF_HUB_OFFLINE`` is set, only one in the local Hub cache). Anything else raises
    :class:`~vlm_focus.errors.ModelError` without touching the network.
    """
    text = os.fspath(name)
    names = list_zoo(zoo)
    if text in names or os.path.exists(text):
        return
    where = f" (zoo: {', '.join(names)})" if names else ""
    hint = _suggest(text, names)
    if _is_hub_id(text):
        if not hub_offline() or _in_hub_cache(text):
            return
        raise ModelError(
            f"cannot load model {text!r}: it is not in the local Hugging Face cache and HF_HUB_OFFLINE "
            f"is set (unset it to download, or pass a local path){hint}{where}"
        )
    if "/" in text or os.sep in text:
        raise ModelError(f"cannot load model {text!r}: no such file or directory{hint}{where}")
    raise ModelError(
        f"unknown model {text!r}{hint or '; not a zoo name, a local path or a Hugging Face id owner/name'}"
        f"{where}"
    )


# = {name: cls.summary} of vlm_focus.study.STUDIES (tests/test_study_base.py checks them equal)
STUDIES: dict[str, str] = {
    "ablate": "Deletion, insertion and localisation over a grid of token selection, alpha, baseline "
    "and GNC weight (paper Tables 3, 5, 6, 7).",
    "compare": "Several models on the same samples: per-sample map correlation, paired Wilcoxon tests on "
    "deletion and insertion, a same-architecture reference pair and the paper's two contrasts (Table 4).",
    "filter": "The samples whose answers clearly depend on the image, as an id file for evaluate --ids "
    "(paper Sec. 4.3).",
    "human": "Model focus against human attention maps (VQA-HAT): soft IoU, rank correlation and top-10 % "
    "IoU per model, beside a chance level (paper Table 8).",
    "reliance": "Share of samples whose answer probability drops < 30 % / 30-70 % / > 70 % on the "
    "baseline image (paper Table 1).",
    "sanity": "Model-randomisation sanity check per method: how much the map changes when the "
    "model's weights are randomised.",
}


def list_studies() -> list[str]:
    return sorted(STUDIES)
