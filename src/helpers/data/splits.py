"""Train/val/test splits: the data's own split lists when it has them, else seeded stratified ones.

Kvasir-SEG's official Medico 2020 lists (``train.txt`` 880 / ``val.txt`` 120
names) have no test list. The course keeps the official ``val`` names as its
held-out **test** split, like the original work's 100 test images, and carves
its own validation split from the official train names (seeded), so model
selection never sees the test images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def find_split_lists(root: Path) -> dict[str, Path]:
    """``train.txt`` plus ``val.txt`` and/or ``test.txt`` in `root` or one folder below it."""
    root = Path(root)
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        lists = {name: folder / f"{name}.txt" for name in SPLITS if (folder / f"{name}.txt").is_file()}
        if "train" in lists and len(lists) >= 2:
            return lists
    return {}


def read_split_lists(lists: dict[str, Path]) -> dict[str, str]:
    """Map each listed name (file stem) to its official split name."""
    out: dict[str, str] = {}
    for split, path in lists.items():
        for line in path.read_text().splitlines():
            name = line.strip()
            if name and not name.startswith("#"):
                out[Path(name).stem] = split
    return out


def _split_off(idx: np.ndarray, strata: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `idx` into (rest, taken) with `fraction` taken, stratified where every stratum allows it."""
    from sklearn.model_selection import train_test_split  # here: whatever imports `helpers.data` (the server) skips it

    if fraction <= 0 or len(idx) < 2:
        return idx, idx[:0]
    n_take = max(1, int(round(fraction * len(idx))))
    _, counts = np.unique(strata, return_counts=True)
    can_stratify = counts.min() >= 2 and n_take >= len(counts) and len(idx) - n_take >= len(counts)
    rest, taken = train_test_split(idx, test_size=n_take, random_state=seed, stratify=strata if can_stratify else None)
    return np.sort(rest), np.sort(taken)


def stratified_splits(strata: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """Deterministic train/val/test assignment, stratified by `strata` (e.g. class)."""
    strata_arr = np.asarray([str(s) for s in strata])
    idx = np.arange(len(strata_arr))
    rest, test = _split_off(idx, strata_arr, test_fraction, seed)
    val_share = val_fraction / max(1e-9, 1 - test_fraction)
    train, val = _split_off(rest, strata_arr[rest], val_share, seed + 1)
    out = np.empty(len(idx), dtype=object)
    out[train], out[val], out[test] = "train", "val", "test"
    return out.tolist()


def splits_from_lists(
    names: Sequence[str], strata: Sequence[str], listed: dict[str, str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Apply official lists: returns (split per name, problems). Unlisted names get split ``unlisted``.

    Without an official test list, official ``val`` becomes ``test`` and ``val``
    is carved (seeded, stratified) from official ``train``.
    """
    has_test = "test" in listed.values()
    out = []
    for n in names:
        official = listed.get(n)
        out.append("unlisted" if official is None else (official if has_test or official == "train" else "test"))
    if not has_test:
        train_idx = np.array([i for i, s in enumerate(out) if s == "train"])
        if len(train_idx):
            strata_arr = np.asarray([str(s) for s in strata])
            _, val = _split_off(train_idx, strata_arr[train_idx], val_fraction, seed + 1)
            for i in val:
                out[i] = "val"
    problems = [n for n, s in zip(names, out) if s == "unlisted"]
    return out, problems
