"""The `game` scenario end to end: what a run writes, bad input, divergence, batches, user games."""

import json
import math

import pytest

from playground.cli import main


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_logs_every_step_and_reports_the_rates(tmp_path):
    """Extragradient on xy: every step shrinks ‖z‖ by √(1 − η² + η⁴), predicted and measured."""
    options = ["game=bilinear", "dynamics=extragradient", "lr=0.3", "steps=20", "init=1,0.5"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "r")]) == 0
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
        (
            "lr=0",
            "lr=0.0: the learning rate η scales every step; η <= 0 does not descend; valid: a finite number",
        ),
        ("lr=-0.5", "lr=-0.5: the learning rate η"),
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
    rates = json.loads((tmp_path / "b" / "batch.json").read_text())["rate/measured"]
    # fitted in float64, as a single run is (they used to pass through float32)
    alone = json.loads((tmp_path / "s" / "summary.json").read_text())["rate/measured"]
    assert len(rates) == 2 and rates[1] == pytest.approx(alone, rel=1e-12)


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


def test_factory_keywords_change_the_game_and_are_swept(tmp_path, capsys):
    """f = (μ/2)x² + xy − (μ/2)y²: H has eigenvalues μ ± i, so sim_gd contracts by |1 − ημ ± iη|."""
    grid = ["game=quadratic", "game.mu=0.5,1", "lr=0.1", "steps=50"]
    assert main(["sweep", "game", *grid, "--out", str(tmp_path / "s")]) == 0
    for mu in (0.5, 1.0):
        name = f"game=quadratic,game.mu={mu:g},lr=0.1,steps=50"
        summary = json.loads((tmp_path / "s" / name / "summary.json").read_text())
        assert summary["rate/predicted"] == pytest.approx(abs(complex(1 - 0.1 * mu, 0.1)), rel=1e-12)
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert (
        "game.<keyword> with game=quadratic: dim (int, default 1), seed (int, default 0), "
        "mu (float, default 1.0)" in listing
    )


def summary_of(path):
    return json.loads((path / "summary.json").read_text())


def refused(args, tmp_path, capsys) -> str:
    """Exit 2 with one line, and nothing written: the line."""
    assert main(["run", "game", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("playground: error: ")
    assert list(tmp_path.iterdir()) == []
    return err


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["dynamics=cgd", "dynamics.cg_iters=0"],
            "dynamics.cg_iters=0: CGD needs at least one conjugate-gradient",
        ),
        (["dynamics=cgd", "dynamics.cg_iters=-2"], "dynamics.cg_iters=-2: CGD needs at least one"),
        (
            ["dynamics=consensus", "dynamics.gamma=-1"],
            "dynamics.gamma=-1.0: consensus descends ‖ξ‖² with weight γ",
        ),
        (["dynamics=consensus", "dynamics.gamma=0"], "γ = 0 is simultaneous GD"),
        (["dynamics=sos", "dynamics.a=5", "dynamics.b=-1"], "dynamics.a=5.0: SOS bounds the shaping"),
        (
            ["dynamics=sos", "dynamics.b=-1"],
            "dynamics.b=-1.0: SOS turns the shaping off where ‖ξ‖ < b, in (0, 1)",
        ),
        (["dynamics=lola", "dynamics.lookahead=0"], "dynamics.lookahead=0.0: LOLA looks α ahead"),
        (["dynamics=momentum", "dynamics.beta=0"], "dynamics.beta=0.0: heavy-ball momentum"),
        (["game.dim=1000000000000"], "game.dim=1000000000000: each player holds dim parameters"),
        (["game.seed=-1"], "game.seed=-1: it seeds a torch.Generator; valid: an integer >= 0"),
        (
            ["game=gaussian_mixture_gan", "game.hidden=1000000000000"],
            "game.hidden=1000000000000: the networks'",
        ),
        (["game=ipd", "game.gamma=1"], "game.gamma=1.0: the discount γ"),
    ],
)
def test_a_factory_option_outside_its_range_is_refused_as_given(args, message, tmp_path, capsys):
    """Named as the user typed it (`dynamics.<keyword>=`), with the reason and the valid range."""
    assert message in refused(args, tmp_path, capsys)


def test_stackelberg_on_a_singular_follower_is_refused_unless_regularised(tmp_path, capsys):
    """On x·y the follower's g = −xy is linear in y: ∇²_{yy}g = 0 at every start. On rock, paper,
    scissors it is 0 at the equilibrium, where the rate is predicted. With ρ > 0 the leader's
    Df = y + x/ρ and M = [[1 − η/ρ, −η], [η, 1]]: ρ(M) = √(1 − η/ρ + η²) = 0.9 at η = 0.1, ρ = 0.5."""
    err = refused(["dynamics=stackelberg"], tmp_path, capsys)
    assert "dynamics=stackelberg at the start: the follower's Hessian ∇²_yy g is singular at z = [" in err
    assert "its smallest singular value is 0, numerically 0" in err and "regularization=ρ > 0" in err
    err = refused(["game=rock_paper_scissors", "dynamics=stackelberg"], tmp_path, capsys)
    assert "at the point where its rate is predicted: the follower's Hessian ∇²_yy g is singular" in err
    options = ["dynamics=stackelberg", "dynamics.regularization=0.5", "steps=20", "plots=false"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert config["dynamics_options"] == {"regularization": 0.5}
    assert summary_of(tmp_path / "r")["rate/predicted"] == pytest.approx(0.9, rel=1e-13)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_measured_rate_is_fitted_above_the_floating_point_floor(batch, tmp_path):
    """Consensus on Cournot's duopoly: H = [[2, 1], [1, 2]] (eigenvalues 1, 3), the map
    I − η(H + γH²) has eigenvalues 1 − η(1 + γ) = 0.8 and 1 − η(3 + 9γ) = −0.2 at η = 0.1, γ = 1. By
    step 200 the distance is at the rounding of z* = (1, 1), where it used to read 1.0; fitted
    over the steps above √eps·‖z*‖ = 2.1e-8 it reads 0.8. A batch fits each run in float64."""
    options = ["game=duopoly", "dynamics=consensus", "steps=200", "plots=false", f"batch={batch}"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "r")]) == 0
    summary = summary_of(tmp_path / "r")
    assert summary["rate/predicted"] == pytest.approx(0.8, rel=1e-13)
    assert summary["rate/measured"] == pytest.approx(0.8, rel=1e-8)
    assert (
        "the distance fell below the floating-point floor 2.11e-08 (√eps·‖z*‖) at step"
        in summary["rate/measured_note"]
    )
    if batch > 1:
        rates = json.loads((tmp_path / "r" / "batch.json").read_text())["rate/measured"]
        assert rates == pytest.approx([0.8] * 3, rel=1e-8)
        assert summary["rate/measured_note"].startswith("3 of 3 finite runs: fitted over the steps before ")


def test_too_few_steps_to_fit_is_null_with_the_reason(tmp_path):
    """A start within the floor (1e-8 from z* = (1, 1)); a lookahead batch shorter than its period
    (it used to raise)."""
    options = ["game=duopoly", "dynamics=consensus", "steps=20", "plots=false", "init=1.00000001,1"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "a")]) == 0
    summary = summary_of(tmp_path / "a")
    assert summary["rate/measured"] is None and summary["rate/predicted"] == pytest.approx(0.8, rel=1e-13)
    assert summary["rate/measured_note"] == (
        "the distance fell below the floating-point floor 2.11e-08 (√eps·‖z*‖) at step 0, leaving 0 step(s) "
        "to fit, fewer than one period of the dynamics (1)"
    )
    options = ["dynamics=lookahead", "batch=2", "steps=3", "plots=false"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "b")]) == 0
    summary = summary_of(tmp_path / "b")
    assert summary["rate/measured"] is None
    assert summary["rate/measured_note"] == (
        "2 of 2 finite runs: 3 step(s) to fit, fewer than one period of the dynamics (5)"
    )
    assert json.loads((tmp_path / "b" / "batch.json").read_text())["rate/measured"] == [None, None]


def test_lola_is_measured_and_predicted_at_its_own_fixed_point(tmp_path):
    """LOLA on the duopoly goes to q₁ = q₂ = 3(1 − α)/(3 − 4α) = 27/26, not to Nash's (1, 1), at
    rate 0.9 (tests/games/test_analysis.py); measured to Nash it read 0.9996."""
    options = ["game=duopoly", "dynamics=lola", "steps=150", "plots=false"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "r")]) == 0
    summary = summary_of(tmp_path / "r")
    assert summary["params"] == pytest.approx([27 / 26, 27 / 26], abs=1e-6)
    assert summary["rate/predicted"] == pytest.approx(0.9, rel=1e-13)
    assert summary["rate/measured"] == pytest.approx(0.9, rel=1e-9)


@pytest.mark.parametrize(
    "args,message",
    [
        (["batch=1000000000"], "batch=1000000000 × steps=200 on a game of 2 parameters needs about "),
        (["steps=1000000000000"], "steps=1000000000000 on a game of 2 parameters needs about "),
    ],
)
def test_a_run_that_cannot_fit_in_memory_is_refused_at_once(args, message, tmp_path, capsys):
    """It used to allocate until the operating system killed it."""
    err = refused(args, tmp_path, capsys)
    assert message in err and "GiB of cpu memory" in err and "valid: lower " in err


def test_a_game_too_large_for_the_dense_analysis_runs_without_it(tmp_path):
    """1200 parameters: the eigenvalues of 1200 × 1200 Jacobians are left out, with the reason."""
    options = ["game.dim=600", "steps=2", "plots=false"]
    assert main(["run", "game", *options, "--out", str(tmp_path / "r")]) == 0
    summary = summary_of(tmp_path / "r")
    assert (
        summary["eig/field"] is None and summary["rate/predicted"] is None and summary["eig/update"] is None
    )
    assert (
        summary["rate/predicted_note"]
        == summary["eig/note"]
        == (
            "the game has 1200 parameters; the dense analysis (eigenvalues of d × d Jacobians, O(d³)) "
            "runs on games of at most 1024"
        )
    )
    dist = [row["dist"] for row in read_rows(tmp_path / "r" / "metrics.jsonl")]
    assert summary["rate/measured"] == pytest.approx(dist[2] / dist[1], rel=1e-12)  # a window of 1 step


def test_the_memory_a_batch_needs_is_asked_of_its_device_and_the_host(monkeypatch):
    """bilinear (d = 2, 2 players, float64), steps=9, batch=4: the trajectory 10 × (4·2·8 B + 4096 B
    a step) = 41,600 B; an update 4·8·(16·2 + 6·2²) = 1,792 B; a logged row 4·64·(2 + 2 + 2) = 1,536 B
    and the analysis 16·8·2² = 512 B. On a GPU it holds the path and its stack, the host copies."""
    import torch

    from playground.config import build_config
    from playground.scenarios import game as scenario

    asked = []
    monkeypatch.setattr(scenario, "check_memory", lambda need, device, *_: asked.append((need, str(device))))
    config = build_config(scenario.GameConfig, {"steps": "9", "batch": "4"})
    scenario._check_memory(config, scenario.make_game(config), torch.device("cuda"))
    assert asked == [(2 * 41_600 + 1_792, "cuda"), (2 * 41_600 + 2_048, "cpu")]
    asked.clear()
    scenario._check_memory(config, scenario.make_game(config), torch.device("cpu"))
    assert asked == [(3 * 41_600 + 1_792 + 2_048, "cpu")]
