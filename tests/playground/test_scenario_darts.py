"""The `darts` scenario through the CLI entry on tiny budgets: its summary and per-epoch rows
against their definitions, its files, and refusals of options that do not apply."""

import json

import pytest
import torch

from bilevel import darts
from playground.cli import main

TINY = (
    "epochs=2",
    "nodes=2",
    "width=4",
    "batch_size=200",
    "repeats=2",
    "retrain_epochs=1",
    "samples=2",
    "power_iters=3",
    "ift_iters=5",
)


def run_darts(tmp_path, *overrides):
    given = {o.partition("=")[0] for o in overrides}
    tiny = [o for o in TINY if o.partition("=")[0] not in given]
    assert main(["run", "darts", *tiny, *overrides, "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    return summary, rows


def test_a_tiny_search_reports_every_comparison(tmp_path):
    summary, rows = run_darts(tmp_path)
    for key in (
        "eval/accuracy",
        "baseline/random_search_accuracy",
        "baseline/best_single_op_accuracy",
        "search/skip_fraction",
        "search/hessian_eigenvalue",
        "search/ift_cosine",
    ):
        assert key in summary
    for key in ("eval/accuracy", "baseline/random_search_accuracy", "baseline/best_single_op_accuracy"):
        assert 0 <= summary[key] <= 1 and summary[f"{key}_ci95"] >= 0
    single = {op: summary[f"baseline/single_op_accuracy/{op}"] for op in ("skip", "linear", "mlp")}
    assert summary["baseline/best_single_op_accuracy"] == single[summary["baseline/best_single_op"]]
    assert summary["search/steps"] == 2 * 5  # ceil(997 / 200) steps per epoch
    assert (
        summary["baseline/random_search_budget_steps"] == 20
        and summary["baseline/random_search_steps_each"] == 10
    )
    assert -1 <= summary["search/ift_cosine"] <= 1
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row in rows:  # each edge's logged softmax(α) sums to one; skip_fraction is read off them
        weights = torch.tensor(
            [[row[f"edge/{i}-{j}/{op}"] for op in darts.OPS] for i, j in darts.edge_list(2)]
        )
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, dtype=weights.dtype))
        assert row["search/skip_fraction"] == darts.skip_fraction(weights)
    assert rows[-1]["search/hessian_eigenvalue"] == summary["search/hessian_eigenvalue"]
    final = torch.tensor(
        [[rows[-1][f"edge/{i}-{j}/{op}"] for op in darts.OPS] for i, j in darts.edge_list(2)]
    )
    assert summary["search/genotype"] == darts.derive(final.log(), nodes=2).describe()
    for name in ("edge_weights", "diagnostics", "accuracy"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


def test_second_order_search_with_the_exact_product(tmp_path):
    summary, _ = run_darts(tmp_path, "method=one_step", "method.hvp=exact", "epochs=1", "plots=false")
    assert summary["search/steps"] == 5 and 0 <= summary["eval/accuracy"] <= 1


def test_a_diverging_search_is_a_result(tmp_path):
    summary, rows = run_darts(tmp_path, "w_lr=1e8", "plots=false")
    assert summary["diverged"] is True and 1 <= summary["diverged_step"] <= 5  # within the first epoch
    assert "eval/accuracy" not in summary and rows[-1]["step"] == 1


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.xi=0.1"], "method 'first_order' takes no option 'xi'; valid: none"),
        (["method=finite_diff"], "method=finite_diff needs w*(α) solved accurately"),
        (["method=stn"], "method=stn learns its own best response"),
        (["method=ift_exact"], "method=ift_exact forms the 6426×6426 weight Hessian"),
        (["nodes=3", "top_k=4"], "top_k=4 exceeds nodes=3"),
        (["method=one_step", "method.hvp=central"], "one_step: hvp='central'; valid: fd, exact"),
        (
            ["alpha_lr=3.9e307"],
            "alpha_lr=3.9e+307; valid: a number > 0 and <= 1.7e+38",
        ),  # Adam's step overflowed
        (  # (tol·‖b‖)² overflowed in CG, an OverflowError
            ["ift_tol=1.7e308"],
            "ift_tol=1.7e+308: a relative residual >= 1 is met by q = 0 before any CG iteration, so the IFT "
            "reference would be no hypergradient; valid: 0 <= ift_tol < 1",
        ),
        (["method=ift_cg", "method.tol=1"], "ift_cg: tol=1.0: a relative residual >= 1 is met by q = 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(overrides, message, tmp_path, capsys):
    assert main(["run", "darts", *overrides, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
