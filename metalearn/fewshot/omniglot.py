"""Omniglot (Lake et al. 2015) as the MAML paper uses it (Finn et al. 2017).

1623 handwritten characters of 50 alphabets, 20 drawings each, read from torchvision's layout
`<data_dir>/omniglot-py/images_{background,evaluation}/<alphabet>/<character>/*.png` (the one
learn2learn uses) and shrunk from 105x105 to 28x28 with a Lanczos filter, ink 1 on background 0.

Split as in Finn et al.'s code: the characters of both halves are pooled, shuffled (seeded by
`split_seed`; we sort the paths first, so the shuffle is the same on every machine), the first
1200 kept for meta-training, of which the last 100 are held out for validation, and the other
423 used for testing: 1100 / 100 / 423 characters. A smaller directory is split in the same
proportions. With `rotations` (the default, as in the paper) each character turned by 0, 90,
180 and 270 degrees makes four classes (Santoro et al. 2016): 4400 / 400 / 1692.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from PIL import Image

from metalearn.fewshot.images import ImageTasks

DEFAULT_DATA_DIR = Path("~/.cache/playground/omniglot")
HALVES = ("images_background", "images_evaluation")
PAPER_SPLIT = {"train": 1100, "validation": 100, "test": 423}  # characters


def omniglot(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    download: bool = False,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    rotations: bool = True,
    split_seed: int = 1,
) -> ImageTasks:
    """The omniglot family; `download=True` fetches the data with torchvision first."""
    root = Path(data_dir).expanduser() / "omniglot-py"
    if download:
        from torchvision.datasets import Omniglot

        for background in (True, False):
            Omniglot(str(root.parent), background=background, download=True)
    images = _read(root.resolve(), split_seed, str(data_dir))
    return ImageTasks(dict(images), ways, shots, queries, rotations)


@functools.lru_cache(maxsize=1)
def _read(root: Path, split_seed: int, data_dir: str) -> dict[str, torch.Tensor]:
    """Each split's drawings, (characters, drawings, 1, 28, 28). Kept for the last `root` read:
    the playground checks a run's family (its data, its ways) before the run builds it again, and
    decoding Omniglot's 32,460 PNGs twice would double a start-up of seconds."""
    missing = [half for half in HALVES if not (root / half).is_dir()]
    if missing:
        raise ValueError(
            f"no Omniglot under data_dir={data_dir!r}: {root / missing[0]} is missing; "
            f"pass download=true, or unzip images_background.zip and images_evaluation.zip "
            f"of github.com/brendenlake/omniglot into {root}"
        )
    characters = sorted(c for half in HALVES for c in (root / half).glob("*/*") if c.is_dir())
    order = torch.randperm(len(characters), generator=torch.Generator().manual_seed(split_seed)).tolist()
    images, start = {}, 0
    for split, stop in zip(PAPER_SPLIT, split_bounds(len(characters))):
        drawings = [_drawings(characters[i]) for i in order[start:stop]]
        counts = sorted({x.shape[0] for x in drawings})
        if not drawings:
            raise ValueError(
                f"{root} holds {len(characters)} character folders, too few for a {split} "
                "split; Omniglot has 1623"
            )
        if len(counts) > 1:
            raise ValueError(
                f"character folders under {root} hold {counts[0]} to {counts[-1]} drawings; "
                "expected the same number in each (Omniglot has 20)"
            )
        images[split] = torch.stack(drawings)
        start = stop
    return images


def split_bounds(n: int) -> tuple[int, int, int]:
    """Where train, validation and test end among n shuffled characters: the paper's proportions."""
    total = sum(PAPER_SPLIT.values())
    train = round(n * PAPER_SPLIT["train"] / total)
    validation = train + round(n * PAPER_SPLIT["validation"] / total)
    return train, validation, n


def _drawings(character: Path) -> torch.Tensor:
    """The drawings of one character folder as (drawings, 1, 28, 28) floats, ink 1."""
    files = sorted(character.glob("*.png"))
    if not files:
        raise ValueError(f"character folder {character} holds no .png drawings")
    pixels = [Image.open(f).convert("L").resize((28, 28), Image.LANCZOS).tobytes() for f in files]
    x = torch.frombuffer(bytearray(b"".join(pixels)), dtype=torch.uint8).view(len(files), 1, 28, 28)
    return 1 - x.float() / 255
