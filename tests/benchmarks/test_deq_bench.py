"""The DEQ memory benchmark's exact measure: what autograd saves for the backward, counted by hand."""

import torch

import benchmarks.deq as bench
from bilevel import deq


def test_saved_bytes_constant_for_ift_and_linear_in_k_for_unrolling(monkeypatch):
    monkeypatch.setattr(bench, "DIM", 8)
    monkeypatch.setattr(bench, "BATCH", 4)
    cell, x = bench._problem(torch.device("cpu"))
    saved = {
        (name, k): bench.saved_bytes(lambda k=k, b=backward: bench._forward(cell, x, k, b()))
        for name, backward in (("ift", lambda: deq.ift("neumann", iters=3)), ("unrolled", deq.unrolled))
        for k in (10, 20)
    }
    assert saved["ift", 10] == saved["ift", 20]
    # each fixed-point iteration keeps z_k (input of W₁z) and ReLU's output, B × d float32 each
    assert saved["unrolled", 20] - saved["unrolled", 10] == 10 * 2 * 4 * 8 * 4
