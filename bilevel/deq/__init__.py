"""Deep equilibrium models (Bai, Kolter & Koltun 2019): z* = f(z*, x) found by a forward solver
and differentiated implicitly.

Forward solvers (`FORWARD_SOLVERS`: fixed_point, anderson, broyden) return a `SolverResult`;
backward passes (`BACKWARDS`: ift, phantom, unrolled) attach z* to the graph through
`equilibrium`; cells f(z, x) (`LinearCell` with its closed forms, `ReluCell`); diagnostics at the
fixed point (Jacobian penalty, spectral radius); training (`train_deq`) and the data of the
scenario's tasks (`synthetic1d`, `load_mnist`).
"""

from bilevel.deq.cells import LinearCell, LinearCheck, ReluCell, check_linear
from bilevel.deq.data import Regression, cubic, load_mnist, mnist_available, synthetic1d
from bilevel.deq.diagnostics import cosine, jacobian_eigenvalues, jacobian_penalty, spectral_radius
from bilevel.deq.layer import (
    ADJOINT_SOLVERS,
    BACKWARDS,
    Equilibrium,
    adjoint_solve,
    equilibrium,
    ift,
    phantom,
    unrolled,
)
from bilevel.deq.solvers import (
    FORWARD_SOLVERS,
    SolverResult,
    anderson,
    broyden,
    fixed_point_iteration,
    relative_residual,
)
from bilevel.deq.train import DEQModel, TrainResult, diagnose, parameter_gradient, readout, train_deq

__all__ = [
    "ADJOINT_SOLVERS",
    "BACKWARDS",
    "FORWARD_SOLVERS",
    "DEQModel",
    "Equilibrium",
    "LinearCell",
    "LinearCheck",
    "Regression",
    "ReluCell",
    "SolverResult",
    "TrainResult",
    "adjoint_solve",
    "anderson",
    "broyden",
    "check_linear",
    "cosine",
    "cubic",
    "diagnose",
    "equilibrium",
    "fixed_point_iteration",
    "ift",
    "jacobian_eigenvalues",
    "jacobian_penalty",
    "load_mnist",
    "mnist_available",
    "parameter_gradient",
    "phantom",
    "readout",
    "relative_residual",
    "spectral_radius",
    "synthetic1d",
    "train_deq",
    "unrolled",
]
