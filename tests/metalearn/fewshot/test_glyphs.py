"""Glyphs: real letters only, one class per shape, disjoint seeded splits, cached once, reproducible."""

import importlib
import math

import pytest
import torch

# The module itself: the package re-exports its function `glyphs` under the same name.
g = importlib.import_module("metalearn.fewshot.glyphs")

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(scripts=("greek",), per_class=4)  # 88 classes, a second to generate


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("glyphs")


def test_coverage_is_read_from_the_fonts():
    assert g.covering_faces("A") == g.FACES  # every text face has Latin
    assert g.covering_faces("\u0531") == g.FACES[:12]  # Armenian Ayb: the twelve DejaVu faces only
    assert g.covering_faces("\u05e9") == g.FACES[:4]  # Hebrew Shin: DejaVu Sans only
    assert g.covering_faces("\u4e2d") == ()  # CJK: no face, so never a class of empty boxes


def test_letters_skip_accented_copies_and_uncovered_letters():
    latin = g.script_letters(("latin",))
    assert latin[:3] == ["A", "B", "C"] and "\u00e9" not in latin  # é decomposes to e + accent
    assert {"\u00df", "\u00f8", "\u0142"} <= set(latin)  # ß, ø, ł have no decomposition
    assert all(len(g.covering_faces(c)) >= 2 for c in latin)


def test_letters_of_the_same_shape_are_one_class():
    # Latin, Greek and Cyrillic capital A coincide; so do o and O once scaled to the box.
    assert g.distinct(list("A\u0391\u0410EFoO")) == ["A", "E", "F", "o"]


def test_render_fits_the_glyph_to_the_box_and_centres_it():
    for char in "Al\u10d0":  # a wide, a tall and a Georgian letter
        rows, cols = g.render(char, "DejaVuSans").nonzero().unbind(dim=1)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert max(height, width) == g._BOX
        assert rows.min() == (g._CANVAS - height) // 2 and cols.min() == (g._CANVAS - width) // 2


def test_distort_with_zero_bounds_is_the_identity():
    x = torch.rand(3, 1, 56, 56, generator=torch.Generator().manual_seed(0))
    same = g.distort(x, torch.Generator(), rotation=0, shear=0, log_scale=0, shift=0)
    torch.testing.assert_close(same, x, rtol=0, atol=1e-5)  # float32 rounding of the sampling grid


def test_split_is_a_seeded_partition_by_character():
    letters = [chr(0x41 + i) for i in range(25)]
    splits = g.split_letters(letters, torch.Generator().manual_seed(0))
    assert [len(s) for s in splits.values()] == [18, 2, 5]  # round(17.5), round(2.5), the rest
    assert sorted(sum(splits.values(), [])) == letters
    assert splits == g.split_letters(letters, torch.Generator().manual_seed(0))
    assert splits != g.split_letters(letters, torch.Generator().manual_seed(1))


def test_glyphs_images_splits_and_cache(cache, monkeypatch):
    family = g.glyphs(ways=5, shots=1, queries=3, cache_dir=cache, seed=0, **SMALL)
    sizes = {split: x.shape[0] for split, x in family.images.items()}
    assert sizes == {"train": 62, "validation": 9, "test": 17}  # 88 Greek shapes, 70/10/20
    for x in family.images.values():
        assert x.shape[1:] == (4, 1, 28, 28) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1 and (x.flatten(2).sum(-1) > 5).all()  # every drawing has ink
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith(f"v{g.VERSION}-seed0-") and files[0].suffix == ".pt"

    def no_generation(*args):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(g, "generate", no_generation)
    again = g.glyphs(ways=5, shots=1, queries=3, cache_dir=cache, seed=0, **SMALL)
    assert all(torch.equal(family.images[s], again.images[s]) for s in family.images)


def test_same_seed_same_tensors_other_seed_other_tensors(cache, tmp_path):
    first = g.glyphs(cache_dir=cache, seed=0, queries=3, **SMALL)
    fresh = g.glyphs(cache_dir=tmp_path, seed=0, queries=3, **SMALL)  # generated anew
    assert all(torch.equal(first.images[s], fresh.images[s]) for s in first.images)
    other = g.glyphs(cache_dir=tmp_path, seed=1, queries=3, **SMALL)
    assert not torch.equal(first.images["train"], other.images["train"])
    assert sorted(p.name.split("-")[1] for p in tmp_path.iterdir()) == ["seed0", "seed1"]  # no temporary left


def test_instances_cycle_through_the_covering_faces():
    # Hebrew Shin has four faces: eight drawings use each face exactly twice.
    upright = g.upright_instances("\u05e9", 8, torch.Generator().manual_seed(0))
    renders = torch.stack([g.render("\u05e9", face) for face in g.covering_faces("\u05e9")])
    which = [[torch.equal(u, r) for r in renders].index(True) for u in upright]
    assert sorted(which) == [0, 0, 1, 1, 2, 2, 3, 3] and which[:4] == which[4:]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scripts=("klingon",)), "unknown scripts ['klingon']; valid: latin, greek"),
        (dict(per_class=0), "per_class=0: every instance is rendered.*; valid: an integer from 1 to 5000"),
        (dict(per_class=10**308), "per_class=1000.*; valid: an integer from 1 to 5000"),
        (dict(shots=2, queries=3), "shots + queries = 2 + 3 exceeds the 4 images per class"),
        (dict(ways=10), "ways=10 exceeds the 9 classes of the validation split; valid: 1..9"),
    ],
)
def test_bad_settings_raise_one_line(cache, kwargs, message):
    settings = SMALL | dict(cache_dir=cache, queries=1) | kwargs
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("+", r"\+")):
        g.glyphs(**settings)


@pytest.mark.parametrize("name", ["a_file", "a_file/below", "/dev/null"])
def test_a_cache_dir_that_cannot_hold_the_cache_is_refused_before_rendering(tmp_path, monkeypatch, name):
    """A file where the folder should be: refused at once with the reason, not after the minutes
    of rendering that ended in FileExistsError."""
    (tmp_path / "a_file").write_text("a user's file\n")
    monkeypatch.chdir(tmp_path)

    def no_generation(*args):
        raise AssertionError("rendered before checking the cache folder")

    monkeypatch.setattr(g, "generate", no_generation)
    with pytest.raises(ValueError) as raised:
        g.glyphs(cache_dir=name, **SMALL)
    assert str(raised.value) == (
        f"cache_dir={name!r} cannot hold the glyphs cache (Not a directory); valid: a writable directory, "
        "or a path where one can be made"
    )
    assert (tmp_path / "a_file").read_text() == "a user's file\n"


def test_sampling_tasks_from_glyphs(cache):
    family = g.glyphs(ways=5, shots=1, queries=3, cache_dir=cache, seed=0, **SMALL)
    tasks = family.sample("test", 32, torch.Generator().manual_seed(0))
    assert tasks.support_x.shape == (32, 5, 1, 28, 28) and tasks.query_x.shape == (32, 15, 1, 28, 28)
    assert math.isclose(tasks.support_x.max().item(), 1.0)
