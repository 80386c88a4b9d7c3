"""The one registry every kind of extension goes through: what it builds, and what it refuses."""

from __future__ import annotations

import functools
import random
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest

from registration import Option, Registry, factory_options, text_type


class Shape:
    def __init__(self, sides: int):
        self.sides = sides


class Square(Shape):
    """A square of side `size`. Its area is size²."""

    def __init__(self, size: float = 1.0):
        super().__init__(4)
        self.size = size


def polygon(sides: int, size: float = 1.0, label="p", closed=True, scale=None) -> Shape:
    """A regular polygon (Euclid et al. 300 BC). Not drawn."""
    shape = Shape(sides)
    shape.size = size
    return shape


def box(width: float, height: float) -> Shape:
    return Shape(4)


def not_a_shape(size: float = 1.0):
    return size


def scaled(factor, sides: int = 3) -> Shape:
    return Shape(sides * factor)


@pytest.fixture
def shapes():
    registry = Registry("shape", returns=Shape)
    registry.register("square", Square)
    registry.register("polygon", polygon)
    registry.register("triangle", functools.partial(polygon, sides=3))
    registry.register("broken", not_a_shape)
    return registry


def test_builds_by_name_with_options(shapes):
    square = shapes.make("square", size=2.5)
    assert isinstance(square, Square) and square.size == 2.5 and square.sides == 4
    assert shapes.make("polygon", sides=6).sides == 6
    assert shapes.make("triangle", size=3.0).sides == 3 and shapes.make("triangle").size == 1.0


def test_reads_like_a_dict_of_the_built_ins(shapes):
    assert list(shapes) == ["square", "polygon", "triangle", "broken"] and len(shapes) == 4
    assert shapes["square"] is Square and "polygon" in shapes and "module:factory" not in shapes
    assert repr(shapes) == "Registry('shape': square, polygon, triangle, broken)"


def test_options_are_typed_from_the_signature(shapes):
    assert shapes.options("square") == {"size": Option(float, 1.0)}
    assert shapes.options("polygon") == {
        "sides": Option(int, None, required=True),
        "size": Option(float, 1.0),
        "label": Option(str, "p"),  # no annotation: the default's type, else str
        "closed": Option(bool, True),
        "scale": Option(str, None),
    }
    # a partial's bound keywords are part of the declaration, not options
    assert list(shapes.options("triangle")) == ["size", "label", "closed", "scale"]


def ring(sides: int, radius: float = 1) -> Shape:  # an int default for a float option
    return Shape(sides)


def unresolved(size: NotDefinedAnywhere = 1.0) -> Shape:  # noqa: F821 (a string: the file defers annotations)
    return Shape(4)


def test_a_partial_is_typed_by_its_function_and_an_unresolved_annotation_by_the_default():
    """Annotations win over defaults, also behind a `functools.partial` (which has none of its
    own); a user's annotation that names nothing importable leaves the default's type."""
    assert factory_options(functools.partial(ring, sides=4)) == {"radius": Option(float, 1)}
    assert factory_options(unresolved) == {"size": Option(float, 1.0)}


def test_given_arguments_are_not_options():
    registry = Registry("shape", returns=Shape, given=("factor",))
    registry.register("scaled", scaled)
    assert registry.options("scaled") == {"sides": Option(int, 3)}
    assert registry.make("scaled", 2, sides=5).sides == 10
    assert factory_options(scaled) == {"factor": Option(str, None, required=True), "sides": Option(int, 3)}


@pytest.mark.parametrize(
    "spec, options, message",
    [
        (
            "circle",
            {},
            "^unknown shape 'circle'; valid: square, polygon, triangle, broken, or module:factory$",
        ),
        ("square", {"sides": 5}, "^shape 'square' takes no option 'sides'; valid: size$"),
        (
            "triangle",
            {"sides": 5},
            "^shape 'triangle' takes no option 'sides'; valid: size, label, closed, scale$",
        ),
        ("polygon", {"size": 2.0}, "^shape 'polygon' needs option\\(s\\) sides that have no default$"),
        (
            "broken",
            {},
            f"^shape 'broken' returned float; valid: a function returning a {__name__.split('.')[0]}.Shape$",
        ),
    ],
)
def test_refuses_in_one_line(shapes, spec, options, message):
    with pytest.raises(ValueError, match=message):
        shapes.make(spec, **options)


def test_every_missing_option_is_named():
    registry = Registry("shape", returns=Shape)
    registry.register("box", box)
    with pytest.raises(
        ValueError, match="^shape 'box' needs option\\(s\\) width, height that have no default$"
    ):
        registry.make("box")


def test_refuses_a_name_taken_or_malformed(shapes):
    with pytest.raises(
        ValueError, match="^shape 'square' is already registered; register it under another name$"
    ):
        shapes.register("square", polygon)
    assert shapes["square"] is Square  # never replaced
    for name in ("", "a:b", " padded"):
        with pytest.raises(ValueError, match="valid: a non-empty name without ':' or spaces"):
            shapes.register(name, polygon)
    with pytest.raises(ValueError, match="is not a function or class"):
        shapes.register("value", 3)
    with pytest.raises(ValueError, match="already registered"):
        shapes["polygon"] = Square  # item assignment is registration


def test_item_assignment_registers_and_deletion_unregisters(shapes):
    shapes["hexagon"] = functools.partial(polygon, sides=6)
    assert shapes.make("hexagon").sides == 6 and shapes.help("hexagon").startswith("A regular polygon")
    del shapes["hexagon"]
    assert "hexagon" not in shapes and list(shapes)[-1] == "broken"


def test_help_is_the_first_sentence_of_the_docstring_or_given(shapes):
    assert shapes.help("square") == "A square of side `size`."
    assert shapes.help("polygon") == "A regular polygon (Euclid et al. 300 BC)."  # "et al." ends nothing
    assert shapes.help("triangle") == shapes.help("polygon")
    assert shapes.help("broken") == ""  # no docstring
    shapes.register("pentagon", functools.partial(polygon, sides=5), help="Five sides.")
    assert shapes.help("pentagon") == "Five sides."


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's module, outside the package, importable as `user_shapes`."""
    (tmp_path / "user_shapes.py").write_text(
        textwrap.dedent(
            '''
            import json
            from json import loads

            def star(points: int = 5, size: float = 1.0):
                """A star with `points` points."""
                return {"sides": 2 * points, "size": size}

            class Hexagon(dict):
                def __init__(self, size: float = 1.0):
                    super().__init__(sides=6, size=size)

            def wrong():
                return "a star"

            NOT_CALLABLE = 3
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_shapes"


@pytest.fixture
def drawings():
    """A registry of what the user's module makes: dicts."""
    return Registry("shape", returns=dict)


def test_module_factory_builds_a_users_function_or_class(drawings, user_module):
    assert drawings.make(f"{user_module}:star", points=7) == {"sides": 14, "size": 1.0}
    assert drawings.options(f"{user_module}:star") == {"points": Option(int, 5), "size": Option(float, 1.0)}
    assert drawings.help(f"{user_module}:star") == "A star with `points` points."
    assert drawings.make(f"{user_module}:Hexagon", size=2.0) == {"sides": 6, "size": 2.0}
    assert f"{user_module}:star" not in drawings  # built, not registered


@pytest.mark.parametrize(
    "attribute, message",
    [
        ("loads", "is not a function defined in user_shapes"),  # imported from json
        ("json", "is not a function defined in user_shapes"),  # a module
        ("NOT_CALLABLE", "is not a function defined in user_shapes"),
        ("missing", "is not a function defined in user_shapes"),
        ("wrong", "returned str; valid: a function returning a builtins.dict"),
    ],
)
def test_module_factory_refuses_what_the_module_did_not_define(drawings, user_module, attribute, message):
    with pytest.raises(ValueError, match=message):
        drawings.make(f"{user_module}:{attribute}")


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "no_such_module_x:f",
            "^cannot load shape 'no_such_module_x:f': No module named 'no_such_module_x'$",
        ),
        (
            "builtins:print",
            "^shape 'builtins:print' is not a function defined in builtins; valid: module:factory",
        ),
        ("os:system", "^shape 'os:system' is not a function defined in os"),
        (":star", "^unknown shape ':star'"),
        ("user_shapes:", "^unknown shape 'user_shapes:'"),
        # the first ':' ends the module's name: `star:points` is the attribute looked up, not found
        (
            "user_shapes:star:points",
            "^shape 'user_shapes:star:points' is not a function defined in user_shapes; valid:",
        ),
    ],
)
def test_module_factory_refuses_what_cannot_be_loaded(shapes, user_module, spec, message):
    with pytest.raises(ValueError, match=message):
        shapes.factory(spec)


def test_a_registry_without_a_return_type_checks_no_type_and_names_none(user_module):
    anything = Registry("thing")
    anything.register("number", not_a_shape)
    assert anything.make("number", size=2.0) == 2.0
    with pytest.raises(
        ValueError,
        match="^thing 'user_shapes:loads' is not a function defined in user_shapes; valid: module:factory "
        "naming a function \\(or class\\) defined in that module$",
    ):
        anything.factory(f"{user_module}:loads")


def test_the_type_refused_is_named_by_its_package():
    """A class of a package's submodule reads as `package.Class`; several types, joined by `or`."""
    from games import Game

    games_only = Registry("game", returns=Game)
    games_only.register("number", not_a_shape)
    with pytest.raises(
        ValueError, match="^game 'number' returned float; valid: a function returning a games.Game$"
    ):
        games_only.make("number")
    numbers = Registry("number", returns=(int, complex))
    numbers.register("number", not_a_shape)
    with pytest.raises(
        ValueError, match="returned float; valid: a function returning a builtins.int or builtins.complex$"
    ):
        numbers.make("number")


def untitled():
    """Gradient descent

    More text. Even more."""


def abbreviated():
    """Scales each step, e.g. Adam does. Then more."""


def test_help_is_the_first_paragraph_when_it_has_no_sentence_end_and_keeps_abbreviations():
    registry = Registry("thing")
    registry.register("untitled", untitled)
    registry.register("abbreviated", abbreviated)
    assert registry.help("untitled") == "Gradient descent."
    assert registry.help("abbreviated") == "Scales each step, e.g. Adam does."


def drawn(
    sides: int = 3,
    rng: random.Random | None = None,
    style: Literal["regular", "star"] = "regular",
    names: tuple[str, ...] = (),
    weight: float | random.Random = 1.0,
    anything: Any = None,
    origin=Shape,
) -> Shape:
    """A polygon drawn with `rng` (a keyword only code can pass)."""
    shape = Shape(sides)
    shape.rng = rng
    return shape


def test_a_keyword_text_cannot_express_is_for_code_only_not_an_option():
    """Issue 26: a factory's `dtype` or `generator` was listed as an option, and `model.dtype=float64`
    crashed reading the text as a torch.dtype. Options are the keywords text can be read as
    (`text_type`); the others (an object, `Any`, a default of no such type) code passes."""
    registry = Registry("shape", returns=Shape)
    registry.register("drawn", drawn)
    assert list(registry.options("drawn")) == ["sides", "style", "names", "weight"]
    assert registry.options("drawn")["style"] == Option(Literal["regular", "star"], "regular")
    keywords = ["sides", "rng", "style", "names", "weight", "anything", "origin"]
    assert list(registry.keywords("drawn")) == keywords
    assert list(factory_options(drawn)) == list(registry.options("drawn"))
    rng = random.Random(0)
    assert registry.make("drawn", rng=rng, sides=5).rng is rng  # code passes what text cannot
    with pytest.raises(
        ValueError, match=f"^shape 'drawn' takes no option 'colour'; valid: {', '.join(keywords)}$"
    ):
        registry.make("drawn", colour="red")


@pytest.mark.parametrize(
    "annotation, read_as",
    [
        (int, int),
        (bool, bool),
        (str, str),
        (Path, Path),
        (float | None, float),
        (str | Path | None, str),  # a union holding str is read as str
        (float | random.Random, float),  # else as its first member
        (tuple[int, ...], tuple[int, ...]),
        (Literal["a", "b"], Literal["a", "b"]),
        (random.Random, None),
        (random.Random | None, None),
        (Any, None),
        (tuple, None),
        (tuple[int, int], None),
        (tuple[random.Random, ...], None),
        (Literal["a", random], None),
    ],
)
def test_text_type_is_what_text_is_read_as(annotation, read_as):
    assert text_type(annotation) == read_as


@pytest.mark.parametrize("annotation", [int | str, str | int, int | str | None, float | str])
def test_a_union_that_holds_str_is_read_as_str_wherever_str_stands_in_it(annotation):
    assert text_type(annotation) is str
