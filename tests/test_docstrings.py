"""Every public function and class of the libraries says what it takes and returns: `help(x)`
in a notebook prints something for each name a package exports."""

import importlib
import inspect

import pytest

PACKAGES = [
    "games",
    "metalearn",
    "metalearn.icl",
    "metalearn.rl",
    "metalearn.fewshot",
    "bilevel",
    "reporting",
    "registration",
]
OURS = {"games", "metalearn", "bilevel", "reporting", "registration", "playground"}


def public(package):
    module = importlib.import_module(package)
    names = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
    for name in names:
        value = getattr(module, name)
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.split(".")[0] in OURS:
            yield name, value


@pytest.mark.parametrize("package", [*PACKAGES, "playground"])
def test_every_public_name_has_its_own_docstring(package):
    if package == "playground":
        import playground

        names = [(name, getattr(playground, name)) for name in playground.__all__]
    else:
        names = list(public(package))
    assert len(names) >= 4
    inherited = inspect.getdoc(type("P", (__import__("typing").Protocol,), {}))
    undocumented = [name for name, value in names if not value.__doc__ or inspect.getdoc(value) == inherited]
    assert undocumented == []
