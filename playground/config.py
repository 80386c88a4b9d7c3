"""Turning `key=value` overrides into a scenario's typed config.

Types follow the config dataclass's annotations (and a factory option's, read as
`registration.text_type` says): int, float, str, bool, a path, a `Literal` (one of its values),
tuple[float, ...] and tuple[int, ...] (written `key=1,2`), and `X | None` (written `key=none`).
Every float must be finite; a field's `option(..., min=, max=, choices=)` bounds are checked here,
once for all scenarios. Any `ValueError` while the config is built (here, in the config's
`__post_init__`, or in a library factory it calls) is the user's: it comes out as `BadInput`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any

from playground.devices import resolve_device
from playground.errors import BadInput
from registration import Option, Registry, text_type

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def split_override(text: str) -> tuple[str, str]:
    """'lr=0.1' -> ('lr', '0.1')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise BadInput(f"malformed override {text!r}; expected key=value")
    return key.strip(), value.strip()


def parse_overrides(texts: Iterable[str]) -> dict[str, str]:
    """`key=value` texts as a dict; a key given twice is an error, never a silent choice."""
    overrides: dict[str, str] = {}
    for text in texts:
        key, value = split_override(text)
        if key in overrides:
            raise BadInput(f"option {key!r} given twice, as {overrides[key]!r} and {value!r}; give it once")
        overrides[key] = value
    return overrides


def build_config(config_type: type, overrides: dict[str, str]) -> Any:
    """The config with each override parsed to its field's type, bounded, and validated;
    `namespace.keyword` overrides go to the factory the namespace's field names (see `keywords`)."""
    overrides, notices = _renamed(config_type, overrides)
    hints = typing.get_type_hints(config_type)
    fields = {f.name: f for f in dataclasses.fields(config_type) if "namespace" not in f.metadata}
    spaces = {
        f.metadata["namespace"]: f for f in dataclasses.fields(config_type) if "namespace" in f.metadata
    }
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if "." in key and key.partition(".")[0] in spaces:
            continue
        if key not in fields:
            extra = [f"{n}.<keyword>" for n in spaces]
            raise BadInput(f"unknown option {key!r}; valid: {', '.join([*fields, *extra])}")
        values[key] = parse_value(key, text, hints[key])
        check_bounds(fields[key], values[key])
    try:
        for key, text in overrides.items():
            namespace, dot, keyword = key.partition(".")
            if dot and namespace in spaces:
                space = spaces[namespace]
                chosen = values.get(namespace, fields[namespace].default)
                if chosen is None:  # a default that depends on other options: the config's own
                    given = {k: v for k, v in values.items() if k not in {f.name for f in spaces.values()}}
                    chosen = getattr(config_type(**given), namespace)
                kwargs = values.setdefault(space.name, {})
                kwargs[keyword] = _parse_keyword(space, chosen, keyword, key, text)
        config = config_type(**values)
        for field in fields.values():  # defaults a __post_init__ filled in
            check_bounds(field, getattr(config, field.name))
        resolve_device(config.device)
    except BadInput:
        raise
    except ValueError as error:
        raise BadInput(str(error)) from None
    for notice in notices:  # once the config is good: bad input stays one line
        print(f"playground: {notice}", file=sys.stderr)
    return config


def _renamed(config_type: type, overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Overrides with the config's deprecated names (`renamed`, old name -> new) given their new
    names, and a notice for each; both names given is an error."""
    renamed, notices = getattr(config_type, "renamed", {}), []
    for old, new in renamed.items():
        if old in overrides:
            if new in overrides:
                raise BadInput(f"{old}= and {new}= both given; give {new} only")
            notices.append(f"{old}= is deprecated, to be removed in the next release: use {new}=")
    return {renamed.get(key, key): value for key, value in overrides.items()}, notices


def _parse_keyword(space: dataclasses.Field, chosen: str, keyword: str, key: str, text: str) -> Any:
    namespace, registry = space.metadata["namespace"], space.metadata["registry"]
    valid = registry.options(chosen)  # an unknown name raises its own ValueError
    if keyword not in valid:
        raise BadInput(
            f"{namespace} {chosen!r} takes no option {keyword!r}; valid: "
            f"{', '.join(f'{namespace}.{k}' for k in valid) or 'none'}"
        )
    return parse_value(key, text, valid[keyword].type)


def check_bounds(field: dataclasses.Field, value: Any) -> None:
    """The field's `min`, `above`, `max` and `choices` (from `option`), item by item for a list."""
    bounds = field.metadata
    for item in value if isinstance(value, tuple) else (value,):
        if item is None:
            continue
        if "choices" in bounds and item not in bounds["choices"]:
            raise BadInput(f"unknown {field.name} {item!r}; valid: {_valid_text(bounds, item)}")
        low, above, high = bounds.get("min"), bounds.get("above"), bounds.get("max")
        if (
            (low is not None and item < low)
            or (above is not None and item <= above)
            or (high is not None and item > high)
        ):
            raise BadInput(f"{field.name}={format_value(item)}; valid: {_valid_text(bounds, item)}")


def _valid_text(bounds: Any, example: Any = None) -> str:
    if "choices" in bounds:
        return ", ".join(map(format_value, bounds["choices"]))
    kind = "an integer" if isinstance(example, int) else "a number"
    low, above, high = bounds.get("min"), bounds.get("above"), bounds.get("max")
    parts = (
        ([f">= {low}"] if low is not None else [])
        + ([f"> {above}"] if above is not None else [])
        + ([f"<= {high}"] if high is not None else [])
    )
    return f"{kind} {' and '.join(parts)}" if example is not None else " and ".join(parts)


def parse_value(key: str, text: str, annotation: Any) -> Any:
    """Parse `text` as the type `annotation`; one-line `BadInput` naming the key on failure."""
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in options:
        if text.lower() == "none":
            return None
    annotation = text_type(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        texts = {format_value(value): value for value in typing.get_args(annotation)}
        if text not in texts:
            raise BadInput(f"unknown {key} {text!r}; valid: {', '.join(texts)}")
        return texts[text]
    is_list = typing.get_origin(annotation) is tuple
    kind = typing.get_args(annotation)[0] if is_list else annotation
    parts = ([part.strip() for part in text.split(",")] if text.strip() else []) if is_list else [text]
    if is_list and "" in parts:
        raise BadInput(f"{key}={text!r} has an empty item; valid: a {_type_text(annotation)}")
    try:
        values = tuple(_scalar(kind, part) for part in parts)
    except ValueError:
        raise BadInput(f"{key}={text!r} is not a valid {_type_text(annotation)}") from None
    if kind is float and not all(map(math.isfinite, values)):  # the items as read: one line
        raise BadInput(f"{key}={','.join(parts)}: not finite; valid: finite numbers (no nan or inf)")
    return values if is_list else values[0]


def _scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(text)
    if kind is int:
        try:
            return int(text)
        except ValueError:
            number = float(text)  # 1e3
            if not number.is_integer():
                raise ValueError(text) from None
            return int(number)
    return kind(text)


def _type_text(annotation: Any) -> str:
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in options:
        return " or ".join(_type_text(a) for a in options if a is not type(None)) + " or none"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in options)
    if typing.get_origin(annotation) is typing.Literal:
        return f"one of {', '.join(map(format_value, typing.get_args(annotation)))}"
    if typing.get_origin(annotation) is tuple:
        return f"comma-separated list of {typing.get_args(annotation)[0].__name__}"
    if annotation is bool:
        return "bool (true/false)"
    return annotation.__name__


def option_defaults(config_type: type) -> dict[str, Any]:
    """Each option of a config (class or instance) at its default."""
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(config_type)
    }


def refuse_untaken(config: Any, registry: Any, names: tuple[str, ...]) -> None:
    """Refuse an option of `names` (a config option passed on to the factory the config picks from
    `registry`) set away from its default where that factory takes no such keyword."""
    chosen = getattr(config, registry.kind)
    taken, defaults = registry.options(chosen), option_defaults(config)
    for name in names:
        if getattr(config, name) != defaults[name] and name not in taken:
            raise ValueError(
                f"{registry.kind} {chosen!r} takes no option {name!r}; valid: "
                f"{', '.join(k for k in names if k in taken) or 'none'}"
            )


def config_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-able values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def format_options(config_type: type) -> list[str]:
    """One line per option: `name (type, default X): help [valid: bounds]`."""
    hints = typing.get_type_hints(config_type)
    lines = [
        f"{old} (deprecated, to be removed in the next release): use {new}"
        for old, new in getattr(config_type, "renamed", {}).items()
    ]
    defaults = option_defaults(config_type)
    for f in dataclasses.fields(config_type):
        if "namespace" in f.metadata:
            lines += _format_keywords(f)
            continue
        default = defaults[f.name]
        bounds = any(name in f.metadata for name in ("min", "above", "max", "choices"))
        valid = f" [valid: {_valid_text(f.metadata)}]" if bounds else ""
        lines.append(
            f"{f.name} ({_type_text(hints[f.name])}, default {format_value(default) or '(empty)'}): "
            f"{f.metadata.get('help', '')}{valid}"
        )
    return lines


def _format_keywords(space: dataclasses.Field) -> list[str]:
    """`namespace.<keyword>` options, one line per factory of the registry that takes any."""
    namespace, registry, lines = space.metadata["namespace"], space.metadata["registry"], []
    for name in registry:
        valid = registry.options(name)
        if valid:
            shown = ", ".join(f"{k} ({_option_text(option)})" for k, option in valid.items())
            lines.append(f"{namespace}.<keyword> with {namespace}={name}: {shown}")
    return lines


def registries(config_types: Iterable[type]) -> list[Registry]:
    """The registries the configs' `namespace.<keyword>` fields pick from, each once, in order."""
    found = {}
    for config_type in config_types:
        for f in dataclasses.fields(config_type):
            if "registry" in f.metadata:
                found.setdefault(id(f.metadata["registry"]), f.metadata["registry"])
    return list(found.values())


def format_registry(registry: Registry) -> list[str]:
    """A registry's entries, one line each with its description and options."""
    lines = [f"{registry.kind}: {registry.kind}=NAME, or {registry.kind}=module:factory for your own"]
    for name in registry:
        options = registry.options(name)
        shown = ", ".join(f"{registry.kind}.{k} ({_option_text(o)})" for k, o in options.items())
        lines.append(
            f"    {name}: {registry.help(name) or '(no description)'}" + (f" [{shown}]" if shown else "")
        )
    return lines


def _option_text(option: Option) -> str:
    """`float, default 0.5` or `int, required`."""
    default = "required" if option.required else f"default {format_value(option.default)}"
    return f"{_type_text(option.type)}, {default}"


def format_value(value: Any) -> str:
    """The override text that parses back to `value`."""
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    return str(value)
