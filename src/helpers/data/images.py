"""Decoding images once: validation, mode conversion, resizing and a content-keyed cache.

Every epoch of every notebook would otherwise re-decode the same JPEGs (real
Kvasir frames are up to 1920x1072). The cache key is the SHA-256 of the file's
bytes plus the size settings, so an edited file is re-read, never served stale.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..progress import progress

Kind = Literal["image", "mask"]
CACHE_VERSION = 3  # 2: EXIF orientation, every mask encoding, mask info; 3: encoding names
# np.load parses each array's header with ast.literal_eval, and CPython 3.11's AST builder keeps one recursion
# counter for all threads (python/cpython#106905): `decode_many`'s threads reading cache entries at once failed
# notebook 05 with "SystemError: AST constructor recursion depth mismatch". Cache reads take turns; decoding does not.
_CACHE_READ = threading.Lock()
ORIENTATION_TAG = 0x0112
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MASK_THRESHOLD = 128  # Kvasir-SEG masks are JPEG: grey values appear at the edges


class ImageProblem(ValueError):
    """A file that cannot be used as an image; the message says why."""


@dataclass(frozen=True)
class Decoded:
    """Resized pixels plus what the original file was."""

    pixels: np.ndarray  # image: HxWx3 uint8; mask: HxW uint8 in {0, 1}
    orig_size: tuple[int, int]  # (width, height) of the file, as viewers show it
    sha256: str  # of the file's bytes
    info: dict = field(default_factory=dict)  # masks: encoding, polyp pixels, colour classes, warning


def to_rgb8(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16-bit and float are rescaled, not clipped)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = arr.max() if arr.size and arr.max() > 0 else 1.0
        im = Image.fromarray((arr / top * 255).round().astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        flat = Image.new("RGB", im.size, (0, 0, 0))
        flat.paste(im, mask=im.getchannel("A"))
        return flat
    return im if im.mode == "RGB" else im.convert("RGB")


def _open(data: bytes) -> Image.Image:
    """Pillow image of `data`, loaded, with its EXIF orientation applied as every viewer does."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageProblem("not an image: Pillow cannot identify the file format") from None
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"refused: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt or truncated image ({exc})") from None
    return im


def _load(im: Image.Image, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the pixels (JPEG at a reduced scale when only `draft` pixels are needed); returns the image
    and its full (width, height) as viewers show it."""
    try:
        if draft and im.format == "JPEG" and not _rotates(im):
            orig = im.size
            im.draft(im.mode, (draft, draft))  # let libjpeg decode at a reduced scale: much faster
            im.load()
            return im, orig
        im.load()
        im = ImageOps.exif_transpose(im)
        return im, im.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt or truncated image ({exc})") from None


def _rotates(im: Image.Image) -> bool:
    return im.getexif().get(ORIENTATION_TAG, 1) not in (1, None)


def decode(data: bytes, size: int | None, kind: Kind) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode bytes to a (size x size) array; raise ImageProblem for anything unusable.

    Images become 8-bit RGB; masks become {0, 1} by `mask_foreground` (every
    common encoding). `orig` is the (width, height) as a viewer shows the file
    (EXIF orientation applied).
    """
    if kind == "mask":
        pixels, orig, _ = decode_mask(data, size)
        return pixels, orig
    im, orig = _load(_open(data), size)
    im = to_rgb8(im)
    if size:
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im), orig


# Colour classes of colour-coded masks (e.g. red = neoplastic, green = non-neoplastic on black).
COLOUR_CLASSES = ("grey", "red", "green", "blue", "other colour")
NON_BACKGROUND = 16  # brighter than this counts as "something drawn" (JPEG ringing of black stays below)


def mask_foreground(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A mask in any common encoding -> (polyp intensity 0..255, RGB colours or None, encoding name).

    Intensity >= 128 is polyp. Encodings: 1-bit; 0/1 or 0/255 grey (JPEG grey
    edges included); 16-bit and float grey (rescaled by their own range);
    palette (any index whose colour is not black, else not index 0); grey or
    colour with alpha (alpha-only masks use the alpha channel, otherwise the
    colour is composited onto black); colour-coded RGB, where any non-black
    colour marks a polyp (intensity = brightest channel).
    """
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.uint8) * 255, None, "1-bit"
    if mode == "P" and "transparency" not in im.info:
        index = np.asarray(im)
        entries = (im.getpalette() or [])[: 3 * 256]
        palette = np.asarray(entries + [0] * (3 * 256 - len(entries)), np.uint8).reshape(-1, 3)
        black = np.flatnonzero(palette.max(1) == 0)
        background = black if len(black) else np.array([0])
        polyp = ~np.isin(index, background)
        colours = palette[index]
        return polyp.astype(np.uint8) * 255, colours, "palette"
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        scale = 1.0 if top <= 1 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        kind = "0/1" if top <= 1 and np.isin(arr, (0, 1)).all() else f"{'16-bit' if mode.startswith('I') else 'float'}"
        return np.clip(np.round(arr / scale * 255), 0, 255).astype(np.uint8), None, f"{kind} grey"
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    rgba = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    colour = rgba[..., :3].astype(np.uint16)
    encoding = "grey" if mode in ("L", "LA") else f"grey stored as {mode}"  # colour-coded: decided below
    if has_alpha:
        alpha = rgba[..., 3].astype(np.uint16)
        if alpha.min() != alpha.max() and colour.min() == colour.max():
            return alpha.astype(np.uint8), None, f"{encoding} + alpha (alpha is the mask)"
        colour = colour * alpha[..., None] // 255  # transparent = background
        encoding += " + alpha"
    intensity = colour.max(2)
    if intensity.max() <= 1 and intensity.max() > 0:
        return (intensity * 255).astype(np.uint8), None, f"0/1 {encoding}"
    spread = (colour.max(2) - colour.min(2))[intensity >= 128]
    coloured = spread.size > 0 and float(np.mean(spread > 64)) > 0.5
    return (
        intensity.astype(np.uint8),
        colour.astype(np.uint8) if coloured else None,
        "colour-coded" if coloured else encoding,
    )


def colour_classes(colours: np.ndarray, polyp: np.ndarray) -> dict[str, int]:
    """Polyp pixels per colour class of a colour-coded mask (by the dominant channel)."""
    rgb = colours[polyp].astype(np.int16)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    top = rgb.max(1)
    grey = top - rgb.min(1) <= 64
    red = ~grey & (r == top) & (g < r // 2) & (b < r // 2)
    green = ~grey & (g == top) & (r < g // 2) & (b < g // 2)
    blue = ~grey & (b == top) & (r < b // 2) & (g < b // 2)
    other = ~(grey | red | green | blue)
    counts = dict(zip(COLOUR_CLASSES, (int(m.sum()) for m in (grey, red, green, blue, other))))
    return {k: v for k, v in counts.items() if v}


def decode_mask(data: bytes, size: int | None) -> tuple[np.ndarray, tuple[int, int], dict]:
    """A mask file -> ({0,1} array at `size`, (width, height), what was found).

    The info dict holds the encoding, the polyp pixel count at full
    resolution, the colour classes of colour-coded masks and a `warning` when
    polyp pixels are lost: a file with drawn (non-black) pixels that decodes
    to no polyp, or a polyp that vanishes when resized to `size`.
    """
    im, orig = _load(_open(data))
    intensity, colours, encoding = mask_foreground(im)
    polyp = intensity >= MASK_THRESHOLD
    info: dict = {"encoding": encoding, "polyp_pixels": int(polyp.sum())}
    if colours is not None:
        info["colour_classes"] = colour_classes(colours, polyp)
    drawn = int((intensity >= NON_BACKGROUND).sum())
    if not info["polyp_pixels"] and drawn:
        info["warning"] = (
            f"mask decodes to no polyp although {drawn} pixel(s) are drawn (brightest value "
            f"{int(intensity.max())} of 255, below the polyp threshold {MASK_THRESHOLD}; encoding {encoding})"
        )
    small = Image.fromarray(intensity)
    if size:
        small = small.resize((size, size), Image.BILINEAR)
    pixels = (np.asarray(small) >= MASK_THRESHOLD).astype(np.uint8)
    if info["polyp_pixels"] and not pixels.any():
        info["warning"] = (
            f"the polyp ({info['polyp_pixels']} pixel(s) of {orig[0]}x{orig[1]}) vanishes when the mask "
            f"is resized to {size}x{size}"
        )
    return pixels, orig, info


class ImageCache:
    """Decoded, resized images on disk, keyed by file content and size settings.

    `directory=None` disables the disk layer (every call decodes). `hits` and
    `misses` count what happened, for tests and the cache benchmark.
    """

    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.hits = 0
        self.misses = 0

    def _entry(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, path: Path, size: int | None, kind: Kind) -> Decoded:
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        key = hashlib.sha256(f"{digest}|{size}|{kind}|v{CACHE_VERSION}".encode()).hexdigest()
        if self.directory is not None:
            entry = self._entry(key)
            if entry.is_file():
                try:
                    with _CACHE_READ, np.load(entry) as npz:
                        found = Decoded(
                            npz["pixels"], tuple(int(v) for v in npz["orig_size"]), digest, json.loads(str(npz["info"]))
                        )
                    self.hits += 1
                    return found
                except (OSError, ValueError, KeyError):
                    pass  # a damaged entry is simply rebuilt
        self.misses += 1
        if kind == "mask":
            pixels, orig, info = decode_mask(data, size)
        else:
            (pixels, orig), info = decode(data, size, kind), {}
        if self.directory is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, pixels=pixels, orig_size=np.array(orig), info=np.array(json.dumps(info)))
            os.replace(tmp, entry)  # atomic: a crash never leaves a half-written entry
        return Decoded(pixels, orig, digest, info)


def decode_many(
    paths: Iterable[Path], size: int | None, kind: Kind, cache: ImageCache, desc: str = "decode"
) -> list[Decoded | ImageProblem]:
    """Decode files in parallel threads (Pillow releases the GIL); problems are returned, not raised."""
    paths = list(paths)

    def one(p: Path) -> Decoded | ImageProblem:
        try:
            return cache.get(p, size, kind)
        except ImageProblem as exc:
            return exc
        except OSError as exc:
            return ImageProblem(f"unreadable file ({exc.strerror or exc})")

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(progress(pool.map(one, paths), desc=desc, total=len(paths)))
