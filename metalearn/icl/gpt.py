"""A small causal softmax transformer for in-context regression (Garg et al., 2022).

The prompt is the sequence x_1, y_1, ..., x_N, y_N, x_q, read in as tokens (x, 0) and (0_d, y)
by one linear map, plus learned positions. Pre-LayerNorm GPT blocks (Radford et al., 2019) with
causal softmax attention and a 4×-wide GELU MLP; a linear head reads ŷ from every x-token, so one
pass predicts y_{k+1} from the first k examples for every k = 0..N (y_q at k = N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metalearn.icl.data import Prompts


class Block(nn.Module):
    """x ← x + Attn(LN(x)); x ← x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_attn, self.ln_mlp = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln_attn(x)).split(c, dim=-1)  # (B, T, C) each
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C/H)
        x = x + self.out(attn.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln_mlp(x))


class GPT(nn.Module):
    """`layers` blocks of `heads` heads, `width` wide, for prompts of up to `context` examples."""

    def __init__(
        self,
        dim: int,
        context: int,
        layers: int = 3,
        heads: int = 4,
        width: int = 64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} is not a multiple of heads={heads}")
        self.read_in = nn.Linear(dim + 1, width)
        self.positions = nn.Parameter(torch.zeros(2 * context + 1, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.read_out = nn.Linear(width, 1)
        self._init(generator)

    def _init(self, generator: torch.Generator | None) -> None:
        """GPT-2's init, drawn from `generator`: weights N(0, 0.02²), biases 0, LayerNorm (1, 0)."""
        with torch.no_grad():
            for name, param in self.named_parameters():
                if "ln_" in name:
                    continue
                if name.endswith("bias"):
                    param.zero_()
                else:
                    param.copy_(0.02 * torch.randn(param.shape, generator=generator))

    def query_states(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> list[torch.Tensor]:
        """The residual stream at x_q after the read-in and after each block: L + 1 of (B, C)."""
        return [h[:, -1] for h in self._residuals(xs, ys, xq)]

    def predict_all(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """ŷ at every x-token: predictions of y_1, ..., y_N, y_q, shape (B, N+1)."""
        h = self._residuals(xs, ys, xq)[-1]  # (B, 2N+1, C)
        return self.read_out(self.ln_final(h[:, ::2])).squeeze(-1)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """ŷ_q, shape (B,)."""
        h = self._residuals(xs, ys, xq)[-1][:, -1]  # (B, C)
        return self.read_out(self.ln_final(h)).squeeze(-1)

    def loss(self, prompts: Prompts) -> torch.Tensor:
        """Training loss: plain MSE averaged over all N + 1 prefix lengths (Garg et al., 2022)."""
        targets = torch.cat([prompts.ys, prompts.yq.unsqueeze(-1)], -1)  # (B, N+1)
        return ((self.predict_all(prompts.xs, prompts.ys, prompts.xq) - targets) ** 2).mean()

    def _residuals(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> list[torch.Tensor]:
        b, n, d = xs.shape
        x_tokens = torch.cat([torch.cat([xs, xq.unsqueeze(1)], 1), xs.new_zeros(b, n + 1, 1)], -1)
        y_tokens = torch.cat([xs.new_zeros(b, n, d), ys.unsqueeze(-1)], -1)  # (B, N, d+1)
        tokens = torch.empty(b, 2 * n + 1, d + 1, dtype=xs.dtype, device=xs.device)
        tokens[:, 0::2], tokens[:, 1::2] = x_tokens, y_tokens  # x_1, y_1, ..., x_N, y_N, x_q
        h = self.read_in(tokens) + self.positions[: 2 * n + 1]  # (B, 2N+1, C)
        states = [h]
        for block in self.blocks:
            h = block(h)
            states.append(h)
        return states
