"""The DARTS search space on flat features: a cell is a DAG of nodes x_j = Σ_{i<j} ō_{ij}(x_i), each
edge a mixture of candidate operations ō(x) = Σ_k softmax(α_{ij})_k o_k(x) (Liu, Simonyan & Yang
2019, eq. 2), and the discrete architecture derived from α by their rule.

Here the nodes are `width`-dimensional feature vectors of an 8×8 digit (64 pixels) rather than
feature maps, so the candidate operations are the fully connected counterparts of DARTS's:
`none` (the zero operation), `skip` (identity), `linear` (ReLU then one linear layer, DARTS's
ReLU-conv-BN without the normalisation) and `mlp` (two such layers). A network is a stem
Linear(64, width), `cells` cells with α shared between them (as DARTS shares α over its normal
cells), each cell's intermediate nodes concatenated (DARTS's cell output) and projected back to
`width` for the next cell, and a linear classifier. Edges are numbered node by node: (0→1),
(0→2), (1→2), (0→3), ... ; α has shape (edges, len(OPS)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

OPS = ("none", "skip", "linear", "mlp")
NONE = OPS.index("none")


class Edge(NamedTuple):
    source: int  # node index, 0 is the cell's input
    target: int
    op: str


class Genotype(NamedTuple):
    """A discrete architecture: the edges kept in each cell (shared by all cells), and the shape."""

    edges: tuple[Edge, ...]
    nodes: int  # intermediate nodes per cell
    cells: int

    def describe(self) -> str:
        return ", ".join(f"{e.source}→{e.target}:{e.op}" for e in self.edges)


def edge_list(nodes: int) -> list[tuple[int, int]]:
    """Every edge i→j of a cell with `nodes` intermediate nodes, node by node: 0→1, 0→2, 1→2, ..."""
    return [(i, j) for j in range(1, nodes + 1) for i in range(j)]


def make_op(name: str, width: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip":
        return nn.Identity()
    if name == "linear":
        return nn.Sequential(nn.ReLU(), nn.Linear(width, width), _norm(width))
    if name == "mlp":
        return nn.Sequential(
            nn.ReLU(), nn.Linear(width, width), _norm(width), nn.ReLU(), nn.Linear(width, width), _norm(width)
        )
    raise ValueError(f"unknown operation {name!r}; valid: {', '.join(OPS)}")


def _norm(width: int) -> nn.Module:
    """DARTS's batch normalisation without affine parameters, here per example (no running state)."""
    return nn.LayerNorm(width, elementwise_affine=False)


class _Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


class MixedOp(nn.Module):
    """ō(x) = Σ_k weights_k o_k(x) over the candidate operations of one edge (one operation: o(x))."""

    def __init__(self, ops: Sequence[str], width: int):
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, width) for name in ops)

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:  # x (B, width), weights (K,)
        if weights is None:
            return self.ops[0](x)
        return sum(w * op(x) for w, op in zip(weights, self.ops) if not isinstance(op, _Zero))  # 0·none


class Cell(nn.Module):
    """Nodes x_0 = the input, x_j = Σ_{i→j} ō_{ij}(x_i); the output concatenates x_1..x_N."""

    def __init__(
        self, edges: Sequence[tuple[int, int]], ops: Sequence[Sequence[str]], nodes: int, width: int
    ):
        super().__init__()
        self.edges, self.nodes = list(edges), nodes
        self.mixed = nn.ModuleList(MixedOp(names, width) for names in ops)

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:  # (B, width) -> (B, nodes·width)
        states = [x] + [torch.zeros_like(x) for _ in range(self.nodes)]
        for e, (source, target) in enumerate(self.edges):
            states[target] = states[target] + self.mixed[e](
                states[source], None if weights is None else weights[e]
            )
        return torch.cat(states[1:], dim=-1)


class CellNetwork(nn.Module):
    """stem -> cell (-> projection -> cell ...) -> classifier, on (B, 64) pixels to (B, 10) logits.

    `edge_ops[e]` names the candidate operations of edge `edges[e]`: all of OPS for the supernet,
    one each for a derived architecture (called then without weights)."""

    def __init__(
        self,
        edges: Sequence[tuple[int, int]],
        edge_ops: Sequence[Sequence[str]],
        nodes: int,
        cells: int = 1,
        width: int = 32,
        inputs: int = 64,
        classes: int = 10,
    ):
        super().__init__()
        self.stem = nn.Linear(inputs, width)
        self.cells = nn.ModuleList(Cell(edges, edge_ops, nodes, width) for _ in range(cells))
        self.projections = nn.ModuleList(nn.Linear(nodes * width, width) for _ in range(cells - 1))
        self.classifier = nn.Linear(nodes * width, classes)

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:
        h = self.stem(x)
        for c, cell in enumerate(self.cells):
            if c > 0:
                h = self.projections[c - 1](torch.relu(h))
            h = cell(h, weights)
        return self.classifier(torch.relu(h))


def supernet(nodes: int = 3, cells: int = 1, width: int = 32, ops: Sequence[str] = OPS) -> CellNetwork:
    """Every edge mixing every operation of `ops`: the one-shot model DARTS searches with."""
    edges = edge_list(nodes)
    return CellNetwork(edges, [tuple(ops)] * len(edges), nodes, cells, width)


def network(genotype: Genotype, width: int = 32) -> CellNetwork:
    """The discrete architecture alone, fresh weights: each kept edge one operation."""
    kept = [e for e in genotype.edges if e.op != "none"]
    return CellNetwork(
        [(e.source, e.target) for e in kept], [(e.op,) for e in kept], genotype.nodes, genotype.cells, width
    )


def derive(alpha: Tensor, nodes: int, cells: int = 1, top_k: int = 2, ops: Sequence[str] = OPS) -> Genotype:
    """DARTS's discrete architecture: for each node j, the `top_k` incoming edges with the largest
    max_{o≠none} softmax(α_ij)_o, each with that argmax operation (Liu et al. 2019, §2.4)."""
    weights = torch.softmax(alpha.detach(), dim=-1)  # (edges, K)
    none = list(ops).index("none") if "none" in ops else None
    if none is not None:
        weights[:, none] = -1.0
    best, best_op = weights.max(dim=-1)
    kept = []
    for target in range(1, nodes + 1):
        incoming = [e for e, (_, j) in enumerate(edge_list(nodes)) if j == target]
        ranked = sorted(incoming, key=lambda e: -best[e].item())[:top_k]
        kept += [Edge(edge_list(nodes)[e][0], target, ops[best_op[e]]) for e in sorted(ranked)]
    return Genotype(tuple(kept), nodes, cells)


def uniform_genotype(op: str, nodes: int, cells: int = 1) -> Genotype:
    """One operation on every edge of the cell."""
    return Genotype(tuple(Edge(i, j, op) for i, j in edge_list(nodes)), nodes, cells)


def random_genotype(
    generator: torch.Generator, nodes: int, cells: int = 1, top_k: int = 2, ops: Sequence[str] = OPS
) -> Genotype:
    """A uniform draw from the space `derive` maps into: per node min(top_k, j) distinct incoming
    edges, each a uniformly drawn operation other than none."""
    choices = [o for o in ops if o != "none"]
    kept = []
    for target in range(1, nodes + 1):
        sources = torch.randperm(target, generator=generator)[:top_k].sort().values
        for source in sources.tolist():
            op = choices[torch.randint(len(choices), (), generator=generator).item()]
            kept.append(Edge(source, target, op))
    return Genotype(tuple(kept), nodes, cells)


def initialise(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of each linear layer, U(−1/√fan_in, 1/√fan_in) for weights
    and biases, drawn from `generator`."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear):
                bound = 1 / math.sqrt(module.in_features)
                for p in (module.weight, module.bias):
                    p.copy_((torch.rand(p.shape, generator=generator, dtype=p.dtype) * 2 - 1) * bound)


class Flat:
    """All parameters of a module as one flat vector w and back, for `torch.func.functional_call`."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.sizes = [p.numel() for _, p in module.named_parameters()]

    def flatten(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()])

    def unflatten(self, w: Tensor) -> dict[str, Tensor]:
        return {n: part.view(s) for n, s, part in zip(self.names, self.shapes, w.split(self.sizes))}

    def __call__(self, w: Tensor, x: Tensor, weights: Tensor | None = None) -> Tensor:
        """The module's output with parameters w: f(x; w, weights)."""
        return torch.func.functional_call(self.module, self.unflatten(w), (x, weights))
