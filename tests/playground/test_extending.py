"""The extension guide, run: every module of docs/extending.md, written outside the package and
driven through the CLI, each checked against a known answer, and the one-line refusals of a user's
factory (exit 2).

In-process runs name a module as `module:factory`. Registering by name (`PLAYGROUND_MODULES`)
happens at import and for good, so the commands that succeed with it are child processes, started
together; those it refuses import `playground.scenarios` afresh in this process and fail, leaving
nothing behind.
"""

import json
import math
import re
import subprocess
import sys

import pytest
from child_env import REPO, cli_env

import bilevel
from playground.cli import main

GUIDE = REPO / "docs" / "extending.md"
# the guide's modules, by name: each a ```python block whose first line is `# <name>.py`
MODULES = dict(re.findall(r"```python\n# (\w+)\.py\n(.*?)```", GUIDE.read_text(), re.DOTALL))
# modules of these tests only: factories the CLI must refuse, and what the expected failures need
NEEDY = """
import my_bilevel
import my_tasks


def tilted(scale: float) -> my_bilevel.Shift:
    return my_bilevel.shift(target=scale)


def pairs(shots: int = 10) -> dict:
    return {"shots": shots}


def not_a_learner(model, kind, inner_lr: float = 0.01) -> dict:
    return {"model": model}


class Gridless:  # the step family without the optional sample_on_grid
    kind = "regression"

    def __init__(self, family):
        self.family = family

    def sample(self, split, n, generator):
        return self.family.sample(split, n, generator)

    def with_queries(self, queries):
        return Gridless(self.family.with_queries(queries))

    def make_model(self, generator):
        return self.family.make_model(generator)


def gridless(shots: int = 10, queries: int = 10) -> Gridless:
    return Gridless(my_tasks.StepTasks(shots, queries))
"""
TWIN = """
import dataclasses

import my_scenario

SCENARIO = dataclasses.replace(my_scenario.SCENARIO, name="game")
"""
BROKEN = "import a_package_that_is_not_installed\n"


def write_modules(folder) -> None:
    for name, source in {**MODULES, "needy": NEEDY, "twin": TWIN, "broken": BROKEN}.items():
        (folder / f"{name}.py").write_text(source)


@pytest.fixture
def user(tmp_path, monkeypatch):
    """The guide's modules in tmp_path, the working directory; imported afresh by this test and
    forgotten after it (another test may have had a module of the same name)."""
    write_modules(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = (*MODULES, "needy", "twin", "broken")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


def summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def run_ok(*args) -> None:
    assert main(["run", *args]) == 0


def test_the_guide_has_a_module_for_every_kind():
    assert set(MODULES) == {"my_games", "my_dynamics", "my_tasks", "my_learners", "my_bilevel", "my_scenario"}


def test_a_task_family_of_ones_own_is_meta_trained(user):
    run_ok(
        "maml",
        "task=my_tasks:step_tasks",
        "iterations=100",
        "meta_batch=10",
        "log_every=10",
        "eval_every=0",
        "checkpoint_every=0",
        "eval_tasks=100",
        "eval_steps=2",
        "--out",
        "m",
    )
    result = summary(user / "m")
    assert result["status"] == "finished"
    # Unadapted, the best prediction of a·sign(x − b) is 0 (a is symmetric about 0), whose MSE is
    # E[a²] = 4/3 (a ~ U[−2, 2]; over 100 test tasks, 4/3 ± 0.12). One step of adaptation from
    # the meta-trained start must beat it by far, and beat the unadapted model itself.
    assert result["eval/post_adapt_mse"] < 0.75 < 4 / 3 - 4 * 0.12
    assert result["eval/post_adapt_mse"] < 0.75 * result["eval/pre_adapt_mse"]
    losses = [row["loss/meta_train"] for row in rows(user / "m") if "loss/meta_train" in row]
    assert len(losses) == 10 and losses[-1] < 0.75 * losses[0]
    assert (user / "m" / "sine_fits.png").exists()  # drawn from the family's sample_on_grid


def test_a_dynamics_with_a_counter_and_a_period_has_its_closed_form_rate(user):
    lr, beta, k = 0.3, 0.1, 10
    options = ["game=bilinear", "dynamics=my_dynamics:anchored", f"lr={lr}", f"dynamics.beta={beta}"]
    run_ok("game", *options, f"dynamics.k={k}", "steps=200", "plots=false", "--out", "a")
    run_ok("game", *options, f"dynamics.k={k}", "steps=200", "plots=false", "batch=2", "--out", "b")
    # On xy, per eigenvalue ±i of J: z ↦ mz + βa with m = 1 − β − iη for k updates from a restart
    # (z = a), so one period is z ↦ (m^k + β(1 − m^k)/(1 − m))z.
    m = complex(1 - beta, -lr)
    rate = abs(m**k + beta * (1 - m**k) / (1 - m)) ** (1 / k)
    assert rate == pytest.approx(0.9536, abs=1e-4)  # the number the guide quotes
    assert abs(1 - lr * 1j) > 1  # while sim_gd diverges
    one, batch = summary(user / "a"), summary(user / "b")
    assert one["rate/predicted"] == pytest.approx(rate, rel=1e-12)
    assert one["rate/measured"] == pytest.approx(rate, rel=1e-9)
    # vmapped (the counter is a tensor); the batch's median rate passes through float32
    assert batch["rate/measured"] == pytest.approx(rate, rel=1e-7)


def known_rel_error(row: dict) -> float:
    """On `shift` (∂²_ww L_train = I, η = 1/2, λ₀ = 0, w₀ = 0): w_K = (1 − 2^−K)λc, so each
    method's relative error at λ₀ in closed form."""
    half = 0.5
    return {
        "unrolled": lambda: half ** row["steps"],
        "forward": lambda: half ** row["steps"],
        "truncated": lambda: half ** row["last"],  # w_{T−K} held: the last K steps' share
        "ift_neumann": lambda: half ** row["terms"],  # α Σ_{j<J} (1 − α)^j = 1 − 2^−J
        "ift_exact": lambda: 0.0,
        "ift_cg": lambda: 0.0,  # H = I: exact from the first iteration
        "finite_diff": lambda: 0.0,  # F is quadratic: no truncation error
        "first_order": lambda: 1.0,  # L_val does not depend on λ: it returns 0
        "one_step": lambda: 1 - half,  # keeps ξ = η of the implicit term
    }[row["method"]]()


def tolerance(row: dict) -> float:
    """Rounding: exact arithmetic (and 2^−K) to 1e-12; differences of F or of gradients over ε to 1e-9."""
    return 1e-9 if row["method"] == "finite_diff" or row.get("hvp") == "fd" else 1e-12


def test_a_bilevel_problem_of_ones_own_against_every_method(user):
    run_ok("bilevel", "problem=my_bilevel:shift", "inner_steps=40", "plots=false", "--out", "b")
    table = json.loads((user / "b" / "hypergradients.json").read_text())
    methods = {row["method"] for row in table}
    assert methods == {
        "unrolled",
        "truncated",
        "forward",
        "ift_exact",
        "ift_cg",
        "ift_neumann",
        "finite_diff",
        "first_order",
        "one_step",
    }, "a method was added to the comparison: add its known error on `shift` here"
    for row in table:
        assert row["rel_error"] == pytest.approx(known_rel_error(row), abs=tolerance(row)), row
    best = {name: min(r["rel_error"] for r in table if r["method"] == name) for name in methods}
    assert max(best[name] for name in ("unrolled", "forward", "truncated", "ift_neumann")) < 1e-11  # 2^−40
    assert max(best[name] for name in ("ift_exact", "ift_cg", "finite_diff")) < 1e-11
    result, optimum = summary(user / "b"), 6 / math.sqrt(3)  # λ* = cᵀt = (1 + 2 + 3)/√3
    assert result["hypergrad/rel_error"] < 1e-15  # ift_cg, the default
    assert result["outer/lambda"] == pytest.approx(optimum, rel=1e-10)  # 40 steps contracting by 1/2
    assert result["reference/lambda"] == pytest.approx(optimum, rel=1e-14)  # the grid's midpoint


def test_a_hypergradient_method_of_ones_own(user):
    ift_diagonal = ["method=my_bilevel:ift_diagonal", "compare=false", "plots=false"]
    run_ok("bilevel", "problem=my_bilevel:shift", *ift_diagonal, "--out", "s")
    run_ok("bilevel", "problem=ridge", *ift_diagonal, "method.damping=0.1", "outer_steps=1", "--out", "r")
    on_shift = summary(user / "s")
    assert on_shift["hypergrad/method"] == "my_bilevel:ift_diagonal"
    assert on_shift["hypergrad/rel_error"] < 1e-15  # a diagonal Hessian: exact
    assert on_shift["outer/lambda"] == pytest.approx(6 / math.sqrt(3), rel=1e-10)
    # on ridge, by hand: dF/dλ ≈ −e^λ w*ᵀ D⁻¹∇L_val(w*), D = diag(XᵀX) + e^λ + δ
    ridge = bilevel.make_problem("ridge", seed=0)  # the run's seed, 0
    lam, w = ridge.lam0, ridge.inner_solution(ridge.lam0)
    val_grad = ridge.x_val.T @ (ridge.x_val @ w - ridge.y_val) / len(ridge.y_val)
    diagonal = ridge.x_train.square().sum(0) + lam.exp() + 0.1
    approx = -lam.exp() * (w @ (val_grad / diagonal))
    exact = ridge.hypergradient(lam)
    expected = abs((approx - exact) / exact).item()
    assert expected > 0.1  # not diagonal: far from exact
    assert summary(user / "r")["hypergrad/rel_error"] == pytest.approx(expected, rel=1e-9)


def test_a_maml_variant_of_ones_own_gives_the_builtins_numbers(user):
    budget = ["iterations=10", "meta_batch=5", "log_every=5", "eval_every=0", "checkpoint_every=0"]
    options = ["algo.inner_lr=0.05", "algo.inner_steps=2", "eval_tasks=20", "eval_steps=2", "seed=3"]
    run_ok("maml", "algo=my_learners:my_foanil", *budget, *options, "--out", "mine")
    run_ok("maml", "algo=foanil", *budget, *options, "--out", "builtin")
    mine, builtin = summary(user / "mine"), summary(user / "builtin")
    del mine["wall_s"], builtin["wall_s"]
    assert mine == builtin  # bit for bit
    assert rows(user / "mine") == rows(user / "builtin")


def test_a_learner_class_of_ones_own_trains_as_pretrain_and_adapts_its_head(user):
    budget = ["iterations=10", "meta_batch=5", "log_every=5", "eval_every=0", "checkpoint_every=0"]
    options = ["algo.inner_lr=0.05", "eval_tasks=20", "eval_steps=1"]
    run_ok("maml", "algo=my_learners:HeadFinetune", *budget, *options, "--out", "head")
    run_ok("maml", "algo=pretrain", *budget, *options, "--out", "all")
    head, every = summary(user / "head")["eval/mse_by_step"], summary(user / "all")["eval/mse_by_step"]
    assert head[0] == every[0]  # the same training, bit for bit
    assert head[1] != every[1]  # adapted differently: the head only
    losses = [[row for row in rows(user / out) if "loss/meta_train" in row] for out in ("head", "all")]
    assert losses[0] == losses[1] and len(losses[0]) == 2


def test_a_scenario_of_ones_own_runs_as_module_and_attribute(user, capsys):
    run_ok("my_scenario:SCENARIO", "curvature=2", "lr=0.3", "steps=20", "--out", "s")
    result = summary(user / "s")
    assert result["scenario"] == "quadratic_gd"
    assert result["rate/predicted"] == pytest.approx(0.4, rel=1e-15)
    assert result["rate/measured"] == pytest.approx(0.4, rel=1e-12)
    assert [row["x"] for row in rows(user / "s")] == pytest.approx([0.4**t for t in range(21)], rel=1e-12)
    assert main(["run", "my_scenario:SCENARIO", "curvature=2", "lr=1", "--out", "t"]) == 2
    assert capsys.readouterr().err == "playground: error: lr=1.0, curvature=2.0; valid: lr·curvature < 2\n"


REFUSALS = {
    "an option it does not take": (
        ["game", "dynamics=my_dynamics:anchored", "dynamics.gamma=1"],
        "dynamics 'my_dynamics:anchored' takes no option 'gamma'; valid: dynamics.beta, dynamics.k",
    ),
    "a required option left out": (
        ["bilevel", "problem=needy:tilted"],
        "problem 'needy:tilted' needs option(s) scale that have no default",
    ),
    "a wrong return type": (
        ["maml", "task=needy:pairs"],
        "task 'needy:pairs' returned dict; valid: a function returning a metalearn.TaskFamily",
    ),
    "its own ValueError": (
        ["game", "dynamics=my_dynamics:anchored", "dynamics.beta=1.5"],
        "beta=1.5, k=10; valid: 0 <= beta < 1, k >= 1",
    ),
    "a factory the module imports": (
        ["maml", "algo=my_learners:GradientMetaLearner"],
        "algo 'my_learners:GradientMetaLearner' is not a function defined in my_learners; valid: "
        "module:factory naming a function (or class) defined in that module that returns a "
        "metalearn.MetaLearner",
    ),
    "a module that cannot be imported": (
        ["game", "game=broken:anything"],
        "cannot load game 'broken:anything': No module named 'a_package_that_is_not_installed'",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_user_factory_is_refused_in_one_line(user, capsys, case):
    args, message = REFUSALS[case]
    assert main(["run", *args, "--out", "r"]) == 2
    assert capsys.readouterr().err == f"playground: error: {message}\n"
    assert not (user / "r").exists()  # nothing ran


def test_a_learner_factory_is_refused_before_the_run(user, capsys):
    assert main(["run", "maml", "algo=needy:not_a_learner", "--out", "r"]) == 2
    message = "algo 'needy:not_a_learner' returned dict; valid: a function returning a metalearn.MetaLearner"
    assert capsys.readouterr().err == f"playground: error: {message}\n"
    assert not (user / "r").exists()


def test_a_regression_family_needs_no_sample_on_grid(user):
    budget = ["iterations=2", "meta_batch=2", "eval_every=0", "checkpoint_every=0", "eval_tasks=2"]
    run_ok("maml", "task=needy:gridless", *budget, "--out", "m")
    assert summary(user / "m")["status"] == "finished"


def test_a_scenario_of_ones_own_sweeps_as_module_and_attribute(user):
    assert main(["sweep", "my_scenario:SCENARIO", "lr=0.1,0.3", "steps=5", "--out", "sw"]) == 0
    table = (user / "sw" / "sweep.csv").read_text()
    assert table.count("finished") == 2


MODULE_REFUSALS = {
    "a second scenario of the same name": (
        "my_scenario,twin",
        "PLAYGROUND_MODULES: scenario 'game' of twin is already registered by playground.scenarios.game; "
        "give it another name",
    ),
    "a module that cannot be imported": (
        "my_scenario,broken",
        "PLAYGROUND_MODULES: cannot load module 'broken': No module named 'a_package_that_is_not_installed'",
    ),
}


@pytest.mark.parametrize("case", MODULE_REFUSALS)
def test_playground_modules_refuses_in_one_line(user, capsys, monkeypatch, case):
    modules, message = MODULE_REFUSALS[case]
    monkeypatch.setenv("PLAYGROUND_MODULES", modules)
    # PLAYGROUND_MODULES is read when playground.scenarios is first imported: forget it for this
    # test, so that `main` imports it afresh (and fails, leaving nothing behind)
    monkeypatch.delitem(sys.modules, "playground.scenarios")
    assert main(["list"]) == 2
    assert capsys.readouterr() == ("", f"playground: error: {message}\n")
    assert "playground.scenarios" not in sys.modules


# Child processes, each importing its own PLAYGROUND_MODULES: (modules, arguments).
CHILDREN = {
    "list": ("my_scenario,my_games", "list"),
    "scenario": ("my_scenario", "run quadratic_gd curvature=2 lr=0.3 steps=20 --out s"),
    "game": ("my_games", "run game game=potential game.dim=2 game.coupling=0.8 lr=0.1 plots=false --out g"),
}


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """Each of CHILDREN run as `python -m playground` in one folder holding the guide's modules,
    all at once: {name: (folder, CompletedProcess)}."""
    folder = tmp_path_factory.mktemp("plugins")
    write_modules(folder)
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "playground", *args.split()],
            cwd=folder,
            env=cli_env(PLAYGROUND_MODULES=modules),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (modules, args) in CHILDREN.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=240)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return folder, done


def test_a_scenario_registered_through_playground_modules(children):
    folder, done = children
    listed = done["list"]
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    at = lines.index("quadratic_gd: gradient descent on (h/2)x²: measured vs predicted rate")
    assert "    curvature (float, default 1.0): h, the curvature of f(x) = (h/2)x² [valid: > 0]" in lines[at:]
    assert "    x0 (float, default 1.0): starting point" in lines[at:]
    ran = done["scenario"]
    assert ran.returncode == 0, ran.stderr
    assert summary(folder / "s")["rate/measured"] == pytest.approx(0.4, rel=1e-12)


def test_a_game_registered_by_name_is_listed_and_runs(children):
    folder, done = children
    lines = done["list"].stdout.splitlines()
    options = "dim (int, default 1), coupling (float, default 0.5)"
    assert f"    game.<keyword> with game=potential: {options}" in lines
    entry = next(line for line in lines if line.startswith("    potential: "))
    assert entry.endswith("[game.dim (int, default 1), game.coupling (float, default 0.5)]")
    ran = done["game"]
    assert ran.returncode == 0, ran.stderr
    # sim_gd's map I − ηH, H with eigenvalues 1 ± c: ρ = max |1 − η(1 ± c)| = 0.98
    rate = max(abs(1 - 0.1 * (1 - 0.8)), abs(1 - 0.1 * (1 + 0.8)))
    result = summary(folder / "g")
    assert result["rate/predicted"] == pytest.approx(rate, rel=1e-12)
    assert result["rate/measured"] == pytest.approx(rate, rel=1e-6)
    # game.dim=2 reached the factory: the eigenvalues 1 ± c of H, each twice
    assert sum(result["eig/field"], []) == pytest.approx([0.2, 0.0] * 2 + [1.8, 0.0] * 2, abs=1e-12)
