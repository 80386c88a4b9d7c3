"""The exception types of the playground's outcomes that are not a plain bug.

`BadInput` (a `ValueError`) carries one line naming the bad value and the valid ones; the CLI
prints it and exits 2.
Any other exception is a bug (ours or in a user's game or scenario): it shows its traceback and
the CLI exits 1. A `ValueError` raised while a config is built from the user's text (by a parser,
a config's `__post_init__` or a library factory it calls) is bad input too: `build_config` turns
it into `BadInput`. After that, only `BadInput` counts as the user's.
`OutOfMemory` is a run that ran out of memory (exit 1, one line naming the settings to lower);
`UserExit` is a `SystemExit` raised by user code inside a command (exit 1, with its traceback).
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


class OutOfMemory(MemoryError):
    """A run that ran out of memory on its device (torch's CUDA or CPU allocator, or Python's):
    its summary records it as failed, and the one-line message names the settings to lower."""


class UserExit(RuntimeError):
    """A `SystemExit` that user code (a game, a factory, a scenario) raised inside a command: a bug
    like any other, recorded and shown with its traceback, never the command's own exit status."""

    def __init__(self, code):
        super().__init__(f"user code raised SystemExit({code!r}) inside a playground command")
        self.code = code
