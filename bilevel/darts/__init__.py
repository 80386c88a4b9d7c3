"""DARTS (Liu, Simonyan & Yang 2019) on the 8×8 digits: a supernet whose edges mix candidate
operations through softmax(α), α's gradient from any hypergradient method of `bilevel` through
`SupernetProblem`, the search loop with its per-epoch diagnostics (`search`), the derived
architecture (`derive`), and what it is worth retrained against random search and single
operations (`train_architecture`, `random_search`, `uniform_genotype`)."""

from bilevel.darts.evaluate import (
    RandomSearchResult,
    Trained,
    TrainSettings,
    accuracy,
    random_search,
    train_architecture,
)
from bilevel.darts.problem import SupernetProblem
from bilevel.darts.search import (
    SearchResult,
    SearchSettings,
    alpha_hessian_product,
    diagnostics,
    dominant_eigenvalue,
    ift_cosine,
    search,
    search_step,
    skip_fraction,
)
from bilevel.darts.supernet import (
    OPS,
    CellNetwork,
    Edge,
    Flat,
    Genotype,
    MixedOp,
    derive,
    edge_list,
    initialise,
    network,
    random_genotype,
    supernet,
    uniform_genotype,
)

__all__ = [
    "OPS",
    "CellNetwork",
    "Edge",
    "Flat",
    "Genotype",
    "MixedOp",
    "RandomSearchResult",
    "SearchResult",
    "SearchSettings",
    "SupernetProblem",
    "TrainSettings",
    "Trained",
    "accuracy",
    "alpha_hessian_product",
    "derive",
    "diagnostics",
    "dominant_eigenvalue",
    "edge_list",
    "ift_cosine",
    "initialise",
    "network",
    "random_genotype",
    "random_search",
    "search",
    "search_step",
    "skip_fraction",
    "supernet",
    "train_architecture",
    "uniform_genotype",
]
