"""The `game` scenario end to end: what a run writes, bad input, divergence, batches, user games."""

import json
import math

import pytest

from playground.cli import main


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_logs_every_step_and_reports_the_rates(cli, tmp_path):
    """Extragradient on xy: every step shrinks ‖z‖ by √(1 − η² + η⁴), predicted and measured."""
    out = cli(
        "run",
        "game",
        "game=bilinear",
        "dynamics=extragradient",
        "lr=0.3",
        "steps=20",
        "init=1,0.5",
        "--out",
        "r",
    )
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


@pytest.mark.parametrize(
    "override,message",
    [
        ("dynamics=nope", "unknown dynamics 'nope'; valid: sim_gd, alt_gd"),
        ("game=nope", "unknown game 'nope'; valid: bilinear"),
        ("lr=0", "lr=0.0 must be > 0"),
        ("lr=-0.5", "lr=-0.5 must be > 0"),
        ("init=1,2,3", "init has 3 values; game 'bilinear' has 2 parameters"),
        ("gamma=0.5", "dynamics 'sim_gd' takes no option 'gamma'; valid: none"),
        ("dim=3", "game 'dirac_gan' takes no option 'dim'; valid: game.r1"),
    ],
)
def test_bad_input_exits_2_with_one_line(override, message, tmp_path, capsys):
    game = "game=dirac_gan" if override == "dim=3" else "game=bilinear"
    given = [override] if override.startswith("game=") else [game, override]  # each option once
    assert main(["run", "game", *given, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_diverging_run_is_a_result(tmp_path):
    assert (
        main(
            [
                "run",
                "game",
                "dynamics=sim_gd",
                "lr=1e30",
                "steps=50",
                "init=1,1",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )  # with plots: they must survive the overflow
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
        "    return games.Game(('a', 'b'), ((1,), (1,)), loss)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        main(
            [
                "run",
                "game",
                "game=my_games:coordination",
                "steps=3",
                "init=1,0",
                "plots=false",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert not list((tmp_path / "r").glob("*.png"))
    rows = read_rows(tmp_path / "r" / "metrics.jsonl")
    assert rows[1]["params"] == pytest.approx([0.8, 0.2])  # each moves η·2(a − b) towards the other


def test_every_factory_keyword_is_an_option(toy, tmp_path, monkeypatch, capsys):
    """`game.<kw>` and `dynamics.<kw>` reach the factories, typed from their signatures."""
    from playground.config import build_config
    from playground.scenarios.game import GameConfig

    config = build_config(
        GameConfig,
        {
            "game": "quadratic",
            "game.mu": "0.5",
            "dynamics": "sos",
            "dynamics.a": "0.3",
            "dynamics.lookahead": "none",
        },
    )
    assert config.game_options == {"mu": 0.5} and config.dynamics_options == {"a": 0.3, "lookahead": None}
    assert build_config(GameConfig, {"game": "ipd", "game.gamma": "0.9"}).game_options == {"gamma": 0.9}
    assert build_config(GameConfig, {"dynamics": "cgd", "dynamics.cg_iters": "5"}).dynamics_options == {
        "cg_iters": 5
    }
    # the old flat names still work for one release, and land in the same place
    assert build_config(GameConfig, {"game": "dirac_gan", "r1": "0.2"}).game_options == {"r1": 0.2}
    monkeypatch.chdir(tmp_path)
    for args, message in [
        (["game=bilinear", "game.mu=1"], "game 'bilinear' takes no option 'mu'; valid: game.dim, game.seed"),
        (["game=quadratic", "game.mu=fast"], "game.mu='fast' is not a valid float"),
        (["game=quadratic", "game.mu=nan"], "game.mu=nan: not finite"),
        (["dynamics=cgd", "dynamics.cg_iters=2.5"], "dynamics.cg_iters='2.5' is not a valid int"),
        (["game=dirac_gan", "r1=1", "game.r1=2"], "r1= and game.r1= both given"),
        (["nope.x=1"], "unknown option 'nope.x'"),
    ]:
        assert main(["run", "game", *args]) == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_factory_keywords_change_the_game_and_are_swept(cli, tmp_path):
    """f = (μ/2)x² + xy − (μ/2)y²: H has eigenvalues μ ± i, so sim_gd contracts by |1 − ημ ± iη|."""
    out = cli("sweep", "game", "game=quadratic", "game.mu=0.5,1", "lr=0.1", "steps=50", "--out", "s")
    assert out.returncode == 0, out.stderr
    for mu in (0.5, 1.0):
        name = f"game=quadratic,game.mu={mu:g},lr=0.1,steps=50"
        summary = json.loads((tmp_path / "s" / name / "summary.json").read_text())
        assert summary["rate/predicted"] == pytest.approx(abs(complex(1 - 0.1 * mu, 0.1)), rel=1e-12)
    listing = cli("list").stdout
    assert (
        "game.<keyword> with game=quadratic: dim (int, default 1), seed (int, default 0), "
        "mu (float, default 1.0)" in listing
    )
