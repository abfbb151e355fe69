"""External test sets: Kvasir-SEG-layout folders from other centres, for testing only.

`./run_all.sh --external DIR` (repeatable) names them. Notebook 00 validates
each like a `--data-root` (every problem listed with its file; nothing in the
folder is ever written) and records them in ``reports/<profile>/data/``:
``external.csv`` (every frame and its hash) and ``external.json`` (one entry
per centre). Notebooks 04 and 05 score their chosen models on them; no
external frame ever trains a model or takes part in a choice, and a frame
identical to a training or validation frame is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..artifacts import read_json, write_csv, write_json
from .images import ImageCache
from .layouts import SKIP_HINT, BadFile, DataError, LoadedSet, Sample, load_samples, scan_segmentation

COLUMNS = ["centre", "file", "mask", "sha256"]


def centre_name(folder: Path) -> str:
    """An external set is named by its folder (``…/CVC-ClinicDB/`` -> ``CVC-ClinicDB``)."""
    return Path(folder).name


def prepare_external(
    folders: list[str | Path],
    profile: str,
    reports_root: str | Path = "",
    image_size: int = 64,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    seen: pd.DataFrame | None = None,
) -> dict[str, LoadedSet]:
    """Validate every external folder and record it; returns the loaded sets by centre name.

    `seen` is ``splits.csv`` of the run: an external frame whose bytes equal a
    train or validation frame would leak into the test, and is an error.
    """
    cache = cache or ImageCache(paths.cache_dir())
    sets: dict[str, LoadedSet] = {}
    rows, entries = [], []
    train_val = set() if seen is None else set(seen.loc[seen["split"].isin(["train", "val"]), "sha256"])
    for folder in folders:
        root = Path(folder).expanduser().resolve()
        name = centre_name(root)
        if name in sets:
            raise DataError(root, [BadFile(str(root), f"a second external set named {name!r}; rename one folder")])
        if not (root / "images").is_dir() or not (root / "masks").is_dir():
            raise DataError(
                root, [BadFile(str(root), "not a Kvasir-SEG layout: an external set needs images/ and masks/")]
            )
        notes: list[BadFile] = []
        samples, bad = scan_segmentation(root, notes)
        loaded, problems = load_samples(samples, image_size, cache, desc=f"external {name}")
        bad += problems
        leaked = [s for s, h in zip(loaded.samples, loaded.sha256) if h in train_val]
        bad += [BadFile(str(s.image), "identical to a train/val frame of this run: it cannot test") for s in leaked]
        if bad and not skip_bad:
            raise DataError(root, bad, SKIP_HINT)
        keep = [i for i, s in enumerate(loaded.samples) if s not in leaked]
        if not keep:
            raise DataError(root, [BadFile(str(root), "no usable image/mask pair")] + bad)
        loaded = _subset(loaded, keep)
        sets[name] = loaded
        for s, h in zip(loaded.samples, loaded.sha256):
            rows.append(
                {
                    "centre": name,
                    "file": str(s.image.relative_to(root)),
                    "mask": str(s.mask.relative_to(root)),
                    "sha256": h,
                }
            )
        digest = hashlib.sha256("".join(sorted(loaded.sha256)).encode()).hexdigest()
        entries.append(
            {
                "centre": name,
                "folder": str(root),
                "frames": len(loaded.samples),
                "fingerprint": digest,
                "left_out": [{"path": b.path, "problem": b.problem} for b in bad],
                "notes": [{"path": n.path, "note": n.problem} for n in notes],
            }
        )
    out = paths.data_report_dir(profile, reports_root)
    write_csv(out / "external.csv", pd.DataFrame(rows, columns=COLUMNS))
    write_json(out / "external.json", {"image_size": image_size, "sets": entries})
    return sets


def _subset(loaded: LoadedSet, keep: list[int]) -> LoadedSet:
    return LoadedSet(
        [loaded.samples[i] for i in keep],
        loaded.images[keep],
        None if loaded.masks is None else loaded.masks[keep],
        loaded.orig_sizes[keep],
        [loaded.sha256[i] for i in keep],
        [loaded.mask_info[i] for i in keep] if loaded.mask_info else [],
    )


def describe_external(profile: str, reports_root: str | Path = "") -> str:
    """One provenance line naming every external set: centre, folder, frames, fingerprint ('' for none)."""
    path = paths.data_report_dir(profile, reports_root) / "external.json"
    sets = read_json(path)["sets"] if path.is_file() else []
    return "; ".join(
        f"external {e['centre']}: {e['folder']}, {e['frames']} frames (fingerprint {e['fingerprint'][:12]})"
        for e in sets
    )


def load_external(
    profile: str, reports_root: str | Path = "", image_size: int | None = None, cache: ImageCache | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(images, masks) of every external set notebook 00 recorded, by centre; {} when the run named none."""
    folder = paths.data_report_dir(profile, reports_root)
    if not (folder / "external.json").is_file():
        return {}
    info = read_json(folder / "external.json")
    table = pd.read_csv(folder / "external.csv", keep_default_na=False)
    out = {}
    for entry in info["sets"]:
        root = Path(entry["folder"])
        rows = table[table["centre"] == entry["centre"]]
        samples = [Sample(root / r.file, None, root / r.mask) for r in rows.itertuples()]
        loaded, bad = load_samples(
            samples,
            image_size or info["image_size"],
            cache or ImageCache(paths.cache_dir()),
            desc=f"external {entry['centre']}",
        )
        if bad or loaded.sha256 != rows["sha256"].tolist():
            changed = bad or [BadFile(str(root), "files changed since notebook 00 validated them")]
            raise DataError(root, changed, "Re-run 00_data.")
        out[entry["centre"]] = (loaded.images, loaded.masks)
    return out
