"""The in-context learners by name: a registry of model factories, read by the CLI.

Adding a model is one factory (a class or function returning an `nn.Module` with `.loss(Prompts)`,
`forward(xs, ys, xq)` and `query_states(xs, ys, xq)`) and one line in `MODELS` (see
`registration`); a user's own is `model=module:factory`.
"""

from __future__ import annotations

from torch import nn

from metalearn.icl.gpt import GPT
from metalearn.icl.lsa import LinearSelfAttention, lsa_gd
from registration import Registry

MODELS = Registry("model", returns=nn.Module)
MODELS.register("lsa", LinearSelfAttention)  # trained linear self-attention (von Oswald et al., 2023)
MODELS.register("lsa_gd", lsa_gd)  # the same, constructed to run GD with a given η: nothing to train
MODELS.register("gpt", GPT)  # a causal softmax transformer (Garg et al., 2022)

make_model = MODELS.make
