"""Data-parallel MAML: meta-steps per second at 1 and 2 ranks, and the all-reduce's share of a step.

Second-order MAML on sine (K = 10, meta-batch 100, 1 inner step: a step of milliseconds, so the
collectives weigh) and FOMAML on glyphs (conv-4, 5-way 1-shot, 1 query per class, meta-batch 32, 1
inner step: a step of a second), one thread per rank, ranks started as processes of one
torch.distributed group (gloo on the CPU, NCCL with `--device cuda`,
one GPU per rank where there are two). Each rank takes its share of the meta-batch
(`metalearn.distributed`); a step's time is the slowest rank's, the all-reduce's share the
time rank 0 spends in the collectives (the meta-gradient's and the logged loss's) over its step.
The 1-rank row is the same loop in one process, with no collective.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.timing import CPU, markdown_table

WARMUP = 5
# case -> (algorithm, family, meta-batch, inner rate, timed steps)
CASES = {
    "maml, sine K=10, meta-batch 100": ("maml", "sine", 100, 0.01, 30),
    "fomaml, glyphs 5-way 1-shot, meta-batch 32": ("fomaml", "glyphs", 32, 0.4, 10),
}
REPO = Path(__file__).resolve().parents[1]


def main(device: torch.device = CPU) -> str:
    rows = []
    for case in CASES:
        single = None
        for ranks in (1, 2):
            if device.type == "cuda" and ranks > torch.cuda.device_count():
                continue
            seconds, collective = _launch(case, ranks, device)
            single = single or seconds
            rows.append([case, ranks, 1 / seconds, f"{100 * collective / seconds:.1f}%", single / seconds])
    table = markdown_table(["case", "ranks", "meta-steps / s", "all-reduce share", "speed-up"], rows)
    intro = __doc__.split("\n\n")[1].replace("\n", " ")
    return f"## Data-parallel MAML\n\n{intro}\n\n{table}"


def _launch(case: str, ranks: int, device: torch.device) -> tuple[float, float]:
    """(seconds per meta-step, seconds of it in collectives) of `case` on `ranks` processes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "timing.json"
        env = {**os.environ, "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.distributed", str(out), device.type, case],
                env={**env, "RANK": str(rank), "WORLD_SIZE": str(ranks), "LOCAL_RANK": str(rank)},
            )
            for rank in range(ranks)
        ]
        if any(worker.wait() != 0 for worker in workers):
            raise RuntimeError(f"a rank of the {ranks}-rank benchmark failed")
        timing = json.loads(out.read_text())
    return timing["step"], timing["collective"]


def _rank(out: str, device_type: str, case: str) -> None:
    """One rank: time the case's steps of `meta_train` after WARMUP, rank 0 writing the timing."""
    import torch.distributed as dist

    from metalearn.fewshot import Sine, glyphs
    from metalearn.maml import make_learner, meta_train

    algo, family_name, meta_batch, inner_lr, steps = CASES[case]

    torch.set_num_threads(1)
    size = int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if device_type == "cuda" else CPU
    collective = [0.0]
    if size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        reduce = dist.all_reduce

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = reduce(*args, **kwargs)
            collective[0] += time.perf_counter() - start
            return result

        dist.all_reduce = timed
    family = Sine(10, 10) if family_name == "sine" else glyphs(ways=5, shots=1, queries=1)
    generator = torch.Generator().manual_seed(0)
    learner = make_learner(algo, family.make_model(generator).to(device), family.kind, inner_lr=inner_lr)
    meta_train({algo: learner}, family, iterations=WARMUP, meta_batch=meta_batch, generator=generator)
    collective[0] = 0.0
    if size > 1:
        dist.barrier()
    start = time.perf_counter()
    meta_train(
        {algo: learner}, family, iterations=WARMUP + steps, meta_batch=meta_batch, generator=generator,
        start=WARMUP,
    )  # fmt: skip
    elapsed = torch.tensor([time.perf_counter() - start])
    if size > 1:
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    if size == 1 or dist.get_rank() == 0:
        Path(out).write_text(
            json.dumps({"step": elapsed.item() / steps, "collective": collective[0] / steps})
        )
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    _rank(*sys.argv[1:4])
