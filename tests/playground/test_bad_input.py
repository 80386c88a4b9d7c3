"""Bad input is refused at the boundary, by name, with exit 2 and one line; nothing is created."""

import pytest

from playground.cli import main


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "toy", "lr=inf"], "lr=inf: not finite"),
        (["run", "toy", "lr=nan"], "lr=nan: not finite"),
        (["run", "toy", "init=nan,1"], "init=nan,1: not finite"),
        (["run", "toy", "curvature=-inf"], "curvature=-inf: not finite"),
        (["run", "game", "lr=inf", "steps=50"], "lr=inf: not finite"),
        (["run", "game", "dynamics=consensus", "gamma=inf"], "gamma=inf: not finite"),
        (["run", "game", "dynamics=consensus", "gamma=nan"], "gamma=nan: not finite"),
        (
            ["run", "toy", "seed=1e30"],
            "seed=1000000000000000019884624838656; valid: an integer >= 0 and <= 9223372036854775807",
        ),
        (["run", "toy", "seed=-1"], "seed=-1; valid: an integer >= 0"),
        (["run", "toy", "seed=9223372036854775808"], "seed=9223372036854775808; valid"),
        (["run", "toy", "threads=-1"], "threads=-1; valid: an integer >= 0"),
        (["run", "toy", "lr=0.1", "lr=0.2"], "option 'lr' given twice, as '0.1' and '0.2'; give it once"),
        (["run", "toy", "init=1,,2"], "init='1,,2' has an empty item"),
        (["run", "toy", "init=1,"], "init='1,' has an empty item"),
        (["run", "toy", "fail=maybe"], "unknown fail 'maybe'; valid: bug, input"),
        (["sweep", "toy", "lr=0.1", "lr=0.2"], "option 'lr' given twice"),
        (["sweep", "toy", "lr=0.1,0.10"], "repeats a value"),
        (["sweep", "toy", "init=1,,2;3"], "init='1,,2' has an empty item"),
        (["sweep", "toy", "lr=0.1,inf"], "lr=inf: not finite"),
        (["run", "maml", "task=glyphs", "ways=1"], "ways=1; valid: an integer >= 2"),
        (["run", "maml", "inner_lr=inf"], "inner_lr=inf: not finite"),
        (["run", "icl", "init_scale=nan"], "init_scale=nan: not finite"),
        (["run", "icl", "eval_tasks=1"], "eval_tasks=1; valid: >= 24 for model=lsa"),
        (["run", "icl", "model=gpt", "eval_tasks=10"], "eval_tasks=10; valid: >= 130 for model=gpt"),
        (["run", "toy", "device=tpu"], "device='tpu'; valid: auto, cpu, cuda, cuda:N"),
        (["run", "toy", "device=cpu:1"], "device='cpu:1'; valid: auto, cpu, cuda, cuda:N"),
        (["run", "game", "device=cpu:0"], "device='cpu:0'; valid: auto, cpu, cuda, cuda:N"),
        (["run", "toy", "threads=100000"], "threads=100000 but this machine gives the run"),
        (["run", "maml", "threads=100000"], "threads=100000 but this machine gives the run"),
        (
            ["run", "maml", "task=omniglot", "data_dir=no_omniglot_here"],
            "no Omniglot under data_dir='no_omniglot_here': ",
        ),
        (["run", "maml", "task=omniglot", "data_dir=no_omniglot_here"], "pass download=true"),
        # settings that ask for more memory than any machine has: refused before anything is allocated
        (["run", "maml", "meta_batch=1000000000"], "meta_batch=1000000000 with eval_tasks=500 needs about"),
        (["run", "maml", "eval_tasks=1000000000"], "valid: lower meta_batch or eval_tasks"),
        (["run", "icl", "batch=10000000000"], "batch=10000000000, eval_tasks=4096 with context=10"),
        (["run", "icl", "model=gpt", "width=100000", "eval_tasks=200002"], "width=100000 needs about"),
        (
            ["run", "icl", "context=1000000", "ridge=1"],
            "valid: lower batch, eval_tasks, context, dim, layers or width",
        ),
        (["run", "metarl", "meta_batch=10000000"], "meta_batch=10000000, episodes=20, eval_tasks=40"),
        (["run", "metarl", "hidden=1000000,1000000"], "hidden=1000000,1000000 needs about"),
        (["run", "bilevel", "problem.dim=1000000"], "problem=ridge with problem.dim=1000000, problem.train="),
        (["run", "bilevel", "problem=lr_horizon", "problem.chains=1000000000"], "problem.chains=1000000000"),
        (["run", "bilevel", "inner_steps=1000000000000"], "lower problem.dim, problem.train, problem.val or"),
        (["run", "deq", "dim=1000000"], "dim=1000000, max_iter=500 needs about"),
        (["run", "deq", "task=digits", "max_iter=100000000"], "max_iter=100000000"),
        (["run", "stn", "hidden=1000000"], "hidden=1000000, depth=2 needs about"),
        (["run", "darts", "width=1000000"], "nodes=3, cells=1, width=1000000 needs about"),
        (["run", "darts", "nodes=100000"], "valid: lower width, nodes or cells"),
        (["run", "game", "game=os:system"], "game 'os:system' is not a function defined in os"),
        (["run", "game", "game=sys:exit"], "game 'sys:exit' is not a function defined in sys"),
        (["run", "game", "game=builtins:print"], "is not a function defined in builtins"),
        (["run", "game", "game=json:JSONDecoder"], "is not a function defined in json"),
        (["run", "game", "game=json:loads"], "game 'json:loads' needs option(s) s that have no default"),
        (["run", "game", "game=no_such_module_x:f"], "cannot load game 'no_such_module_x:f'"),
    ],
)
def test_refused_by_name_with_status_2(toy, capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("playground: error: ")
    assert message in lines[0]
    assert captured.out == ""  # nothing ran (builtins:print printed nothing)
    assert list(tmp_path.iterdir()) == []


def test_cuda_without_a_gpu_is_bad_input(toy, capsys, tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: device=cuda is valid here")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "toy", "device=cuda"]) == 2
    assert "device='cuda' but torch sees no CUDA GPU here; valid: auto, cpu" in capsys.readouterr().err


def test_a_user_game_function_must_return_a_game(toy, capsys, tmp_path, monkeypatch):
    (tmp_path / "returns_check_games.py").write_text(
        "import games\n"
        "def good(scale=1.0):\n    return games.make_game('bilinear')\n"
        "def bad():\n    return 42\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["run", "game", "game=returns_check_games:bad", "--out", "b"]) == 2
    assert (
        "game 'returns_check_games:bad' returned int; valid: a function returning a games.Game"
        in capsys.readouterr().err
    )
    assert main(["run", "game", "game=returns_check_games:good", "steps=3", "plots=false", "--out", "g"]) == 0


def test_a_diverging_game_is_a_result_and_no_analysis_hangs(cli, tmp_path):
    out = cli("run", "game", "init=1e308,1e308", "steps=5", "--out", "g", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "diverged at step" in out.stdout


def test_more_ways_than_a_split_has_classes_is_refused_before_the_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a small glyphs family, generated into its own cache: Ogham's letters, 17 of them for training
    small = ["task.scripts=ogham", "task.per_class=2", f"task.cache_dir={tmp_path / 'cache'}"]
    assert main(["run", "maml", "task=glyphs", "ways=200", *small, "--out", "r"]) == 2
    assert capsys.readouterr().err == (
        "playground: error: ways=200 exceeds the 17 classes of the train split; valid: 1..17\n"
    )
    assert not (tmp_path / "r").exists()


TINY_MAML = ["run", "maml", "iterations=2", "eval_every=0", "eval_tasks=2", "eval_steps=1", "meta_batch=2"]
TINY_ICL = ["run", "icl", "dim=3", "context=5", "steps=4", "batch=16", "eval_tasks=32", "plots=false"]


@pytest.mark.parametrize(
    "args, line",
    [
        # issue 26 (fuzz): a factory keyword text cannot express is no option (it crashed reading it)
        (
            [*TINY_ICL, "model.dtype=float64"],
            "model 'lsa' takes no option 'dtype'; valid: model.dim, model.layers, model.heads, "
            "model.init_scale",
        ),
        ([*TINY_ICL, "model=gpt", "model.generator="], "model 'gpt' takes no option 'generator'; valid: "),
        # a learner's options as algo.<keyword> are refused before the run directory is opened
        ([*TINY_MAML, "algo.engine=FUNCTIONAL"], "unknown engine 'FUNCTIONAL'; valid: functional, learn2"),
        ([*TINY_MAML, "algo.capture=jit"], "unknown capture 'jit'; valid: auto, none, compile, cuda_graph"),
        (
            [*TINY_MAML, "algo=anil", "algo.capture=cuda_graph", "device=cpu"],
            "capture=cuda_graph with device=cpu (cpu); valid: a CUDA device, or capture=none/compile",
        ),
        ([*TINY_MAML, "algo.meta_lr=-1"], "meta_lr=-1.0; valid: a number > 0"),
        ([*TINY_MAML, "algo.inner_lr=0"], "inner_lr=0.0; valid: a number > 0"),
        (
            [*TINY_MAML, "algo=imaml", "algo.meta_lr=1e38"],
            "meta_lr=1e+38; valid: a number > 0 and <= 3.4e+37",
        ),
        ([*TINY_MAML, "algo.inner_steps=0"], "inner_steps=0; valid: an integer >= 1"),
        ([*TINY_MAML, "algo=imaml", "algo.cg_iters=-1"], "cg_iters=-1; valid: an integer >= 1"),
        ([*TINY_MAML, "algo=imaml", "algo.prox_lambda=0"], "prox_lambda=0.0; valid: a number > 0"),
        ([*TINY_MAML, "algo.meta_lr=0.01", "meta_lr=0.02"], "meta_lr= and algo.meta_lr= both given"),
        # the memory check measures a task of one shot and one query and scales it: a task as large as
        # the run asks for (here, past what torch can index) is never drawn
        ([*TINY_MAML, "shots=18446744073709551616"], "valid: lower meta_batch or eval_tasks (or shots,"),
        ([*TINY_MAML, "eval_queries=1000000000000"], "valid: lower meta_batch or eval_tasks (or shots,"),
        # user text in a refusal is quoted: a newline in it would print a second line
        (["run", "deq", "dim=4", "tensorboard=a\nb", "tensorboard=c"], "given twice, as 'a\\nb' and 'c'"),
        (["run", "toy", "init=nan,\n1"], "init=nan,1: not finite"),
    ],
)
def test_a_refusal_is_one_line_before_anything_is_written(toy, capsys, tmp_path, monkeypatch, args, line):
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--out", "r"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("playground: error: ")
    assert line in captured.err
    assert list(tmp_path.iterdir()) == []  # not even the run directory


def test_algo_keywords_are_the_options_of_the_same_names(tmp_path, monkeypatch):
    """`algo.capture=auto` is `capture=auto` (the factory knows no `auto`: it was refused after the
    run directory was written), and so for every learner option the config has a name for."""
    from playground.config import build_config
    from playground.scenarios.maml import MamlConfig

    learners = (("maml", {"capture": "auto", "engine": "learn2learn"}), ("imaml", {"cg_iters": "3"}))
    for algo, options in learners:
        plain = build_config(MamlConfig, {"algo": algo, "meta_lr": "0.01", **options})
        spelled = build_config(
            MamlConfig, {"algo": algo, "algo.meta_lr": "0.01", **{f"algo.{k}": v for k, v in options.items()}}
        )
        assert spelled == plain and spelled.algo_options == {}
    assert build_config(MamlConfig, {"algo.capture": "auto"}).capture == "none"  # on this CPU
    monkeypatch.chdir(tmp_path)
    assert main([*TINY_MAML, "checkpoint_every=0", "algo.capture=auto", "--out", "r"]) == 0
