"""The `device` option across scenarios, benchmarks and `make gpu-check`, as far as a CPU can tell.

What only a GPU can show (runs on CUDA, engine equality there, CUDA graphs) is `make gpu-check`;
its test below runs the same script's checks on the CPU, in this process (the script's refusal
without a GPU runs as the command itself).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from playground.config import build_config
from playground.errors import BadInput
from playground.scenarios import maml
from playground.scenarios.maml import MamlConfig

REPO = Path(__file__).parents[2]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


def load_gpu_check():
    """tools/gpu_check.py as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    return gpu_check


GPU_COMMANDS = {
    "benchmarks maml": ["-m", "benchmarks", "maml", "--device", "cuda"],
    "benchmarks games icl": ["-m", "benchmarks", "games", "icl", "--device", "cuda"],
    "gpu check": ["tools/gpu_check.py"],
}


@pytest.fixture(scope="module")
def gpu_commands():
    """Each of GPU_COMMANDS run as its own process, all at once: {name: CompletedProcess}."""
    started = {
        name: subprocess.Popen(
            [sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in GPU_COMMANDS.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


@no_gpu
@pytest.mark.parametrize("command", GPU_COMMANDS)
def test_gpu_commands_exit_2_with_one_line_without_a_gpu(gpu_commands, command):
    out = gpu_commands[command]
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "sees no CUDA GPU" in out.stderr
    assert out.stdout == ""


def test_engine_defaults_to_functional_on_a_gpu(monkeypatch):
    assert build_config(MamlConfig, {"task": "glyphs"}).engine == "learn2learn"  # on this CPU
    monkeypatch.setattr(maml, "resolve_device", lambda name: torch.device("cuda"))
    assert build_config(MamlConfig, {"task": "glyphs", "device": "cpu"}).engine == "functional"
    chosen = build_config(MamlConfig, {"task": "glyphs", "device": "cpu", "engine": "learn2learn"})
    assert chosen.engine == "learn2learn"


@pytest.mark.parametrize(
    "overrides, on_cpu, on_gpu",
    [
        ({}, "none", "cuda_graph"),
        ({"task": "glyphs", "algo": "metasgd"}, "none", "cuda_graph"),
        ({"algo": "fomaml", "capture": "none"}, "none", "none"),
        ({"capture": "compile"}, "compile", "compile"),
        ({"task": "glyphs", "engine": "learn2learn"}, "none", "none"),
        ({"algo": "reptile"}, "none", "none"),
        ({"algo": "imaml"}, "none", "none"),
    ],
)
def test_capture_defaults_to_a_cuda_graph_where_a_gpu_step_allows_it(monkeypatch, overrides, on_cpu, on_gpu):
    assert build_config(MamlConfig, overrides).capture == on_cpu
    monkeypatch.setattr(maml, "resolve_device", lambda name: torch.device("cuda"))
    assert build_config(MamlConfig, {**overrides, "device": "cpu"}).capture == on_gpu


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"capture": "jit"}, "unknown capture 'jit'; valid: auto, none, compile, cuda_graph"),
        (
            {"capture": "compile", "engine": "learn2learn"},
            "capture=compile with algo=maml, engine=learn2learn; valid",
        ),
        ({"capture": "compile", "algo": "reptile"}, "algo 'reptile' takes no option 'capture'"),
        (
            {"capture": "cuda_graph", "device": "cpu"},
            "capture=cuda_graph with device=cpu (cpu); valid: a CUDA device",
        ),
    ],
)
def test_capture_is_refused_where_it_cannot_apply(overrides, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        build_config(MamlConfig, overrides)
    assert "\n" not in str(error.value)


def test_a_gpu_check_that_raises_is_a_fail_not_the_end():
    gpu_check = load_gpu_check()

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access\nsecond line")

    failed = ("x", False, "raised RuntimeError: CUDA error: an illegal memory access")
    assert gpu_check.attempt("x", broken) == failed
    assert gpu_check.attempt("y", lambda: (True, "fine")) == ("y", True, "fine")


def test_gpu_check_runs_on_the_cpu(tmp_path, capsys):
    """`make gpu-check`'s script with `--device cpu --quick` (about 15 s on 2 shared cores)."""
    report = tmp_path / "check.md"
    threads = torch.get_num_threads()
    try:
        status = load_gpu_check().main(["--device", "cpu", "--quick", "--out", str(report)])
    finally:
        torch.set_num_threads(threads)  # the script sets one thread for its CPU checks
    assert status == 0, capsys.readouterr()
    text = report.read_text()
    assert "| FAIL |" not in text and text.count("| PASS |") >= 10
    checks = (
        "plumbing: game",
        "plumbing: maml",
        "plumbing: icl",
        "plumbing: metarl",
        "resumed on the CPU",
        "resumed on the device",
        "engines: maml conv-4",
        "engines: metasgd conv-4",
        "training: sine MAML",
    )
    for check in checks:
        assert check in text, check
