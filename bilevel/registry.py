"""The registries of bilevel problems and hypergradient methods (see `registration`): adding one
is a factory and one line here; a user's own is `module:factory`, from the user's module."""

from __future__ import annotations

from bilevel import hypergradients
from bilevel.darts_toy import darts_toy
from bilevel.hypercleaning import hypercleaning
from bilevel.lr_horizon import lr_horizon
from bilevel.problem import BilevelProblem
from bilevel.ridge import ridge
from bilevel.stn.method import SelfTuningNetwork
from registration import Registry

PROBLEMS = Registry("problem", returns=BilevelProblem)
PROBLEMS.register("ridge", ridge)
PROBLEMS.register("lr_horizon", lr_horizon)
PROBLEMS.register("hypercleaning", hypercleaning)
PROBLEMS.register("darts_toy", darts_toy)

METHODS = Registry("method", returns=hypergradients.Method)
METHODS.register("unrolled", hypergradients.unrolled)
METHODS.register("truncated", hypergradients.truncated)
METHODS.register("forward", hypergradients.forward)
METHODS.register("ift_exact", hypergradients.ift_exact)
METHODS.register("ift_cg", hypergradients.ift_cg)
METHODS.register("ift_neumann", hypergradients.ift_neumann)
METHODS.register("finite_diff", hypergradients.finite_diff)
METHODS.register("first_order", hypergradients.first_order)
METHODS.register("one_step", hypergradients.one_step)
METHODS.register(
    "stn",
    SelfTuningNetwork,
    help="Self-Tuning Networks (MacKay et al. 2019): dF/dλ through ŵ(λ) learned on perturbed λ.",
)

make_problem = PROBLEMS.make
make_method = METHODS.make
