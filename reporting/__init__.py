"""How every library loop (`games`, `metalearn`, `bilevel`) reports to whoever runs it, typed once
(optax-style protocols): `log(step, metrics)` receives one row of namespaced metrics,
`progress(iterable, total=None, desc=None)` wraps the loop's iterable (a progress bar, or nothing).
Loops return a typed result that reports divergence one way: `diverged_step` (None when every
value stayed finite) with the last finite values, and keep what they logged as a `History`, whose
curves a user plots. They build no summaries: the caller does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

T = TypeVar("T")


class Log(Protocol):
    """`log(step, metrics)`: one row of a loop's namespaced metrics (numbers, lists, tensors)."""

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None: ...


class Progress(Protocol):
    """`progress(iterable, total=None, desc=None)`: the loop's iterable, wrapped to show progress."""

    def __call__(
        self, iterable: Iterable[T], total: int | None = None, desc: str | None = None
    ) -> Iterable[T]: ...


def no_log(step: int, metrics: Mapping[str, Any]) -> None:
    """A `Log` that keeps nothing."""


def no_progress(iterable: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterable[T]:
    """A `Progress` that shows nothing."""
    return iterable


class Curve(NamedTuple):
    """One logged key over a loop: the steps it was logged at and its values there (None, as a
    run's files write a non-finite number, reads as nan; a logged vector makes `values` 2-D)."""

    steps: np.ndarray
    values: np.ndarray


class History(Mapping[str, Curve]):
    """A `Log` that keeps every row it is given, and passes each on to `then`; read back by key,
    `history["dist"]` is a `Curve` of numpy arrays, ready for `plt.plot(*history["dist"])`.

        history = History()
        games.play(game, dynamics, z0, steps=100, log=history)
        steps, distance = history["dist"]

    `rows` holds them as logged, `{"step": step, **metrics}`, with tensors as numbers and lists."""

    def __init__(self, rows: Iterable[Mapping[str, Any]] = (), then: Log = no_log):
        self.rows: list[dict[str, Any]] = []
        self._keys: dict[str, None] = {}
        self._then = then
        for row in rows:
            self._keep(dict(row))

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None:
        self._keep({"step": int(step), **{k: _plain(v) for k, v in metrics.items()}})
        self._then(step, metrics)

    def _keep(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._keys.update(dict.fromkeys(k for k in row if k != "step"))

    def __getitem__(self, key: str) -> Curve:
        if key not in self._keys:
            raise KeyError(f"{key!r} was never logged; logged: {', '.join(self._keys) or 'nothing'}")
        logged = [row for row in self.rows if key in row]
        steps = np.array([row["step"] for row in logged])
        values = [np.nan if row[key] is None else row[key] for row in logged]
        try:
            return Curve(steps, np.array(values, dtype=float))
        except (TypeError, ValueError):  # text, or vectors of different lengths
            return Curve(steps, np.array(values, dtype=object))

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        return self.rows == other.rows if isinstance(other, History) else NotImplemented

    __hash__ = None  # mutable: it keeps what it is given

    def __repr__(self) -> str:
        return f"History({len(self.rows)} rows: {', '.join(self._keys)})"

    def to_pandas(self):
        """A pandas DataFrame with one row per logged row, `step` first and nan where a key was
        not logged or was non-finite (pandas is not a dependency: install it to use this)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("History.to_pandas needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.rows, columns=["step", *self._keys])


def _plain(value: Any) -> Any:
    """A tensor or numpy value as Python numbers (lists for arrays); anything else as it is."""
    return value.tolist() if hasattr(value, "tolist") else value
