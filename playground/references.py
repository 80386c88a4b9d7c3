"""Known answers a run can be held against: published results and closed forms, in one table.

Each `Reference` names a scenario, the settings a run must have for it to apply, the summary
metric it is compared with and its value, a number or a formula of the run's config and summary
(a closed form that depends on the learning rate, say). The report puts each that applies beside
the run's own number and draws it as a line on the scenario's plots; `make reproduce` prints the
published column of the README's tables from it.

A setting is matched against the run's config.json: `"shots": (10, None)` accepts 10 and the
option left unset (`None`, where the scenario's default for that task is 10); a dotted name reads a
factory's options, `"game_options.dim"`. A metric `key[i]` is item i of a list-valued summary key.

Sources, with the settings behind each number:
- Li, Zhou, Chen & Li 2017 (Meta-SGD), Table 1: MAML on sine regression, K = 5 / 10 / 20, one
  step, 70,000 iterations: MSE 1.13 / 0.77 / 0.48.
- Finn, Abbeel & Levine 2017, Table 1: MAML on Omniglot 5-way, 1-shot 98.7 ± 0.4%, 5-shot
  99.9 ± 0.1% (our glyphs are rendered letters, a stand-in for Omniglot, not the same data).
- Raghu et al. 2020 (ANIL), Table 2: MAML on 2-D navigation after one step, return −20.3 ± 3.2.
- The best single GD step for in-context linear regression, η* = N s² / ((N + d − 2) s⁴ + m₄)
  (`metalearn.icl.optimal_gd_lr`; 1.515 at d = N = 10, x ~ U(−1, 1); von Oswald et al. 2023).
- The scalar bilinear game xy: per-step factors √(1+η²) (simultaneous GD), √(1−η²+η⁴)
  (extragradient), √((1−ηγ)²+η²) (consensus), 1/√(1+η²) (CGD), |1−η| (Hamiltonian GD)
  (Mescheder et al. 2017; Schäfer & Anandkumar 2019; Balduzzi et al. 2018).
- Cournot's duopoly: Nash point (1, 1) (simultaneous GD reaches it); Stackelberg point (3/2, 3/4)
  with firm 1 leading (von Stackelberg 1934; Fiez, Chasnov & Ratliff 2020).
- DARTS' toy problem (Liu et al. 2019, Figure 2; `bilevel.darts_toy`): the one-step
  approximation with step ξ settles at α = 2/(1 + 2ξ), first order (ξ = 0) at 2, every exact
  method at 1; the run computes its method's point (`reference/method_lambda`).
- Ridge regression's regularisation: the minimiser of the validation loss over a grid of λ,
  computed by the run itself (`reference/lambda`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from metalearn.icl.baselines import optimal_gd_lr

Value = float | Callable[[dict, dict], float | None]  # (config, summary) -> value; None: none here


@dataclass(frozen=True)
class Reference:
    scenario: str
    metric: str  # the summary key ours is read from; `key[i]`: item i of a list
    value: Value
    source: str  # who published it, or the closed form
    settings: dict = field(default_factory=dict)  # option -> the value, or a tuple of values, it needs
    spread: float | None = None  # the published ± (a 95% CI or a standard error, as the source says)

    def applies(self, scenario: str, config: dict) -> bool:
        if scenario != self.scenario:
            return False
        for name, wanted in self.settings.items():
            have = _option(config, name)
            if have not in (wanted if isinstance(wanted, tuple) else (wanted,)):
                return False
        return True

    def resolve(self, config: dict, summary: dict) -> float | None:
        """The reference's number for this run (a formula evaluated on its config and summary)."""
        if callable(self.value):
            try:
                return self.value(config, summary)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                return None
        return self.value


def _option(config: dict, name: str):
    head, _, rest = name.partition(".")
    value = config.get(head)
    if rest:
        return (value or {}).get(rest) if isinstance(value, (dict, type(None))) else None
    return value


def metric_value(summary: dict, metric: str):
    """The summary's value of `metric` (`key[i]` indexes a list); None where it has none."""
    key, bracket, index = metric.partition("[")
    value = summary.get(key)
    if bracket:
        try:
            return value[int(index.rstrip("]"))]
        except (TypeError, IndexError, ValueError):
            return None
    return value


def for_run(scenario: str, config: dict) -> list[Reference]:
    """The references that apply to a run with this config, in the table's order."""
    return [reference for reference in REFERENCES if reference.applies(scenario, config)]


def published(scenario: str, config: dict, metric: str) -> Reference:
    """The one reference for `metric` at these settings (the README's published columns)."""
    (found,) = [r for r in for_run(scenario, config) if r.metric == metric]
    return found


def _lr(config: dict) -> float:
    return float(config["lr"])


def _bilinear(dynamics: str, factor: Callable[[float, dict], float], form: str) -> list[Reference]:
    settings = {"game": "bilinear", "dynamics": dynamics, "game_options.dim": (1, None)}
    rate = lambda config, summary: factor(_lr(config), config.get("dynamics_options") or {})
    return [
        Reference("game", metric, rate, f"closed form {form} on the scalar bilinear game", settings)
        for metric in ("rate/predicted", "rate/measured")
    ]


_META_SGD = "Li et al. 2017 (Meta-SGD), Table 1: MAML, one step, 70,000 iterations"
_FINN = "Finn et al. 2017, Table 1: MAML on Omniglot 5-way (glyphs stand in for Omniglot)"

REFERENCES: tuple[Reference, ...] = (
    *(
        Reference(
            "maml",
            "eval/post_adapt_mse",
            value,
            _META_SGD,
            {"task": "sine", "algo": "maml", "shots": (shots, None) if shots == 10 else shots},
        )
        for shots, value in ((5, 1.13), (10, 0.77), (20, 0.48))
    ),
    Reference(
        "maml",
        "eval/post_eval_steps_acc",
        0.987,
        _FINN + ", 1-shot",
        {"task": "glyphs", "algo": "maml", "shots": (1, None), "ways": (5, None)},
        spread=0.004,
    ),
    Reference(
        "maml",
        "eval/post_eval_steps_acc",
        0.999,
        _FINN + ", 5-shot",
        {"task": "glyphs", "algo": "maml", "shots": 5, "ways": (5, None)},
        spread=0.001,
    ),
    Reference(
        "metarl",
        "eval/post_adapt_return",
        -20.3,
        "Raghu et al. 2020 (ANIL), Table 2: MAML after one step",
        {"env": "Navigation2D"},
        spread=3.2,
    ),
    Reference(
        "icl",
        "gd/lr",
        lambda config, summary: optimal_gd_lr(
            config["dim"], config["context"], config["x_dist"], config["x_range"]
        ),
        "closed form η* = N s²/((N + d − 2) s⁴ + m₄) of the best GD step",
        {"model": "lsa", "layers": 1},
    ),
    *_bilinear("sim_gd", lambda lr, _: math.sqrt(1 + lr**2), "√(1+η²)"),
    *_bilinear("extragradient", lambda lr, _: math.sqrt(1 - lr**2 + lr**4), "√(1−η²+η⁴)"),
    *_bilinear(
        "consensus",
        lambda lr, options: math.sqrt((1 - lr * options.get("gamma", 1.0)) ** 2 + lr**2),
        "√((1−ηγ)²+η²)",
    ),
    *_bilinear("cgd", lambda lr, _: 1 / math.sqrt(1 + lr**2), "1/√(1+η²)"),
    *_bilinear("hamiltonian", lambda lr, _: abs(1 - lr), "|1−η|"),
    *(
        Reference("game", f"params[{i}]", point, source, {"game": "duopoly", "dynamics": dynamics})
        for dynamics, source, points in (
            ("sim_gd", "Cournot's Nash point (1, 1)", (1.0, 1.0)),
            ("stackelberg", "the Stackelberg point (3/2, 3/4), firm 1 leading", (1.5, 0.75)),
        )
        for i, point in enumerate(points)
    ),
    Reference(
        "bilevel",
        "outer/lambda",
        lambda config, summary: summary["reference/method_lambda"],
        "closed form: the method's fixed point (one_step 2/(1 + 2ξ), first order 2, exact 1)",
        {"problem": "darts_toy"},
    ),
    Reference(
        "bilevel",
        "outer/lambda",
        lambda config, summary: summary["reference/lambda"],
        "the grid minimiser of the validation loss, computed by the run",
        {"problem": "ridge"},
    ),
)
