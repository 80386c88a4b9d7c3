"""Captured meta-steps: refused where they cannot apply; `compile` trains the eager curve.

`cuda_graph` needs a GPU: `make gpu-check` (tools/gpu_check.py) checks its curve against eager.
"""

import copy

import pytest
import torch

from metalearn.fewshot import Sine
from metalearn.maml import make_learner
from metalearn.maml.engines import functional_meta_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(capture="jit"), "unknown capture 'jit'; valid: none, compile, cuda_graph"),
        (
            dict(capture="compile", engine="learn2learn"),
            "capture='compile' with engine='learn2learn'; valid: capture='none', or engine='functional'",
        ),
        (
            dict(capture="compile", algo="reptile"),
            "algo 'reptile' takes no option 'capture'; valid: inner_lr",
        ),
        (dict(capture="cuda_graph"), "capture='cuda_graph' needs the model on a CUDA device; it is on cpu"),
    ],
)
def test_refused_where_it_cannot_apply(options, message):
    family = Sine(10, 10)
    options = {"algo": "maml", **options}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_learner(
            options.pop("algo"), family.make_model(torch.Generator().manual_seed(0)), "regression", **options
        )


def training_curve(capture: str, steps: int) -> tuple[list[float], torch.Tensor]:
    family = Sine(10, 10)
    g = torch.Generator().manual_seed(0)
    learner = make_learner("maml", family.make_model(g), "regression", capture=capture)
    losses = [learner.meta_step(family.sample("train", 25, g)) for _ in range(steps)]
    return losses, torch.cat([p.detach().flatten() for p in learner.model.parameters()])


@pytest.mark.slow
def test_compiled_training_curve_equals_eager():
    """Issue 12: 100 meta-steps of sine MAML (K = 10, meta-batch 25). torch.compile takes about a
    minute to compile on a 2-core machine, hence slow."""
    eager, eager_params = training_curve("none", 100)
    compiled, compiled_params = training_curve("compile", 100)
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled_params, eager_params, rtol=1e-5, atol=1e-5)
    assert eager[-1] < eager[0]  # it trained


@pytest.mark.parametrize("algo", ["maml", "metasgd"])
def test_a_checkpoint_saved_on_a_gpu_resumes_on_the_cpu(algo):
    """On a GPU Adam is capturable, and its saved groups say so; a CPU learner loading them must not
    be (capturable Adam refuses CPU parameters) and must then step as if it had never stopped."""
    family = Sine(10, 10)
    g = torch.Generator().manual_seed(0)
    batches = [family.sample("train", 5, g) for _ in range(3)]
    model = family.make_model(g)
    running = make_learner(algo, model, "regression")
    running.meta_step(batches[0])
    state = copy.deepcopy(running.state_dict())  # as written to a checkpoint, not the live tensors
    assert not running.optimizer.param_groups[0]["capturable"]
    state["optimizer"]["param_groups"] = [
        {**group, "capturable": True} for group in state["optimizer"]["param_groups"]
    ]
    resumed = make_learner(algo, family.make_model(torch.Generator().manual_seed(1)), "regression")
    resumed.load_state_dict(state)
    assert not resumed.optimizer.param_groups[0]["capturable"]
    for batch in batches[1:]:
        assert resumed.meta_step(batch) == running.meta_step(batch)
    for a, b in zip(resumed.meta_parameters(), running.meta_parameters()):
        assert torch.equal(a, b)


def test_compile_captures_the_eager_meta_loss(monkeypatch):
    """`capture=compile` hands the functional meta-loss itself to torch.compile (what the compiler
    makes of it is the slow test's): with torch.compile replaced by a recorder that returns what it
    is given, the captured learner steps as the eager one, bit for bit."""
    handed = []
    monkeypatch.setattr(torch, "compile", lambda function: handed.append(function) or function)
    family = Sine(10, 10)
    g = torch.Generator().manual_seed(0)
    model, tasks = family.make_model(g), family.sample("train", 5, g)
    eager = make_learner("maml", copy.deepcopy(model), "regression")
    captured = make_learner("maml", copy.deepcopy(model), "regression", capture="compile")
    assert handed == [functional_meta_loss]
    assert captured.meta_step(tasks) == eager.meta_step(tasks)
    for mine, theirs in zip(captured.meta_parameters(), eager.meta_parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_compile_on_a_machine_without_a_gpu_logs_no_cuda_runtime_warning(capsys):
    """Issue 26: a successful `capture=compile` run on a CPU printed torch's "No CUDA runtime is
    found, using CUDA_HOME=..." (logged when TorchInductor first imports torch.utils.cpp_extension
    where a CUDA toolkit is installed) on stderr. That one warning is dropped; any other is kept."""
    import logging

    make_learner("maml", Sine(10, 10).make_model(torch.Generator()), "regression", capture="compile")
    logger = logging.getLogger("torch.utils.cpp_extension")
    logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
    assert capsys.readouterr().err == ""
    logger.warning("another warning")
    assert capsys.readouterr().err.endswith("another warning\n")  # in torch's format, once dynamo is loaded
