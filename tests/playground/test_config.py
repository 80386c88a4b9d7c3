"""Overrides parsed to the config's types, with one-line errors."""

from dataclasses import dataclass

import pytest

from playground.config import build_config, format_options, format_value, split_override
from playground.scenario import RunConfig, option


@dataclass(frozen=True)
class Example(RunConfig):
    lr: float = option(0.1, "step size")
    steps: int = option(10, "steps")
    init: tuple[float, ...] = option((1.0, 2.0), "start")
    sizes: tuple[int, ...] = option((40, 40), "hidden sizes")
    budget: float | None = option(None, "optional budget")
    name: str = option("sim_gd", "a name")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"lr": "1e-3"}, {"lr": 1e-3}),
        ({"steps": "1e3"}, {"steps": 1000}),
        ({"init": "-1, 0.5"}, {"init": (-1.0, 0.5)}),
        ({"sizes": "100,100"}, {"sizes": (100, 100)}),
        ({"budget": "none"}, {"budget": None}),
        ({"budget": "2.5"}, {"budget": 2.5}),
        ({"tensorboard": "True", "seed": "3"}, {"tensorboard": True, "seed": 3}),
        ({"name": "a=b"}, {"name": "a=b"}),
    ],
)
def test_values_parse_to_the_annotated_type(overrides, expected):
    config = build_config(Example, overrides)
    for key, value in expected.items():
        assert getattr(config, key) == value and type(getattr(config, key)) is type(value)


def test_format_value_round_trips():
    config = Example(init=(0.5, -2.0), budget=None, tensorboard=True)
    texts = {k: format_value(getattr(config, k)) for k in ("init", "budget", "tensorboard", "lr")}
    assert build_config(Example, texts) == config


def test_split_override_keeps_equals_signs_in_the_value():
    assert split_override("game=my.module:factory") == ("game", "my.module:factory")
    assert split_override("name=a=b") == ("name", "a=b")
    with pytest.raises(ValueError, match="malformed override '=3'"):
        split_override("=3")


def test_options_are_listed_with_type_default_and_help():
    lines = format_options(Example)
    assert lines[0] == (
        "seed (int, default 0): random seed: same seed, same numbers [valid: >= 0 and <= 9223372036854775807]"
    )
    assert "sizes (comma-separated list of int, default 40,40): hidden sizes" in lines
    assert "budget (float or none, default none): optional budget" in lines


def test_a_literal_is_read_as_one_of_its_values():
    from typing import Literal

    from playground.config import parse_value

    assert parse_value("style", "star", Literal["regular", "star"]) == "star"
    assert parse_value("order", "2", Literal[1, 2]) == 2
    with pytest.raises(ValueError, match="^unknown style 'Star'; valid: regular, star$"):
        parse_value("style", "Star", Literal["regular", "star"])


def test_the_listing_shows_each_registry_option_and_no_keyword_only_code_passes():
    """Issue 26: the icl models' `generator` and `dtype` were listed (and crashed when given)."""
    from metalearn import icl
    from playground.config import format_registry, registries
    from playground.scenarios import SCENARIOS
    from registration import text_type

    lines = format_registry(icl.MODELS)
    assert lines[1] == (
        "    lsa: A stack of `layers` LSA layers with `heads` heads each on tokens of size D = dim + 1. "
        "[model.dim (int, required), model.layers (int, default 1), model.heads (int, default 1), "
        "model.init_scale (float, default 0.1)]"
    )
    assert not any("generator" in line or "dtype" in line for line in lines)
    for registry in registries(scenario.config for scenario in SCENARIOS.values()):
        for name in registry:
            keywords, options = registry.keywords(name), registry.options(name)
            assert options == {k: o for k, o in keywords.items() if text_type(o.type) is not None}
            listed = next(line for line in format_registry(registry) if line.startswith(f"    {name}: "))
            assert all(f"{registry.kind}.{k} (" in listed for k in options), (registry.kind, name)
