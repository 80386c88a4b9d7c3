"""`reporting.History`: the log every library loop keeps, read back as curves."""

import sys
import types

import numpy as np
import pytest
import torch

from reporting import History


def test_a_history_keeps_rows_as_numbers_and_passes_them_on():
    seen = []
    history = History(then=lambda step, metrics: seen.append((step, dict(metrics))))
    history(0, {"loss": torch.tensor(2.0), "x": torch.tensor([1.0, 2.0]), "note": "a"})
    history(np.int64(3), {"loss": np.float64(0.5)})
    assert history.rows == [{"step": 0, "loss": 2.0, "x": [1.0, 2.0], "note": "a"}, {"step": 3, "loss": 0.5}]
    assert type(history.rows[1]["step"]) is int and type(history.rows[1]["loss"]) is float
    assert [step for step, _ in seen] == [0, 3] and torch.is_tensor(seen[0][1]["loss"])  # passed on as given


def test_curves_by_key_with_nan_for_a_non_finite_value():
    history = History([{"step": 0, "loss": 1.0, "x": [1.0, 2.0]}, {"step": 1, "loss": None}])
    history(2, {"loss": 0.25, "x": [0.5, 1.0], "note": "b"})
    steps, loss = history["loss"]
    assert steps.tolist() == [0, 1, 2] and loss[0] == 1.0 and np.isnan(loss[1]) and loss[2] == 0.25
    assert history["x"].steps.tolist() == [0, 2] and history["x"].values.tolist() == [[1.0, 2.0], [0.5, 1.0]]
    assert history["note"].values.tolist() == ["b"] and history["note"].values.dtype == object
    assert list(history) == ["loss", "x", "note"] and len(history) == 3
    assert repr(history) == "History(3 rows: loss, x, note)"
    with pytest.raises(KeyError, match="'dist' was never logged; logged: loss, x, note"):
        history["dist"]
    with pytest.raises(KeyError, match="logged: nothing"):
        History()["dist"]


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails, installed or not
    with pytest.raises(ImportError, match="^History.to_pandas needs pandas: pip install pandas$"):
        History([{"step": 0, "a": 1.0}]).to_pandas()


def test_to_pandas_gives_one_row_per_logged_row(monkeypatch):
    fake = types.SimpleNamespace(DataFrame=lambda rows, columns: (rows, columns))
    monkeypatch.setitem(sys.modules, "pandas", fake)
    rows = [{"step": 0, "a": 1.0}, {"step": 1, "a": None, "b": 2}]
    assert History(rows).to_pandas() == (rows, ["step", "a", "b"])


def test_histories_are_equal_when_their_rows_are():
    assert History([{"step": 0, "a": 1.0}]) == History([{"step": 0, "a": 1.0}])
    assert History([{"step": 0, "a": 1.0}]) != History([{"step": 0, "a": 2.0}])
    assert History() != {}  # a History is not a dict of curves
