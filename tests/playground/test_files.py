"""Atomic writes: a write that dies half-way leaves the previous file whole."""

import json
import os

import pytest
import torch

from playground.files import read_jsonl, strict, write_atomic, write_json


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"loss": 1.0})

    def dies_half_way(f):
        f.write('{"loss": 0.')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, dies_half_way)
    assert json.loads(path.read_text()) == {"loss": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_written_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path):
    write_json(tmp_path / "summary.json", {})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_numpy_and_torch_values_are_written_as_plain_json(tmp_path):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    write_json(tmp_path / "a.json", {"a": np.float64(0.5), "b": torch.tensor([1.0, 2.0]), "c": (1, 2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 0.5, "b": [1.0, 2.0], "c": [1, 2]}


def test_a_torn_last_line_of_metrics_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "lo')
    assert read_jsonl(path) == ([{"step": 0}, {"step": 1}], 1)


def test_non_finite_numbers_become_null_and_are_listed(tmp_path):
    obj = {
        "a": float("nan"),
        "b": [1.0, [float("inf")]],
        "c": torch.tensor([1.0, -float("inf")]),
        "d": {"e": float("nan")},
        "f": 2.0,
    }
    plain, nonfinite = strict(obj)
    assert plain == {"a": None, "b": [1.0, [None]], "c": [1.0, None], "d": {"e": None}, "f": 2.0}
    assert nonfinite == ["a", "b", "c", "d"]
    write_json(tmp_path / "s.json", obj)
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == plain
