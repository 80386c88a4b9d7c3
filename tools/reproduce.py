"""Regenerate the README's result tables: `python tools/reproduce.py [TABLE ...]` (`make reproduce`).

Each table is the set of runs behind it, with the README's own commands, and the function that
prints it, in the README's format, from what those runs wrote. A `playground` run goes to
OUT/TABLE/LABEL (default OUT: runs/reproduce) and is read from its summary.json; a benchmark's
section (`bench`) is kept as OUT/bench/NAME/section.md. A run that finished is reused, so a
regeneration that was stopped continues where it stopped; `--print-only` prints from what is
there, "—" where a run is missing. Tables: sine, glyphs, imaml, icl, metarl, bilevel, deq, stn,
darts, bench; none named means all of them (hours). tests/tools/test_reproduce.py checks each row
against the README (`make test-slow`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from playground import references
from playground.rundir import SUMMARY

REPO = Path(__file__).resolve().parents[1]
DASH = "—"


class Row(NamedTuple):
    labels: tuple[str, ...]  # the runs the row reads
    cells: tuple[Callable[[dict], str], ...]  # each: results by label -> the cell's text


class Table(NamedTuple):
    """`runs`: label -> `playground run` arguments, or `benchmarks.NAME` for a benchmark section.
    `tolerance`: (relative, absolute) agreement the slow tests ask of numbers printed without a CI;
    `minutes`: an upper bound on one run's wall time on the README's 2-core machine (on its GPU
    when `gpu`: such a table's runs ask for `device=cuda`, and its slow tests are marked `gpu`)."""

    header: tuple[str, ...]
    runs: dict[str, str]
    rows: tuple[Row, ...]
    tolerance: tuple[float, float]
    minutes: int
    gpu: bool = False


# ---------------------------------------------------------------- formatting helpers


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace("-", "−")


def _with_ci(summary: dict, key: str, digits: int, scale: float = 1.0) -> str:
    return f"{_number(scale * summary[key], digits)} ± {_number(scale * summary[key + '_ci95'], digits)}"


def _cell(fn: Callable[[dict], str]) -> Callable[[dict], str]:
    """The cell, or "—" when a run it reads is missing or lacks a key."""

    def text(results: dict) -> str:
        try:
            return fn(results)
        except (KeyError, TypeError, IndexError):
            return DASH

    return text


def _const(text: str) -> Callable[[dict], str]:
    return lambda results: text


# ---------------------------------------------------------------- maml: sine


def _sine_row(shots: int, published: str) -> Row:
    label = f"k{shots}"
    s = lambda r: r[label]
    return Row(
        (label,),
        (
            _const(str(shots)),
            _cell(lambda r: f"**{_with_ci(s(r), 'eval/post_adapt_mse', 3)}**"),
            _cell(lambda r: _with_ci(s(r), "baseline/post_adapt_mse", 3)),
            _cell(lambda r: _with_ci(s(r), "eval/post_eval_steps_mse", 3)),
            _cell(lambda r: _with_ci(s(r), "eval/pre_adapt_mse", 3)),
            _const(published),
        ),
    )


def _published_sine(shots: int) -> str:
    """Meta-SGD's MAML number at K shots, from the table of known answers the report uses."""
    settings = {"task": "sine", "algo": "maml", "shots": shots}
    return f"{references.published('maml', settings, 'eval/post_adapt_mse').value:.2f}"


SINE = Table(
    header=(
        "K",
        "MAML, 1 step",
        "pretrained, 1 step",
        "MAML, 10 steps",
        "MAML before adaptation",
        "Meta-SGD paper, MAML 1 step",
    ),
    runs={f"k{k}": f"maml task=sine shots={k} iterations=70000 baseline=true" for k in (5, 10, 20)},
    rows=tuple(_sine_row(k, _published_sine(k)) for k in (5, 10, 20)),
    tolerance=(0.0, 0.0),
    minutes=60,
)


# ---------------------------------------------------------------- maml: glyphs

_GLYPH_ALGOS = (
    ("maml", "MAML"),
    ("fomaml", "FOMAML"),
    ("anil", "ANIL"),
    ("reptile", "Reptile (3 inner steps)"),
    ("protonet", "ProtoNets"),
    ("pretrain", "pretrained, fine-tuned"),
)


def _glyphs_command(algo: str, shots: int) -> str:
    command = (
        f"maml task=glyphs algo={algo} shots={shots} meta_batch={16 if shots == 1 else 4} "
        "iterations=1000 eval_steps=3 eval_every=0 threads=1"
    )
    return command + " inner_steps=3" if algo == "reptile" else command


def _glyphs_row(algo: str, name: str) -> Row:
    one, five = f"{algo}-1shot", f"{algo}-5shot"
    before = lambda label: _cell(lambda r: _number(100 * r[label]["eval/pre_adapt_acc"], 1))
    after = lambda label: _cell(
        lambda r: (
            f"{_number(100 * r[label]['eval/post_adapt_acc'], 1)} / "
            f"**{_with_ci(r[label], 'eval/post_eval_steps_acc', 2, 100)}**"
        )
    )
    wall = _cell(lambda r: f"{r[one]['wall_s']:.0f} s / {r[five]['wall_s']:.0f} s")
    return Row((one, five), (_const(name), before(one), after(one), before(five), after(five), wall))


GLYPHS = Table(
    header=(
        "algorithm",
        "1-shot, before",
        "1-shot, after 1 / 3 steps",
        "5-shot, before",
        "5-shot, after 1 / 3 steps",
        "wall 1-shot / 5-shot",
    ),
    runs={
        f"{algo}-{shots}shot": _glyphs_command(algo, shots) for algo, _ in _GLYPH_ALGOS for shots in (1, 5)
    },
    rows=tuple(_glyphs_row(algo, name) for algo, name in _GLYPH_ALGOS),
    tolerance=(0.0, 1.5),
    minutes=60,
)


# ---------------------------------------------------------------- maml: iMAML at reduced budgets

_IMAML_RUNS = {
    "sine": "maml algo=imaml task=sine shots=10 iterations=4000 baseline=true threads=1",
    "glyphs": "maml task=glyphs algo=imaml shots=1 meta_batch=16 iterations=250 eval_steps=3 eval_every=0 "
    "threads=1",
    "glyphs-maml": "maml task=glyphs algo=maml shots=1 meta_batch=16 iterations=250 eval_steps=3 "
    "eval_every=0 threads=1",
}


def _imaml_row(name: str, label: str, metric: str, scale: float, digits: int, baseline: bool) -> Row:
    key = lambda stage: f"eval/{stage}_{metric}"
    return Row(
        (label,),
        (
            _const(name),
            _cell(lambda r: _with_ci(r[label], key("pre_adapt"), digits, scale)),
            _cell(lambda r: _with_ci(r[label], key("post_adapt"), digits, scale)),
            _cell(lambda r: f"**{_with_ci(r[label], key('post_eval_steps'), digits, scale)}**"),
            _cell(lambda r: _with_ci(r[label], f"baseline/post_eval_steps_{metric}", digits, scale))
            if baseline
            else _const(DASH),
            _cell(lambda r: f"{r[label]['wall_s']:.0f} s"),
        ),
    )


IMAML = Table(
    header=(
        "iMAML run",
        "before",
        "after 1 step",
        "after 10 (sine) / 3 (glyphs) steps",
        "pretrained, same steps",
        "wall",
    ),
    runs=_IMAML_RUNS,
    rows=(
        _imaml_row("iMAML, sine K = 10, 4,000 iterations (MSE)", "sine", "mse", 1.0, 3, True),
        _imaml_row("iMAML, glyphs 5-way 1-shot, 250 iterations (%)", "glyphs", "acc", 100.0, 1, False),
        _imaml_row("MAML, the same glyphs command (%)", "glyphs-maml", "acc", 100.0, 1, False),
    ),
    tolerance=(0.0, 1.5),
    minutes=30,
)


# ---------------------------------------------------------------- icl

_ICL_RUNS = {
    "lsa1": "icl",
    "lsa2": "icl layers=2 steps=3000 batch=1024 lr=3e-3",
    "lsa3": "icl layers=3 steps=10000 batch=1024",
    "lsa3-lr3e-3": "icl layers=3 steps=10000 batch=1024 lr=3e-3",
    "gpt": "icl model=gpt dim=3 x_dist=gaussian layers=3 heads=4 width=32 batch=256 steps=12000 "
    "eval_tasks=2048",
}


def _beats(loss: float, baseline: float) -> str:
    return "beats" if loss < baseline else "does not beat"


def _closest(s: dict) -> str:
    return "closest to GD++" if s["spd/gdpp"] < s["spd/gd"] else "closer to GD than to GD++"


def _lsa1(r: dict) -> str:
    s = r["lsa1"]
    return (
        f"loss {s['eval/loss']:.4f} vs line-searched one-step GD {s['gd/loss']:.4f}, η = {s['gd/lr']:.3f}; "
        f"model cos {s['probe/model_cos']:.4f}, preds diff {s['probe/preds_diff']:.3f}"
    )


def _lsa2(r: dict) -> str:
    s = r["lsa2"]
    loss, gd = s["eval/loss"], s["gd/steps_loss"][-1]
    return (
        f"loss {loss:.3f}, {_beats(loss, gd)} 2-step GD ({gd:.3f}), {_closest(s)} "
        f"({s['gdpp/loss'][-1]:.3f}; SPD {s['spd/gdpp']:.3f} vs {s['spd/gd']:.3f} to GD)"
    )


def _lsa3(r: dict) -> str:
    s, fast = r["lsa3"], r["lsa3-lr3e-3"]
    loss, gd = s["eval/loss"], s["gd/steps_loss"][-1]
    fast_end = (
        f"{fast['eval/loss']:.2f}"
        if not fast.get("diverged")
        else f"diverged at step {fast['diverged_step']}"
    )
    return (
        f"loss {loss:.3f}, {_beats(loss, gd)} 3-step GD ({gd:.3f}); {_closest(s)} (3 steps "
        f"{s['gdpp/loss'][-1]:.3f}): SPD {s['spd/gdpp']:.3f} vs {s['spd/gd']:.3f} to GD, ILWD "
        f"{s['ilwd/gdpp']:.3f} vs {s['ilwd/gd']:.3f}, cos with GD++ {s['gdpp/model_cos']:.2f} "
        f"(lr 3e-3 is unstable at 3 layers: {fast_end})"
    )


def _curve(values: list[float], head: int, last_digits: int) -> str:
    """The first `head` values, an ellipsis if any are skipped, and the last one."""
    shown = [f"{v:.2f}" for v in values[:head]]
    if head < len(values) - 1:
        shown.append("…")
    return ", ".join(shown + [f"{values[-1]:.{last_digits}f}"])


def _gpt(r: dict) -> str:
    s = r["gpt"]
    return (
        f"error vs context length {_curve(s['context/model'], 9, 3)} (N = 1..{len(s['context/model'])}) "
        f"against least squares {_curve(s['context/ols'], 4, 3)} and ridge "
        f"{_curve(s['context/ridge'], 5, 3)}; "
        f"one-step GD {_curve(s['context/gd'], 1, 2)}. SPD / ILWD to least squares {s['spd/ols']:.3f} / "
        f"{s['ilwd/ols']:.3f} and to ridge {s['spd/ridge']:.3f} / {s['ilwd/ridge']:.3f}, against "
        f"{s['spd/gd']:.2f} / {s['ilwd/gd']:.2f} to GD"
    )


def _icl_row(label: str, note: str, text: Callable[[dict], str], extra: tuple[str, ...] = ()) -> Row:
    command = f"`playground run {_ICL_RUNS[label]}`{note}"
    return Row(
        (label, *extra), (_const(command), _cell(text), _cell(lambda r: f"{r[label]['wall_s']:.0f} s"))
    )


ICL = Table(
    header=("run (d = N = 10 unless said)", "result", "wall"),
    runs=_ICL_RUNS,
    rows=(
        _icl_row("lsa1", " (1-layer LSA, 2000 steps, batch 2048)", _lsa1),
        _icl_row("lsa2", "", _lsa2),
        _icl_row("lsa3", "", _lsa3, extra=("lsa3-lr3e-3",)),
        _icl_row("gpt", "", _gpt),
    ),
    tolerance=(0.03, 0.01),
    minutes=40,
)


# ---------------------------------------------------------------- metarl


def _metarl_row(policy: str, name: str, bold: bool) -> Row:
    seeds = ("seed0", "seed1")
    key = f"eval/{policy}_returns"

    def at(step: int, ci: bool) -> Callable[[dict], str]:
        def text(r: dict) -> str:
            parts = [
                _number(r[s][key][step], 1) + (f" ± {_number(r[s][key + '_ci95'][step], 1)}" if ci else "")
                for s in seeds
            ]
            joined = " / ".join(parts)
            return f"**{joined}**" if bold and ci else joined

        return _cell(text)

    return Row(seeds, (_const(name), at(0, False), at(1, True), at(3, False)))


METARL = Table(
    header=("policy", "before adaptation", "after 1 step", "after 3 steps"),
    runs={f"seed{seed}": f"metarl env=Navigation2D iterations=80 seed={seed}" for seed in (0, 1)},
    rows=(
        _metarl_row("maml", "MAML", True),
        _metarl_row("pretrained", 'multi-task ("pretrained")', False),
        _metarl_row("random", "random initialisation", False),
    ),
    tolerance=(0.0, 5.0),
    minutes=40,
)


# ---------------------------------------------------------------- bilevel

_BILEVEL_RUNS = {name: f"bilevel problem={name}" for name in ("ridge", "lr_horizon", "hypercleaning")} | {
    "stn": "bilevel problem=ridge method=stn"
}
_TOY_VARIANTS = {"first_order": "method=first_order", "xi0.5": "method.xi=0.5", "ift_cg": "method=ift_cg"}
_BILEVEL_RUNS |= {"darts_toy": "bilevel problem=darts_toy"} | {
    f"darts_toy-{label}": f"bilevel problem=darts_toy {options}" for label, options in _TOY_VARIANTS.items()
}


def _bilevel_ridge(r: dict) -> str:
    s = r["ridge"]
    return (
        f"λ {s['outer/lambda']:.4f} vs grid minimiser {s['reference/lambda']:.4f}; "
        f"F {s['outer/val_loss_start']:.2f} "
        f"→ {s['outer/val_loss']:.3f}; ift_cg error at the start {s['hypergrad/rel_error']:.1e}"
    )


def _bilevel_horizon(r: dict) -> str:
    s = r["lr_horizon"]
    return (
        f"learning rate {s['outer/lr']:.3f} vs long-horizon optimum {s['reference/lr']:.3f}; greedy (T = 1) "
        f"optimum {s['reference/greedy_lr']:.3f}; "
        f"F {s['outer/val_loss_start']:.3f} → {s['outer/val_loss']:.4f} "
        f"(optimum {s['reference/val_loss']:.4f})"
    )


def _bilevel_cleaning(r: dict) -> str:
    s = r["hypercleaning"]
    return (
        f"AUC {s['clean/auc']:.3f} (mean weight {s['clean/weight_mean_clean']:.2f} clean, "
        f"{s['clean/weight_mean_flipped']:.2f} flipped); test accuracy {100 * s['test/accuracy']:.1f}% vs "
        f"{100 * s['test/accuracy_all_data']:.1f}% on all data"
    )


def _bilevel_stn(r: dict) -> str:
    s = r["stn"]
    return (
        f"λ {s['outer/lambda']:.4f} vs grid minimiser {s['reference/lambda']:.4f} (fully trained STN at its "
        f"σ = {s['best_response/sigma']:.3f}: {s['reference/stn_lambda']:.4f}); 1 − cos(dŵ/dλ, dw*/dλ) "
        f"{1 - s['best_response/jacobian_cosine']:.1e}; E‖ŵ − w*‖ {s['best_response/error']:.4f} "
        f"(fully trained {s['reference/stn_error']:.4f})"
    )


def _darts_toy(r: dict) -> str:
    alpha = {label: r[f"darts_toy-{label}"]["outer/lambda"] for label in _TOY_VARIANTS} | {
        "default": r["darts_toy"]["outer/lambda"]
    }
    return (
        f"α {alpha['default']:.4f} (one_step, ξ = 0.25: 2/(1 + 2ξ) = 1.3333); "
        f"first_order {alpha['first_order']:.4f} (2); one_step ξ = 0.5 {alpha['xi0.5']:.4f} (1); "
        f"ift_cg {alpha['ift_cg']:.4f} (1)"
    )


def _run_row(runs: dict[str, str], label: str, text: Callable[[dict], str]) -> Row:
    """A row of one run: its command, `text` of its results, its wall time."""
    return Row(
        (label,),
        (
            _const(f"`playground run {runs[label]}`"),
            _cell(text),
            _cell(lambda r: f"{r[label]['wall_s']:.0f} s"),
        ),
    )


BILEVEL = Table(
    header=("bilevel run (defaults)", "result", "wall"),
    runs=_BILEVEL_RUNS,
    rows=(
        _run_row(_BILEVEL_RUNS, "ridge", _bilevel_ridge),
        _run_row(_BILEVEL_RUNS, "lr_horizon", _bilevel_horizon),
        _run_row(_BILEVEL_RUNS, "hypercleaning", _bilevel_cleaning),
        _run_row(_BILEVEL_RUNS, "stn", _bilevel_stn),
        Row(
            ("darts_toy", *(f"darts_toy-{label}" for label in _TOY_VARIANTS)),
            (
                _const(
                    "`playground run bilevel problem=darts_toy` "
                    "(and `method=first_order`, `method.xi=0.5`, `method=ift_cg`)"
                ),
                _cell(_darts_toy),
                _cell(lambda r: f"{r['darts_toy']['wall_s']:.0f} s"),
            ),
        ),
    ),
    tolerance=(0.03, 0.01),
    minutes=2,
)


# ---------------------------------------------------------------- darts

_DARTS_RUNS = {
    "first_order": "darts",
    "one_step": "darts method=one_step",
    "ift_cg": "darts method=ift_cg method.iters=20 method.tol=1e-4",
    "first_order-50": "darts epochs=50",
    "one_step-50": "darts method=one_step epochs=50",
}


def _darts_row(label: str) -> Row:
    s = lambda r: r[label]
    percent = lambda key: _cell(lambda r: _with_ci(s(r), key, 1, scale=100))
    start_end = lambda key, digits: _cell(
        lambda r: f"{_number(s(r)[key + '_start'], digits)} → {_number(s(r)[key], digits)}"
    )
    return Row(
        (label,),
        (
            _const(f"`playground run {_DARTS_RUNS[label]}`"),
            _cell(lambda r: s(r)["search/genotype"]),
            percent("eval/accuracy"),
            percent("baseline/random_search_accuracy"),
            _cell(
                lambda r: (
                    f"{s(r)['baseline/best_single_op']} "
                    + _with_ci(s(r), "baseline/best_single_op_accuracy", 1, scale=100)
                )
            ),
            start_end("search/skip_fraction", 2),
            start_end("search/hessian_eigenvalue", 3),
            start_end("search/ift_cosine", 2),
            _cell(lambda r: f"{s(r)['wall_s']:.0f} s"),
        ),
    )


DARTS = Table(
    header=(
        "run",
        "derived cell",
        "test accuracy (%)",
        "random search, equal steps",
        "best single op",
        "skip/none edges",
        "dominant eigenvalue ∇²_α L_val",
        "cos to IFT",
        "wall",
    ),
    runs=_DARTS_RUNS,
    rows=tuple(_darts_row(label) for label in _DARTS_RUNS),
    tolerance=(0.03, 0.01),
    minutes=10,
)


# ---------------------------------------------------------------- deq

_DEQ_FAST = "lr=0.01 steps=600"  # a faster, longer run in which the unregularised ρ(∂f/∂z) passes 1
_DEQ_RUNS = {"linear": "deq task=linear", "digits": "deq task=digits"} | {
    f"synthetic1d-jac{gamma}{fast}": f"deq task=synthetic1d jac_reg={gamma}{' ' + _DEQ_FAST if fast else ''}"
    for fast in ("", "-fast")
    for gamma in (0, 4)
}


def _deq_linear(r: dict) -> str:
    s = r["linear"]
    return (
        f"forward error {s['deq/forward_error']:.1e}, gradient error {s['deq/grad_error']:.1e} (IFT, exact "
        f"adjoint); NFE to 1e-12: fixed point {s['solver/fixed_point_nfe']}, Anderson "
        f"{s['solver/anderson_nfe']}, Broyden {s['solver/broyden_nfe']}; phantom (k = 5, τ = 0.5) "
        f"cosine to IFT {s['grad/phantom_cosine']:.3f}"
    )


def _deq_synthetic(label: str) -> Callable[[dict], str]:
    def text(r: dict) -> str:
        s = r[label]
        return (
            f"NFE to 1e-4: Anderson {s['deq/nfe']}, fixed point {s['solver/fixed_point_nfe']}, Broyden "
            f"{s['solver/broyden_nfe']}; ρ(∂f/∂z) mean {s['jacobian/spectral_radius']:.2f}, max "
            f"{s['jacobian/spectral_radius_max']:.2f}; validation MSE {s['val/mse']:.1f} "
            f"({s['val/mse_clean']:.1f} to the noiseless curve)"
        )

    return text


def _deq_digits(r: dict) -> str:
    s = r["digits"]
    return (
        f"test accuracy {100 * s['test/accuracy']:.1f}%; NFE to 1e-4: Anderson {s['deq/nfe']}, fixed point "
        f"{s['solver/fixed_point_nfe']}; ρ(∂f/∂z) {s['jacobian/spectral_radius']:.2f}"
    )


def _deq_row(label: str, text: Callable[[dict], str], published: str) -> Row:
    return Row(
        (label,),
        (
            _const(f"`playground run {_DEQ_RUNS[label]}`"),
            _cell(text),
            _const(published),
            _cell(lambda r: f"{r[label]['wall_s']:.0f} s"),
        ),
    )


DEQ = Table(
    header=("deq run (defaults)", "result", "published", "wall"),
    runs=_DEQ_RUNS,
    rows=(
        _deq_row("linear", _deq_linear, "closed forms: z* = (I − W)⁻¹(Ux + b) and its gradient"),
        *(
            _deq_row(label, _deq_synthetic(label), "Bai et al. 2021, Fig. 5: NFE falls as γ rises")
            for label in _DEQ_RUNS
            if label.startswith("synthetic1d")
        ),
        _deq_row("digits", _deq_digits, "—"),
    ),
    tolerance=(0.1, 1e-9),
    minutes=2,
)


# ---------------------------------------------------------------- stn

_STN_RUNS = {f"seed{seed}": f"stn seed={seed}" for seed in (0, 1, 2)}


def _stn_row(label: str) -> Row:
    s = lambda r: r[label]  # noqa: E731
    return Row(
        (label,),
        (
            _const(f"`playground run {_STN_RUNS[label]}`"),
            _cell(lambda r: f"{100 * s(r)['eval/accuracy']:.2f}%"),
            _cell(lambda r: f"{100 * s(r)['baseline/random_search_accuracy']:.2f}%"),
            _cell(lambda r: f"{100 * s(r)['baseline/fixed_final_accuracy']:.2f}%"),
            _cell(
                lambda r: (
                    ", ".join(f"{s(r)[f'hyper/dropout_{k}']:.2f}" for k in range(3))
                    + f"; {s(r)['hyper/weight_decay']:.1e}"
                )
            ),
            _cell(lambda r: f"{s(r)['wall_s']:.0f} s"),
        ),
    )


STN = Table(
    header=(
        "run (defaults)",
        "STN",
        "random search, same steps",
        "fixed at STN's final values",
        "STN's final dropout (input, hidden 1, hidden 2); weight decay",
        "wall",
    ),
    runs=_STN_RUNS,
    rows=tuple(_stn_row(label) for label in _STN_RUNS),
    tolerance=(0.02, 0.0),
    minutes=3,
)


# ---------------------------------------------------------------- runs on a GPU

_FINN_GLYPHS = (
    "maml task=glyphs algo=maml meta_batch=32 inner_lr=0.4 inner_steps=1 eval_steps=3 eval_every=500"
)
_GPU_RUNS = {
    "sine": "maml task=sine shots=10 iterations=70000 device=cuda",
    "glyphs-1shot": f"{_FINN_GLYPHS} shots=1 iterations=10250 device=cuda",
    "glyphs-5shot": f"{_FINN_GLYPHS} shots=5 iterations=7000 device=cuda",
    "gpt": "icl model=gpt dim=10 context=20 x_dist=gaussian layers=6 heads=4 width=128 batch=256 "
    "steps=15000 eval_every=1000 device=cuda",
}


def _gpu_sine(r: dict) -> str:
    s = r["sine"]
    return (
        f"MSE before adaptation {_with_ci(s, 'eval/pre_adapt_mse', 3)}, after 1 step "
        f"**{_with_ci(s, 'eval/post_adapt_mse', 3)}**, after 10 {_with_ci(s, 'eval/post_eval_steps_mse', 3)}"
    )


def _gpu_glyphs(label: str) -> Callable[[dict], str]:
    def text(r: dict) -> str:
        s = r[label]
        final = _with_ci(s, "eval/post_eval_steps_acc", 2, 100)
        return (
            f"accuracy before adaptation {_number(100 * s['eval/pre_adapt_acc'], 1)}%, after 1 / 3 steps "
            f"{_number(100 * s['eval/post_adapt_acc'], 2)} / **{final}**%"
        )

    return text


def _gpu_gpt(r: dict) -> str:
    s = r["gpt"]
    at = lambda key: " / ".join(f"{s[key][n - 1]:.3f}" for n in (5, 10, 20))
    return (
        f"error at N = 5 / 10 / 20: {at('context/model')} against ridge {at('context/ridge')}, least "
        f"squares {at('context/ols')}, one-step GD {at('context/gd')}. SPD / ILWD to ridge "
        f"{s['spd/ridge']:.4f} / {s['ilwd/ridge']:.4f}, to least squares {s['spd/ols']:.4f} / "
        f"{s['ilwd/ols']:.4f}, to GD {s['spd/gd']:.3f} / {s['ilwd/gd']:.3f}"
    )


GPU = Table(
    header=("run on a GPU", "result", "wall"),
    runs=_GPU_RUNS,
    rows=(
        _run_row(_GPU_RUNS, "sine", _gpu_sine),
        _run_row(_GPU_RUNS, "glyphs-1shot", _gpu_glyphs("glyphs-1shot")),
        _run_row(_GPU_RUNS, "glyphs-5shot", _gpu_glyphs("glyphs-5shot")),
        _run_row(_GPU_RUNS, "gpt", _gpu_gpt),
    ),
    tolerance=(0.05, 1.0),
    minutes=20,
    gpu=True,
)


# ---------------------------------------------------------------- bench


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the markdown tables in `text`, each as {column header: cell}."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= {"-", ":"} for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def _maml(r: dict, *words: str) -> float:
    matches = [
        row for row in r["maml"] if row.get("engine") == "functional" and all(w in row["case"] for w in words)
    ]
    if len(matches) != 1:
        raise KeyError(f"{len(matches)} maml benchmark rows contain {words}")
    return float(matches[0]["speed-up"])


def _icl_ratio(r: dict, layers: str, batch: str, implementation: str) -> float:
    matches = [
        row
        for row in r["icl"]
        if (row["layers"], row["batch"], row["implementation"]) == (layers, batch, implementation)
    ]
    if len(matches) != 1:
        raise KeyError(f"{len(matches)} icl benchmark rows for {layers}, {batch}, {implementation}")
    return float(matches[0]["time / ours"])


def _games_ratio(r: dict, case: str) -> str:
    matches = [row["speed-up"] for row in r["games"] if row["game / dynamics"] == case]
    if len(matches) != 1:
        raise KeyError(f"{len(matches)} games benchmark rows for {case}")
    return matches[0]


BENCH = Table(
    header=("case", "speed-up"),
    runs={name: f"benchmarks.{name}" for name in ("maml", "games", "icl")},
    rows=(
        Row(
            ("maml",),
            (
                _const(
                    "MAML on sine (K = 10, meta-batch 25, 1 inner step): `engine=functional` vs "
                    "`engine=learn2learn`"
                ),
                _cell(lambda r: f"{_maml(r, 'sine', '1 step'):.1f}×"),
            ),
        ),
        Row(
            ("maml",), (_const("same, 5 inner steps"), _cell(lambda r: f"{_maml(r, 'sine', '5 steps'):.1f}×"))
        ),
        Row(
            ("maml",),
            (
                _const(
                    "FOMAML on glyphs (conv-4, 5-way 1-shot, meta-batch 32, 1 query per class): "
                    "functional vs learn2learn, 1 / 2 threads"
                ),
                _cell(
                    lambda r: (
                        f"{_maml(r, 'glyphs', '1 query', '1 thread'):.2f}× / "
                        f"{_maml(r, 'glyphs', '1 query', '2 threads'):.2f}×"
                    )
                ),
            ),
        ),
        Row(
            ("maml",),
            (
                _const("same, 15 queries per class, 1 thread"),
                _cell(lambda r: f"{_maml(r, 'glyphs', '15 queries', '1 thread'):.2f}×"),
            ),
        ),
        Row(
            ("games",),
            (
                _const(
                    "games, `batch=1024` vs 1024 separate runs (dirac_gan / extragradient; bilinear / sos)"
                ),
                _cell(
                    lambda r: (
                        f"{_games_ratio(r, 'dirac_gan / extragradient')}; {_games_ratio(r, 'bilinear / sos')}"
                    )
                ),
            ),
        ),
        Row(
            ("icl",),
            (
                _const(
                    "LSA training step (batch 2048) vs explicit attention scores; vs a per-prompt loop "
                    "(batch 128)"
                ),
                _cell(
                    lambda r: (
                        f"{_icl_ratio(r, '1', '2048', 'explicit scores'):.1f}×; "
                        f"{_icl_ratio(r, '1', '128', 'per-task loop'):.0f}×"
                    )
                ),
            ),
        ),
    ),
    tolerance=(0.5, 0.0),
    minutes=40,
)

TABLES = {
    "sine": SINE,
    "glyphs": GLYPHS,
    "imaml": IMAML,
    "icl": ICL,
    "metarl": METARL,
    "bilevel": BILEVEL,
    "deq": DEQ,
    "stn": STN,
    "darts": DARTS,
    "gpu": GPU,
    "bench": BENCH,
}


# ---------------------------------------------------------------- running and printing


def result(table: Table, label: str, out: Path) -> dict | list | None:
    """What a finished run left: its summary (playground) or its section's table rows (benchmarks)."""
    where = out / label
    if table.runs[label].startswith("benchmarks."):
        section = where / "section.md"
        return markdown_rows(section.read_text()) if section.is_file() else None
    try:
        summary = json.loads((where / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") == "finished" else None


def command(table: Table, label: str, out: Path) -> list[str]:
    """The process that makes the run `label` in `out / label`."""
    spec = table.runs[label]
    if spec.startswith("benchmarks."):
        return [sys.executable, "-c", f"import {spec} as bench; print(bench.main())"]
    where = out / label
    return [sys.executable, "-m", "playground", "run", *shlex.split(spec), "--out", str(where)] + (
        ["--overwrite"] if where.exists() else []
    )


def make_run(table: Table, label: str, out: Path) -> bool:
    """Run `label` (a finished run is kept); True when it finished."""
    if result(table, label, out) is not None:
        return True
    argv = command(table, label, out)
    print(f"reproduce: {label}: {shlex.join(argv[1:])}", file=sys.stderr, flush=True)
    if not table.runs[label].startswith("benchmarks."):
        return subprocess.run(argv, cwd=REPO).returncode == 0 and result(table, label, out) is not None
    done = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if done.returncode == 0:
        (out / label).mkdir(parents=True, exist_ok=True)
        (out / label / "section.md").write_text(done.stdout)
    return done.returncode == 0


def render(table: Table, results: dict) -> str:
    """The table in the README's format; "—" in the cells whose runs are missing."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(cell(results) for cell in row.cells) + " |" for row in table.rows]
    return "\n".join(lines)


def regenerate(
    name: str, out: Path, workers: int = 1, run: bool = True, labels: tuple[str, ...] | None = None
) -> tuple[str, list[str]]:
    """Make the runs of table `name` (or only `labels`) under out/name; its text and the failed runs."""
    table, where = TABLES[name], out / name
    wanted = tuple(table.runs) if labels is None else labels
    failed = []
    if run:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            finished = list(pool.map(lambda label: make_run(table, label, where), wanted))
        failed = [label for label, ok in zip(wanted, finished) if not ok]
    results = {label: result(table, label, where) for label in table.runs}
    return render(table, {k: v for k, v in results.items() if v is not None}), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tables", nargs="*", metavar="TABLE", help=f"any of {', '.join(TABLES)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "reproduce", help="where the runs go")
    parser.add_argument(
        "--workers", type=int, default=1, help="runs at once (each uses the threads its command sets)"
    )
    parser.add_argument("--print-only", action="store_true", help="run nothing; print from the runs in --out")
    args = parser.parse_args(argv)
    unknown = [name for name in args.tables if name not in TABLES]
    if unknown or args.workers < 1:
        parser.error(
            f"unknown table {', '.join(unknown)}; valid: {', '.join(TABLES)}"
            if unknown
            else f"--workers {args.workers}; valid: >= 1"
        )
    failed = []
    for name in args.tables or list(TABLES):
        text, failures = regenerate(name, args.out, args.workers, run=not args.print_only)
        failed += [f"{name}/{label}" for label in failures]
        print(f"{name}:\n\n{text}\n", flush=True)
    if failed:
        print(f"reproduce: these runs did not finish: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
