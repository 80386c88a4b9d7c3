"""Deep equilibrium models: memory of the implicit (IFT) backward against back-propagation through
the forward iterations, at K = 10 and 100 fixed-point iterations.

One `ReluCell` f(z, x) = W₂ᵀReLU(W₁z + Ux + b) (d = width = 256, batch 512, float32), K forward
evaluations by fixed-point iteration (tol = 0, so exactly K), then one backward of Σz. `ift`
records only f(z*, x) and solves the adjoint by a 20-term Neumann series in the backward;
`unrolled` records every iteration. Two measures: the bytes of the tensors autograd saves for the
backward (counted with torch.autograd.graph.saved_tensors_hooks, each storage once: exact and
deterministic), and the peak memory growth over forward and backward together (the peak of what
torch's allocator hands out, from the profiler's record on the CPU, the caching allocator's on a
GPU: benchmarks.timing.peak_memory), with
the median time of forward plus backward. One torch thread on the CPU.
"""

from __future__ import annotations

import torch

from benchmarks.timing import CPU, markdown_table, peak_memory, summarize, time_it
from bilevel import deq

DIM, BATCH, ITERATIONS, REPEATS = 256, 512, (10, 100), 5
MIB = 2**20


def _problem(device: torch.device):
    generator = torch.Generator().manual_seed(0)
    cell = deq.ReluCell(DIM, DIM, DIM, scale=0.5, generator=generator).to(device)
    x = torch.randn(BATCH, DIM, generator=generator).to(device)
    return cell, x


def _forward(cell, x, iterations: int, backward) -> torch.Tensor:
    solver = deq.fixed_point_iteration(tol=0.0, max_iter=iterations)
    return deq.equilibrium(cell, x, torch.zeros_like(x), solver, backward).z


def saved_bytes(forward) -> int:
    """Bytes of the distinct storages autograd saves for the backward while forward() records its
    graph (the backward then runs outside the hooks: torch.func refuses them)."""
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        z = forward()
    z.sum().backward()
    return sum(storages.values())


def main(device: torch.device = CPU) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cell, x = _problem(device)
        backwards = {
            "ift (Neumann adjoint, 20 terms)": deq.ift("neumann", iters=20),
            "unrolled": deq.unrolled(),
        }
        rows = []
        for iterations in ITERATIONS:
            for name, backward in backwards.items():
                forward = lambda backward=backward: _forward(cell, x, iterations, backward)
                step = lambda forward=forward: forward().sum().backward()
                step()  # warm-up
                saved = saved_bytes(forward)
                peak = max(peak_memory(step, device) for _ in range(3))
                seconds, spread = summarize(time_it(_synchronised(step, device), repeats=REPEATS, warmup=1))
                rows.append(
                    [
                        iterations,
                        name,
                        f"{saved / MIB:.1f}",
                        f"{peak / MIB:.1f}",
                        f"{1e3 * seconds:.0f} ± {1e3 * spread:.0f}",
                    ]
                )
    finally:
        torch.set_num_threads(threads)
    header = [
        "forward iterations K",
        "backward",
        "saved for backward (MiB)",
        "peak growth (MiB)",
        "forward + backward (ms)",
    ]
    where = f" on {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"## Deep equilibrium models: IFT backward vs unrolling{where}\n\n"
        + " ".join(__doc__.split("\n\n")[1].split())
        + "\n\n"
        + markdown_table(header, rows)
    )


def _synchronised(fn, device: torch.device):
    def call():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return call


if __name__ == "__main__":
    print(main())
