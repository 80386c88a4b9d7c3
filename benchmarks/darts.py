"""DARTS: seconds per search step (an α step and a w step) with α's gradient first order against
second order (`one_step`, finite-difference product as the paper), on the scenario's default
supernet (one cell, 3 nodes, width 16, batches of 64 digits), float32.

Both sides run the same `search_step` and weight step on the same batches from the same weights,
timed round by round interleaved in one process. NAS-Bench-201 (Dong & Yang 2020, Table 5) reports
second-order DARTS 3.1× slower than first order on CIFAR-10: cited, not reproduced here.
"""

from __future__ import annotations

import torch

import bilevel
from benchmarks.timing import CPU, markdown_table, summarize, time_interleaved
from bilevel import darts
from bilevel.digits import load_digits

STEPS = 16  # search steps per timed call: one epoch of the 997 training digits
REPEATS = 7
METHODS = (("first_order", {}), ("one_step", {}), ("one_step", {"hvp": "exact"}))


def _steps(method: bilevel.Method, device: torch.device):
    """`STEPS` search steps from fixed weights and α: α by a plain step on `method`'s hypergradient
    (Adam's few elementwise operations left out), then a gradient step on w."""
    settings = darts.SearchSettings()
    data = load_digits()
    net = darts.supernet(settings.nodes, settings.cells, settings.width)
    darts.initialise(net, torch.Generator().manual_seed(0))
    flat = darts.Flat(net)
    w0 = flat.flatten().to(device)
    shape = (len(darts.edge_list(settings.nodes)), len(darts.OPS))
    alpha0 = (1e-3 * torch.randn(shape, generator=torch.Generator().manual_seed(1))).to(device)
    b = settings.batch_size
    train = [part.to(device) for part in (data.train.x, data.train.y)]
    val = [part.to(device) for part in (data.val.x, data.val.y)]
    batches = []
    for t in range(STEPS):
        start = (t * b) % (len(val[1]) - b)  # the 400 validation digits, cycled
        batches.append(
            (tuple(p[t * b : (t + 1) * b] for p in train), tuple(p[start : start + b] for p in val))
        )

    def run():
        w, alpha = w0, alpha0
        for train, val in batches:
            value, _ = darts.search_step(flat, w, alpha, train, val, method, settings)
            alpha = alpha - settings.alpha_lr * value.view(alpha.shape)
            problem = darts.SupernetProblem(flat, train, val, w, alpha, settings.w_lr, settings.weight_decay)
            w = w - settings.w_lr * problem.train_grad(w, alpha.reshape(-1))
        w.sum().item()  # waits for a device

    return run


def main(device: torch.device = CPU) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the scenario's setting: these sizes are fastest on one thread
    try:
        runs = {}
        for name, options in METHODS:
            label = name + "".join(f" {k}={v}" for k, v in options.items())
            runs[label] = _steps(bilevel.make_method(name, **options), device)
        times = time_interleaved(runs, repeats=REPEATS, warmup=1)
    finally:
        torch.set_num_threads(threads)
    base = summarize(times["first_order"])[0]
    rows = []
    for label, seconds in times.items():
        median, spread = summarize(seconds)
        rows.append(
            [label, f"{1e3 * median / STEPS:.3g} ± {1e3 * spread / STEPS:.2g}", f"{median / base:.2f}×"]
        )
    table = markdown_table(["α's hypergradient", "ms per search step", "vs first order"], rows)
    where = "CPU, 1 thread" if device.type == "cpu" else torch.cuda.get_device_name(device)
    return (
        f"## darts: time per search step, first vs second order ({where})\n\n"
        f"One α step and one w step on batches of 64 digits, supernet of one cell with 3 nodes of "
        f"width 16; median ± half the interquartile range over {REPEATS} rounds of {STEPS} steps each, "
        f"interleaved, after one warm-up. NAS-Bench-201 (Dong & Yang 2020) reports second order "
        f"3.1× slower than first order on CIFAR-10 (cited, not measured here).\n\n{table}\n"
    )


if __name__ == "__main__":
    print(main())
