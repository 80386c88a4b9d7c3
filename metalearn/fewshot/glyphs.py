"""Glyphs: an offline Omniglot, rendered from the fonts that matplotlib ships.

Omniglot (Lake et al. 2015) holds 1623 handwritten characters of 50 alphabets, 20 drawings each.
Glyphs imitates it with no download. A class is one letter of a script in `SCRIPTS`; each of its
`per_class` instances draws the letter in one of the font faces of `FACES` that cover it (in a
seeded order that uses every covering face about equally often), scaled to fit a fixed box,
then bent by a random affine map and reduced to 28x28, ink 1 on background 0.

Letters are the Unicode letters (categories Lu, Ll, Lo) without a canonical decomposition, so
accented copies of a base letter are left out, that at least two faces cover: coverage is read
from each font's character map, so no class is a missing-glyph box. Letters whose shapes coincide
once scaled to the box (Latin A, Greek Alpha and Cyrillic A; o and O) are one class, the first
in `SCRIPTS` order. The classes are split by character, with a seeded permutation, into 70%
train, 10% validation and 20% test. All scripts give 1,059 classes (train / validation / test:
741 / 106 / 212): Latin 157, Greek 61, Cyrillic 128, Armenian 61, Hebrew 22, Arabic 28 (isolated
forms), N'Ko 27, Lao 35, Georgian 78, Canadian syllabics 365, Ogham 22, Tifinagh 39, Lisu 10,
Old Italic 26 (measured with matplotlib 3.11's DejaVu, STIX and Computer Modern faces).

Same seed, same tensors. The data set is generated once (the README gives the time it takes) and
cached as `<cache_dir>/v<VERSION>-seed<seed>-<key>.pt`, the key hashing the options and the versions
of matplotlib (its fonts) and Pillow (its renderer).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import math
import os
import tempfile
import unicodedata
from pathlib import Path

import matplotlib
import PIL
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont

from metalearn.fewshot.images import ImageTasks

VERSION = 2  # bump whenever generation changes: a new cache file, never a stale one
DEFAULT_CACHE_DIR = Path("~/.cache/playground/glyphs")
SPLIT_FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}

# Unicode ranges (inclusive) of each script's letters.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)),
    "greek": ((0x370, 0x3FF),),
    "cyrillic": ((0x400, 0x52F),),
    "armenian": ((0x531, 0x58F),),
    "hebrew": ((0x5D0, 0x5EA),),
    "arabic": ((0x620, 0x64A),),
    "nko": ((0x7C0, 0x7FF),),
    "lao": ((0xE80, 0xEFF),),
    "georgian": ((0x10A0, 0x10FF),),
    "canadian_syllabics": ((0x1400, 0x167F),),
    "ogham": ((0x1680, 0x169F),),
    "tifinagh": ((0x2D30, 0x2D7F),),
    "lisu": ((0xA4D0, 0xA4FF),),
    "old_italic": ((0x10300, 0x1032F),),
}
# Text faces of matplotlib's mpl-data/fonts/ttf; left out: its symbol and math-extension fonts
# (cmsy10, cmex10, STIXNonUni*, STIXSiz*) and LastResortHE, which draws every character as a box.
FACES = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSerif-BoldItalic",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "STIXGeneralBolIta",
    "cmr10",
    "cmb10",
    "cmti10",
    "cmmi10",
    "cmss10",
    "cmtt10",
)
# Font size; each glyph is scaled to fit a _BOX px square centred on a _CANVAS px canvas.
_FONT_SIZE, _CANVAS, _BOX = 64, 56, 40
_SAME_SHAPE = 0.95  # cosine similarity of two reference renders above which letters are one class


MAX_PER_CLASS = 5000  # instances rendered per letter: a few-shot split needs tens


def glyphs(
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    rotations: bool = False,
    seed: int = 0,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    scripts: tuple[str, ...] = tuple(SCRIPTS),
    per_class: int = 20,
) -> ImageTasks:
    """The glyphs family: N-way K-shot tasks on rendered letters, generated once and cached."""
    unknown = [s for s in scripts if s not in SCRIPTS]
    if unknown or not scripts:
        raise ValueError(f"unknown scripts {unknown or list(scripts)}; valid: {', '.join(SCRIPTS)}")
    if not 1 <= per_class <= MAX_PER_CLASS:
        raise ValueError(
            f"per_class={per_class}: every instance is rendered and held as 56×56 bytes per class; "
            f"valid: an integer from 1 to {MAX_PER_CLASS}"
        )
    options = repr((sorted(scripts), per_class, matplotlib.__version__, PIL.__version__))
    key = hashlib.sha256(options.encode()).hexdigest()[:12]
    path = Path(cache_dir).expanduser() / f"v{VERSION}-seed{seed}-{key}.pt"
    if not path.exists():
        _check_writable(path.parent, cache_dir)
        _save_atomic(generate(seed, scripts, per_class), path)
    stored = torch.load(path, weights_only=True)
    images = {split: x.float() / 255 for split, x in stored.items()}
    return ImageTasks(images, ways, shots, queries, rotations)


def generate(seed: int, scripts: tuple[str, ...], per_class: int) -> dict[str, torch.Tensor]:
    """Each split's images, uint8 (classes, per_class, 1, 28, 28), 255 = full ink."""
    generator = torch.Generator().manual_seed(seed)
    images = {}
    for split, letters in split_letters(distinct(script_letters(scripts)), generator).items():
        upright = torch.stack([upright_instances(c, per_class, generator) for c in letters])  # (C, M, 56, 56)
        # Distorted in large chunks: a few big tensor operations beat a thousand small ones.
        small = [
            F.avg_pool2d(distort(chunk[:, None].float() / 255, generator), 2)
            for chunk in upright.flatten(0, 1).split(4096)
        ]  # (chunk, 1, 28, 28)
        images[split] = (torch.cat(small) * 255).round().to(torch.uint8).unflatten(0, upright.shape[:2])
    return images


def split_letters(letters: list[str], generator: torch.Generator) -> dict[str, list[str]]:
    """A seeded partition of letters into SPLIT_FRACTIONS (train and validation rounded, test the rest)."""
    order = torch.randperm(len(letters), generator=generator).tolist()
    splits, start = {}, 0
    for split, fraction in SPLIT_FRACTIONS.items():
        stop = len(letters) if split == "test" else start + round(fraction * len(letters))
        splits[split] = [letters[i] for i in order[start:stop]]
        start = stop
    return splits


def upright_instances(char: str, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """per_class undistorted renders (per_class, 56, 56) uint8 of char, cycling over its faces."""
    faces = covering_faces(char)
    renders = [render(char, face) for face in faces]
    order = torch.randperm(len(faces), generator=generator).tolist()
    return torch.stack([renders[order[i % len(faces)]] for i in range(per_class)])


def distort(
    x: torch.Tensor,
    generator: torch.Generator,
    rotation: float = math.radians(12),
    shear: float = 0.2,
    log_scale: float = 0.12,
    shift: float = 0.08,
) -> torch.Tensor:
    """x (N, 1, H, W) resampled through random affine maps, each parameter uniform in [-bound, bound].

    The map (output -> input coordinates, in [-1, 1]) is rotation @ shear @ diag(scale_x, scale_y)
    plus a shift, with log scales drawn independently per axis.
    """
    bounds = torch.tensor([rotation, shear, log_scale, log_scale, shift, shift])[:, None]
    draws = (2 * torch.rand(6, x.shape[0], generator=generator) - 1) * bounds  # (6, N)
    angle, shear_, log_sx, log_sy, shift_x, shift_y = draws
    cos, sin, scale_x, scale_y = angle.cos(), angle.sin(), log_sx.exp(), log_sy.exp()
    theta = torch.stack(
        [
            torch.stack([cos * scale_x, (cos * shear_ - sin) * scale_y, shift_x], dim=-1),
            torch.stack([sin * scale_x, (sin * shear_ + cos) * scale_y, shift_y], dim=-1),
        ],
        dim=1,
    )  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def script_letters(scripts: tuple[str, ...]) -> list[str]:
    """The letters of `scripts`, in SCRIPTS order, without decomposition, covered by two faces or more."""
    chars = (chr(c) for s in SCRIPTS if s in scripts for lo, hi in SCRIPTS[s] for c in range(lo, hi + 1))
    return [
        c
        for c in chars
        if unicodedata.category(c) in ("Lu", "Ll", "Lo")
        and not unicodedata.decomposition(c)
        and len(covering_faces(c)) >= 2
    ]


def distinct(letters: list[str]) -> list[str]:
    """letters without those shaped like an earlier one (compared in their first face at 14x14)."""
    shapes = torch.stack([render(c, covering_faces(c)[0]) for c in letters]).float()  # (L, 56, 56)
    shapes = F.normalize(F.avg_pool2d(shapes[:, None], 4).flatten(1), dim=1)  # coarse: ignores stroke detail
    similar = (shapes @ shapes.T > _SAME_SHAPE).triu(diagonal=1)
    return [c for c, repeat in zip(letters, similar.any(dim=0).tolist()) if not repeat]


@functools.cache
def covering_faces(char: str) -> tuple[str, ...]:
    """The faces of FACES whose character map holds char and whose glyph leaves ink."""
    return tuple(f for f in FACES if ord(char) in _charmap(f) and render(char, f).any())


def render(char: str, face: str) -> torch.Tensor:
    """char in face, scaled to fit a _BOX px square centred on a _CANVAS px canvas, uint8."""
    canvas = Image.new("L", (3 * _FONT_SIZE, 3 * _FONT_SIZE), 0)
    centre = (3 * _FONT_SIZE // 2, 3 * _FONT_SIZE // 2)
    ImageDraw.Draw(canvas).text(centre, char, fill=255, font=_font(face), anchor="mm")
    box = canvas.getbbox()
    out = Image.new("L", (_CANVAS, _CANVAS), 0)
    if box is not None:
        glyph = canvas.crop(box)
        scale = _BOX / max(glyph.size)
        glyph = glyph.resize([max(1, round(side * scale)) for side in glyph.size], Image.LANCZOS)
        out.paste(glyph, ((_CANVAS - glyph.width) // 2, (_CANVAS - glyph.height) // 2))
    return torch.frombuffer(bytearray(out.tobytes()), dtype=torch.uint8).view(_CANVAS, _CANVAS)


def _font_path(face: str) -> str:
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", f"{face}.ttf")


@functools.cache
def _font(face: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_path(face), _FONT_SIZE, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _charmap(face: str) -> frozenset[int]:
    return frozenset(FT2Font(_font_path(face)).get_charmap())


def _check_writable(directory: Path, cache_dir: str | Path) -> None:
    """`cache_dir` is a directory (made here if missing) where a file can be written: checked before
    the minutes of rendering, not after. A refusal is a one-line ValueError with the reason."""
    try:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(
            f"cache_dir={str(cache_dir)!r} cannot hold the glyphs cache ({error.strerror}); valid: a "
            "writable directory, or a path where one can be made"
        ) from None


def _save_atomic(images: dict[str, torch.Tensor], path: Path) -> None:
    """torch.save to a temporary file beside path, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(images, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
