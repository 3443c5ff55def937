"""The command line: instant help and listing (no torch), complete help, early input checks,
and the torch-free catalogue kept equal to the live registries."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import vlm_focus
from vlm_focus import catalog
from vlm_focus.cli import build_parser, main, parse_options
from vlm_focus.errors import ModelError
from vlm_focus.models.registry import ZOO, resolve


# ----- no torch for help, list and refused inputs ------------------------------------------------
def test_help_list_and_refusals_import_neither_torch_nor_transformers(tmp_path):
    script = textwrap.dedent(
        """
        import contextlib, io, json, sys
        from vlm_focus.cli import main

        def run(*argv):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main(list(argv))
                except SystemExit as e:
                    rc = e.code
            return rc, out.getvalue(), err.getvalue()

        results = {
            "help": run("--help"),
            "explain": run("explain", "--help"),
            "evaluate": run("evaluate", "--help"),
            "list": run("list"),
            "methods": run("list", "--methods"),
            "json": run("list", "--json"),
            "no_image": run("explain", "--image", sys.argv[1], "--question", "q"),
            "typo": run("evaluate", "--model", "shapes-lava"),
        }
        import vlm_focus
        results["models"] = [0, json.dumps(vlm_focus.list_models()), ""]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        print(json.dumps({"results": results, "heavy": heavy}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "missing.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["heavy"] == []
    r = report["results"]
    for key in ("help", "explain", "evaluate", "list", "methods", "json"):
        assert r[key][0] == 0, (key, r[key][2])
    assert "explain" in r["help"][1] and "--image" in r["explain"][1] and "--resume" in r["evaluate"][1]
    assert json.loads(r["json"][1])["methods"] == catalog.list_methods()
    assert json.loads(r["models"][1]) == catalog.list_zoo()
    assert r["no_image"][0] == 2 and r["no_image"][2].startswith("vlm-focus: error: image file not found")
    assert r["typo"][0] == 2 and "did you mean 'shapes-llava'?" in r["typo"][2]


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "vlm_focus.cli", "list", "--json", "--adapters"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["adapters"] == catalog.list_adapters()


# ----- the catalogue equals the live registries ------------------------------------------------
def shipped(registry: dict) -> dict:
    """Entries registered by vlm-focus itself (tests or plugins may register more)."""
    return {k: v for k, v in registry.items() if getattr(v, "__module__", "").startswith("vlm_focus.")}


def test_catalogue_methods_match_the_method_registry():
    from vlm_focus.methods import METHODS

    live = shipped(METHODS)
    fix = "; describe each method in vlm_focus/catalog.py METHODS"
    assert sorted(live) == catalog.list_methods(), f"registered {sorted(live)}{fix}"
    for name, cls in live.items():
        info = catalog.METHODS[name]
        first_paragraph = " ".join(inspect.getdoc(cls).split("\n\n")[0].split())
        assert info.summary == first_paragraph, f"{name}: docstring {first_paragraph!r}{fix}"
        assert list(info.options.items()) == list(cls.defaults().items()), f"{name}: {cls.defaults()}{fix}"
    assert catalog.DEFAULT_METHOD in live


def test_catalogue_adapters_match_the_adapter_registry():
    from vlm_focus.models import list_adapters
    from vlm_focus.models.registry import ADAPTERS, MODEL_TYPES

    live = shipped(ADAPTERS)
    assert sorted(live) == catalog.list_adapters(), "update vlm_focus/catalog.py ADAPTERS"
    assert set(catalog.list_adapters()) <= set(list_adapters())
    for name in live:
        types = tuple(sorted(t for t, a in MODEL_TYPES.items() if a == name))
        assert catalog.ADAPTERS[name] == types, f"{name}: {types}; update vlm_focus/catalog.py ADAPTERS"


def test_catalogue_choices_match_the_modules():
    from vlm_focus import runs
    from vlm_focus.baselines import BASELINES
    from vlm_focus.metrics.deletion_insertion import SCORES
    from vlm_focus.tokens import STRATEGIES

    assert catalog.BASELINES == tuple(sorted(BASELINES))
    assert catalog.STRATEGIES == STRATEGIES
    assert catalog.METRIC_SCORES == SCORES
    assert catalog.EVAL_SEED == runs.EVAL_SEED


def test_catalogue_datasets_match_the_dataset_registry():
    from vlm_focus import data
    from vlm_focus.data import DATASETS, dataset_options

    live = shipped(DATASETS)
    fix = "; update vlm_focus/catalog.py DATASETS"
    assert sorted(catalog.DATASETS) == sorted(live), f"registered {sorted(live)}{fix}"
    assert set(catalog.DATASETS) <= set(data.list_datasets())
    assert len(set(catalog.DATASETS)) == len(catalog.DATASETS) and catalog.DATASETS[0] == "shapes"
    assert catalog.PROMPT_FORMATS == data.PROMPT_FORMATS
    assert dataset_options("shapes")["seed"] == catalog.EVAL_SEED


def test_catalogue_zoo_is_the_zoo_folder():
    assert catalog.ZOO == ZOO
    assert catalog.list_zoo() == vlm_focus.models.list_zoo() == vlm_focus.list_models()
    assert catalog.DEFAULT_MODEL in catalog.list_zoo()
    for name in catalog.list_zoo():
        assert (
            catalog.zoo_model_type(name) == json.loads((ZOO / name / "config.json").read_text())["model_type"]
        )


def test_catalogue_lens_options_are_the_lens_keywords():
    from vlm_focus.explain import Lens

    params = inspect.signature(Lens.__init__).parameters.values()
    live = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    assert "method" in live and live.pop("method") == catalog.DEFAULT_METHOD
    assert list(catalog.LENS_OPTIONS.items()) == list(live.items())


def test_cli_defaults_are_the_library_defaults():
    from vlm_focus.explain import Lens, load

    args = build_parser().parse_args(["explain", "--image", "x.png", "--question", "q"])
    lens_defaults = {
        k: p.default for k, p in inspect.signature(Lens.__init__).parameters.items() if k in vars(args)
    }
    load_defaults = {
        k: p.default for k, p in inspect.signature(load).parameters.items() if k in vars(args) or k == "model"
    }
    assert lens_defaults.keys() >= {"alpha", "strategy", "baseline", "max_new_tokens", "batch_size"}
    for key, value in {**lens_defaults, **load_defaults}.items():
        assert getattr(args, key) == value, key


# ----- help -------------------------------------------------------------------------------------
def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **action.choices}


def test_every_option_has_help_and_its_default_is_shown():
    parsers = subparsers()
    # every subcommand is checked below
    assert {"", "explain", "evaluate", "list", "report", "serve", "study"} <= set(parsers)
    for name, p in parsers.items():
        text = " ".join(p.format_help().split())
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), (name, action.dest)
            if action.default not in (None, False, [], argparse.SUPPRESS):
                shown = str(action.default)
                assert f"(default: {shown})" in text, (name, action.dest, shown)


def test_help_exits_zero(capsys):
    for argv in (["--help"], ["explain", "--help"], ["evaluate", "--help"], ["list", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "(default: igos++)" in capsys.readouterr().out


# ----- list -------------------------------------------------------------------------------------
def literal(value) -> str:
    """How -O spells a value back: none, true/false, numbers and text as they are."""
    return str(value).lower() if value is None or isinstance(value, bool) else str(value)


def test_list_methods_shows_summaries_and_option_defaults(capsys):
    assert main(["list", "--methods"]) == 0
    out = capsys.readouterr().out
    assert "models" not in out.split("\n")[0] and "adapters (" not in out
    lines = out.splitlines()
    for name, info in catalog.METHODS.items():
        (at,) = [
            i for i, line in enumerate(lines) if re.fullmatch(rf"  {re.escape(name)}(  \[default\])?", line)
        ]
        n = next(i for i, x in enumerate(lines[at + 1 :]) if not re.match(r"    \S", x))
        assert " ".join(x.strip() for x in lines[at + 1 : at + 1 + n]) == info.summary.replace("``", "`")
        block = lines[at + 1 + n : at + 1 + n + max(len(info.options), 1)]
        written = [x.split() for x in block]
        expected = [[k, literal(v)] for k, v in info.options.items()] or [["(no", "options)"]]
        assert written == expected, name
    assert re.search(r"^  igos\+\+\s+\[default\]$", out, re.M)
    pipeline = out[out.index("pipeline options") :]
    for key, value in catalog.LENS_OPTIONS.items():
        assert re.search(rf"^  {key}\s+{re.escape(literal(value))}$", pipeline, re.M), key


def test_list_shows_all_sections_and_json_keeps_the_names(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("models (") and "\nmethods (" in out and "\nadapters (" in out
    for name in [*catalog.list_zoo(), *catalog.list_methods(), *catalog.list_adapters()]:
        assert name in out
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"] == catalog.list_zoo()
    assert data["methods"] == catalog.list_methods()
    assert data["adapters"] == catalog.list_adapters()
    assert data["details"]["methods"]["igos++"]["options"]["init"] == "segments"
    assert data["details"]["adapters"]["qwen2_vl"]["model_types"] == ["qwen2_5_vl", "qwen2_vl", "qwen3_vl"]
    assert main(["list", "--models", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"models", "details"}


# ----- inputs are checked before the model loads -----------------------------------------------
@pytest.fixture
def no_load(monkeypatch):
    """Loading a model fails the test: every refusal below must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("vlm_focus.explain.load", boom)


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "x.png"
    Image.new("RGB", (48, 32), (20, 60, 200)).save(path)
    return path


def explain(image, *more: str) -> list[str]:
    return ["explain", "--image", str(image), "--question", "What color?", *more]


def one_line_error(capsys, rc: int) -> str:
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vlm-focus: error: "), err
    return err


def test_bad_image_is_refused_before_loading(tmp_path, capsys, no_load):
    assert "image file not found" in one_line_error(capsys, main(explain(tmp_path / "nope.png")))
    assert "got a directory" in one_line_error(capsys, main(explain(tmp_path)))
    (tmp_path / "notes.png").write_text("not an image")
    assert "not an image file" in one_line_error(capsys, main(explain(tmp_path / "notes.png")))


def test_unreadable_image_is_refused_before_loading(image, capsys, no_load, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # chmod 000 does not stop root
    err = one_line_error(capsys, main(explain(image)))
    assert "cannot read image file" in err and "Permission denied" in err


def test_unknown_model_and_option_are_refused_before_loading(image, tmp_path, capsys, no_load):
    err = one_line_error(capsys, main(explain(image, "--model", "shapes-lava")))
    assert "unknown model 'shapes-lava'; did you mean 'shapes-llava'? (zoo: shapes-llava" in err
    err = one_line_error(capsys, main(["evaluate", "--model", "shapes-onevison", "--out", str(tmp_path)]))
    assert "did you mean 'shapes-onevision'?" in err
    err = one_line_error(capsys, main(explain(image, "-O", "iteration=3")))
    assert "unknown option(s) ['iteration']; did you mean iterations?" in err
    err = one_line_error(capsys, main(explain(image, "-O", "iterations")))
    assert "is not KEY=VALUE" in err


def test_good_arguments_reach_the_loader(image, monkeypatch):
    seen = {}

    def fake_load(model, **kwargs):
        seen.update(model=model, **kwargs)
        raise ModelError("stop here")

    monkeypatch.setattr("vlm_focus.explain.load", fake_load)
    assert main(explain(image, "--model", "shapes-onevision", "-O", "size=16", "--alpha", "-1")) == 2
    assert seen["model"] == "shapes-onevision" and seen["size"] == 16 and seen["alpha"] == -1.0
    # pipeline options pass -O too, and -O wins over the flag of the same name
    assert main(explain(image, "-O", "metric_steps=4", "-O", "alpha=2", "--alpha", "-1")) == 2
    assert seen["metric_steps"] == 4 and seen["alpha"] == 2


# ----- model names -------------------------------------------------------------------------------
@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_resolve_zoo_names_and_existing_paths(tmp_path, monkeypatch, offline):
    assert resolve("shapes-llava") == str(ZOO / "shapes-llava")
    assert resolve(str(tmp_path)) == str(tmp_path)  # an existing path passes, even offline
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodel").mkdir()
    assert resolve("mymodel") == "mymodel"  # a relative directory without a slash too


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_resolve_refuses_typos_at_once_with_the_closest_names(mode, request):
    request.getfixturevalue(mode)
    with pytest.raises(ModelError, match=r"unknown model 'shapes-lava'; did you mean 'shapes-llava'\?"):
        resolve("shapes-lava")
    with pytest.raises(ModelError, match=r"did you mean 'shapes-qwen2.5-vl'\?"):
        resolve("Shapes-Qwen2.5-VL")
    with pytest.raises(ModelError, match="not a zoo name, a local path or a Hugging Face id") as e:
        resolve("completely-different")
    assert "(zoo: shapes-llava, " in str(e.value)


def test_resolve_refuses_missing_paths(tmp_path, online):
    with pytest.raises(ModelError, match="cannot load model .*: no such file or directory"):
        resolve(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match=r"did you mean 'shapes-llava'\?"):
        resolve(str(tmp_path / "shapes-lava"))


def test_resolve_hub_ids_online_and_offline(tmp_path, monkeypatch, online):
    import huggingface_hub.constants

    assert resolve("llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf"  # no network asked
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        resolve("owner/model")
    repo = tmp_path / "models--owner--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    assert resolve("owner/model") == "owner/model"  # cached: loadable offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        resolve("owner/other")


def test_load_adapter_refuses_a_typo_without_asking_the_hub(monkeypatch, online):
    from transformers import AutoConfig

    from vlm_focus.models import load_adapter

    def boom(*args, **kwargs):
        raise AssertionError("asked transformers for a config")

    monkeypatch.setattr(AutoConfig, "from_pretrained", boom)
    with pytest.raises(ModelError, match="did you mean 'shapes-llava'"):
        load_adapter("shapes-lava")


# ----- the lazy package -------------------------------------------------------------------------
def test_every_exported_name_still_imports():
    import importlib

    from vlm_focus.explain import Lens, load
    from vlm_focus.explanation import Explanation
    from vlm_focus.methods import list_methods, register_method
    from vlm_focus.models import list_adapters, register_adapter

    for name in vlm_focus.__all__:
        assert getattr(vlm_focus, name) is not None, name
    namespace: dict = {}
    exec(f"from vlm_focus import {', '.join(vlm_focus.__all__)}", namespace)
    assert set(vlm_focus.__all__) <= set(namespace)
    assert vlm_focus.load is load and vlm_focus.Lens is Lens and vlm_focus.Explanation is Explanation
    assert vlm_focus.list_methods is list_methods and vlm_focus.register_method is register_method
    assert vlm_focus.list_adapters is list_adapters and vlm_focus.register_adapter is register_adapter
    assert vlm_focus.models is importlib.import_module("vlm_focus.models")
    assert set(vlm_focus.__all__) <= set(dir(vlm_focus))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vlm_focus.nope  # noqa: B018


def test_parse_options():
    assert parse_options(["iterations=3", "lr=5.0", "batch-size=none", "rows=cls", "flag=True"]) == {
        "iterations": 3,
        "lr": 5.0,
        "batch_size": None,
        "rows": "cls",
        "flag": True,
    }
