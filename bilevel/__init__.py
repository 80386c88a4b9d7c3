"""Bilevel optimisation: hypergradients of min_λ L_val(w*(λ), λ), w*(λ) = argmin_w L_train(w, λ).

Problems with known answers (`PROBLEMS`: ridge, lr_horizon, hypercleaning, darts_toy), the
hypergradient methods that can be compared on each (`METHODS`: unrolled, truncated, forward,
ift_exact, ift_cg, ift_neumann, finite_diff, DARTS' first_order and one_step, and Self-Tuning
Networks' stn, `SelfTuningNetwork`: package `bilevel.stn`), the outer loop (`outer_descent`), and
the linear solvers they share (`conjugate_gradient`, `neumann_series`, `dense_solve`, and
`solve_or_nan`, an LU solve that answers NaN instead of failing on a diverged system).

The three systems built on them are subpackages: `bilevel.darts` (differentiable architecture
search, Liu et al. 2019), `bilevel.stn` (Self-Tuning Networks, MacKay et al. 2019) and
`bilevel.deq` (deep equilibrium models, Bai et al. 2019); `bilevel.digits` loads the bundled 8×8
digits they train on.
"""

from bilevel.darts_toy import DartsToy
from bilevel.hypercleaning import HyperCleaning, auc
from bilevel.hypergradients import Hypergradient, Method, mixed_product, relative_error
from bilevel.lr_horizon import LrHorizon
from bilevel.outer import OuterResult, outer_descent
from bilevel.problem import BilevelProblem, outer_loss_curve, unroll
from bilevel.registry import METHODS, PROBLEMS, make_method, make_problem
from bilevel.ridge import Ridge
from bilevel.solvers import conjugate_gradient, dense_solve, neumann_series, solve_or_nan
from bilevel.stn import SelfTuningNetwork

__all__ = [
    "METHODS",
    "PROBLEMS",
    "BilevelProblem",
    "DartsToy",
    "HyperCleaning",
    "Hypergradient",
    "LrHorizon",
    "Method",
    "OuterResult",
    "Ridge",
    "SelfTuningNetwork",
    "auc",
    "conjugate_gradient",
    "dense_solve",
    "make_method",
    "make_problem",
    "mixed_product",
    "neumann_series",
    "outer_descent",
    "outer_loss_curve",
    "relative_error",
    "solve_or_nan",
    "unroll",
]
