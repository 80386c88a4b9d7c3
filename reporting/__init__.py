"""How every library loop (`games`, `metalearn`, `bilevel`) reports to whoever runs it, typed once
(optax-style protocols): `log(step, metrics)` receives one row of namespaced metrics,
`progress(iterable, total=None, desc=None)` wraps the loop's iterable (a progress bar, or nothing).
Loops return a typed result that reports divergence one way: `diverged_step` (None when every
value stayed finite) with the last finite values. They build no summaries: the caller does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Log(Protocol):
    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None: ...


class Progress(Protocol):
    def __call__(
        self, iterable: Iterable[T], total: int | None = None, desc: str | None = None
    ) -> Iterable[T]: ...


def no_log(step: int, metrics: Mapping[str, Any]) -> None:
    """A `Log` that keeps nothing."""


def no_progress(iterable: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterable[T]:
    """A `Progress` that shows nothing."""
    return iterable
