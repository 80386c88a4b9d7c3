"""Omniglot from torchvision's layout: the paper's split, right side up, never downloaded in tests."""

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from metalearn.fewshot.omniglot import omniglot, split_bounds

pytestmark = pytest.mark.usefixtures("one_thread")
ALPHABETS = {"images_background": {"Alpha": 15, "Beta_(fake)": 15}, "images_evaluation": {"Gamma": 10}}
DRAWINGS = 3


def write_fake_omniglot(data_dir: Path) -> None:
    """40 characters of 3 drawings each. Character k (in sorted path order) is gray 255 - 5 (k + 1),
    ink 5 (k + 1) / 255, with a black band over the top third, left two thirds (ink 1)."""
    k = 0
    for half, alphabets in ALPHABETS.items():
        for alphabet, n_characters in alphabets.items():
            for c in range(n_characters):
                folder = data_dir / "omniglot-py" / half / alphabet / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                image = Image.new("L", (105, 105), 255 - 5 * (k + 1))
                image.paste(0, (0, 0, 70, 35))  # (left, top, right, bottom)
                for d in range(DRAWINGS):
                    image.save(folder / f"{k:04d}_{d + 1:02d}.png")
                k += 1


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("omniglot")
    write_fake_omniglot(root)
    return root


def codes(images: torch.Tensor) -> list[int]:
    """The character index k of each class, read back from its ink level."""
    return (images[:, :, 0, 27, 27] * 255 / 5 - 1).round().long()[:, 0].tolist()


def test_paper_split_sizes():
    assert split_bounds(1623) == (1100, 1200, 1623)  # Finn et al.: 1100 train, 100 validation, 423 test
    assert split_bounds(40) == (27, 29, 40)


def test_loads_every_character_once_right_side_up(data_dir):
    family = omniglot(data_dir, rotations=False, ways=2, queries=1)
    shapes = {split: tuple(x.shape) for split, x in family.images.items()}
    assert shapes == {
        "train": (27, 3, 1, 28, 28),
        "validation": (2, 3, 1, 28, 28),
        "test": (11, 3, 1, 28, 28),
    }
    found = []
    for x in family.images.values():
        k = torch.tensor(codes(x))
        expected = (5 * (k + 1) / 255)[:, None, None, None, None].expand(-1, DRAWINGS, 1, 14, 14)
        torch.testing.assert_close(x[..., 14:, 14:], expected, rtol=0, atol=1e-6)  # Lanczos keeps flat gray
        assert (x[..., 0, :14] == 1).all() and (
            x[..., 14:, 0] < 1
        ).all()  # the band: top rows, not left columns
        found += k.tolist()
    assert sorted(found) == list(range(40))  # disjoint splits covering all characters


def test_split_is_seeded_and_stable(data_dir):
    train = [
        codes(omniglot(data_dir, split_seed=seed, ways=2, queries=1).images["train"]) for seed in (1, 1, 2)
    ]
    assert train[0] == train[1] and sorted(train[0]) != sorted(train[2])


def test_rotations_make_four_classes_per_character(data_dir):
    family = omniglot(data_dir, ways=5, shots=1, queries=2)
    assert [family.n_classes(s) for s in ("train", "validation", "test")] == [108, 8, 44]
    tasks = family.sample("train", 16, torch.Generator().manual_seed(0))
    assert tasks.support_x.shape == (16, 5, 1, 28, 28) and tasks.query_x.shape == (16, 10, 1, 28, 28)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(ValueError, match="images_background is missing; pass download=true, or unzip"):
        omniglot(tmp_path)
    (tmp_path / "omniglot-py" / "images_background").mkdir(parents=True)
    with pytest.raises(ValueError, match="images_evaluation is missing"):
        omniglot(tmp_path)


def test_download_is_passed_to_torchvision(tmp_path, monkeypatch):
    calls = []

    def fake_download(root, background, download):
        calls.append((root, background, download))
        if not background:
            write_fake_omniglot(Path(root))

    monkeypatch.setattr(torchvision.datasets, "Omniglot", fake_download)
    omniglot(tmp_path, download=True, ways=2, queries=1)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]


def test_uneven_character_folders_raise(tmp_path):
    write_fake_omniglot(tmp_path)
    next((tmp_path / "omniglot-py").glob("*/*/*/*.png")).unlink()
    with pytest.raises(ValueError, match="hold 2 to 3 drawings"):
        omniglot(tmp_path, ways=2, queries=1)


def test_too_few_characters_raise(tmp_path):
    for half in ("images_background", "images_evaluation"):
        folder = tmp_path / "omniglot-py" / half / "Alpha" / "character01"
        folder.mkdir(parents=True)
        Image.new("L", (105, 105), 255).save(folder / "1.png")
    with pytest.raises(ValueError, match="holds 2 character folders, too few for a validation split"):
        omniglot(tmp_path, ways=1, queries=1)
