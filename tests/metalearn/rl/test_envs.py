"""Our environments: gymnasium's checker, hand-computed steps, seeding, and agreement of the numpy
vector version of Navigation2D with gymnasium's SyncVectorEnv of single copies."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metalearn.rl as rl

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metalearn/conftest.py


@pytest.mark.parametrize("name", list(rl.ENVIRONMENTS))
def test_check_env_passes(name):
    env = gymnasium.make(rl.env_id(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advisory notes (unbounded observations) are not failures
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("name", list(rl.ENVIRONMENTS))
def test_seeded_task_sampling_and_resets_repeat(name):
    def draw(seed):
        env = gymnasium.make(rl.env_id(name))
        obs, _ = env.reset(seed=seed)
        return obs, env.unwrapped.sample_tasks(3)

    (obs_a, tasks_a), (obs_b, tasks_b), (_, tasks_c) = draw(7), draw(7), draw(8)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert tasks_a == tasks_b and tasks_a != tasks_c


def test_navigation_step_by_hand():
    env = gymnasium.make("metalearn/Navigation2D-v0")
    obs, _ = env.reset(seed=0, options={"task": {"goal": (0.3, -0.2)}})
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    obs, reward, terminated, truncated, _ = env.step(np.array([0.05, 0.5], dtype=np.float32))
    np.testing.assert_allclose(obs, [0.05, 0.1], rtol=1e-6)  # second coordinate clipped to 0.1
    assert reward == pytest.approx(-math.hypot(0.25, 0.3), rel=1e-6)
    assert not terminated and not truncated


def test_navigation_ends_at_goal_and_at_horizon():
    env = gymnasium.make("metalearn/Navigation2D-v0")
    env.reset(options={"task": {"goal": (0.1, -0.1)}})
    *_, terminated, _, _ = env.step(np.array([0.1, -0.1], dtype=np.float32))
    assert terminated
    env.reset(options={"task": {"goal": (0.5, 0.5)}})
    for t in range(100):
        *_, terminated, truncated, _ = env.step(np.array([-0.1, 0.0], dtype=np.float32))
        assert not terminated and truncated == (t == 99)


def test_goals_cover_the_square():
    env = gymnasium.make("metalearn/Navigation2D-v0").unwrapped
    env.reset(seed=1)
    goals = np.array([task["goal"] for task in env.sample_tasks(2000)])
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    np.testing.assert_allclose(goals.mean(0), 0.0, atol=0.03)
    np.testing.assert_allclose(goals.var(0), 1 / 12, rtol=0.1)  # variance of U[-0.5, 0.5]


def test_navigation_vector_env_matches_sync_copies():
    n, rng = 4, np.random.default_rng(0)
    tasks = [{"goal": (0.1, 0.0)}, {"goal": (-0.3, 0.2)}, {"goal": (0.5, -0.5)}, {"goal": (0.0, 0.0)}]
    native = gymnasium.make_vec("metalearn/Navigation2D-v0", num_envs=n)
    sync = gymnasium.make_vec("metalearn/Navigation2D-v0", num_envs=n, vectorization_mode="sync")
    assert isinstance(native.unwrapped, rl.envs.Navigation2DVector)
    for env in (native, sync):
        env.set_attr("task", tasks)
    np.testing.assert_array_equal(native.reset(seed=0)[0], sync.reset(seed=0)[0])
    ended = 0
    for t in range(230):  # two horizons and a bit: crosses both kinds of autoreset
        actions = rng.normal(0.0, 0.2, size=(n, 2)).astype(np.float32)
        actions[0] = (0.1, 0.0) if t % 3 == 0 else (0.0, 0.0)  # env 0 reaches its goal at once
        a, b = native.step(actions), sync.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        ended += int(a[2].sum())
    assert ended > 0


def test_pendulum_task_sets_physics_and_default_is_gymnasiums_pendulum():
    ours = gymnasium.make("metalearn/PendulumMassLength-v0")
    reference = gymnasium.make("Pendulum-v1")
    action = np.array([1.3], dtype=np.float32)
    default = {"mass": 1.0, "length": 1.0}
    np.testing.assert_array_equal(
        ours.reset(seed=3, options={"task": default})[0], reference.reset(seed=3)[0]
    )
    np.testing.assert_array_equal(ours.step(action)[0], reference.step(action)[0])
    heavy = {"mass": 2.0, "length": 1.5}
    ours.reset(seed=3, options={"task": heavy})
    assert (ours.unwrapped.m, ours.unwrapped.l) == (2.0, 1.5)
    reference.reset(seed=3)
    assert not np.allclose(ours.step(action)[0], reference.step(action)[0])


def test_bad_task_and_unknown_env_are_refused():
    env = gymnasium.make("metalearn/Navigation2D-v0")
    with pytest.raises(ValueError, match="valid: \\['goal'\\]"):
        env.reset(options={"task": {"mass": 1.0}})
    with pytest.raises(ValueError, match="valid: Navigation2D, PendulumMassLength"):
        rl.env_id("CartPole-v1")
    assert rl.env_id("Navigation2D") == rl.env_id("metalearn/Navigation2D-v0") == "metalearn/Navigation2D-v0"


def test_each_environment_is_registered_as_its_spec_says_and_made_by_name():
    for name, spec in rl.ENVIRONMENTS.items():
        assert rl.env_spec(name) is rl.env_spec(spec.id) is spec
        registered = gymnasium.spec(spec.id)
        assert registered.entry_point is spec.entry_point
        assert registered.vector_entry_point is spec.vector_entry_point
        assert registered.max_episode_steps == spec.max_episode_steps
        env = rl.make_env(name)
        assert type(env.unwrapped) is spec.entry_point
        assert env.spec.max_episode_steps == spec.max_episode_steps
    valid = "Navigation2D, PendulumMassLength"
    with pytest.raises(ValueError, match=f"^unknown env 'CartPole-v1'; valid: {valid}$"):
        rl.make_env("CartPole-v1")
