"""What the fuzz suite draws: every option of a scenario, and for each the hostile texts a user can
type.

An option is a field of the scenario's config (typed by its annotation, bounded by the `min`,
`above`, `max` and `choices` of `playground.scenario.option`) or a `<kind>.<keyword>` of a factory
in a registry the config picks from (typed by the factory's signature; `needs` is the
`<kind>=<factory>` that makes it apply). Its `role` says which valid values are safe to run:

    budget  counts work (steps, iterations, ...): a huge valid value is a long run, not a bug, so
            valid draws stay small; invalid ones (negative, nan, text) are drawn as for any option
    size    sizes memory (batch, hidden, dim, ...): drawn small (<= 16) or absurd (>= 1e12), where
            the run must be refused at once; never in between, where it is merely slow
    free    any value (seeds, rates, tolerances)
    path    a file or directory the user names: only paths inside the case's own directory
    fixed   the options of a cache (glyphs' cache_dir, seed, scripts, per_class): the default and
            invalid texts only, since any other valid value renders a fresh cache (minutes)
    no_true a switch whose `true` reaches the network (download): never drawn true

Values are texts, as on a command line: at and beyond each bound, wrong types, non-finite, huge,
empty, unicode (right-to-left marks, emoji, control characters other than NUL, other scripts'
digits), lists with empty items.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

import games
import metalearn
from metalearn import icl, rl
from metalearn.fewshot.glyphs import SCRIPTS as GLYPH_SCRIPTS
from metalearn.maml.capture import CAPTURES

BUDGET, SIZE, FREE, PATH, FIXED, NO_TRUE = "budget", "size", "free", "path", "fixed", "no_true"

BUDGET_CAP = 12  # the largest valid budget drawn
SMALL_SIZE, HUGE_SIZE = 16, 10**12  # sizes are drawn <= SMALL_SIZE or >= HUGE_SIZE

_SIZES = {
    "batch", "meta_batch", "batch_size", "hidden", "width", "dim", "context", "heads", "layers",
    "depth", "nodes", "cells", "episodes", "train", "val", "test", "inputs", "ways", "shots",
    "queries", "eval_queries", "per_class", "num_tasks", "eval_tasks", "latent", "chains",
    "horizon", "memory", "top_k", "samples",
}  # fmt: skip
_FREE_INTS = {"seed", "split_seed"}
_PATHS = {"resume", "data_dir"}
WRITTEN = {"data_dir", "cache_dir"}  # options naming where a run may write (data, caches) besides --out
_PATH_TEXTS = ("nope", "out", "out/nope", "keep.txt", ".", "data", "a b", "ü/d", "\u200fdir", "none")
# Options whose every valid value but the default renders a fresh glyph cache (minutes, and files
# in the user's cache): drawn only from these texts, the default first.
_FIXED = {
    "task.cache_dir": ("~/.cache/playground/glyphs", "keep.txt", "/dev/null"),
    "task.seed": ("0", "-1", "nan", "1.5", "", "🎲", "1e308", str(2**64)),
    "task.per_class": ("20", "0", "-1", "nan", "", "🎲", str(HUGE_SIZE), "1e308"),
    "task.scripts": (",".join(GLYPH_SCRIPTS), "", ",", "klingon", "latin,,greek", "latin,klingon", "🎲"),
}
_NO_TRUE = {"download"}
# (scenario, key) whose role differs from the key's everywhere else
_ROLES = {("darts", "samples"): BUDGET, ("darts", "repeats"): BUDGET}
_KEY_ROLES = {"method.samples": BUDGET}  # STN's samples per step: work, not memory
# (scenario, key) whose valid values drawn are narrower than their role's: darts' epoch is
# len(data) / batch_size steps; maml's image tasks train a convolutional network on ways x shots
# images a task, half a minute on a loaded CPU already at the base's sizes
_VALID_RANGES = {("darts", "batch_size"): (50, 400)}
_VALID_RANGES |= {("maml", key): (2, 4) for key in ("ways", "task.ways")}
_VALID_RANGES |= {
    ("maml", key): (1, 3) for key in ("shots", "queries", "eval_queries", "task.shots", "task.queries")
}

# the names a str option picks from, where its config does not list them as `choices`
_NAMES = {
    "env": tuple(rl.ENVIRONMENTS),
    "outer": tuple(rl.OUTER),
    "x_dist": tuple(icl.X_DISTS),
    "engine": tuple(metalearn.ENGINES),
    "capture": tuple(c for c in ("auto", *CAPTURES) if c != "compile"),  # torch.compile: a minute, valid
    "base": tuple(games.DYNAMICS),
    "hvp": ("fd", "exact"),
    "device": ("auto", "cpu", "cpu:0", "cpu:1", "cuda", "cuda:0", "cuda:1", "meta", "mps", "xla", "CPU"),
    "dtype": ("float32", "float64", "torch.float64", "int8"),
}
_FOREIGN_FACTORIES = (  # `module:factory` texts the registries refuse: none of them runs anything
    "no_such_fuzz_module:factory",
    "json:no_such_factory",
    "math:sqrt",
    "json:JSONDecoder",
    ":",
    "a:",
    ":b",
    "x:y:z",
)

_TRUE, _FALSE = ("true", "1", "yes", "on", "TRUE", "True"), ("false", "0", "no", "off", "FALSE")
_HOSTILE = (
    "", " ", "none", "None", "null", "nan", "NaN", "-nan", "inf", "+inf", "-inf", "Infinity",
    "1e309", "-1e309", "-1e308", "5e-324", "-0", "-0.0", "0x10", "0b1", "1_0", "1.5", "-1",
    "-2147483649", "-" + "9" * 400, "true", "false", "1,2", ",", "1,,2", "[1, 2]", "{}", "'1'",
    '"1"', "1 2", "\t1", "1\n", "1\n2", "\u200f1", "1\u200f", "\u202e12", "\u200b", "\ufeff1",
    "🎲", "1🎲", "\x1b[31m1", "\x07", "\x7f", "\udcff", "ü", "日本", "x" * 300, "١", "１",
)  # fmt: skip
_HUGE = ("1e308", "9" * 400, str(10**30), str(2**63), str(2**63 - 1), str(2**64), str(HUGE_SIZE), "1e30")
_CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")  # argv holds no NUL


@dataclass(frozen=True)
class Option:
    """One command-line option of a scenario."""

    key: str
    type: Any  # the annotation its text parses as
    bounds: dict = dataclasses.field(default_factory=dict)  # min, above, max, choices
    names: tuple = ()  # the names a str option picks from
    role: str = FREE
    needs: tuple[str, ...] = ()  # tokens that make it apply: `<kind>=<factory>` for a keyword
    default: Any = None
    valid_range: tuple[int, int] | None = None  # the valid values drawn, where the role's are long runs


def light(options: list[Option], kind: str, name: str) -> dict[str, str]:
    """Small values of the budget and size keywords of factory `name` of registry `kind`: a case that
    picks another factory does not inherit its defaults' long runs (darts' `method=forward`
    unrolls 200 steps per hypergradient)."""
    caps = {BUDGET: 3, SIZE: 4}
    return {
        o.key: str(min(o.default, caps[o.role]))
        for o in options
        if o.needs == (f"{kind}={name}",) and o.role in caps and type(o.default) is int
    }


def scenario_options(scenario) -> list[Option]:
    """Every option of `scenario`: its config's fields and its registries' keywords."""
    config = scenario.config
    hints = typing.get_type_hints(config)
    fields = dataclasses.fields(config)
    registries = {
        f.metadata["namespace"]: f.metadata["registry"] for f in fields if "namespace" in f.metadata
    }
    found = []
    for f in fields:
        if "namespace" in f.metadata:
            registry = f.metadata["registry"]
            for name in registry:
                for keyword, option in registry.options(name).items():
                    key = f"{registry.kind}.{keyword}"
                    found.append(
                        Option(
                            key,
                            option.type,
                            names=_names(keyword),
                            role=_role(scenario.name, key, option.type),
                            needs=(f"{registry.kind}={name}",),
                            default=option.default,
                            valid_range=_VALID_RANGES.get((scenario.name, key)),
                        )
                    )
            continue
        bounds = {k: f.metadata[k] for k in ("min", "above", "max", "choices") if k in f.metadata}
        names = tuple(registries[f.name]) if f.name in registries else _names(f.name)
        role = _role(scenario.name, f.name, hints[f.name])
        valid_range = _VALID_RANGES.get((scenario.name, f.name))
        found.append(Option(f.name, hints[f.name], bounds, names, role, valid_range=valid_range))
    return found


def _names(key: str) -> tuple:
    return _NAMES.get(key, ())


def _role(scenario: str, key: str, annotation: Any) -> str:
    name = key.rpartition(".")[2]
    if key in _FIXED:
        return FIXED
    if (scenario, key) in _ROLES:
        return _ROLES[(scenario, key)]
    if key in _KEY_ROLES:
        return _KEY_ROLES[key]
    if name in _PATHS:
        return PATH
    if name in _NO_TRUE:
        return NO_TRUE
    if name in _FREE_INTS:
        return FREE
    if name in _SIZES:
        return SIZE
    return BUDGET if _base_type(annotation) is int else FREE


def _base_type(annotation: Any) -> Any:
    """int for `int`, `int | None` and `tuple[int, ...]`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = str if str in others else others[0]
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0]
    return annotation


def values(option: Option) -> st.SearchStrategy[str]:
    """Texts for `option`: mostly valid ones, then its bounds and one past them, wrong types, absurd
    sizes, and hostile text of every kind; budgets and sizes kept away from the valid values that
    only make a run long."""
    kind = _base_type(option.type)
    if option.role == FIXED:
        return st.sampled_from(_FIXED[option.key])
    valid, edges = _valid(option, kind), _edges(option, kind)
    if typing.get_origin(_unwrap_optional(option.type)) is tuple:
        item = st.one_of(valid, valid, edges)
        drawn = st.one_of(
            st.lists(valid, min_size=1, max_size=3).map(",".join),
            st.lists(item, min_size=0, max_size=4).map(",".join),
            st.lists(item, min_size=1, max_size=3).map(", ".join),
            st.lists(item, min_size=1, max_size=3).map(lambda items: ",".join(items) + ","),
            hostile(),
        )
    else:
        drawn = st.one_of(valid, valid, valid, edges, hostile())
    if _unwrap_optional(option.type) is not option.type:  # X | None
        drawn = st.one_of(drawn, st.just("none"))
    return drawn.filter(lambda text: _safe(option, text))


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        return others[0] if len(others) == 1 else annotation
    return annotation


def hostile() -> st.SearchStrategy[str]:
    """Text no option should take silently, and arbitrary short unicode text."""
    return st.one_of(st.sampled_from(_HOSTILE), st.text(_CHARACTERS, max_size=8))


def _valid(option: Option, kind: Any) -> st.SearchStrategy[str]:
    """Values in the option's documented range (budgets and sizes small)."""
    if kind is bool:
        return st.sampled_from(_FALSE if option.role == NO_TRUE else _TRUE + _FALSE)
    if kind is int:
        low, high = _int_range(option)
        if option.valid_range is not None:
            return st.integers(*option.valid_range).map(str)
        if option.role == BUDGET:
            return st.integers(low, max(low, 0) + BUDGET_CAP).map(str)
        if option.role == SIZE:
            return st.integers(low, max(low, SMALL_SIZE)).map(str)
        return st.integers(low, high if high is not None else 2**64).map(str)
    if kind is float:
        low, above, high = (option.bounds.get(k) for k in ("min", "above", "max"))
        return st.floats(
            min_value=low if low is not None else above,
            max_value=high,
            exclude_min=low is None and above is not None,
            allow_nan=False,
            allow_infinity=False,
        ).map(repr)
    if option.role == PATH:
        return st.sampled_from(_PATH_TEXTS)
    names = option.names or option.bounds.get("choices", ())
    return st.sampled_from(names) if names else hostile()


def _edges(option: Option, kind: Any) -> st.SearchStrategy[str]:
    """Each bound and one past it, wrong types, absurd sizes, misspelt names."""
    if kind is bool:
        return st.sampled_from(("2", "-1", "t", "f", "truee", "on off", "y"))
    if kind is int:
        low, high = _int_range(option)
        edges = [low - 1, low, -1, 0, 1] + ([high, high + 1] if high is not None else [])
        return st.sampled_from([*map(str, edges), "2.5", "1e3", "1e-3", *_HUGE])
    if kind is float:
        edges = [0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 5e-324]
        for bound in (option.bounds.get(k) for k in ("min", "above", "max")):
            if bound is not None:
                edges += [bound, math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]
                edges += [bound + 1, bound - 1]
        return st.sampled_from([*map(repr, edges), *_HUGE])
    names = st.sampled_from(option.names or option.bounds.get("choices", ()) or ("x",))
    return st.one_of(
        st.sampled_from(_FOREIGN_FACTORIES),
        names.map(str.upper),
        names.map(lambda n: f" {n}\t"),
        names.map(lambda n: n + ":x"),
        names.map(lambda n: n[:-1]),
    )


def _int_range(option: Option) -> tuple[int, int | None]:
    low = option.bounds.get("min")
    if low is None and option.bounds.get("above") is not None:
        low = math.floor(option.bounds["above"]) + 1
    return (0 if low is None else int(low)), option.bounds.get("max")


def _safe(option: Option, text: str) -> bool:
    """False for a valid budget past BUDGET_CAP and a size between SMALL_SIZE and HUGE_SIZE (Python's
    own number parsing, which reads other scripts' digits and underscores as the CLI does)."""
    if option.role not in (BUDGET, SIZE):
        return True
    for part in text.split(","):
        number = _number(part)
        if number is None:
            continue
        if option.role == BUDGET and number > BUDGET_CAP:
            return False
        if option.role == SIZE and SMALL_SIZE < number < HUGE_SIZE:
            return False
    return True


def _number(text: str) -> float | None:
    """The number the CLI's int parser reads in `text` (any size; `1e3` too), else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number.is_integer() else None


def odd_tokens(options: list[Option], renamed: dict[str, str]) -> st.SearchStrategy[list[str]]:
    """Tokens that are not one well-formed option: unknown keys, keys with odd dots, malformed
    `key=value`, a key given twice, a deprecated name beside its new one."""
    keys = [o.key for o in options]
    value = st.one_of(st.sampled_from(("1", "0.5", "true", "x")), hostile())
    unknown = st.one_of(
        st.sampled_from(
            (
                "stepz", "Steps", "STEPS", "seed ", " seed", "seed\t", ".", "..", ".seed", "seed.",
                "a.b", "x" * 200, "ü", "🎲", "\u200fseed", "seed\x07", "seed\u200b",
            )
        ),
        st.sampled_from(keys).map(lambda k: k + "."),
        st.sampled_from(keys).map(lambda k: "." + k),
        st.sampled_from(keys).map(lambda k: k.replace(".", "..") if "." in k else k + ".x"),
        st.sampled_from(keys).map(lambda k: k + ".x.y"),
        st.text(_CHARACTERS, min_size=1, max_size=6).filter(lambda k: not k.lstrip().startswith("-")),
    )  # fmt: skip
    malformed = st.sampled_from(("seed", "=1", "=", "==", "seed==1", "seed=1=2", "", " ", "-x=1"))
    twice = st.tuples(st.sampled_from(keys), value, value).map(lambda t: [f"{t[0]}={t[1]}", f"{t[0]}={t[2]}"])
    drawn = [
        st.tuples(unknown, value).map(lambda t: [f"{t[0]}={t[1]}"]),
        malformed.map(lambda token: [token]),
        twice,
    ]
    if renamed:
        pairs = st.sampled_from(sorted(renamed.items()))
        drawn += [
            st.tuples(pairs, value).map(lambda t: [f"{t[0][0]}={t[1]}"]),
            st.tuples(pairs, value).map(lambda t: [f"{t[0][0]}={t[1]}", f"{t[0][1]}={t[1]}"]),
        ]
    return st.one_of(*drawn)
