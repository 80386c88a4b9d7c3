"""Each factory option's valid range, checked where the option is defined (the factory), with the
reason in the message: a value outside it would make a method a no-op, another method, or no
method at all. A refusal is a one-line `ValueError`, `name=value: why; valid: range`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

SEED_MAX = 2**63 - 1  # a torch.Generator seed, as the runs' own `seed`


def check_integer(name: str, value, why: str, low: int, high: int | None = None) -> None:
    """`value` an integer (not a bool) in [low, high] (high None: no upper bound)."""
    whole = isinstance(value, Integral) and not isinstance(value, bool)
    if not whole or value < low or (high is not None and value > high):
        valid = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name}={value!r}: {why}; valid: {valid}")


def check_number(
    name: str,
    value,
    why: str,
    above: float | None = None,
    low: float | None = None,
    below: float | None = None,
) -> None:
    """`value` a finite real number, > `above`, >= `low`, < `below` (None: that bound unused)."""
    real = isinstance(value, Real) and not isinstance(value, bool)
    inside = (
        real
        and math.isfinite(value)
        and (above is None or value > above)
        and (low is None or value >= low)
        and (below is None or value < below)
    )
    if not inside:
        bounds = (
            ([f"> {above:g}"] if above is not None else [])
            + ([f">= {low:g}"] if low is not None else [])
            + ([f"< {below:g}"] if below is not None else [])
        )
        raise ValueError(f"{name}={value!r}: {why}; valid: a finite number {' and '.join(bounds)}".rstrip())


def check_seed(name: str, value) -> None:
    check_integer(name, value, "it seeds a torch.Generator", 0, SEED_MAX)
