"""Forward solvers of a deep equilibrium model: z* with z* = f(z*), from f alone.

Each solver is a factory closing over its tolerance and iteration cap and returning
`solve(f, z0) -> SolverResult`. Conventions: the first dimension of z is the batch when z has two
or more dimensions (Anderson and Broyden mix iterates per example, as torchdeq does), a 1-D z is
one example; the residual is the relative one over the whole tensor, ‖f(z) − z‖ / ‖f(z)‖; `nfe`
counts evaluations of f, and the trace holds the residual measured at each of them. A solve
returns its lowest-residual iterate; it stops at the first non-finite residual and returns that
iterate, so the caller sees the divergence. No in-place writes: `unrolled` differentiates through
every solver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.solvers import solve_or_nan

Map = Callable[[Tensor], Tensor]


class SolverResult(NamedTuple):
    z: Tensor  # the lowest-residual iterate (or the first with a non-finite residual)
    residual: float  # ‖f(z) − z‖ / ‖f(z)‖ at z
    nfe: int  # evaluations of f
    converged: bool  # residual <= tol within max_iter evaluations
    trace: list[float]  # the residual at each evaluation, len(trace) == nfe


Solver = Callable[[Map, Tensor], SolverResult]


def relative_residual(fz: Tensor, z: Tensor) -> float:
    """‖f(z) − z‖ / ‖f(z)‖ over the whole tensor (a zero f(z) counts as 1 in the denominator)."""
    scale = fz.detach().norm().item()
    return (fz - z).detach().norm().item() / (scale if scale > 0 else 1.0)


class _Record:
    """The residual trace and the best iterate of one solve."""

    def __init__(self, tol: float):
        self.tol, self.trace, self.best, self.best_residual = tol, [], None, math.inf

    def add(self, z: Tensor, fz: Tensor) -> bool:
        """Record z's residual; True when the solve should stop (converged or non-finite)."""
        residual = relative_residual(fz, z)
        self.trace.append(residual)
        if not math.isfinite(residual):
            self.best, self.best_residual = z, residual
            return True
        if residual < self.best_residual:
            self.best, self.best_residual = z, residual
        return residual <= self.tol

    def result(self) -> SolverResult:
        converged = self.best_residual <= self.tol
        return SolverResult(self.best, self.best_residual, len(self.trace), converged, self.trace)


def _check(name: str, tol: float, max_iter: int) -> None:
    if not tol >= 0 or max_iter < 1:
        raise ValueError(f"{name}: tol={tol}, max_iter={max_iter}; valid: tol >= 0, max_iter >= 1")


def _batched(z: Tensor) -> Tensor:
    """z as (B, d): the first dimension is the batch, or one example for a 1-D z."""
    return z.reshape(z.shape[0] if z.dim() > 1 else 1, -1)


def fixed_point_iteration(tol: float = 1e-6, max_iter: int = 50) -> Solver:
    """z_{k+1} = f(z_k) (Banach): converges like ρ(∂f/∂z)^k where f is a contraction."""
    _check("fixed_point_iteration", tol, max_iter)

    def solve(f: Map, z0: Tensor) -> SolverResult:
        record, z = _Record(tol), z0
        for _ in range(max_iter):
            fz = f(z)
            if record.add(z, fz):
                break
            z = fz
        return record.result()

    return solve


def anderson(
    tol: float = 1e-6, max_iter: int = 50, memory: int = 6, lam: float = 1e-4, beta: float = 1.0
) -> Solver:
    """Anderson acceleration (Walker & Ni 2011), per example: with G_i = f(z_i) − z_i over the last
    m iterates, α = argmin ‖Σ αᵢ Gᵢ‖² + λ‖α‖² subject to Σ αᵢ = 1, and
    z_{k+1} = β Σ αᵢ f(zᵢ) + (1 − β) Σ αᵢ zᵢ. Defaults m = 6, λ = 1e-4, β = 1 as torchdeq, except
    that λ here scales with the mean diagonal of GGᵀ: torchdeq adds λI as it is, which stalls the
    solve once ‖G‖² falls to about λ (on the linear task, 364 evaluations to 1e-13 against 46).
    """
    _check("anderson", tol, max_iter)
    if memory < 1 or not lam >= 0 or not 0 < beta <= 1:
        raise ValueError(
            f"anderson: memory={memory}, lam={lam}, beta={beta}; valid: memory >= 1, lam >= 0, 0 < beta <= 1"
        )

    def solve(f: Map, z0: Tensor) -> SolverResult:
        shape, record = z0.shape, _Record(tol)
        xs, fs = [_batched(z0)], []  # each (B, d)
        for k in range(max_iter):
            fz = f(xs[-1].reshape(shape))
            fs.append(_batched(fz))
            if record.add(xs[-1].reshape(shape), fz):
                break
            xs, fs = xs[-memory:], fs[-memory:]
            if k == 0:
                xs.append(fs[-1])
                continue
            x_hist, f_hist = torch.stack(xs, 1), torch.stack(fs, 1)  # (B, n, d)
            alpha = _anderson_weights(f_hist - x_hist, lam)  # (B, n)
            mixed_f = torch.einsum("bn,bnd->bd", alpha, f_hist)
            mixed_x = torch.einsum("bn,bnd->bd", alpha, x_hist)
            xs.append(beta * mixed_f + (1 - beta) * mixed_x if beta != 1 else mixed_f)
        return record.result()

    return solve


def _anderson_weights(g: Tensor, lam: float) -> Tensor:
    """α of min ‖αᵀG‖² + (λs + √tiny)‖α‖², Σα = 1, s = tr(GGᵀ)/n, from the bordered system
    [[0, 1ᵀ], [1, GGᵀ + (λs + √tiny)I]] [ν; α] = [1; 0]; its minimum-norm solution where it is
    singular, and NaN where GGᵀ overflowed."""
    batch, n, _ = g.shape
    gram = g @ g.transpose(1, 2)  # (B, n, n)
    scale = gram.diagonal(dim1=1, dim2=2).mean(-1)  # (B,)
    # an example that has converged exactly has G = 0: the floor keeps its system regular (α uniform)
    ridge = lam * scale + torch.finfo(g.dtype).tiny ** 0.5
    gram = gram + ridge[:, None, None] * torch.eye(n, dtype=g.dtype, device=g.device)
    ones = g.new_ones(batch, n, 1)
    top = torch.cat([g.new_zeros(batch, 1, 1), ones.transpose(1, 2)], 2)
    system = torch.cat([top, torch.cat([ones, gram], 2)], 1)  # (B, n + 1, n + 1)
    rhs = torch.cat([g.new_ones(batch, 1, 1), g.new_zeros(batch, n, 1)], 1)
    weights = solve_or_nan(system, rhs)  # (B, n + 1, 1); NaN, so a non-finite step, where GGᵀ overflowed
    # λ = 0, or a λs lost in rounding, leaves the system singular when the residuals are dependent
    # (more of them than dimensions): of the many minimisers, the minimum-norm one (pinv)
    singular = weights.isnan().flatten(1).any(1) & system.isfinite().flatten(1).all(1)
    if singular.any():
        weights = weights.index_put((singular,), torch.linalg.pinv(system[singular]) @ rhs[singular])
    return weights[:, 1:, 0]


def broyden(tol: float = 1e-6, max_iter: int = 50) -> Solver:
    """Broyden's good method on g(z) = f(z) − z (Broyden 1965), per example, as Bai et al. (2019)
    solve DEQs: z_{k+1} = z_k − B_k g(z_k) with B ≈ (∂g/∂z)⁻¹, B₀ = −I, and the Sherman–Morrison
    update B_{k+1} = B_k + (Δz − B_kΔg) Δzᵀ B_k / (Δzᵀ B_k Δg), kept as −I + Σ uᵢvᵢᵀ."""
    _check("broyden", tol, max_iter)

    def solve(f: Map, z0: Tensor) -> SolverResult:
        shape, record = z0.shape, _Record(tol)
        us, vs = [], []  # B = −I + Σ uᵢ vᵢᵀ, each (B, d)
        z = _batched(z0)
        fz = f(z.reshape(shape))
        g = _batched(fz) - z
        if record.add(z.reshape(shape), fz):
            return record.result()
        for _ in range(max_iter - 1):
            low_rank = (torch.stack(us, 1), torch.stack(vs, 1)) if us else None  # (B, k, d) each
            step = -_broyden_apply(low_rank, g)
            z_new = z + step
            fz = f(z_new.reshape(shape))
            g_new = _batched(fz) - z_new
            if record.add(z_new.reshape(shape), fz):
                break
            dg = g_new - g
            v = _broyden_apply(low_rank, step, transpose=True)
            denom = (v * dg).sum(-1, keepdim=True)
            safe = denom.abs() > torch.finfo(denom.dtype).tiny ** 0.5  # a converged example keeps B
            u = torch.where(safe, (step - _broyden_apply(low_rank, dg)) / torch.where(safe, denom, 1.0), 0.0)
            us.append(u)
            vs.append(v)
            z, g = z_new, g_new
        return record.result()

    return solve


def _broyden_apply(low_rank: tuple[Tensor, Tensor] | None, v: Tensor, transpose: bool = False) -> Tensor:
    """B v (or Bᵀ v) for B = −I + Σ uᵢ vᵢᵀ stored as stacked (U, V), each (B, k, d)."""
    if low_rank is None:
        return -v
    left, right = low_rank if not transpose else low_rank[::-1]
    return -v + torch.einsum("bkd,bk->bd", left, torch.einsum("bkd,bd->bk", right, v))


FORWARD_SOLVERS: dict[str, Callable[..., Solver]] = {
    "fixed_point": fixed_point_iteration,
    "anderson": anderson,
    "broyden": broyden,
}
