"""Decoding images once: validation, mode conversion, resizing and a content-keyed cache.

Every epoch of every notebook would otherwise re-decode the same JPEGs (real
Kvasir frames are up to 1920x1072). The cache key is the SHA-256 of the file's
bytes plus the size settings, so an edited file is re-read, never served stale.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..progress import progress

Kind = Literal["image", "mask"]
CACHE_VERSION = 1
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MASK_THRESHOLD = 128  # Kvasir-SEG masks are JPEG: grey values appear at the edges


class ImageProblem(ValueError):
    """A file that cannot be used as an image; the message says why."""


@dataclass(frozen=True)
class Decoded:
    """Resized pixels plus what the original file was."""

    pixels: np.ndarray  # image: HxWx3 uint8; mask: HxW uint8 in {0, 1}
    orig_size: tuple[int, int]  # (width, height) of the file
    sha256: str  # of the file's bytes


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


def decode(data: bytes, size: int | None, kind: Kind) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode bytes to a (size x size) array; raise ImageProblem for anything unusable."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageProblem("not an image: Pillow cannot identify the file format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt or truncated image ({exc})") from None
    orig = im.size
    try:
        if size and im.format == "JPEG":
            im.draft(im.mode, (size, size))  # let libjpeg decode at a reduced scale: much faster
        im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt or truncated image ({exc})") from None
    im = to_rgb8(im) if kind == "image" else to_rgb8(im).convert("L")
    if size:
        im = im.resize((size, size), Image.BILINEAR)
    arr = np.asarray(im)
    if kind == "mask":
        arr = (arr >= MASK_THRESHOLD).astype(np.uint8)
    return arr, orig


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
                    with np.load(entry) as npz:
                        self.hits += 1
                        return Decoded(npz["pixels"], tuple(int(v) for v in npz["orig_size"]), digest)
                except (OSError, ValueError, KeyError):
                    pass  # a damaged entry is simply rebuilt
        self.misses += 1
        pixels, orig = decode(data, size, kind)
        if self.directory is not None:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, pixels=pixels, orig_size=np.array(orig))
            os.replace(tmp, entry)  # atomic: a crash never leaves a half-written entry
        return Decoded(pixels, orig, digest)


def decode_many(paths: Iterable[Path], size: int | None, kind: Kind, cache: ImageCache,
                desc: str = "decode") -> list[Decoded | ImageProblem]:
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
