"""The games benchmark times its two sides like the others: interleaved, round by round."""

import benchmarks.games as bench


def test_games_benchmark_times_both_sides_interleaved(monkeypatch):
    calls = []

    def interleaved(fns, repeats, warmup):
        calls.append((sorted(fns), repeats, warmup))
        for fn in fns.values():
            fn()  # both sides still run
        return {"separate": [2.0, 3.0, 4.0], "batched": [0.01, 0.01, 0.01]}

    monkeypatch.setattr(bench, "BATCH", 4)
    monkeypatch.setattr(bench, "STEPS", 1)
    monkeypatch.setattr(bench, "time_interleaved", interleaved)
    section = bench.main()
    assert calls == [(["batched", "separate"], bench.REPEATS, 0)] * len(bench.CASES)
    assert section.count("| 3 ± 1 | 0.01 ± 0 | 300× |") == len(bench.CASES)
