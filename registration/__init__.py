"""One registry for every kind of thing a user adds: a game, a dynamics, a task family, a
meta-learner, a bilevel problem, a hypergradient method, a scenario.

In the manner of gymnasium's `register`/`make`/`spec`, each kind has one `Registry` owned by its
library, and every registry follows the same rules:

    DYNAMICS = Registry("dynamics", returns=Dynamics, given=("lr",))
    DYNAMICS.register("sim_gd", sim_gd)                  # a built-in: one line
    DYNAMICS.make("momentum", 0.1, beta=-0.3)            # the arguments the caller gives, then options
    DYNAMICS.make("my_dynamics:anchored", 0.1, k=5)      # a user's factory, from the user's module
    DYNAMICS.options("momentum")                         # {"beta": Option(float, -0.5), ...}

A *factory* is a function or class; its *keywords* are its parameters other than the `given` ones
(those the caller passes itself, positionally, such as a dynamics' learning rate or a learner's
model), typed by their annotations (or their defaults' types), with the defaults of its signature.
Its *options* are the keywords whose type text can be read as (`text_type`: bool, int, float, str,
a path, a `Literal`, a `tuple[X, ...]` of those, a union holding one): what a user sets by name. A
keyword of any other type (a `torch.Generator`, a `torch.dtype`) only code passes: it is never
listed or read from text. A `functools.partial` registers a declaration: the keywords it binds are
part of what was registered, neither. `make` refuses, with a one-line `ValueError` that names what
is valid: an unknown name, a keyword the factory does not take, one missing that has no default,
and a factory that returns something other than the kind's type. A name of the form
`module:factory` names a user's factory: a function or class defined in that module (never one it
imported, a builtin or another module's), so any kind can be extended without editing this package.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Option", "Registry", "factory_keywords", "factory_options", "text_type"]

_REQUIRED = inspect.Parameter.empty
_SCALARS = (bool, int, float, str, Path)  # the types text is read as, one item at a time


@dataclass(frozen=True)
class Option:
    """One keyword option of a factory: its type and default (`required` when it has none)."""

    type: Any
    default: Any = None
    required: bool = False


class Registry(Mapping[str, Callable[..., Any]]):
    """The factories of one kind of thing, by name; reads like a `dict` of the built-ins.

    `kind` names the kind in messages ("game", "dynamics"); `returns` is the type every factory
    must return (None: not checked); `given` are the parameter names the caller passes itself,
    positionally and in that order, which are not options.
    """

    def __init__(
        self, kind: str, returns: type | tuple[type, ...] | None = None, given: tuple[str, ...] = ()
    ):
        self.kind, self.returns, self.given = kind, returns, tuple(given)
        self._factories: dict[str, Callable[..., Any]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, factory: Callable[..., Any], help: str | None = None) -> Callable[..., Any]:
        """Add `factory` under `name`, with a one-line description (default: its docstring's
        first line). A name already taken is refused: choose another, never replace silently."""
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"{self.kind} name {name!r}; valid: a non-empty name without ':' or spaces")
        if name in self._factories:
            raise ValueError(f"{self.kind} {name!r} is already registered; register it under another name")
        if not callable(factory):
            raise ValueError(f"{self.kind} {name!r}: {factory!r} is not a function or class")
        self._factories[name] = factory
        self._help[name] = help if help is not None else _first_line(factory)
        return factory

    def factory(self, spec: str) -> Callable[..., Any]:
        """The factory of a registered name, or of `module:factory` (see the module docstring)."""
        if spec in self._factories:
            return self._factories[spec]
        module_name, colon, attribute = spec.partition(":")
        if not colon or not module_name or not attribute:
            raise ValueError(
                f"unknown {self.kind} {spec!r}; valid: {', '.join(self._factories)}, or module:factory"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"cannot load {self.kind} {spec!r}: {error}") from None
        factory = getattr(module, attribute, None)
        defined_there = inspect.isfunction(factory) or inspect.isclass(factory)
        if not defined_there or factory.__module__ != module.__name__:
            raise ValueError(
                f"{self.kind} {spec!r} is not a function defined in {module_name}; valid: "
                f"module:factory naming a function (or class) defined in that module"
                + (f" that returns a {_type_name(self.returns)}" if self.returns else "")
            )
        return factory

    def options(self, spec: str) -> dict[str, Option]:
        """The options of `spec`'s factory (the keywords text can be read as), in signature order."""
        return factory_options(self.factory(spec), self.given)

    def keywords(self, spec: str) -> dict[str, Option]:
        """Every keyword of `spec`'s factory: its options and those only code passes."""
        return factory_keywords(self.factory(spec), self.given)

    def help(self, name: str) -> str:
        """The one-line description `name` was registered with."""
        return self._help[name] if name in self._help else _first_line(self.factory(name))

    def make(self, spec: str, *given: Any, **keywords: Any) -> Any:
        """Build `spec` (a name or `module:factory`) from the `given` arguments and `keywords`,
        each checked against the factory's signature, and the result against `returns`."""
        factory = self.factory(spec)
        self.check(spec, keywords)
        built = factory(*given, **keywords)
        if self.returns is not None and not isinstance(built, self.returns):
            raise ValueError(
                f"{self.kind} {spec!r} returned {type(built).__name__}; valid: a function returning "
                f"a {_type_name(self.returns)}"
            )
        return built

    def check(self, spec: str, keywords: Mapping[str, Any]) -> None:
        """Refuse a keyword `spec`'s factory does not take, and a missing one without default."""
        valid = self.keywords(spec)
        for key in keywords:
            if key not in valid:
                raise ValueError(
                    f"{self.kind} {spec!r} takes no option {key!r}; valid: {', '.join(valid) or 'none'}"
                )
        missing = [name for name, option in valid.items() if option.required and name not in keywords]
        if missing:
            raise ValueError(
                f"{self.kind} {spec!r} needs option(s) {', '.join(missing)} that have no default"
            )

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._factories[name]

    def __setitem__(self, name: str, factory: Callable[..., Any]) -> None:
        """`registry[name] = factory` is `register(name, factory)`: a name taken is refused."""
        self.register(name, factory)

    def __delitem__(self, name: str) -> None:
        """Unregister `name` (a test's temporary registration, undone)."""
        del self._factories[name], self._help[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._factories)})"


def factory_options(factory: Callable[..., Any], given: tuple[str, ...] = ()) -> dict[str, Option]:
    """A factory's options: its keywords (`factory_keywords`) whose type text can be read as."""
    return {name: o for name, o in factory_keywords(factory, given).items() if text_type(o.type) is not None}


def factory_keywords(factory: Callable[..., Any], given: tuple[str, ...] = ()) -> dict[str, Option]:
    """A factory's keywords (parameters other than `given`, `self`, `*args`, `**kwargs` and the
    keywords a `functools.partial` binds), each typed by its annotation, else its default's type,
    else `str` (no default, or None)."""
    bound = set(factory.keywords) if isinstance(factory, functools.partial) else set()
    target = factory.func if isinstance(factory, functools.partial) else factory
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # a user's factory with annotations that do not resolve
        hints = {}
    found = {}
    for name, parameter in inspect.signature(factory).parameters.items():
        if (
            name in given
            or name in bound
            or parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        ):
            continue
        default = parameter.default
        kind = hints.get(name) or (str if default is _REQUIRED or default is None else type(default))
        found[name] = Option(kind, None if default is _REQUIRED else default, default is _REQUIRED)
    return found


def text_type(annotation: Any) -> Any:
    """The type an option's text is read as, None where text cannot be read as `annotation`.

    bool, int, float, str, `Path`, a `Literal` of bool, int, float or str values, and a
    `tuple[X, ...]` of the first five are read as themselves; a union (`X | None` included) as str
    where it holds str, else as its first member other than None.
    """
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        others = [member for member in members if member is not type(None)]
        return text_type(str if str in others else others[0])
    if origin is typing.Literal:
        return annotation if all(isinstance(value, _SCALARS[:4]) for value in members) else None
    if origin is tuple:
        return annotation if len(members) == 2 and members[1] is Ellipsis and members[0] in _SCALARS else None
    return annotation if annotation in _SCALARS else None


def _first_line(factory: Callable[..., Any]) -> str:
    """The first sentence of the docstring's first paragraph."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    paragraph = " ".join((inspect.getdoc(target) or "").split("\n\n")[0].split())
    if not paragraph:
        return ""
    return re.split(r"(?<!\bal)(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z(`])", paragraph)[0].removesuffix(".") + "."


def _type_name(returns: type | tuple[type, ...]) -> str:
    types = returns if isinstance(returns, tuple) else (returns,)
    return " or ".join(f"{t.__module__.split('.')[0]}.{t.__name__}" for t in types)
