"""The sinusoid family of Finn et al. 2017."""

import math

import pytest
import torch

from metalearn.fewshot import Sine
from metalearn.fewshot.sine import sample_sine_params, sine


def test_shapes_ranges_and_the_true_function():
    g = torch.Generator().manual_seed(0)
    tasks = Sine(shots=5, queries=7).sample("train", 2000, g)
    assert tasks.support_x.shape == (2000, 5, 1) and tasks.query_y.shape == (2000, 7, 1)
    x = torch.cat([tasks.support_x, tasks.query_x], 1)
    y = torch.cat([tasks.support_y, tasks.query_y], 1)
    assert -5 <= x.min() < -4.99 and 4.99 < x.max() <= 5
    amplitude, phase = sample_sine_params(2000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, amplitude[:, None, None] * torch.sin(x - phase[:, None, None]))
    assert 0.1 <= amplitude.min() < 0.11 and 4.99 < amplitude.max() <= 5
    assert 0 <= phase.min() < 0.01 and math.pi - 0.01 < phase.max() <= math.pi


def test_sine_is_a_sin_x_minus_phase():
    x = torch.tensor([[[0.0], [math.pi / 2]]])
    torch.testing.assert_close(
        sine(x, torch.tensor([2.0]), torch.tensor([math.pi / 2])), torch.tensor([[[-2.0], [0.0]]])
    )


def test_same_seed_same_tasks_and_model():
    family = Sine(10, 10)
    a = family.sample("test", 3, torch.Generator().manual_seed(1))
    b = family.sample("test", 3, torch.Generator().manual_seed(1))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    state = torch.get_rng_state()
    m1, m2 = (family.make_model(torch.Generator().manual_seed(2)) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), state)  # making a model leaves the global RNG alone
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert [p.shape for p in m1.parameters()] == [(40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]


def test_bad_split_and_sizes():
    with pytest.raises(ValueError, match="unknown split 'dev'; valid: train, validation, test"):
        Sine().sample("dev", 1, torch.Generator())
    with pytest.raises(ValueError, match="shots=0"):
        Sine(shots=0)
