"""`batch=1024` against 1024 separate runs of the same dynamics from the same seeded starts.

Both sides do the same work, logging included (`observe` at every step), and give the same
trajectories (tests/games/test_play.py); they are timed repeat by repeat interleaved in this process,
as the other benchmarks are, so both see the same machine load.
"""

from __future__ import annotations

import torch

import games
from benchmarks.timing import CPU, markdown_table, summarize, time_interleaved

BATCH = 1024
STEPS = 5
REPEATS = 3  # rounds; one round of separate runs takes most of a minute
CASES = (("dirac_gan", "extragradient", 0.3), ("bilinear", "sos", 0.3))


def _starts(game: games.Game) -> torch.Tensor:  # (BATCH, d)
    return torch.stack([game.sample_init(torch.Generator().manual_seed(s)) for s in range(BATCH)])


def main(device: torch.device = CPU) -> str:
    if device.type == "cuda":
        return _gpu_section(device)
    rows = []
    for game_name, dynamics_name, lr in CASES:
        game, dynamics = games.make_game(game_name), games.make_dynamics(dynamics_name, lr)
        starts = _starts(game)
        ignore = lambda step, metrics: None

        def separate(count=BATCH):
            for z0 in starts[:count]:
                games.play(game, dynamics, z0, STEPS, log=ignore)

        def batched():
            games.play_batch(game, dynamics, starts, STEPS, log=ignore)

        separate(count=8)  # warm-up: the code paths, not 1024 more runs
        batched()
        times = time_interleaved({"separate": separate, "batched": batched}, repeats=REPEATS, warmup=0)
        base, base_spread = summarize(times["separate"])
        cand, cand_spread = summarize(times["batched"])
        rows.append(
            [
                f"{game_name} / {dynamics_name}",
                f"{base:.3g} ± {base_spread:.2g}",
                f"{cand:.3g} ± {cand_spread:.2g}",
                f"{base / cand:.0f}×",
            ]
        )
    table = markdown_table(
        ["game / dynamics", f"{BATCH} separate runs (s)", f"batch={BATCH} (s)", "speed-up"], rows
    )
    return (
        f"## games: batch={BATCH} vs {BATCH} separate runs ({STEPS} steps, logging every step)\n\n"
        f"Median ± half the interquartile range over {REPEATS} rounds, each timing both sides once, "
        f"after a warm-up on 8 separate runs and one batched run; torch threads: "
        f"{torch.get_num_threads()}.\n\n{table}\n"
    )


def _gpu_section(device: torch.device) -> str:
    """The batched runs on the GPU against the same batch on the CPU, at two batch sizes: a GPU
    pays a kernel launch per operation, so it wins only once a batch is large."""
    rows = []
    for game_name, dynamics_name, lr in CASES:
        game, dynamics = games.make_game(game_name), games.make_dynamics(dynamics_name, lr)
        for batch in (BATCH, 64 * BATCH):
            starts = torch.stack([game.sample_init(torch.Generator().manual_seed(s)) for s in range(batch)])
            ignore = lambda step, metrics: None

            def on(where, starts=starts, game=game, dynamics=dynamics, ignore=ignore):
                trajectory = games.play_batch(game, dynamics, starts, STEPS, log=ignore, device=where)
                trajectory.params.cpu()  # waits for the device

            runs = {"cpu": lambda on=on: on(CPU), "gpu": lambda on=on: on(device)}
            times = time_interleaved(runs, repeats=REPEATS, warmup=1)
            (base, base_spread), (cand, cand_spread) = summarize(times["cpu"]), summarize(times["gpu"])
            rows.append(
                [
                    f"{game_name} / {dynamics_name}",
                    batch,
                    f"{base:.3g} ± {base_spread:.2g}",
                    f"{cand:.3g} ± {cand_spread:.2g}",
                    f"{base / cand:.2g}×",
                ]
            )
    table = markdown_table(["game / dynamics", "batch", "CPU (s)", "GPU (s)", "speed-up"], rows)
    return (
        f"## games on {torch.cuda.get_device_name(device)}: one batch on the GPU vs on the CPU "
        f"({STEPS} steps, logging every step)\n\nThe same batched runs on each side; median ± "
        f"half the interquartile range over {REPEATS} rounds after one warm-up; torch threads: "
        f"{torch.get_num_threads()}.\n\n{table}\n"
    )


if __name__ == "__main__":
    print(main())
