"""Captured meta-training steps, for small models whose steps cost more to launch than to compute.

A step of the functional engine on the sine MLP is hundreds of tiny kernels; on a GPU the time goes
to launching them, not running them. Two ways to pay that cost once (`CAPTURES`):

- `compile`: the meta-loss through `torch.compile` (TorchDynamo, then TorchInductor's fused
  kernels, Ansel et al. 2024), its backward compiled with it; Adam stays eager. Works on any device.
- `cuda_graph`: the whole step (meta-loss, backward, Adam) recorded once as a CUDA graph and
  replayed for every meta-batch, whose tensors are copied into the input buffers the graph was
  recorded with (PyTorch's "whole-network capture" recipe). Adam must be `capturable=True`, so
  that its step count lives on the GPU and is read inside the graph; learners make it so on every
  GPU, recorded or not.

`none` is the eager step. Every option computes the same step. A replayed graph's training curve
equals the eager one bit for bit (both round through capturable Adam; `make gpu-check`); a compiled
one agrees to float32 rounding (tests/metalearn/test_capture.py on the CPU, `make gpu-check`).

Measured on an NVIDIA H200 (torch 2.11, benchmarks/results/maml-gpu.md), one meta-step of
second-order MAML: sine (meta-batch 25) 10.9 ms eager, 6.0 ms compiled, 0.73 ms replayed; conv-4
(5-way 1-shot, meta-batch 32) 41.8 ms eager, 8.4 ms replayed. The `maml` scenario therefore
replays from a graph by default on a GPU wherever the step allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from metalearn.fewshot.tasks import Tasks

CAPTURES = ("none", "compile", "cuda_graph")


def compiled(function: Callable) -> Callable:
    """`torch.compile(function)`, without torch's "No CUDA runtime is found" (`_gpu_less`)."""
    logging.getLogger("torch.utils.cpp_extension").addFilter(_gpu_less)  # once: filters are a set
    return torch.compile(function)


def _gpu_less(record: logging.LogRecord) -> bool:
    """False for the warning TorchInductor's first import of `torch.utils.cpp_extension` logs on a
    machine with a CUDA toolkit and no GPU: nothing a CPU run can act on, and a second line on the
    stderr of a successful run."""
    return not record.getMessage().startswith("No CUDA runtime is found")


class CudaGraphStep:
    """`step(tasks) -> meta-loss` run eagerly `warmup` times on a side stream, then recorded as a
    CUDA graph and replayed.

    The warm-up steps are real training steps on real meta-batches (the recipe's side-stream
    warm-up, so lazily initialised state exists before recording): the run trains exactly as many
    steps as it is asked to. Recording runs no kernels, so the step that records also replays.
    """

    def __init__(self, step: Callable[[Tasks], torch.Tensor], warmup: int = 3):
        self.step, self.warmup = step, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: Tasks | None = None  # the buffers the graph reads
        self.loss: torch.Tensor | None = None  # the buffer the graph writes the meta-loss to

    def __call__(self, tasks: Tasks) -> float:
        if self.warmup:
            self.warmup -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = self.step(tasks)
            torch.cuda.current_stream().wait_stream(side)
            return loss.item()
        if self.graph is None:
            self.inputs = Tasks(*(t.clone() for t in tasks))
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.loss = self.step(self.inputs)
        else:
            shapes = [tuple(t.shape) for t in tasks]
            if shapes != [tuple(t.shape) for t in self.inputs]:
                raise ValueError(
                    f"capture='cuda_graph' replays meta-batches of shapes "
                    f"{[tuple(t.shape) for t in self.inputs]}; got {shapes}"
                )
            for buffer, t in zip(self.inputs, tasks):
                buffer.copy_(t)
        self.graph.replay()
        return self.loss.item()
