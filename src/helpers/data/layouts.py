"""The on-disk layouts the course reads, and what is wrong with a folder before training.

Three layouts, the same for real and synthetic data:

* Kvasir v2 classification: ``<root>/<class>/<id>.jpg`` (any subset of classes,
  the class list comes from the folders);
* Kvasir-SEG segmentation: ``<root>/images/<id>.jpg`` + ``<root>/masks/<id>.jpg``;
* a generic image folder (unlabeled frames), searched recursively.

Scanning only looks at names; decoding (`images.decode_many`) finds unreadable,
truncated and non-image files and mask/image size mismatches. Problems are
collected, not raised one by one, so a user sees all of them at once. Nothing
here ever writes to the user's folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import IMAGE_EXTENSIONS, Decoded, ImageCache, ImageProblem, decode_many

EXTENSION_NAMES = sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class BadFile:
    """A file (or folder) that cannot be used, and why."""

    path: str
    problem: str


class DataError(ValueError):
    """Data that cannot be trained on; the message lists every file and its problem."""

    def __init__(self, where: Path | str, bad: list[BadFile], hint: str = ""):
        self.where, self.bad = str(where), list(bad)
        lines = [f"{len(self.bad)} problem(s) with the data in {where}:"]
        lines += [f"  - {b.path}: {b.problem}" for b in self.bad]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


SKIP_HINT = (
    "Fix or remove these files, or run with --skip-bad to leave them out (they are then listed in the data report)."
)


@dataclass(frozen=True)
class Sample:
    """One item: an image, and its class label and/or mask where the layout has them."""

    image: Path
    label: str | None = None
    mask: Path | None = None


def _visible(p: Path, root: Path | None = None) -> bool:
    """Hidden files and folders (``.DS_Store``, macOS ``._x.jpg`` copies, ``__MACOSX/``) are never data;
    ``_x.jpg`` is an ordinary name. With `root`, every folder between it and `p` counts too."""
    parts = p.relative_to(root).parts if root is not None else (p.name,)
    return not any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _note_hidden(files: list[Path], notes: list[BadFile] | None, root: Path | None = None) -> None:
    """Hidden files that look like images are left out, and said so (they are usually macOS metadata)."""
    if notes is not None:
        notes += [
            BadFile(str(p), "hidden file (its name or folder starts with '.', or is __MACOSX), left out")
            for p in files
            if not _visible(p, root) and p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        ]


def is_class_folder(p: Path, notes: list[BadFile] | None = None) -> bool:
    """A sub-folder is a class unless hidden or named ``_...`` (e.g. ``__MACOSX``); those are noted."""
    if not p.is_dir():
        return False
    if p.name.startswith((".", "_")):
        if notes is not None and not p.name.startswith("."):
            notes.append(BadFile(str(p), "folder name starts with '_', so it is not read as a class; left out"))
        return False
    return True


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a folder"
        raise DataError(path, [BadFile(str(path), f"{what} {problem}")])


def scan_classification(
    root: Path, classes: list[str] | None = None, mask_root: Path | None = None, notes: list[BadFile] | None = None
) -> tuple[list[Sample], list[str], list[BadFile]]:
    """Kvasir v2 class folders -> samples, class list, problems found by name alone.

    `mask_root` (optional) holds ``<class>/<stem>.png`` polyp masks; frames without
    one simply have no mask. Files and folders left out on purpose go to `notes`.
    """
    root = Path(root)
    _require_dir(root, "classification folder")
    found = sorted(p.name for p in root.iterdir() if is_class_folder(p, notes))
    if classes:
        missing = [c for c in classes if c not in found]
        if missing:
            raise DataError(
                root,
                [BadFile(str(root / c), "requested class folder does not exist") for c in missing],
                f"Classes found: {', '.join(found) or 'none'}.",
            )
        found = list(classes)
    samples: list[Sample] = []
    bad: list[BadFile] = []
    kept: list[str] = []
    for cls in found:
        folder = root / cls
        everything = sorted(folder.rglob("*"))
        _note_hidden(everything, notes, folder)
        files = [p for p in everything if p.is_file() and _visible(p, folder)]
        images = [p for p in files if _is_image(p)]
        bad += [
            BadFile(str(p), f"not an image file (unexpected extension {p.suffix or 'none'!r})")
            for p in files
            if not _is_image(p)
        ]
        if not images:
            bad.append(BadFile(str(folder), "empty class folder: no image files"))
            continue
        kept.append(cls)
        for p in images:
            mask = None
            if mask_root is not None:
                mask = next((m for m in sorted((mask_root / cls).glob(p.stem + ".*")) if _is_image(m)), None)
            samples.append(Sample(p, cls, mask))
    return samples, kept, bad


def scan_segmentation(root: Path, notes: list[BadFile] | None = None) -> tuple[list[Sample], list[BadFile]]:
    """Kvasir-SEG ``images/`` + ``masks/`` -> paired samples; unpaired files are problems, files left out notes."""
    root = Path(root)
    _require_dir(root, "segmentation folder")
    _require_dir(root / "images", "images/ folder")
    _require_dir(root / "masks", "masks/ folder")
    bad: list[BadFile] = []
    images = _by_stem(root / "images", bad, notes)
    masks = _by_stem(root / "masks", bad, notes)
    bad += [
        BadFile(str(p), f"image has no mask (expected masks/{k}.<{'|'.join(EXTENSION_NAMES)}>)")
        for k, p in images.items()
        if k not in masks
    ]
    bad += [
        BadFile(str(p), f"mask has no image (expected images/{k}.<{'|'.join(EXTENSION_NAMES)}>)")
        for k, p in masks.items()
        if k not in images
    ]
    samples = [Sample(p, None, masks[k]) for k, p in images.items() if k in masks]
    return samples, bad


def _by_stem(folder: Path, bad: list[BadFile], notes: list[BadFile] | None = None) -> dict[str, Path]:
    """Image files of `folder` by name without extension; non-images and names used twice are problems.

    `x.jpg` and `x.png` side by side cannot be told apart by their mask
    `masks/x.*`, so neither is paired rather than guessing. Sub-folders are not
    searched (Kvasir-SEG keeps every file directly in the folder) and are noted.
    """
    entries = sorted(folder.iterdir())
    _note_hidden(entries, notes)
    if notes is not None:
        notes += [
            BadFile(
                str(p),
                f"sub-folder not searched: the layout keeps every file directly in {folder.name}/ "
                "(move its files up to use them)",
            )
            for p in entries
            if p.is_dir() and not p.name.startswith(".")
        ]
    files = [p for p in entries if _visible(p) and p.is_file()]
    bad += [
        BadFile(str(p), f"not an image file (unexpected extension {p.suffix or 'none'!r})")
        for p in files
        if not _is_image(p)
    ]
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        if _is_image(p):
            by_stem.setdefault(p.stem, []).append(p)
    for stem, group in by_stem.items():
        if len(group) > 1:
            names = ", ".join(p.name for p in group)
            bad += [
                BadFile(
                    str(p),
                    f"{len(group)} files share the name {stem!r} ({names}): cannot tell which one "
                    "its mask/image belongs to; rename or remove all but one",
                )
                for p in group
            ]
    return {stem: group[0] for stem, group in by_stem.items() if len(group) == 1}


def scan_image_folder(root: Path, notes: list[BadFile] | None = None) -> tuple[list[Sample], list[BadFile]]:
    """Any folder of images (searched recursively), e.g. an unlabeled pool."""
    root = Path(root)
    _require_dir(root, "image folder")
    everything = sorted(root.rglob("*"))
    _note_hidden(everything, notes, root)
    files = [p for p in everything if p.is_file() and _visible(p, root)]
    bad = [
        BadFile(str(p), f"not an image file (unexpected extension {p.suffix or 'none'!r})")
        for p in files
        if not _is_image(p)
    ]
    return [Sample(p) for p in files if _is_image(p)], bad


@dataclass
class LoadedSet:
    """Samples decoded into arrays, in the order of `samples`."""

    samples: list[Sample]
    images: np.ndarray  # N x S x S x 3 uint8
    masks: np.ndarray | None  # N x S x S uint8 {0,1}; all-zero where a sample has no mask
    orig_sizes: np.ndarray  # N x 2 (width, height) of the files
    sha256: list[str]  # of each image file
    mask_info: list[dict] = field(default_factory=list)  # per sample: encoding, polyp pixels, colour classes, warning

    @property
    def labels(self) -> list[str | None]:
        return [s.label for s in self.samples]

    def has_mask(self) -> np.ndarray:
        return np.array([s.mask is not None for s in self.samples], bool)


def load_samples(
    samples: list[Sample], image_size: int, cache: ImageCache, desc: str = "load"
) -> tuple[LoadedSet, list[BadFile]]:
    """Decode images (and masks) through the cache; undecodable files and size mismatches are problems."""
    decoded = decode_many([s.image for s in samples], image_size, "image", cache, desc=f"{desc} images")
    with_mask = [i for i, s in enumerate(samples) if s.mask is not None]
    mask_dec = dict(
        zip(
            with_mask,
            decode_many([samples[i].mask for i in with_mask], image_size, "mask", cache, desc=f"{desc} masks"),
        )
    )
    keep: list[int] = []
    bad: list[BadFile] = []
    for i, (s, d) in enumerate(zip(samples, decoded)):
        m = mask_dec.get(i)
        if isinstance(d, ImageProblem):
            bad.append(BadFile(str(s.image), str(d)))
        if isinstance(m, ImageProblem):
            bad.append(BadFile(str(s.mask), f"mask: {m}"))
        if isinstance(d, ImageProblem) or isinstance(m, ImageProblem):
            continue
        if m is not None and m.orig_size != d.orig_size:
            bad.append(
                BadFile(
                    str(s.mask),
                    f"mask size {m.orig_size[0]}x{m.orig_size[1]} differs from its image "
                    f"{s.image.name} ({d.orig_size[0]}x{d.orig_size[1]})",
                )
            )
            continue
        keep.append(i)
    n, size = len(keep), image_size
    images = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8) if with_mask else None
    orig = np.zeros((n, 2), np.int64)
    for row, i in enumerate(keep):
        d = decoded[i]
        assert isinstance(d, Decoded)
        images[row], orig[row] = d.pixels, d.orig_size
        m = mask_dec.get(i)
        if masks is not None and isinstance(m, Decoded):
            masks[row] = m.pixels
    kept = [samples[i] for i in keep]
    info = [getattr(mask_dec.get(i), "info", {}) for i in keep]
    return LoadedSet(kept, images, masks, orig, [decoded[i].sha256 for i in keep], info), bad  # type: ignore[union-attr]
