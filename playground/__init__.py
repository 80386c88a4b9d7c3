"""playground: run, sweep and compare the library's jobs (games, MAML, in-context learning,
meta-RL, bilevel optimisation) from Python or from the `playground` command.

    import playground
    result = playground.run("game", game="bilinear", dynamics="extragradient", lr=0.1)
    result.summary, result.metrics["dist"], result.figures
    playground.load("runs/game/20261207-101500")       # any run directory, the same Result
    playground.sweep("game", grid={"lr": [0.05, 0.1]}, game="bilinear").to_pandas()
    playground.report("runs/game")                      # the HTML page comparing them

`playground.api` says how options are given and checked, `playground.results` what a Result holds.
Names are imported on first use, so `python -m playground` starts without loading torch.
"""

_EXPORTS = {
    "run": "playground.api",
    "sweep": "playground.api",
    "report": "playground.api",
    "Sweep": "playground.api",
    "load": "playground.results",
    "Result": "playground.results",
    "BadInput": "playground.errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'playground' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
