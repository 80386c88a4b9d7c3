"""Linear self-attention (LSA) transformers, trained or constructed to run gradient descent.

von Oswald et al. (2023), *Transformers learn in-context by gradient descent*. Tokens are
e_i = (x_i, y_i) for the N context examples and e_q = (x_q, 0) for the query; each layer adds,
summed over heads h, e_j ← e_j + P_h W_V,h (Σ_{i ≤ N} e_i e_iᵀ) W_K,hᵀ W_Q,h e_j: every token
attends to the context tokens only, with no softmax and no 1/N. The prediction is −(the query's
y-entry), their sign convention, under which the GD construction reads W_V = [[0, 0], [0, −1]].
Only the products W_KQ = W_Kᵀ W_Q and W_PV = P W_V are identifiable.
"""

from __future__ import annotations

import torch
from torch import nn

from metalearn.icl.data import Prompts


class LinearSelfAttention(nn.Module):
    """A stack of `layers` LSA layers with `heads` heads each on tokens of size D = dim + 1.

    Weights start N(0, init_scale²). Attention without softmax is associative:
    Σ_i (e_jᵀ W_Qᵀ W_K e_i) W_V e_i = W_V C W_Kᵀ W_Q e_j with C = Σ_i e_i e_iᵀ, so a layer forms C
    once and applies one (D, D) matrix per prompt instead of building (B, T, N) attention scores
    (`benchmarks/icl.py` times both; the README gives the speed-up).
    """

    def __init__(
        self,
        dim: int,
        layers: int = 1,
        heads: int = 1,
        init_scale: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        size = (layers, heads, dim + 1, dim + 1)
        self.w_q, self.w_k, self.w_v, self.p = (
            nn.Parameter(init_scale * torch.randn(size, generator=generator, dtype=dtype)) for _ in range(4)
        )

    @property
    def w_kq(self) -> torch.Tensor:
        """W_Kᵀ W_Q per layer and head, shape (L, H, D, D)."""
        return self.w_k.transpose(-1, -2) @ self.w_q

    @property
    def w_pv(self) -> torch.Tensor:
        """P W_V per layer and head, shape (L, H, D, D)."""
        return self.p @ self.w_v

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """Predictions ŷ for the queries, shape (B,)."""
        return -self.query_states(xs, ys, xq)[-1][:, -1]

    def query_states(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> list[torch.Tensor]:
        """The query token before the first layer and after each layer: L + 1 tensors (B, D)."""
        n = xs.shape[1]
        query = torch.cat([xq, torch.zeros_like(xq[:, :1])], dim=-1)  # (B, D)
        tokens = torch.cat([torch.cat([xs, ys.unsqueeze(-1)], -1), query.unsqueeze(1)], 1)  # (B, N+1, D)
        states = [query]
        for w_kq, w_pv in zip(self.w_kq, self.w_pv):  # (H, D, D) each
            context = tokens[:, :n]  # (B, N, D)
            cov = context.transpose(1, 2) @ context  # (B, D, D) Σ_i e_i e_iᵀ
            update = torch.einsum("hij,bjk,hkl->bil", w_pv, cov, w_kq)  # (B, D, D) Σ_h W_PV C W_KQ
            tokens = tokens + torch.einsum("btj,bij->bti", tokens, update)
            states.append(tokens[:, -1])
        return states

    def loss(self, prompts: Prompts) -> torch.Tensor:
        """Training loss: plain MSE of the query prediction."""
        return ((self(prompts.xs, prompts.ys, prompts.xq) - prompts.yq) ** 2).mean()


def lsa_gd(
    dim: int, layers: int, lr: float, context: int, gamma: float = 0.0, dtype: torch.dtype = torch.float32
) -> LinearSelfAttention:
    """An LSA whose layer t is step t of GD (or of GD++ when γ > 0) with learning rate η.

    Construction (von Oswald et al., 2023): W_KQ = [[I, 0], [0, 0]], W_PV = [[−γI, 0], [0, −η/N]],
    one head per layer. Context y-entries then hold the residuals y_i − w_tᵀx_i and the query's
    y-entry holds −w_tᵀx_q, so the model predicts exactly w_Lᵀx_q of `baselines.gd_weights`.
    """
    model = LinearSelfAttention(dim, layers, heads=1, init_scale=0.0, dtype=dtype)
    eye = torch.eye(dim + 1, dtype=dtype)
    kq = eye.clone()
    kq[dim, dim] = 0
    pv = -gamma * eye
    pv[dim, dim] = -lr / context
    with torch.no_grad():
        model.w_q.copy_(kq.expand_as(model.w_q))
        model.w_k.copy_(kq.expand_as(model.w_k))
        model.w_v.copy_(pv.expand_as(model.w_v))
        model.p.copy_(eye.expand_as(model.p))
    return model
