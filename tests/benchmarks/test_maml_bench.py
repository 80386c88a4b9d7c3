"""The task-drawing rows of the MAML benchmark time what they say, beside the meta-step."""

import torch

import benchmarks.maml as bench


def test_drawing_rows_time_the_draw_and_the_step_interleaved(monkeypatch):
    calls = []

    def interleaved(fns, repeats):
        calls.append((list(fns), repeats))
        for fn in fns.values():
            fn()  # every side still runs
        return {"drawn on the host": [0.002] * 3, "fomaml meta-step": [0.5] * 3}

    monkeypatch.setattr(bench, "time_interleaved", interleaved)
    section = bench._drawing(torch.device("cpu"), meta_batch=4)
    assert calls == [(["drawn on the host", "fomaml meta-step"], bench.REPEATS)]  # no device of its own
    assert "| glyphs 5-way 1-shot, batch 4 | drawn on the host | 2 | 0 | 2000 |" in section
    assert "| glyphs 5-way 1-shot, batch 4 | fomaml meta-step | 500 | 0 | 8 |" in section
