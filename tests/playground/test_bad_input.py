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
        (["run", "toy", "lr=0.1", "lr=0.2"], "option 'lr' given twice (lr=0.1, lr=0.2)"),
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
        (["run", "icl", "context=1000000"], "valid: lower batch, eval_tasks, context, dim, layers or width"),
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
