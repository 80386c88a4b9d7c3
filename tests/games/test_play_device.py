"""`play_batch(device=...)`: every game of the zoo runs where it is told, its constants included.

No GPU here: the meta device stands in for one, and a spy below the copying mode checks that no
operation of the run receives a CPU tensor (the meta device alone lets some CPU operands through).
`make gpu-check` compares CUDA trajectories with CPU ones.
"""

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

import games


class CpuOperands(TorchFunctionMode):
    """Records the name of every torch function called with a tensor on the CPU, except the copies
    themselves (`Tensor.to`, and the `Tensor.device` look-up that decides them)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        leaves = tree_leaves((args, kwargs or {}))
        moving = func is torch.Tensor.to or getattr(func, "__self__", None) is torch.Tensor.device
        if not moving and any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in leaves):
            self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("game_name", sorted(games.GAMES))
def test_every_game_runs_on_another_device(game_name):
    game = games.make_game(game_name, **({"dim": 3} if game_name in ("bilinear", "quadratic") else {}))
    z0 = torch.stack([game.sample_init(torch.Generator().manual_seed(k)) for k in range(3)])
    for dynamics_name in ("sim_gd",) if game_name == "gaussian_mixture_gan" else ("sim_gd", "sos"):
        spy = CpuOperands()
        with spy:  # entered first, so it sees each operation after play_batch's mode has moved its operands
            trajectory = games.play_batch(
                game, games.make_dynamics(dynamics_name, 0.1), z0, 2, device=torch.device("meta")
            )
        assert spy.calls == [], (dynamics_name, sorted(set(spy.calls)))
        assert trajectory.params.device.type == "meta" and trajectory.params.shape == (3, 3, game.dim)


@pytest.mark.parametrize("dynamics_name", sorted(set(games.DYNAMICS) - {"stackelberg"}))
def test_every_dynamics_runs_on_another_device(dynamics_name):
    """Every tensor a dynamics makes (identities, counters, states) is made where z is. Stackelberg
    is left out: its follower check reads the data (`nonzero`), which the meta device cannot."""
    game = games.make_game("bilinear", dim=3)
    z0 = torch.stack([game.sample_init(torch.Generator().manual_seed(k)) for k in range(3)])
    spy = CpuOperands()
    with spy:
        trajectory = games.play_batch(
            game, games.make_dynamics(dynamics_name, 0.1), z0, 2, device=torch.device("meta")
        )
    assert spy.calls == [], sorted(set(spy.calls))
    assert trajectory.params.device.type == "meta" and trajectory.params.shape == (3, 3, game.dim)


def test_the_spy_sees_the_game_constants_without_the_copies():
    game = games.make_game("bilinear", dim=3)  # its loss closes over a 3x3 CPU matrix
    spy = CpuOperands()
    with spy:
        game.losses(torch.zeros(6, dtype=torch.float64, device="meta"))
    assert spy.calls


def test_the_cpu_device_changes_nothing():
    game, dynamics = games.make_game("dirac_gan"), games.make_dynamics("extragradient", 0.3)
    z0 = torch.stack([game.sample_init(torch.Generator().manual_seed(k)) for k in range(4)])
    plain = games.play_batch(game, dynamics, z0, 5)
    on_cpu = games.play_batch(game, dynamics, z0, 5, device=torch.device("cpu"))
    assert torch.equal(plain.params, on_cpu.params) and plain.diverged_step == on_cpu.diverged_step


def test_a_state_with_a_step_counter_runs_on_another_device():
    """Lookahead's state nests the base's state and an int64 counter; all of it runs there."""
    game = games.make_game("bilinear", dim=3)
    z0 = torch.stack([game.sample_init(torch.Generator().manual_seed(k)) for k in range(3)])
    spy = CpuOperands()
    with spy:
        trajectory = games.play_batch(game, games.lookahead(0.1, k=2), z0, 3, device=torch.device("meta"))
    assert spy.calls == [], sorted(set(spy.calls))
    assert trajectory.params.device.type == "meta" and trajectory.params.shape == (4, 3, game.dim)
