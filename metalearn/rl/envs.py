"""Task families for meta-RL, as gymnasium environments registered under the `metalearn` namespace.

Each environment exposes the task interface MAML-RL needs: `sample_tasks(n)` draws tasks from
`self.np_random`, `task` (settable, also via `set_task`) fixes the one in play, and
`reset(options={"task": task})` sets it at reset time. Tasks are small dicts of floats.

- `Navigation2D`: the point robot of Finn et al. 2017 (MAML, section 5.3): start at the origin,
  goal ~ U[-0.5, 0.5]^2, observation = position, s' = s + clip(a, -0.1, 0.1),
  r = -||s' - goal||, horizon 100; the episode ends early within 0.01 of the goal in each
  coordinate, as in the paper's code.
- `PendulumMassLength`: gymnasium's Pendulum-v1 with task-specific pole mass m ~ U[0.5, 2] and
  length l ~ U[0.5, 1.5] (defaults m = l = 1); swing-up cost unchanged, horizon 200.

`ENVIRONMENTS` maps each short name to its registration (`EnvSpec`); `make_env(name)` builds one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class _TaskInterface:
    """The task plumbing shared by our environments; a subclass sets `_task_keys`."""

    _task_keys: tuple[str, ...] = ()

    @property
    def task(self) -> dict[str, Any]:
        return self._task

    @task.setter
    def task(self, task: dict[str, Any]) -> None:
        self.set_task(task)

    def set_task(self, task: dict[str, Any]) -> None:
        if set(task) != set(self._task_keys):
            raise ValueError(f"task keys {sorted(task)} invalid; valid: {list(self._task_keys)}")
        self._task = dict(task)

    def _reset_task(self, options: dict | None) -> None:
        if options is not None and "task" in options:
            self.set_task(options["task"])


class Navigation2D(_TaskInterface, gymnasium.Env):
    """Point robot on the plane moving towards a hidden goal (Finn et al. 2017)."""

    metadata = {"render_modes": []}
    _task_keys = ("goal",)
    max_step = 0.1
    goal_low, goal_high = -0.5, 0.5

    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-self.max_step, self.max_step, shape=(2,), dtype=np.float32)
        self._task = {"goal": (0.0, 0.0)}
        self._position = np.zeros(2)

    def sample_tasks(self, n: int) -> list[dict[str, Any]]:
        goals = self.np_random.uniform(self.goal_low, self.goal_high, size=(n, 2))
        return [{"goal": (float(x), float(y))} for x, y in goals]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_task(options)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {}

    def step(self, action):
        self._position = self._position + np.clip(action, -self.max_step, self.max_step)
        offset = self._position - np.asarray(self._task["goal"])
        reward = -float(np.hypot(*offset))
        terminated = bool(np.all(np.abs(offset) < 0.01))
        return self._position.astype(np.float32), reward, terminated, False, {}


class Navigation2DVector(VectorEnv):
    """`num_envs` copies of `Navigation2D` stepped together in numpy (gymnasium's vector API).

    Same dynamics as `Navigation2D`, episodes of `max_episode_steps` steps, and the vector
    environments' default next-step autoreset. Tasks are set per copy with
    `set_attr("task", [task, ...])`, as on a `SyncVectorEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, max_episode_steps: int = 100):
        self.num_envs, self.max_episode_steps = num_envs, max_episode_steps
        single = Navigation2D()
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.goals = np.zeros((num_envs, 2))
        self._positions = np.zeros((num_envs, 2))
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._done = np.zeros(num_envs, dtype=bool)

    def set_attr(self, name: str, values) -> None:
        if name != "task":
            raise ValueError(f"attribute {name!r} cannot be set; valid: 'task'")
        tasks = values if isinstance(values, (list, tuple)) else [values] * self.num_envs
        if len(tasks) != self.num_envs:
            raise ValueError(f"got {len(tasks)} tasks for {self.num_envs} environments")
        self.goals = np.array([task["goal"] for task in tasks], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._positions[:] = 0.0
        self._steps[:] = 0
        self._done[:] = False
        return self._positions.astype(np.float32), {}

    def step(self, actions):
        restart = self._done  # next-step autoreset: these copies only reset on this call
        moves = np.clip(actions, -Navigation2D.max_step, Navigation2D.max_step)
        self._positions = np.where(restart[:, None], 0.0, self._positions + moves)
        self._steps = np.where(restart, 0, self._steps + 1)
        offsets = self._positions - self.goals
        rewards = np.where(restart, 0.0, -np.hypot(offsets[:, 0], offsets[:, 1]))
        terminated = ~restart & np.all(np.abs(offsets) < 0.01, axis=1)
        truncated = ~restart & (self._steps >= self.max_episode_steps)
        self._done = terminated | truncated
        return self._positions.astype(np.float32), rewards, terminated, truncated, {}


class PendulumMassLength(_TaskInterface, PendulumEnv):
    """Pendulum-v1 swing-up whose pole mass and length vary from task to task."""

    _task_keys = ("mass", "length")
    mass_range = (0.5, 2.0)
    length_range = (0.5, 1.5)

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.set_task({"mass": self.m, "length": self.l})

    def sample_tasks(self, n: int) -> list[dict[str, Any]]:
        masses = self.np_random.uniform(*self.mass_range, size=n)
        lengths = self.np_random.uniform(*self.length_range, size=n)
        return [{"mass": float(mass), "length": float(length)} for mass, length in zip(masses, lengths)]

    def set_task(self, task: dict[str, Any]) -> None:
        super().set_task(task)
        self.m, self.l = float(task["mass"]), float(task["length"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_task(options)
        return super().reset(seed=seed, options=options)


class EnvSpec(NamedTuple):
    """How one of our environments is registered with gymnasium."""

    id: str  # the gymnasium id, in the `metalearn` namespace
    entry_point: type[gymnasium.Env]
    vector_entry_point: type[VectorEnv] | None  # our own numpy vector version, if any
    max_episode_steps: int  # the horizon


#: Our environments by short name; adding one is a class and a line here.
ENVIRONMENTS: dict[str, EnvSpec] = {
    "Navigation2D": EnvSpec("metalearn/Navigation2D-v0", Navigation2D, Navigation2DVector, 100),
    "PendulumMassLength": EnvSpec("metalearn/PendulumMassLength-v0", PendulumMassLength, None, 200),
}


def register_environments() -> None:
    """Register each environment with gymnasium (idempotent)."""
    for spec in ENVIRONMENTS.values():
        if spec.id not in gymnasium.registry:
            gymnasium.register(
                spec.id,
                entry_point=spec.entry_point,
                vector_entry_point=spec.vector_entry_point,
                max_episode_steps=spec.max_episode_steps,
            )


def env_spec(name: str) -> EnvSpec:
    """One of our environments, by its short name or its gymnasium id."""
    for short, spec in ENVIRONMENTS.items():
        if name in (short, spec.id):
            return spec
    raise ValueError(f"unknown env {name!r}; valid: {', '.join(ENVIRONMENTS)}")


def env_id(name: str) -> str:
    """The gymnasium id of one of our environments, from its short name or its id."""
    return env_spec(name).id


def make_env(name: str, **kwargs: Any) -> gymnasium.Env:
    """`gymnasium.make` of one of our environments, by short name or id (`kwargs` go to it)."""
    return gymnasium.make(env_id(name), **kwargs)
