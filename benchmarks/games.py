"""`batch=1024` against 1024 separate runs of the same dynamics from the same seeded starts.

Both sides do the same work, logging included (`observe` at every step), and give the same
trajectories (tests/games/test_play.py); they are timed side by side in this process.
"""
from __future__ import annotations

import torch

import games
from benchmarks.timing import markdown_table, summarize, time_it

BATCH = 1024
STEPS = 5
CASES = (("dirac_gan", "extragradient", 0.3), ("bilinear", "sos", 0.3))


def _starts(game: games.Game) -> torch.Tensor:  # (BATCH, d)
    return torch.stack([game.sample_init(torch.Generator().manual_seed(s)) for s in range(BATCH)])


def main() -> str:
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
        base, base_spread = summarize(time_it(separate, repeats=3, warmup=0))
        cand, cand_spread = summarize(time_it(batched, repeats=7, warmup=2))
        rows.append([f"{game_name} / {dynamics_name}", f"{base:.3g} ± {base_spread:.2g}",
                     f"{cand:.3g} ± {cand_spread:.2g}", f"{base / cand:.0f}×"])
    table = markdown_table(["game / dynamics", f"{BATCH} separate runs (s)", f"batch={BATCH} (s)",
                            "speed-up"], rows)
    return (f"## games: batch={BATCH} vs {BATCH} separate runs ({STEPS} steps, logging every step)\n\n"
            f"Median ± half the interquartile range; separate: 3 repeats after warming up on 8 runs, "
            f"batch: 7 after 2; torch threads: {torch.get_num_threads()}.\n\n{table}\n")


if __name__ == "__main__":
    print(main())
