"""The `deq` scenario through the CLI entry: the linear task's errors against its closed forms,
solves that hit their cap or diverge reported as such, the training tasks on tiny budgets, and
bad input."""

import json
import math

import pytest
import torch

from playground.cli import main


def run_deq(tmp_path, *overrides):
    assert main(["run", "deq", *overrides, "--out", str(tmp_path / "r")]) == 0
    return json.loads((tmp_path / "r" / "summary.json").read_text())


def rows(tmp_path):
    return [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]


def test_linear_meets_its_closed_forms(tmp_path):
    summary = run_deq(tmp_path, "task=linear", "dim=6", "batch=4")
    assert summary["deq/forward_error"] < 1e-8 and summary["deq/grad_error"] < 1e-6
    assert summary["deq/converged"] is True and summary["jacobian/spectral_radius"] == pytest.approx(0.9)
    for solver in ("fixed_point", "anderson", "broyden"):
        assert summary[f"solver/{solver}_forward_error"] < 1e-8
    assert summary["solver/broyden_nfe"] <= 2 * 6 + 1  # Gay 1979: 2d steps on an affine map
    assert summary["solver/fixed_point_nfe"] > 2 * summary["solver/anderson_nfe"]
    for backward in ("ift_exact", "ift_cg", "ift_neumann", "phantom_k500_tau1", "unrolled"):
        assert summary[f"backward/{backward}_grad_error"] < 1e-6, backward
    assert summary["backward/phantom_k5_tau0.5_grad_error"] > 1e-2  # biased, by design
    assert 0.5 < summary["grad/phantom_cosine"] < 1 - 1e-6
    table = json.loads((tmp_path / "r" / "comparison.json").read_text())
    assert [r["solver"] for r in table[:3]] == ["fixed_point", "anderson", "broyden"]
    for name in ("residual_vs_nfe", "spectrum"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    "overrides", [["backward=ift", "adjoint=cg"], ["solver=broyden", "backward=unrolled"]]
)
def test_linear_with_other_solvers_and_backwards(tmp_path, overrides):
    summary = run_deq(tmp_path, "task=linear", "dim=5", "batch=3", "compare=false", "plots=false", *overrides)
    assert summary["deq/forward_error"] < 1e-8 and summary["deq/grad_error"] < 1e-6


def test_a_solve_that_hits_its_cap_is_logged(tmp_path):
    summary = run_deq(
        tmp_path, "task=linear", "solver=fixed_point", "max_iter=5", "compare=false", "plots=false"
    )
    assert summary["deq/converged"] is False and summary["deq/unconverged_steps"] == 1
    assert summary["deq/nfe"] == 5 and summary["deq/residual"] > 1e-3  # ρ = 0.9: 0.9⁵ left
    assert rows(tmp_path)[0]["deq/converged"] == 0 and rows(tmp_path)[0]["deq/nfe"] == 5


TINY = ["steps=12", "train=256", "val=64", "dim=8", "width=8", "diagnose_every=6"]


def test_synthetic1d_logs_every_solve_and_the_diagnostics(tmp_path):
    summary = run_deq(tmp_path, "task=synthetic1d", *TINY, "jac_reg=1")
    logged = rows(tmp_path)
    training = [r for r in logged if "loss/train" in r]
    assert len(training) == 12 and all(
        {"deq/nfe", "deq/residual", "deq/converged", "jac/penalty"} <= set(r) for r in training
    )
    diagnostics = [r for r in logged if "jacobian/spectral_radius" in r]
    assert [r["step"] for r in diagnostics] == [0, 6, 12]
    assert all(0 < r["jacobian/spectral_radius"] <= r["jacobian/spectral_radius_max"] for r in diagnostics)
    assert all(abs(r["grad/cosine_to_ift"] - 1) < 1e-4 for r in diagnostics)  # Neumann adjoint: ρ^20 error
    assert summary["deq/converged"] is True and summary["deq/residual"] <= 1e-4
    assert summary["solver/fixed_point_nfe"] >= summary["solver/anderson_nfe"]
    assert math.isfinite(summary["val/mse"]) and summary["val/mse_clean"] < summary["val/mse"]
    for name in ("residual_vs_nfe", "training", "spectrum", "fit"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


def test_a_diverging_fixed_point_ends_the_run(tmp_path):
    summary = run_deq(tmp_path, "task=synthetic1d", *TINY, "solver=fixed_point", "lr=100", "plots=false")
    assert summary["status"] == "diverged" and summary["diverged"] is True
    assert summary["diverged_step"] < 12 and summary["steps_run"] == summary["diverged_step"]


TRAINING = ["task=synthetic1d", "steps=2", "val=32", "dim=4", "width=4", "diagnose_every=1"]
QUIET = ["compare=false", "plots=false"]


def test_a_model_diverged_at_a_diagnosis_ends_the_run_not_the_process(cli, tmp_path):
    """lr = 1e30: after the first step the cell's weights are non-finite when step 1 diagnoses it;
    its Jacobians were handed to LAPACK's eigensolver, which crashed the process (exit 139, no
    summary). Run as a child, so a crash is this test's failure and not the session's end."""
    done = cli("run", "deq", *TRAINING, "train=64", "lr=1e30", *QUIET, "--out", "r")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_step"] == summary["steps_run"] == 1
    diagnosis = rows(tmp_path)[-2]  # step 1's diagnostics, then its training row
    assert diagnosis["step"] == 1 and "jacobian/spectral_radius" in diagnosis["nonfinite"]


def test_an_exact_adjoint_of_a_diverged_model_is_no_singular_matrix_error(tmp_path):
    """lr = 7.1e16 on two examples: the diagnosis's exact adjoint (I − Jᵀ)u = g met a singular
    I − Jᵀ, and torch.linalg.solve raised; the adjoint is NaN and the run ends diverged."""
    summary = run_deq(tmp_path, *TRAINING, "train=2", "batch_size=none", "lr=7.1e16", *QUIET)
    assert summary["status"] == "diverged" and summary["diverged_step"] == 1


def test_anderson_without_regularisation_runs(tmp_path):
    """lam = 0: memory 6 > dim 4 makes Anderson's system singular (torch.linalg.solve raised);
    the minimum-norm weights solve every step to the tolerance."""
    summary = run_deq(tmp_path, *TRAINING, "train=64", "lam=0", *QUIET)
    assert summary["status"] == "finished" and summary["deq/unconverged_steps"] == 0
    assert summary["deq/converged"] is True and summary["deq/residual"] <= 1e-4


def test_digits_classifier_learns(tmp_path):
    summary = run_deq(
        tmp_path,
        "task=digits",
        "steps=60",
        "dim=16",
        "width=32",
        "compare=false",
        "plots=false",
        "backward=phantom",
    )
    assert summary["test/accuracy"] > 0.7  # chance is 0.1
    assert summary["grad/phantom_cosine"] == summary["grad/cosine_to_ift"]  # the training backward is phantom


@pytest.mark.slow
def test_jacobian_regularisation_lowers_nfe_and_spectral_radius(tmp_path):
    """Bai, Koltun & Kolter (2021, Fig. 5): with γ = 4 the fixed point needs fewer evaluations."""
    runs = {}
    for gamma in (0, 4):
        runs[gamma] = run_deq(tmp_path / str(gamma), "task=synthetic1d", f"jac_reg={gamma}", "plots=false")
    assert runs[4]["deq/nfe"] < runs[0]["deq/nfe"]
    assert runs[4]["solver/fixed_point_nfe"] < runs[0]["solver/fixed_point_nfe"]
    assert runs[4]["jacobian/spectral_radius"] < 0.6 * runs[0]["jacobian/spectral_radius"]
    assert runs[4]["val/mse"] < 1.1 * runs[0]["val/mse"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["task=lstm"], "task"),
        (["solver=newton"], "solver"),
        (["radius=1.2"], "radius=1.2; valid: 0 <= radius < 1"),
        (
            ["task=synthetic1d", "radius=0.5"],
            "radius=0.5 does not apply to task=synthetic1d; it applies to: linear",
        ),
        (
            ["jac_reg=1"],
            "jac_reg=1.0 does not apply to task=linear; it applies to: synthetic1d, digits, mnist",
        ),
        (["memory=3"], None),
        (
            ["solver=broyden", "memory=3"],
            "memory=3 does not apply to solver=broyden; it applies to: solver=anderson",
        ),
        (["backward=phantom", "adjoint=cg"], "adjoint=cg does not apply to backward=phantom"),
        (["damping=0.5"], "damping=0.5 does not apply to backward=ift; it applies to: backward=phantom"),
        (["adjoint=exact", "adjoint_iters=5"], "adjoint_iters=5 does not apply to adjoint=exact"),
        (["adjoint=neumann", "adjoint_tol=1e-6"], "adjoint_tol=1e-06 does not apply to adjoint=neumann"),
        (["download=true"], "download=true does not apply to task=linear; it applies to: mnist"),
        (
            ["adjoint=cg", "adjoint_tol=1.7e308"],
            "adjoint_tol=1.7e+308: a relative residual >= 1 is met by u = 0 before any CG iteration, so no "
            "gradient would flow; valid: 0 <= adjoint_tol < 1",
        ),
        (["task=synthetic1d", "lr=3.5e37"], "lr=3.5e+37; valid: a number > 0 and <= 3.4e+37"),
        (
            ["task=mnist", "data_dir=/nonexistent"],
            "no MNIST under data_dir='/nonexistent'; valid: download=true",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(overrides, message, tmp_path, capsys):
    if message is None:  # memory applies to the default solver, anderson: accepted
        assert (
            run_deq(tmp_path, *overrides, "dim=4", "compare=false", "plots=false")["deq/forward_error"] < 1e-8
        )
        return
    assert main(["run", "deq", *overrides, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def _fake_mnist(root, train=64, test=32):
    """torchvision's raw MNIST files (idx format: big-endian magic, sizes, then bytes) with random
    pixels and labels, so the mnist path runs offline."""
    import numpy as np

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for prefix, n in (("train", train), ("t10k", test)):
        pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        header = np.array([2051, n, 28, 28], dtype=">i4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + pixels.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([2049, n], dtype=">i4").tobytes() + labels.tobytes()
        )
        images[prefix] = (pixels, labels)
    return images


def test_mnist_reads_torchvision_files_offline(tmp_path):
    from bilevel.deq.data import load_mnist

    images = _fake_mnist(tmp_path / "data")
    (x, y), (x_test, y_test) = load_mnist(tmp_path / "data")
    assert x.shape == (64, 784) and x_test.shape == (32, 784)
    assert torch.equal(x[3], torch.as_tensor(images["train"][0][3].reshape(-1), dtype=torch.float32) / 255)
    assert torch.equal(y_test, torch.as_tensor(images["t10k"][1], dtype=torch.int64))
    summary = run_deq(
        tmp_path,
        "task=mnist",
        f"data_dir={tmp_path / 'data'}",
        "batch_size=16",
        "dim=8",
        "width=8",
        "compare=false",
        "plots=false",
    )
    assert summary["steps_run"] == 4  # one epoch: 64 / 16
    assert 0 <= summary["test/accuracy"] <= 1
