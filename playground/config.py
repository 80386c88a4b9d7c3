"""Turning `key=value` overrides into a scenario's typed config.

Types follow the config dataclass's annotations: int, float, str, bool, tuple[float, ...] and
tuple[int, ...] (written `key=1,2`), and `X | None` (written `key=none`).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def split_override(text: str) -> tuple[str, str]:
    """'lr=0.1' -> ('lr', '0.1')."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"malformed override {text!r}; expected key=value")
    return key.strip(), value.strip()


def build_config(config_type: type, overrides: dict[str, str]) -> Any:
    """The config with each override parsed to its field's type (and validated by the config)."""
    hints = typing.get_type_hints(config_type)
    known = [f.name for f in dataclasses.fields(config_type)]
    values = {}
    for key, text in overrides.items():
        if key not in known:
            raise ValueError(f"unknown option {key!r}; valid: {', '.join(known)}")
        values[key] = parse_value(key, text, hints[key])
    config = config_type(**values)
    if config.threads is not None and config.threads < 0:
        raise ValueError(f"threads={config.threads}; valid: an integer >= 0 (0: torch's default)")
    return config


def parse_value(key: str, text: str, annotation: Any) -> Any:
    """Parse `text` as the type `annotation`; one-line ValueError naming the key on failure."""
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in options:
        if text.lower() == "none":
            return None
        (annotation,) = [a for a in options if a is not type(None)]
    try:
        if typing.get_origin(annotation) is tuple:
            item = typing.get_args(annotation)[0]
            return tuple(_scalar(item, part.strip()) for part in text.split(",") if part.strip())
        return _scalar(annotation, text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not a valid {_type_text(annotation)}") from None


def _scalar(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(text)
    if kind is int:
        number = float(text)
        if not number.is_integer():
            raise ValueError(text)
        return int(number)
    return kind(text)


def _type_text(annotation: Any) -> str:
    options = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in options:
        return " or ".join(_type_text(a) for a in options if a is not type(None)) + " or none"
    if typing.get_origin(annotation) is tuple:
        return f"comma-separated list of {typing.get_args(annotation)[0].__name__}"
    if annotation is bool:
        return "bool (true/false)"
    return annotation.__name__


def config_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-able values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def format_options(config_type: type) -> list[str]:
    """One line per option: `name (type, default X): help`."""
    hints = typing.get_type_hints(config_type)
    lines = []
    for f in dataclasses.fields(config_type):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = _type_text(hints[f.name])
        lines.append(f"{f.name} ({kind}, default {format_value(default) or '(empty)'}): {f.metadata.get('help', '')}")
    return lines


def format_value(value: Any) -> str:
    """The override text that parses back to `value`."""
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    return str(value)
