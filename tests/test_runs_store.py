"""The run folder: shard file names, one record per id across shards, merge, refusals, lock."""

import json
import math

import pytest

from vlm_focus.errors import InputError
from vlm_focus.runs import store


def write(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_shard_names():
    assert store.shard_name(0, 1) == "results.jsonl"
    assert store.shard_name(1, 2) == "results.rank1-of2.jsonl"
    for rank, world in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(InputError):
            store.shard_name(rank, world)


def test_shard_files_of_every_world_size_sorted(tmp_path):
    for name in ("results.rank1-of2.jsonl", "results.rank0-of3.jsonl", "results.rank0-of2.jsonl", "x.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "results.jsonl").write_text("")
    names = [p.name for p in store.shard_files(tmp_path)]
    assert names == ["results.rank0-of2.jsonl", "results.rank1-of2.jsonl", "results.rank0-of3.jsonl"]
    assert [p.name for p in store.result_files(tmp_path)] == ["results.jsonl", *names]
    assert store.shard_files(tmp_path / "missing") == []


def test_best_prefers_a_result_over_an_error_then_the_latest():
    err = {"id": "a", "status": "error", "finished_at": 5.0}
    ok_old = {"id": "a", "status": "ok", "finished_at": 1.0, "v": 1}
    ok_new = {"id": "a", "status": "skipped", "finished_at": 2.0, "v": 2}
    assert store.best([ok_old, err])["a"] is ok_old
    assert store.best([err, ok_old])["a"] is ok_old
    assert store.best([ok_new, ok_old, err])["a"] is ok_new
    err2 = {"id": "a", "status": "error", "finished_at": 7.0}
    assert store.best([err2, err])["a"] is err2
    assert list(store.best([{"id": "b"}, {"id": "a"}, {"id": "b"}])) == ["b", "a"]


def test_read_all_and_merge_across_world_sizes(tmp_path):
    # a 1-process start, then a killed 3-process resume, then a killed 2-process resume
    write(tmp_path / "results.jsonl", [{"id": "s3", "status": "ok"}, {"id": "s1", "status": "error"}])
    write(tmp_path / "results.rank0-of3.jsonl", [{"id": "s1", "status": "ok"}])
    write(tmp_path / "results.rank2-of3.jsonl", [{"id": "s0", "status": "ok"}], tail='{"id": "s2", "st')
    write(tmp_path / "results.rank1-of2.jsonl", [{"id": "old", "status": "ok"}, {"id": "s2", "status": "ok"}])
    assert sorted(store.read_all(tmp_path)) == ["old", "s0", "s1", "s2", "s3"]
    assert (tmp_path / "results.rank2-of3.jsonl").read_text().endswith('"ok"}\n')  # repaired
    merged = store.merge(tmp_path, ["s0", "s1", "s2", "s3"])
    assert [r["id"] for r in merged] == ["s0", "s1", "s2", "s3", "old"]
    assert all(r["status"] == "ok" for r in merged)
    assert store.shard_files(tmp_path) == []
    assert [r["id"] for r in store.read_results(tmp_path / "results.jsonl")] == [
        "s0",
        "s1",
        "s2",
        "s3",
        "old",
    ]


def test_check_out_needs_resume_for_any_results_file(tmp_path):
    assert store.check_out(tmp_path, resume=False) == tmp_path / "results.jsonl"
    (tmp_path / "results.jsonl").write_text("")  # empty: nothing to lose
    store.check_out(tmp_path, resume=False)
    write(tmp_path / "results.rank1-of4.jsonl", [{"id": "a"}])
    with pytest.raises(InputError, match="--resume"):
        store.check_out(tmp_path, resume=False)
    store.check_out(tmp_path, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        store.check_out(tmp_path / "file", resume=True)


def test_json_files_are_replaced_whole_and_clean(tmp_path):
    import numpy as np

    path = tmp_path / "summary.json"
    store.write_json(path, {"a": math.nan, "b": np.float32(0.5), "c": (1, np.int64(2)), "d": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [1, 2], "d": [0, 1]}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left
    with open(tmp_path / "r.jsonl", "w") as f:
        store.append(f, {"id": "x", "v": math.inf})
    assert (tmp_path / "r.jsonl").read_text() == '{"id": "x", "v": null}\n'


def test_the_lock_refuses_a_second_writer(tmp_path):
    pytest.importorskip("fcntl")
    with store.locked(tmp_path):
        with pytest.raises(InputError, match="another run"):
            with store.locked(tmp_path):
                pass
    with store.locked(tmp_path):  # released
        pass
