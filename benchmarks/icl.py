"""In-context learning: one LSA training step, batched covariance form against two baselines.

One Adam step (loss, backward, update) of a linear self-attention model on the same prompts and
weights (d = N = 10, as in von Oswald et al. 2023), three ways, repeat by repeat interleaved so all
see the same machine load: `LinearSelfAttention` (Σ_i e_i e_iᵀ formed once per layer, then D × D
products), the same layer with explicit attention scores (B, T, N) as the paper writes it, and a
per-task loop calling the model on one prompt at a time. One torch thread. With `--device cuda`
the same cases run on the GPU, each step ending in a synchronisation so the time is the GPU's.
"""

from __future__ import annotations

import copy

import torch

from benchmarks.timing import CPU, markdown_table, summarize, time_interleaved
from metalearn.icl import LinearSelfAttention, TaskDistribution

REPEATS = 7


def main(device: torch.device = CPU) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = []
        for layers, batch in ((1, 2048), (3, 2048), (1, 128)):
            rows += _compare(layers, batch, loop=batch <= 128, device=device)
    finally:
        torch.set_num_threads(threads)
    header = ["layers", "batch", "implementation", "step (ms)", "± (ms)", "time / ours"]
    where = f" on {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"## In-context learning: LSA training step{where}\n\n"
        + __doc__.split("\n\n")[1].replace("\n", " ")
        + "\n\n"
        + markdown_table(header, rows)
    )


def _explicit_attention(model: LinearSelfAttention, tasks) -> torch.Tensor:
    """The paper's form: scores (e_jᵀ W_Qᵀ W_K e_i) for every (query, key) pair, then values."""
    n = tasks.xs.shape[1]
    query = torch.cat([tasks.xq, torch.zeros_like(tasks.xq[:, :1])], -1)
    tokens = torch.cat([torch.cat([tasks.xs, tasks.ys.unsqueeze(-1)], -1), query.unsqueeze(1)], 1)
    for w_q, w_k, w_v, p in zip(model.w_q, model.w_k, model.w_v, model.p):  # (H, D, D) each
        q = torch.einsum("hij,btj->bhti", w_q, tokens)  # (B, H, T, D)
        k = torch.einsum("hij,bnj->bhni", w_k, tokens[:, :n])  # (B, H, N, D)
        v = torch.einsum("hij,bnj->bhni", w_v, tokens[:, :n])  # (B, H, N, D)
        attended = (q @ k.transpose(-1, -2)) @ v  # (B, H, T, D)
        tokens = tokens + torch.einsum("hij,bhtj->bti", p, attended)
    return ((-tokens[:, -1, -1] - tasks.yq) ** 2).mean()


def _per_task(model: LinearSelfAttention, tasks) -> torch.Tensor:
    losses = [model.loss(type(tasks)(*(t[i : i + 1] for t in tasks))) for i in range(len(tasks.xs))]
    return torch.stack(losses).mean()


def _compare(layers: int, batch: int, loop: bool, device: torch.device) -> list[list[object]]:
    tasks = TaskDistribution(10, 10).sample(batch, torch.Generator().manual_seed(0)).to(device)
    base = LinearSelfAttention(10, layers, generator=torch.Generator().manual_seed(1)).to(device)
    losses = {
        "covariance (ours)": lambda m: m.loss(tasks),
        "explicit scores": lambda m: _explicit_attention(m, tasks),
    }
    if loop:
        losses["per-task loop"] = lambda m: _per_task(m, tasks)
    steps = {}
    for name, loss_of in losses.items():
        model = copy.deepcopy(base)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        assert torch.allclose(loss_of(model), base.loss(tasks), rtol=1e-4), name  # same function

        def step(model=model, optimizer=optimizer, loss_of=loss_of):
            optimizer.zero_grad(set_to_none=True)
            loss_of(model).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        steps[name] = step
    times = time_interleaved(steps, repeats=REPEATS)
    ours = summarize(times["covariance (ours)"])[0]
    rows = []
    for name in steps:
        median, spread = summarize(times[name])
        rows.append([layers, batch, name, 1e3 * median, 1e3 * spread, median / ours])
    return rows
