"""The DARTS benchmark times its sides like the others (interleaved, round by round) and reports
each per search step, as a ratio to first order."""

import benchmarks.darts as bench


def test_darts_benchmark_times_every_method_interleaved(monkeypatch):
    calls = []

    def interleaved(fns, repeats, warmup):
        calls.append((list(fns), repeats, warmup))
        for fn in fns.values():
            fn()  # every side still runs its steps
        return {"first_order": [0.1, 0.2, 0.3], "one_step": [0.6, 0.6, 0.6], "one_step hvp=exact": [0.4] * 3}

    monkeypatch.setattr(bench, "STEPS", 2)
    monkeypatch.setattr(bench, "time_interleaved", interleaved)
    section = bench.main()
    assert calls == [(["first_order", "one_step", "one_step hvp=exact"], bench.REPEATS, 1)]
    assert "| first_order | 100 ± 50 | 1.00× |" in section  # 0.2 s over 2 steps
    assert "| one_step | 300 ± 0 | 3.00× |" in section
