"""In-context learning probes: do trained transformers run gradient descent?

Data (`TaskDistribution` draws `Prompts`; inputs from `X_DISTS`), models (`LinearSelfAttention`,
`lsa_gd`, `GPT`, by name in `MODELS`), the learning algorithms they are compared with
(`baselines`), the alignment probes (`probes`) and `train`.
"""

from metalearn.icl.baselines import (
    fit_gd,
    fit_gd_plus_plus,
    gd,
    gd_plus_plus,
    gd_weights,
    line_search,
    linear,
    mse,
    ols,
    ols_weights,
    optimal_gd_lr,
    optimal_gd_mse,
    ridge,
    ridge_floor,
    ridge_weights,
)
from metalearn.icl.data import (
    INPUT_SCALES,
    X_DISTS,
    InputDistribution,
    Prompts,
    TaskDistribution,
    input_distribution,
    input_moments,
    task_pool,
)
from metalearn.icl.gpt import GPT
from metalearn.icl.lsa import LinearSelfAttention, lsa_gd
from metalearn.icl.models import MODELS, make_model
from metalearn.icl.probes import alignment, ilwd, implied_weights, probe_r2, sensitivity, spd, sweep
from metalearn.icl.train import TrainResult, train

__all__ = [
    "GPT",
    "INPUT_SCALES",
    "MODELS",
    "InputDistribution",
    "LinearSelfAttention",
    "Prompts",
    "TaskDistribution",
    "TrainResult",
    "X_DISTS",
    "alignment",
    "fit_gd",
    "fit_gd_plus_plus",
    "gd",
    "gd_plus_plus",
    "gd_weights",
    "ilwd",
    "implied_weights",
    "input_distribution",
    "input_moments",
    "line_search",
    "linear",
    "lsa_gd",
    "make_model",
    "mse",
    "ols",
    "ols_weights",
    "optimal_gd_lr",
    "optimal_gd_mse",
    "probe_r2",
    "ridge",
    "ridge_floor",
    "ridge_weights",
    "sensitivity",
    "spd",
    "sweep",
    "task_pool",
    "train",
]
