"""One rank of a data-parallel meta-training, for tests/metalearn/test_distributed.py.

    python distributed_worker.py OUT.json   # with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set

Without WORLD_SIZE (or with 1) it is the single process the ranks are compared with. Writes, from
rank 0: the meta-gradient of the first float64 meta-step (second-order MAML on sine, a meta-batch
of 5 tasks, which 2 ranks split 2 + 3), and the logged meta-loss of 50 float32 meta-steps. With
PERTURB_RANK=r, rank r changes one weight by 1e-12 and each rank writes what `check_same` says
to OUT.json.<rank>.
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from metalearn.fewshot import Sine
from metalearn.maml import make_learner, meta_train
from metalearn.maml.distributed import check_same


def train(dtype: torch.dtype, iterations: int) -> tuple[list[float], list[float]]:
    family = Sine(10, 10)
    generator = torch.Generator().manual_seed(0)
    learner = make_learner("maml", family.make_model(generator).to(dtype), family.kind, inner_lr=0.01)
    if dtype == torch.float64:
        family = Float64(family)
    result = meta_train({"maml": learner}, family, iterations=iterations, meta_batch=5, generator=generator)
    gradient = torch.cat([p.grad.flatten() for p in learner.meta_parameters()]).tolist()
    return gradient, [row["loss/maml"] for row in result.history.rows]


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
    if os.environ.get("PERTURB_RANK"):  # check_same on weights one rank changed
        weights = [torch.ones(3), torch.zeros(2)]
        if dist.get_rank() == int(os.environ["PERTURB_RANK"]):
            weights[1][0] = 1e-12
        try:
            check_same(weights)
            found = "same"
        except RuntimeError as error:
            found = str(error)
        with open(f"{out}.{dist.get_rank()}", "w") as f:
            f.write(found)
        dist.destroy_process_group()
        return
    gradient, _ = train(torch.float64, 1)
    _, curve = train(torch.float32, 50)
    if size == 1 or dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump({"gradient": gradient, "curve": curve, "world": size}, f)
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
