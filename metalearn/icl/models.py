"""The in-context learners by name: a registry of model factories, read by the CLI.

Adding a model is one factory (a class or function returning an `nn.Module` with `.loss(Prompts)`,
`forward(xs, ys, xq)` and `query_states(xs, ys, xq)`) and one line in `MODELS`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from metalearn.icl.gpt import GPT
from metalearn.icl.lsa import LinearSelfAttention, lsa_gd

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lsa": LinearSelfAttention,  # trained linear self-attention (von Oswald et al., 2023)
    "lsa_gd": lsa_gd,  # the same, constructed to run GD with a given η: nothing to train
    "gpt": GPT,  # a causal softmax transformer (Garg et al., 2022)
}


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory of the model `name`, one of `MODELS`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name]


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options the model `name`'s factory takes."""
    return tuple(inspect.signature(model_factory(name)).parameters)


def make_model(name: str, **options: Any) -> nn.Module:
    """Build the model `name` with its options; one it does not take is an error naming those it does."""
    valid = model_options(name)
    for key in options:
        if key not in valid:
            raise ValueError(f"model {name!r} takes no option {key!r}; valid: {', '.join(valid)}")
    return MODELS[name](**options)
