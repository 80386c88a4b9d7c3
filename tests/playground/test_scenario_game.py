"""The `game` scenario end to end: what a run writes, bad input, divergence, batches, user games."""
import json
import math

import pytest

from playground.cli import main


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_logs_every_step_and_reports_the_rates(cli, tmp_path):
    """Extragradient on xy: every step shrinks ‖z‖ by √(1 − η² + η⁴), predicted and measured."""
    out = cli("run", "game", "game=bilinear", "dynamics=extragradient", "lr=0.3", "steps=20",
              "init=1,0.5", "--out", "r")
    assert out.returncode == 0, out.stderr
    run = tmp_path / "r"
    rows = read_rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(21))
    assert set(rows[0]) == {"step", "loss/x", "loss/y", "grad_norm", "dist", "params"}
    assert rows[0]["params"] == [1.0, 0.5] and rows[0]["loss/x"] == 0.5
    summary = json.loads((run / "summary.json").read_text())
    rate = math.sqrt(1 - 0.3**2 + 0.3**4)
    assert summary["rate/measured"] == pytest.approx(rate, rel=1e-12)
    assert summary["rate/predicted"] == pytest.approx(rate, rel=1e-12)
    assert summary["eig/field"] == [[0.0, -1.0], [0.0, 1.0]]
    assert summary["dist"] == pytest.approx(rate**20 * math.sqrt(1.25), rel=1e-12)
    assert summary["diverged"] is False and summary["steps_run"] == 20
    for plot in ("dist", "trajectory", "eigenvalues"):
        assert (run / f"{plot}.png").stat().st_size > 0


@pytest.mark.parametrize("override,message", [
    ("dynamics=nope", "unknown dynamics 'nope'; valid: sim_gd, alt_gd"),
    ("game=nope", "unknown game 'nope'; valid: bilinear"),
    ("lr=0", "lr=0.0 must be > 0"),
    ("lr=-0.5", "lr=-0.5 must be > 0"),
    ("init=1,2,3", "init has 3 values; game 'bilinear' has 2 parameters"),
    ("gamma=0.5", "dynamics 'sim_gd' takes no option 'gamma'; valid: none"),
    ("dim=3", "game 'dirac_gan' takes no option 'dim'; valid: r1"),
])
def test_bad_input_exits_2_with_one_line(override, message, tmp_path, capsys):
    game = "game=dirac_gan" if override == "dim=3" else "game=bilinear"
    assert main(["run", "game", game, override, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_diverging_run_is_a_result(tmp_path):
    assert main(["run", "game", "dynamics=sim_gd", "lr=1e30", "steps=50", "init=1,1",
                 "--out", str(tmp_path / "r")]) == 0  # with plots: they must survive the overflow
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["diverged"] is True and 1 < summary["diverged_step"] < 50
    assert math.isfinite(summary["last_finite"]["dist"])
    assert len(read_rows(tmp_path / "r" / "metrics.jsonl")) == summary["diverged_step"]


def test_batch_rows_equal_separate_runs(tmp_path):
    common = ["game=dirac_gan", "dynamics=optimistic", "lr=0.3", "steps=6", "plots=false"]
    assert main(["run", "game", *common, "batch=2", "seed=4", "--out", str(tmp_path / "b")]) == 0
    assert main(["run", "game", *common, "seed=5", "--out", str(tmp_path / "s")]) == 0
    batch, single = read_rows(tmp_path / "b" / "metrics.jsonl"), read_rows(tmp_path / "s" / "metrics.jsonl")
    assert [row["dist"][1] for row in batch] == pytest.approx([row["dist"] for row in single], rel=1e-12)
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["batch"] == 2 and summary["diverged_count"] == 0
    assert len(json.loads((tmp_path / "b" / "batch.json").read_text())["rate/measured"]) == 2


def test_a_user_game_runs_from_module_and_factory(tmp_path, monkeypatch):
    (tmp_path / "my_games.py").write_text(
        "import torch\nimport games\n\n"
        "def coordination():\n"
        "    loss = lambda p: torch.stack([(p[0] - p[1]).pow(2).sum()] * 2)\n"
        "    return games.Game(('a', 'b'), ((1,), (1,)), loss)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "game", "game=my_games:coordination", "steps=3", "init=1,0", "plots=false",
                 "--out", str(tmp_path / "r")]) == 0
    assert not list((tmp_path / "r").glob("*.png"))
    rows = read_rows(tmp_path / "r" / "metrics.jsonl")
    assert rows[1]["params"] == pytest.approx([0.8, 0.2])  # each moves η·2(a − b) towards the other
