"""Dataset loaders: a contract every registered dataset meets on its fixture (written in the
published layout by ``data_fixtures``), then each layout's quirks and failure modes."""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import pytest
from data_fixtures import (
    GENERATED,
    HALLUSION_ENTRIES,
    PALETTE,
    PARQUET_WRITERS,
    SIZES,
    VQAHAT_IMAGE_SIZE,
    WRITERS,
    image,
    write,
    write_cv_bench,
    write_files,
    write_hallusion_bench,
    write_hallusion_bench_parquet,
    write_llava_bench,
    write_llava_bench_parquet,
    write_mmstar,
    write_mmvp,
    write_mmvp_parquet,
    write_vqa_hat,
)
from PIL import Image

from vlm_focus.data import (
    ANSWER_KINDS,
    DATASETS,
    MC_INSTRUCTION,
    Dataset,
    Sample,
    dataset_options,
    get_dataset,
    grade,
    list_datasets,
    register_dataset,
)
from vlm_focus.data import shapes as shapes_gen
from vlm_focus.data.base import split_inline_options, strip_instructions
from vlm_focus.errors import DataError, InputError


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


def _open(name, root, **extra) -> Dataset:
    data_dir, options = write(name, root / name) if not (root / name).exists() else (root / name, {})
    if name in GENERATED:
        options = {"limit": SIZES[name]}
    return get_dataset(name, data_dir, **{**options, **extra})


# ----- the contract ----------------------------------------------------------------------
def test_every_registered_dataset_has_a_fixture():
    assert set(list_datasets()) == set(WRITERS), "add a writer to tests/data_fixtures.py for each new dataset"
    assert {
        "mmstar",
        "cv-bench",
        "mmvp",
        "llava-bench",
        "vqa-hat",
        "hallusion-bench",
        "files",
        "shapes",
    } <= set(list_datasets())


@pytest.mark.parametrize("name", list_datasets())
def test_contract(name, fixture_root):
    ds = _open(name, fixture_root)
    assert ds.name == name
    ids = ds.ids()
    assert len(ids) == len(ds) == SIZES[name]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i for i in ids)
    samples = list(ds)
    assert [s.id for s in samples] == ids
    for s in samples:
        assert isinstance(s, Sample) and s.dataset == name
        assert isinstance(s.question, str) and s.question.strip()
        assert s.answer_kind in ANSWER_KINDS
        img = s.load_image()
        assert isinstance(img, Image.Image) and img.mode == "RGB" and min(img.size) >= 8
        if s.options is not None:
            assert len(s.options) >= 2 and all(isinstance(o, str) and o for o in s.options)
            assert s.answer in s.options
            assert s.options[ord(s.answer_letter) - ord("A")] == s.answer
        if s.answer_kind == "choice":
            assert s.options is not None
        if s.evidence is not None:
            assert s.evidence.dtype == bool and s.evidence.shape == (img.height, img.width)
        if s.human_map is not None:
            assert s.human_map.shape == (img.height, img.width)
            assert 0.0 <= s.human_map.min() and s.human_map.max() <= 1.0
        json.dumps(s.to_record())  # serialisable
        json.dumps(s.extras)
        # the reference answer grades as correct by its own rule
        correct, rule = grade(s.answer or "", s)
        assert rule == s.answer_kind
        assert correct is (None if s.answer_kind == "free" or s.answer is None else True)
        assert ds.get(s.id).question == s.question
    json.dumps(ds.describe())
    # deterministic: a second opening gives the same samples in the same order
    again = _open(name, fixture_root)
    assert again.ids() == ids
    assert [s.question for s in again] == [s.question for s in samples]
    assert [np.asarray(s.load_image()).tobytes() for s in again] == [
        np.asarray(s.load_image()).tobytes() for s in samples
    ]


@pytest.mark.parametrize("name", list_datasets())
def test_contract_prompt_formats(name, fixture_root):
    opened = _open(name, fixture_root, prompt_format="open")
    mc = _open(name, fixture_root, prompt_format="mc")
    assert opened.ids() == mc.ids()
    for a, b in zip(opened, mc):
        assert a.answer == b.answer and a.options == b.options
        if a.options:
            assert MC_INSTRUCTION not in a.question and "\nA. " not in a.question
            assert "Options:" not in a.question
            assert b.question.startswith(a.question)
            assert b.question.endswith(MC_INSTRUCTION)
            for letter, option in zip("ABCDEFGH", a.options):
                assert f"\n{letter}. {option}\n" in b.question
            wrong = next(o for o in a.options if o != a.answer)
            assert grade(wrong, a)[0] is False
            assert grade(f"({a.answer_letter})", b)[0] is True
        else:
            assert a.question == b.question


@pytest.mark.parametrize("name", sorted(set(list_datasets()) - GENERATED))
def test_contract_missing_data_dir(name, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        get_dataset(name, missing)


@pytest.mark.parametrize("name", sorted(set(list_datasets()) - GENERATED))
def test_contract_limit_and_unknown_id(name, fixture_root):
    ds = _open(name, fixture_root, limit=2)
    assert len(ds) == 2 and ds.ids() == _open(name, fixture_root).ids()[:2]
    with pytest.raises(DataError, match="no sample with id"):
        ds.get("no-such-id")


# ----- registry --------------------------------------------------------------------------
def test_unknown_dataset_names_close_matches():
    with pytest.raises(DataError, match=r"unknown dataset 'mmstr'.*mmstar"):
        get_dataset("mmstr")


def test_unknown_option_and_bad_prompt_format(fixture_root):
    with pytest.raises(InputError, match="unknown option.*colour"):
        get_dataset("shapes", colour=1)
    with pytest.raises(InputError, match="prompt_format"):
        get_dataset("shapes", prompt_format="letters")
    assert dataset_options("cv-bench")["split"] == "all"
    assert dataset_options("shapes")["seed"] == 2026


def test_register_again_warns_and_replaces():
    @register_dataset("test-tmp")
    class One(Dataset):
        pass

    try:
        with pytest.warns(UserWarning, match="registered again"):

            @register_dataset("test-tmp")
            class Two(Dataset):
                pass

        assert DATASETS["test-tmp"] is Two and Two.name == "test-tmp"
    finally:
        DATASETS.pop("test-tmp", None)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_mmvp(tmp_path / "mmvp")
    monkeypatch.setenv("VLM_FOCUS_DATA", str(tmp_path))
    assert len(get_dataset("mmvp")) == 4
    monkeypatch.delenv("VLM_FOCUS_DATA")
    with pytest.raises(DataError, match="VLM_FOCUS_DATA"):
        get_dataset("mmvp")


def test_pyarrow_missing_says_how_to_install(tmp_path, monkeypatch):
    write_mmstar(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match=r"pip install -e '\.\[datasets\]'"):
        get_dataset("mmstar", tmp_path)


# ----- shapes ----------------------------------------------------------------------------
def test_shapes_matches_the_generator():
    ds = get_dataset("shapes", limit=8, seed=7)
    for i, s in enumerate(ds):
        kind = shapes_gen.QTYPES[i % 4]
        ref = shapes_gen.make_sample(7, i, qtype=kind, min_objects=2 if kind in ("color", "shape") else 1)
        assert s.id == ref.id == f"shapes-7-{i}"
        assert (s.question, s.answer, s.category) == (ref.question, ref.answer, kind)
        assert s.extras == {"qtype": kind, "key": ref.key, "seed": 7, "index": i}
        assert np.array_equal(s.evidence, ref.evidence)
        assert np.array_equal(np.asarray(s.image), np.asarray(ref.image))
        assert len(s.objects) == len(ref.objects) and s.source.key == ref.key
    # colour and shape questions name one object among several
    many = get_dataset("shapes", limit=40, seed=7)
    assert all(len(s.objects) >= 2 for s in many if s.extras["qtype"] in ("color", "shape"))
    assert any(len(s.objects) == 1 for s in many)
    assert len(get_dataset("shapes")) == 200
    assert get_dataset("shapes").ids()[0] == "shapes-2026-0"


def test_shapes_options():
    ds = get_dataset("shapes", limit=6, qtypes="count,exist", size=96)
    assert [s.extras["qtype"] for s in ds] == ["count", "exist"] * 3
    assert ds.get("shapes-2026-1").load_image().size == (96, 96)
    with pytest.raises(InputError, match="colour"):
        get_dataset("shapes", qtypes=["colour"])
    with pytest.raises(InputError, match="limit"):
        get_dataset("shapes", limit=None)


# ----- MMStar ----------------------------------------------------------------------------
def test_mmstar_inline_options_and_letters(tmp_path):
    ds = get_dataset("mmstar", write_mmstar(tmp_path))
    assert ds.ids() == ["0", "1", "7"]
    s = ds.get("1")
    assert s.question == "How many apples are there?"
    assert s.options == ["1, 2 or 3", "4", "5", "6"]  # a comma inside an option survives
    assert s.answer == "4" and s.answer_letter == "B"
    assert s.extras["l2_category"] == "object counting" and s.category == "fine-grained perception"
    # the instruction sentence is dropped from the open question, and not split on "?"
    assert ds.get("7").question == "What is the main colour of the picture?"
    assert ds.get("0").question == "Which option describe the object relationship in the image correctly?"
    assert ds.get("0").image_path is None  # the image comes from the parquet bytes
    assert ds.get("0").load_image().getpixel((10, 10)) == (200, 40, 40)


def test_mmstar_snapshot_layout(tmp_path):
    ds = get_dataset("mmstar", write_mmstar(tmp_path, snapshot=True))
    assert ds.ids() == ["0", "1", "7"]


def test_mmstar_missing_column_named(tmp_path):
    with pytest.raises(DataError, match=r"mmstar\.parquet.*'answer'"):
        get_dataset("mmstar", write_mmstar(tmp_path, drop="answer"))


def test_mmstar_no_file(tmp_path):
    with pytest.raises(DataError, match=r"mmstar\.parquet"):
        get_dataset("mmstar", tmp_path)


# ----- CV-Bench --------------------------------------------------------------------------
def test_cv_bench_answers_in_parentheses_and_splits(tmp_path):
    root = write_cv_bench(tmp_path)
    ds = get_dataset("cv-bench", root)
    assert ds.ids() == ["2D-0", "2D-1", "3D-0"]
    s = ds.get("2D-0")
    assert s.answer == "1" and s.answer_letter == "C" and s.category == "Count"
    assert "Select from the following choices" not in s.question
    assert s.image_path == (root / "img/2D/count/ade20k_10.png").resolve()
    assert ds.get("2D-1").extras["bbox"] == [[1, 2, 10, 12], [14, 3, 30, 20]]
    assert get_dataset("cv-bench", root, split="3d").ids() == ["3D-0"]
    assert get_dataset("cv-bench", root, split="2d").ids() == ["2D-0", "2D-1"]
    with pytest.raises(InputError, match="split"):
        get_dataset("cv-bench", root, split="4d")


def test_cv_bench_parquet_images_from_bytes(tmp_path):
    ds = get_dataset("cv-bench", write_cv_bench(tmp_path, fmt="parquet"))
    assert ds.ids() == ["2D-0", "2D-1", "3D-0"]
    assert not (tmp_path / "img").exists()
    assert ds.get("2D-1").load_image().getpixel((10, 10)) == (40, 160, 60)
    assert ds.get("2D-0").answer == "1"


def test_cv_bench_single_test_file(tmp_path):
    rows = [
        json.loads(line)
        for line in (write_cv_bench(tmp_path / "a") / "test_2d.jsonl").read_text().splitlines()
    ]
    (tmp_path / "a" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("test_2d.jsonl", "test_3d.jsonl"):
        (tmp_path / "a" / name).rename(tmp_path / name)
    ds = get_dataset("cv-bench", tmp_path / "a")
    assert ds.ids() == ["2D-0", "2D-1"]
    assert get_dataset("cv-bench", tmp_path / "a", split="3d").ids() == []  # test.jsonl filtered by type
    # the image folder as a symlink pointing out of the data folder is refused
    root = tmp_path / "b"
    root.mkdir()
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.symlink(tmp_path / "a" / "img", root / "img")
    with pytest.raises(DataError, match="leaves the data folder"):
        get_dataset("cv-bench", root)
    # a symlink that stays inside is fine
    os.unlink(root / "img")
    os.symlink("inner", root / "img")
    (tmp_path / "a" / "img").rename(root / "inner")
    assert get_dataset("cv-bench", root).get("2D-0").load_image().size == (32, 24)


def test_cv_bench_bad_answer_named(tmp_path):
    root = write_cv_bench(tmp_path)
    lines = (root / "test_3d.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["answer"] = "(Q)"
    (root / "test_3d.jsonl").write_text(json.dumps(row) + "\n")
    ds = get_dataset("cv-bench", root)
    with pytest.raises(DataError, match=r"test_3d\.jsonl, line 1.*'\(Q\)'"):
        ds.get("3D-0")


# ----- MMVP ------------------------------------------------------------------------------
@pytest.mark.parametrize("column", ["lndex", "Index"])
def test_mmvp_index_column_and_pairs(tmp_path, column):
    ds = get_dataset("mmvp", write_mmvp(tmp_path, index_column=column))
    assert ds.ids() == ["1", "2", "3", "4"]
    assert ds.pairs() == [("1", "2"), ("3", "4")]
    assert [s.extras["pair"] for s in ds] == [1, 1, 2, 2]
    s1, s2 = ds.get("1"), ds.get("2")
    assert s1.options == ["Open", "Closed"] and s1.answer == "Open" and s2.answer == "Closed"
    assert s1.question == s2.question and s1.image_path != s2.image_path
    assert s1.image_path.name == "1.jpg" and s1.image_path.parent.name == "MMVP Images"


def test_mmvp_missing_column_named(tmp_path):
    root = write_mmvp(tmp_path)
    text = (root / "Questions.csv").read_text().replace("Correct Answer", "Solution")
    (root / "Questions.csv").write_text(text)
    with pytest.raises(DataError, match=r"Questions\.csv.*'Correct Answer'"):
        get_dataset("mmvp", root)


def test_mmvp_missing_image_named_when_loaded(tmp_path):
    root = write_mmvp(tmp_path)
    (root / "MMVP Images" / "3.jpg").unlink()
    ds = get_dataset("mmvp", root)  # the index still reads
    assert len(ds) == 4
    ds.get("1").load_image()
    with pytest.raises(DataError, match=r"sample '3'.*3\.jpg"):
        ds.get("3").load_image()


# ----- LLaVA-Bench -----------------------------------------------------------------------
def test_llava_bench_free_form_with_references(tmp_path):
    ds = get_dataset("llava-bench", write_llava_bench(tmp_path))
    s = ds.get("0")
    assert s.answer_kind == "free" and s.answer == "Reference answer 0." and s.category == "conv"
    assert s.extras["caption"] == "A tower at dusk." and "caption" not in ds.get("2").extras
    assert grade("anything", s) == (None, "free")


def test_llava_bench_path_escape_refused(tmp_path):
    root = write_llava_bench(tmp_path / "bench")
    image(tmp_path / "secret.jpg", fmt="JPEG")
    row = {"question_id": 9, "image": "../../secret.jpg", "text": "What is this?", "category": "conv"}
    with (root / "questions.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"questions\.jsonl, line 4.*leaves the data folder"):
        get_dataset("llava-bench", root)


def test_llava_bench_missing_field_named(tmp_path):
    root = write_llava_bench(tmp_path)
    (root / "questions.jsonl").write_text(json.dumps({"question_id": 0, "image": "001.jpg"}) + "\n")
    with pytest.raises(DataError, match=r"questions\.jsonl, line 1: missing field 'text'"):
        get_dataset("llava-bench", root)


def test_llava_bench_broken_json_line_named(tmp_path):
    root = write_llava_bench(tmp_path)
    with (root / "questions.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"questions\.jsonl, line 4"):
        get_dataset("llava-bench", root)


# ----- VQA-HAT ---------------------------------------------------------------------------
def test_vqa_hat_human_maps_averaged_and_resized(tmp_path):
    ds = get_dataset("vqa-hat", write_vqa_hat(tmp_path))
    assert ds.ids() == ["1001", "1002"]  # 1003 has no map
    assert ds.skipped == {"no VQA question for the map": 1}  # the orphan 9999
    w, h = VQAHAT_IMAGE_SIZE
    s = ds.get("1001")
    assert s.human_map.shape == (h, w) and s.human_map.dtype == np.float32
    m = s.human_map
    assert m[2, 2] == pytest.approx(1.0)  # left and top: both maps
    assert m[2, w - 3] == pytest.approx(0.5, abs=0.05)  # top only
    assert m[h - 3, 2] == pytest.approx(0.5, abs=0.05)  # left only
    assert m[h - 3, w - 3] == pytest.approx(0.0)  # neither
    assert m.min() == 0.0 and m.max() == 1.0
    assert s.answer == "red" and s.category == "other"
    assert s.extras["alternatives"] == ["dark red"]  # 4 of 10 annotators
    assert s.extras["maps"] == ["1001_1.png", "1001_2.png"]
    assert grade("It is dark red.", s)[0] is True and grade("blue", s)[0] is False
    one = ds.get("1002").human_map
    assert one[:, : w // 2 - 2].min() == 1.0 and one[:, w // 2 + 2 :].max() == 0.0
    assert grade("There are two people.", ds.get("1002"))[0] is True


def test_vqa_hat_train_split_and_missing_json(tmp_path):
    root = write_vqa_hat(tmp_path, split="train")
    assert get_dataset("vqa-hat", root, split="train").ids() == ["1001", "1002"]
    with pytest.raises(DataError, match="vqahat_val"):
        get_dataset("vqa-hat", root)
    (root / "mscoco_train2014_annotations.json").unlink()
    with pytest.raises(DataError, match="mscoco_train2014_annotations.json"):
        get_dataset("vqa-hat", root, split="train")


def test_vqa_hat_question_without_field_named(tmp_path):
    root = write_vqa_hat(tmp_path)
    qpath = root / "OpenEnded_mscoco_val2014_questions.json"
    data = json.loads(qpath.read_text())
    del data["questions"][1]["image_id"]
    qpath.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"questions\[1\]: missing field 'image_id'"):
        get_dataset("vqa-hat", root)


# ----- HallusionBench --------------------------------------------------------------------
def test_hallusion_bench_skips_entries_without_image(tmp_path):
    root = write_hallusion_bench(tmp_path)
    ds = get_dataset("hallusion-bench", root)
    assert ds.ids() == ["VD_ocr_0_0_0", "VD_ocr_0_0_1", "VS_chart_1_1_0"]
    assert ds.skipped == {"no image (visual_input 0)": 1}
    assert [s.answer for s in ds] == ["yes", "no", "yes"]
    assert all(s.answer_kind == "yesno" for s in ds)
    # the released path, and the same path without its leading folder
    assert ds.get("VD_ocr_0_0_0").image_path == (root / "hallusion_bench/VD/ocr/0_0.png").resolve()
    assert ds.get("VS_chart_1_1_0").image_path == (root / "VS/chart/1_1.png").resolve()
    assert ds.get("VS_chart_1_1_0").extras["subcategory"] == "chart"
    # the data folder may be hallusion_bench/ itself: the leading folder is dropped
    inner = tmp_path / "hallusion_bench"
    (inner / "HallusionBench.json").write_text(json.dumps(HALLUSION_ENTRIES[:2]))
    assert get_dataset("hallusion-bench", inner).get("VD_ocr_0_0_1").load_image().size == (32, 24)


def test_hallusion_bench_bad_entries_named(tmp_path):
    root = write_hallusion_bench(tmp_path)
    entries = [dict(e) for e in HALLUSION_ENTRIES]
    entries[1]["gt_answer"] = "maybe"
    (root / "HallusionBench.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"HallusionBench\.json, entry 1: field 'gt_answer'"):
        get_dataset("hallusion-bench", root)
    del entries[1]["gt_answer"]
    (root / "HallusionBench.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"entry 1: missing field 'gt_answer'"):
        get_dataset("hallusion-bench", root)
    entries[1]["gt_answer"] = "1"
    entries[1]["filename"] = "/etc/hostname"
    (root / "HallusionBench.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"entry 1: image path '/etc/hostname' leaves the data folder"):
        get_dataset("hallusion-bench", root)


# ----- Hugging Face parquet snapshots (MMVP, LLaVA-Bench, HallusionBench) -----------------
def _comparable(sample: Sample) -> dict:
    """A sample's record without what depends on where the image comes from."""
    record = sample.to_record()
    record.pop("image_path")
    record["extras"].pop("image_id", None)  # a parquet-only column
    return record


@pytest.mark.parametrize("name", sorted(PARQUET_WRITERS))
@pytest.mark.parametrize("prompt_format", ["open", "mc"])
def test_parquet_snapshot_gives_the_original_samples(name, prompt_format, tmp_path):
    original = get_dataset(name, WRITERS[name](tmp_path / "original"), prompt_format=prompt_format)
    root = PARQUET_WRITERS[name](tmp_path / "snapshot")
    snapshot = get_dataset(name, root, prompt_format=prompt_format)
    assert snapshot.ids() == original.ids() and len(snapshot) == SIZES[name]
    assert snapshot.skipped == original.skipped
    for a, b in zip(original, snapshot):
        assert _comparable(b) == _comparable(a)
        assert b.image_path is None and b.image_loader is not None  # from the parquet bytes
        img = b.load_image()
        assert img.mode == "RGB" and img.size == a.load_image().size
        assert img.getpixel((10, 10)) in PALETTE
        assert grade(b.answer or "", b) == grade(a.answer or "", a)
    assert [s.id for s in get_dataset(name, root, limit=2)] == original.ids()[:2]


@pytest.mark.parametrize("name", sorted(PARQUET_WRITERS))
def test_parquet_snapshot_original_layout_preferred(name, tmp_path):
    root = PARQUET_WRITERS[name](WRITERS[name](tmp_path))  # both layouts in one folder
    ds = get_dataset(name, root)
    assert all(s.image_path is not None and s.image_loader is None for s in ds)


@pytest.mark.parametrize("name", sorted(PARQUET_WRITERS))
def test_parquet_snapshot_none_found_names_both_layouts(name, tmp_path):
    original = {
        "mmvp": "Questions.csv",
        "llava-bench": "questions.jsonl",
        "hallusion-bench": "HallusionBench",
    }
    with pytest.raises(DataError, match=rf"{original[name]}.*parquet"):
        get_dataset(name, tmp_path)


def test_mmvp_parquet_pairs_and_images(tmp_path):
    ds = get_dataset("mmvp", write_mmvp_parquet(tmp_path))
    assert ds.ids() == ["1", "2", "3", "4"] and ds.pairs() == [("1", "2"), ("3", "4")]
    assert [s.extras["pair"] for s in ds] == [1, 1, 2, 2]
    assert ds.get("3").answer == "Right" and ds.get("3").answer_letter == "B"
    assert ds.get("2").load_image().getpixel((10, 10)) == PALETTE[1]


@pytest.mark.parametrize("column", ["Index", "Question", "Options", "Correct Answer", "image"])
def test_mmvp_parquet_missing_column_named(tmp_path, column):
    what = "index column" if column == "Index" else f"column '{column}'"
    with pytest.raises(DataError, match=rf"train-00000-of-00001\.parquet: missing {what}"):
        get_dataset("mmvp", write_mmvp_parquet(tmp_path, drop=column))


def test_mmvp_parquet_bad_answer_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_mmvp_parquet(tmp_path)
    path = root / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[2]["Correct Answer"] = "(c)"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    ds = get_dataset("mmvp", root)
    with pytest.raises(DataError, match=r"train-00000-of-00001\.parquet, row 2.*'\(c\)'"):
        ds.get("3")


def test_llava_bench_parquet_free_form(tmp_path):
    ds = get_dataset("llava-bench", write_llava_bench_parquet(tmp_path))
    s = ds.get("0")
    assert s.answer_kind == "free" and s.answer == "Reference answer 0." and s.category == "conv"
    assert s.extras == {"image": "001.jpg", "image_id": "001", "caption": "A tower at dusk."}
    assert "caption" not in ds.get("2").extras
    assert ds.get("2").load_image().getpixel((10, 10)) == PALETTE[1]
    assert grade("anything", s) == (None, "free")
    # without the reference answers the questions still read
    bare = get_dataset("llava-bench", write_llava_bench_parquet(tmp_path / "bare", drop="gpt_answer"))
    assert [x.answer for x in bare] == [None, None, None]


@pytest.mark.parametrize("column", ["question_id", "question", "image"])
def test_llava_bench_parquet_missing_column_named(tmp_path, column):
    with pytest.raises(DataError, match=rf"train-00000-of-00001\.parquet: missing column '{column}'"):
        get_dataset("llava-bench", write_llava_bench_parquet(tmp_path, drop=column))


def test_hallusion_bench_parquet_skips_the_non_image_split(tmp_path):
    ds = get_dataset("hallusion-bench", write_hallusion_bench_parquet(tmp_path / "a"))
    assert ds.ids() == ["VD_ocr_0_0_0", "VD_ocr_0_0_1", "VS_chart_1_1_0"]
    assert ds.skipped == {"no image (visual_input 0)": 1}
    assert [s.answer for s in ds] == ["yes", "no", "yes"]
    assert ds.get("VS_chart_1_1_0").load_image().getpixel((10, 10)) == PALETTE[1]
    # the image split alone: nothing to skip
    alone = get_dataset("hallusion-bench", write_hallusion_bench_parquet(tmp_path / "b", non_image=False))
    assert alone.ids() == ds.ids() and alone.skipped == {}


@pytest.mark.parametrize("column", ["gt_answer", "figure_id", "image"])
def test_hallusion_bench_parquet_missing_column_named(tmp_path, column):
    with pytest.raises(DataError, match=rf"image-00000-of-00001\.parquet: missing column '{column}'"):
        get_dataset("hallusion-bench", write_hallusion_bench_parquet(tmp_path, drop=column))


def test_hallusion_bench_parquet_bad_answer_and_empty_image_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_hallusion_bench_parquet(tmp_path)
    path = root / "data" / "image-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[1]["gt_answer"] = "maybe"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    with pytest.raises(DataError, match=r"image-00000-of-00001\.parquet, row 1: field 'gt_answer'"):
        get_dataset("hallusion-bench", root)
    rows[1]["gt_answer"] = "0"
    rows[1]["image"] = None
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    ds = get_dataset("hallusion-bench", root)  # the index still reads
    with pytest.raises(DataError, match=r"row 1: field 'image' is empty"):
        ds.get("VD_ocr_0_0_1")


# ----- the user's files ------------------------------------------------------------------
def test_files_table(tmp_path):
    ds = get_dataset("files", write_files(tmp_path) / "questions.jsonl")
    assert ds.ids() == ["cat", "dog", "3"]
    assert ds.get("cat").answer_kind == "short" and ds.get("cat").answer == "a cat"
    dog = ds.get("dog")
    assert dog.answer == "dog" and dog.answer_letter == "B" and dog.category == "animals"
    assert ds.get("3").answer_kind == "free"
    assert get_dataset("files", tmp_path).ids() == ds.ids()  # the folder holding one table


def test_files_csv_and_folder_of_images(tmp_path):
    image(tmp_path / "pics" / "b.png", color=1)
    image(tmp_path / "pics" / "a.jpg", color=2, fmt="JPEG")
    image(tmp_path / "pics" / "sub" / "c.png", color=3)
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    ds = get_dataset("files", tmp_path / "pics", question="What is shown?")
    assert ds.ids() == ["a.jpg", "b.png", "sub/c.png"]
    assert all(s.question == "What is shown?" and s.answer_kind == "free" for s in ds)
    with open(tmp_path / "pics" / "q.csv", "w", newline="") as f:
        f.write(
            "image,question,answer,options\nb.png,Which colour?,green,red | green | blue\nsub/c.png,What?,x,\n"
        )
    t = get_dataset("files", tmp_path / "pics" / "q.csv")
    assert t.ids() == ["1", "2"]
    assert t.get("1").options == ["red", "green", "blue"] and t.get("1").answer_letter == "B"
    assert t.get("2").options is None and t.get("2").answer_kind == "short"
    assert get_dataset("files", tmp_path / "pics").ids() == ["1", "2"]  # the one table in the folder
    (tmp_path / "pics" / "q2.csv").write_text("image,question\nb.png,Why?\n")
    with pytest.raises(DataError, match="exactly one"):
        get_dataset("files", tmp_path / "pics")


def test_files_path_escapes_refused(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    image(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "link.png")
    for bad in ("../outside.png", str(tmp_path / "outside.png"), "link.png"):
        (root / "q.jsonl").write_text(json.dumps({"image": bad, "question": "What?"}) + "\n")
        with pytest.raises(DataError, match="leaves the data folder"):
            get_dataset("files", root / "q.jsonl")


def test_files_missing_field_and_file_named(tmp_path):
    root = write_files(tmp_path)
    (root / "q.jsonl").write_text(json.dumps({"image": "imgs/cat.png"}) + "\n")
    with pytest.raises(DataError, match=r"q\.jsonl, line 1: missing field 'question'"):
        get_dataset("files", root / "q.jsonl")
    assert get_dataset("files", root / "q.jsonl", question="What?").get("1").question == "What?"
    (root / "q.jsonl").write_text(json.dumps({"image": "imgs/gone.png", "question": "What?"}) + "\n")
    ds = get_dataset("files", root / "q.jsonl")
    with pytest.raises(DataError, match=r"image file not found: .*gone\.png"):
        ds.get("1").load_image()
    (root / "q.jsonl").write_text(json.dumps({"image": "questions.jsonl", "question": "What?"}) + "\n")
    with pytest.raises(DataError, match=r"sample '1'.*questions\.jsonl"):  # not an image
        get_dataset("files", root / "q.jsonl").get("1").load_image()
    (root / "q.jsonl").write_text(
        json.dumps({"id": "x", "image": "imgs/cat.png", "question": "A?"})
        + "\n"
        + json.dumps({"id": "x", "image": "imgs/dog.png", "question": "B?"})
        + "\n"
    )
    with pytest.raises(DataError, match=r"line 2: duplicate sample id 'x'"):
        get_dataset("files", root / "q.jsonl")


# ----- multiple-choice text helpers ------------------------------------------------------
def test_split_inline_options_and_instructions():
    stem, options = split_inline_options("What? Really?\nOptions: A: yes, B: no")
    assert stem == "What? Really?" and options == ["yes", "no"]
    assert split_inline_options("Which is it?") == ("Which is it?", None)
    stem, options = split_inline_options("Pick one.\nOptions: A. 1.5 m, B. 2.0 m, C. 3, or more")
    assert options == ["1.5 m", "2.0 m", "3, or more"]
    # a letter inside an option is not the next marker
    _, options = split_inline_options(
        "Which?\nOptions: A: the letter B. on a sign, B: vitamin C: tablets, C: none"
    )
    assert options == ["the letter B. on a sign", "vitamin C: tablets", "none"]
    assert strip_instructions(
        "Is it red? Answer with the option's letter from the given choices directly."
    ) == ("Is it red?")
    assert (
        strip_instructions("Is it red?\nPlease answer the question using a single word or phrase.")
        == "Is it red?"
    )


def test_loaders_do_not_warn(fixture_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in list_datasets():
            list(_open(name, fixture_root))
