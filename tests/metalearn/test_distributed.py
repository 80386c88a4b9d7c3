"""Data-parallel training (issue 23): two gloo processes on the CPU train exactly as one, MAML and
in-context regression alike, and find weights that drifted apart."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metalearn.distributed import share
from metalearn.fewshot import Sine

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(size: int, out: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    ranks = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out)],
            env={**env, "RANK": str(rank), "WORLD_SIZE": str(size)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(size)
    ]
    outputs = [rank.communicate(timeout=300)[0] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0] * size, outputs
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    where = tmp_path_factory.mktemp("ranks")
    one, two = run_ranks(1, where / "one.json"), run_ranks(2, where / "two.json")
    assert json.loads((where / "two.json.1").read_text()) == two["checked"]  # rank 1 says the same
    return one, two


def test_two_ranks_give_the_meta_gradient_of_one(one_and_two):
    one, two = one_and_two
    assert two["world"] == 2
    torch.testing.assert_close(
        torch.tensor(two["gradient"]), torch.tensor(one["gradient"]), rtol=1e-10, atol=1e-12
    )


def test_two_ranks_train_the_curve_of_one(one_and_two):
    one, two = one_and_two
    assert len(one["curve"]) == len(two["curve"]) == 50
    torch.testing.assert_close(torch.tensor(two["curve"]), torch.tensor(one["curve"]), rtol=1e-4, atol=0)


@pytest.mark.parametrize(
    "total, size, counts", [(5, 2, [2, 3]), (4, 2, [2, 2]), (7, 3, [2, 2, 3]), (3, 3, [1, 1, 1])]
)
def test_shares_are_disjoint_cover_the_meta_batch_and_weigh_their_size(total, size, counts):
    tasks = Sine(10, 10).sample("train", total, torch.Generator().manual_seed(0))
    shares = [share(tasks, rank, size) for rank in range(size)]
    assert [s.support_x.shape[0] for s, _ in shares] == counts
    assert [w for _, w in shares] == [c / total for c in counts]
    torch.testing.assert_close(torch.cat([s.support_x for s, _ in shares]), tasks.support_x, rtol=0, atol=0)


def test_a_meta_batch_smaller_than_the_group_is_refused():
    tasks = Sine(10, 10).sample("train", 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="^meta_batch=2 across 3 processes; valid: meta_batch >= 3$"):
        share(tasks, 0, 3)


def test_every_rank_finds_weights_that_differ_from_rank_zeros(one_and_two):
    _, two = one_and_two
    differ = "1 of 2 ranks hold other parameters than rank 0's"
    assert two["checked"] == ["same", differ, differ]
