"""Shared fixtures: small hand-made trees in the real datasets' layouts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import paths

SHARED_KVASIR_SEG = Path(os.environ.get("KVASIR_SEG_ROOT", paths.repo_root().parent / "shared" / "data" / "kvasir-seg"))


def write_image(path: Path, size=(40, 30), colour=(200, 90, 80), fmt=None) -> Path:
    """A small RGB image file; `size` is (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(colour, np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_mask(path: Path, size=(40, 30), box=(5, 5, 20, 15)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    Image.fromarray(arr).save(path)
    return path


def snapshot(root: Path) -> dict[str, tuple[str, float]]:
    """Content hash and mtime of every file under `root`, to prove nothing was touched."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cls_tree(tmp_path: Path) -> Path:
    """Kvasir v2 layout with three classes of four images each, two sizes."""
    root = tmp_path / "kvasir-v2"
    for c, colour in (
        ("normal-cecum", (200, 90, 80)),
        ("polyps", (210, 80, 70)),
        ("dyed-lifted-polyps", (60, 70, 180)),
    ):
        for i in range(4):
            write_image(root / c / f"{c[:3]}{i}.jpg", size=(40 + 8 * (i % 2), 30), colour=colour)
    return root


@pytest.fixture
def seg_tree(tmp_path: Path) -> Path:
    """Kvasir-SEG layout: six pairs of varying size, masks as RGB JPEG like the real ones."""
    root = tmp_path / "kvasir-seg"
    for i in range(6):
        size = (40 + 4 * i, 32 + 2 * i)
        write_image(root / "images" / f"id{i}.jpg", size=size)
        mask = write_mask(root / "masks" / f"id{i}.png", size=size)
        Image.open(mask).convert("RGB").save(root / "masks" / f"id{i}.jpg", quality=90)
        mask.unlink()
    return root


def second_centre(root: Path, n: int = 6, frames: list[tuple[Path, Path]] | None = None) -> Path:
    """A small external centre made by hand, Kvasir-SEG layout: `frames` (image, mask) seen through another
    imaging chain (warm cast, soft focus, heavy JPEG, round field of view), or drawn ones; masks as 0/1 PNG,
    another encoding than Kvasir-SEG's 0/255 JPEG."""
    from PIL import ImageFilter

    from helpers.data import synthetic

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(5)
    for i in range(n):
        if frames:
            image = Image.open(frames[i][0]).convert("RGB").resize((240, 200))
            mask = (np.asarray(Image.open(frames[i][1]).convert("L").resize((240, 200))) >= 128).astype(np.uint8)
        else:
            frame = synthetic.render_frame(rng, 100, 120, 1, centre=synthetic.CENTRES[0])
            image, mask = Image.fromarray(frame.image), frame.mask
        warm = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), np.float32) * np.array([1.1, 0.9, 0.75])
        h, w = mask.shape
        yy, xx = np.mgrid[0:h, 0:w]
        inside = np.hypot(yy - h / 2, xx - w / 2) <= 0.55 * min(h, w)
        Image.fromarray((warm.clip(0, 255) * inside[..., None]).astype(np.uint8)).save(
            root / "images" / f"c2_{i}.jpg", quality=60
        )
        Image.fromarray(mask * inside).save(root / "masks" / f"c2_{i}.png")
    return root
