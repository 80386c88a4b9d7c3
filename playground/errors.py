"""The one exception type for input a user can fix.

`BadInput` (a `ValueError`) carries one line naming the bad value and the valid ones; the CLI
prints it and exits 2.
Any other exception is a bug (ours or in a user's game or scenario): it shows its traceback and
the CLI exits 1. A `ValueError` raised while a config is built from the user's text (by a parser,
a config's `__post_init__` or a library factory it calls) is bad input too: `build_config` turns
it into `BadInput`. After that, only `BadInput` counts as the user's.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input the user can fix; the message is one line saying what is wrong and what is valid."""


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal (SIGINT or SIGTERM): the run records it and the CLI exits
    128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
