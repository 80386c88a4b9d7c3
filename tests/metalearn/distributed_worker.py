"""One rank of a data-parallel meta-training, for tests/metalearn/test_distributed.py.

    python distributed_worker.py OUT.json   # with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set

Without WORLD_SIZE (or with 1) it is the single process the ranks are compared with. Writes, from
rank 0: the meta-gradient of the first float64 meta-step (second-order MAML on sine, a meta-batch
of 5 tasks, which 2 ranks split 2 + 3), the logged meta-loss of 50 float32 meta-steps, and the
loss of 30 steps of in-context training (`metalearn.icl.train`, 9 prompts a step); with several
ranks also what `check_same` says of equal weights and of weights rank 0, then 1, moved, each rank
writing its own to OUT.json.<rank>.
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from metalearn import icl
from metalearn.distributed import check_same
from metalearn.fewshot import Sine
from metalearn.icl.lsa import LinearSelfAttention
from metalearn.maml import make_learner, meta_train


def train(dtype: torch.dtype, iterations: int) -> tuple[list[float], list[float]]:
    family = Sine(10, 10)
    generator = torch.Generator().manual_seed(0)
    learner = make_learner("maml", family.make_model(generator).to(dtype), family.kind, inner_lr=0.01)
    if dtype == torch.float64:
        family = Float64(family)
    result = meta_train({"maml": learner}, family, iterations=iterations, meta_batch=5, generator=generator)
    gradient = torch.cat([p.grad.flatten() for p in learner.meta_parameters()]).tolist()
    return gradient, [row["loss/maml"] for row in result.history.rows]


def checked(perturbed: int | None) -> str:
    """What `check_same` says of weights that rank `perturbed` (None: no rank) moved by 1e-12."""
    weights = [torch.ones(3), torch.zeros(2)]
    if dist.get_rank() == perturbed:
        weights[1][0] = 1e-12
    try:
        check_same(weights)
    except RuntimeError as error:
        return str(error)
    return "same"


def train_icl(steps: int) -> list[float]:
    """A one-layer LSA on in-context regression, 9 prompts a step (2 ranks: 4 + 5), every loss."""
    generator = torch.Generator().manual_seed(0)
    model = LinearSelfAttention(3, layers=1, generator=generator)
    tasks = icl.TaskDistribution(dim=3, context=5)
    rows = icl.train(model, tasks, steps=steps, batch=9, lr=1e-2, generator=generator, every=1).history.rows
    return [row["loss/train"] for row in rows]


class Float64:
    """The family's tasks in float64."""

    def __init__(self, family):
        self.family = family

    def sample(self, split, n, generator):
        tasks = self.family.sample(split, n, generator)
        return type(tasks)(*(t.double() for t in tasks))


def main(out: str) -> None:
    torch.set_num_threads(1)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1:
        dist.init_process_group("gloo")
    gradient, _ = train(torch.float64, 1)
    _, curve = train(torch.float32, 50)
    icl_curve = train_icl(30)
    found = {"gradient": gradient, "curve": curve, "icl": icl_curve, "world": size}
    if size > 1:
        found["checked"] = [checked(perturbed) for perturbed in (None, 0, 1)]
        with open(f"{out}.{dist.get_rank()}", "w") as f:
            json.dump(found["checked"], f)
    if size == 1 or dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(found, f)
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
