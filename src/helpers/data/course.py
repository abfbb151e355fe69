"""From a data folder to validated, split, cached arrays: what notebook 00 does once for all stages.

`prepare` finds which layouts a folder holds (or generates the embedded data),
validates every file, assigns splits and writes ``reports/<profile>/data/``:
``splits.csv`` (every file and its split), ``data_report.json`` (sources,
counts, split provenance, fingerprint, problems) and ``bad_files.csv``. Later
stages call `load_split`, which reads those files and the image cache, so they
never re-validate or re-decode.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from .. import paths
from ..artifacts import read_json, write_csv, write_json
from ..profiles import get_profile
from . import synthetic
from .images import IMAGE_EXTENSIONS, ImageCache
from .layouts import (
    SKIP_HINT,
    BadFile,
    DataError,
    LoadedSet,
    Sample,
    is_class_folder,
    load_samples,
    scan_classification,
    scan_image_folder,
    scan_segmentation,
)
from .splits import find_split_lists, read_split_lists, splits_from_lists, stratified_splits
from .synthetic import CENTRES_FILE, HELD_OUT_CENTRE

TASKS = ("classification", "segmentation", "unlabeled")
OUT_OF_CENTRE = "test_out"  # the split of a held-out centre's frames: tested on, never trained or chosen on
UNUSED = "unused"  # train frames over a profile's max_train_frames: recorded, never read
SPLIT_COLUMNS = ["task", "file", "mask", "label", "split", "stratum", "centre", "sha256", "mask_colours"]


@dataclass
class DataSources:
    """Which folder serves which task. `origin` is "synthetic" or "real"."""

    origin: str
    root: Path
    classification: Path | None = None
    classification_masks: Path | None = None
    segmentation: Path | None = None
    unlabeled: Path | None = None
    generator: dict = field(default_factory=dict)

    def describe(self) -> str:
        kind = "synthetic (embedded generator)" if self.origin == "synthetic" else "real"
        return f"{kind} data in {self.root}"


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def detect_sources(root: Path) -> DataSources:
    """Recognise the layouts in `root`: Kvasir-SEG, Kvasir v2 class folders, an image folder, or a
    folder holding ``kvasir-seg/``, ``kvasir-v2/`` (+ ``kvasir-v2-masks/``) and ``unlabeled/``."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            root, [BadFile(str(root), "data folder does not exist" if not root.exists() else "is not a folder")]
        )
    src = DataSources("real", root)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        src.segmentation = root
        return src
    for name, attr in (
        ("kvasir-seg", "segmentation"),
        ("kvasir-v2", "classification"),
        ("kvasir-v2-masks", "classification_masks"),
        ("unlabeled", "unlabeled"),
    ):
        if (root / name).is_dir():
            setattr(src, attr, root / name)
    if src.segmentation or src.classification or src.unlabeled:
        return src
    subdirs = [p for p in root.iterdir() if is_class_folder(p)]  # the rule scan_classification uses
    if len(subdirs) >= 2 and sum(_has_images(p) for p in subdirs) >= 1:
        src.classification = root
    elif _has_images(root) or subdirs:
        src.unlabeled = root
    else:
        raise DataError(
            root,
            [
                BadFile(
                    str(root),
                    "no images found: expected Kvasir-SEG (images/, masks/), "
                    "Kvasir v2 class folders, or a folder of images",
                )
            ],
        )
    return src


def resolve_sources(data_root: str | Path, profile: str) -> DataSources:
    """`data_root` if given (real data, never modified), else the profile's embedded data (generated once)."""
    if str(data_root):
        return detect_sources(Path(data_root))
    spec = get_profile(profile).synthetic
    seed = get_profile(profile).seed
    root = synthetic.generate(
        paths.synthetic_root(profile),
        spec.per_class,
        spec.seg_pairs,
        spec.unlabeled,
        seed=seed,
        min_side=spec.min_side,
        max_side=spec.max_side,
    )
    src = detect_sources(root)
    src.origin = "synthetic"
    src.generator = json.loads((root / "GENERATOR.json").read_text())
    return src


def polyp_counts(masks: np.ndarray) -> np.ndarray:
    """Connected polyp regions per mask (8-connectivity)."""
    structure = np.ones((3, 3), bool)
    return np.array([ndimage.label(m, structure=structure)[1] for m in masks], np.int64)


@dataclass
class PreparedData:
    """What `prepare` found: sources, the split table, loaded sets and problems."""

    sources: DataSources
    splits: pd.DataFrame
    sets: dict[str, LoadedSet]
    classes: list[str]
    bad: list[BadFile]
    report: dict


def _rel(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_centres(root: Path) -> dict[str, str]:
    """Which centre (hospital, device) made each frame: ``centres.csv`` in the data root, if it has one.

    Columns ``file,centre``; ``file`` relative to the data root (the embedded
    data writes one; a real multi-centre collection can add one).
    """
    path = Path(root) / CENTRES_FILE
    if not path.is_file():
        return {}
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns[:2]) != ["file", "centre"]:
        raise DataError(
            path, [BadFile(str(path), f"expected the columns file,centre, found {','.join(table.columns)}")]
        )
    empty = table.index[(table["file"] == "") | (table["centre"] == "")]
    if len(empty):
        raise DataError(path, [BadFile(str(path), f"line {i + 2}: empty file or centre") for i in empty[:10]])
    return dict(zip(table["file"], table["centre"]))


def _split_rows(
    task: str,
    loaded: LoadedSet,
    task_root: Path,
    strata: list[str],
    centres: list[str],
    held_out: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    max_train: int | None = None,
) -> tuple[list[dict], str, list[BadFile]]:
    """Split one task's frames; the `held_out` centre's frames form the out-of-centre test split, whole.

    Past `max_train` train frames, a seeded draw keeps that many and marks the rest `unused`: validation
    and test frames are never dropped, so a capped run is scored on the same frames as a full one.
    """
    lists = find_split_lists(task_root) if task != "unlabeled" else {}
    names = [s.image.stem for s in loaded.samples]
    inside = [i for i, c in enumerate(centres) if not held_out or c != held_out]
    split = [OUT_OF_CENTRE] * len(names)
    problems: list[BadFile] = []
    if task == "unlabeled":
        chosen, source = ["pool"] * len(inside), "all frames form the unlabeled pool"
    elif lists:
        listed = read_split_lists(lists)
        chosen, unlisted = splits_from_lists(
            [names[i] for i in inside], [strata[i] for i in inside], listed, val_fraction, seed
        )
        source = "official lists " + ", ".join(_rel(p, task_root) for p in lists.values())
        if "test" not in lists:
            source += f" (official val -> test; val = {val_fraction:.0%} of official train, seed {seed})"
        problems = [
            BadFile(str(loaded.samples[i].image), "not in any split list; left out")
            for i in inside
            if names[i] in set(unlisted)
        ]
    else:
        chosen = stratified_splits([f"{strata[i]}|{centres[i]}" for i in inside], val_fraction, test_fraction, seed)
        source = f"seeded stratified split (seed {seed}, val {val_fraction:.0%}, test {test_fraction:.0%})"
    for i, sp in zip(inside, chosen):
        split[i] = sp
    train = [i for i, sp in enumerate(split) if sp == "train"]
    if max_train is not None and len(train) > max_train:
        keep = set(np.random.default_rng([seed, len(train)]).choice(train, max_train, replace=False).tolist())
        for i in set(train) - keep:
            split[i] = UNUSED
        source += f"; {max_train} of the {len(train)} train frames (the profile's max_train_frames, seed {seed})"
    if held_out and len(inside) < len(names):
        source += f"; every frame of centre {held_out!r} held out as the out-of-centre test split ({OUT_OF_CENTRE})"
    infos = loaded.mask_info or [{}] * len(loaded.samples)
    rows = [
        {
            "task": task,
            "file": _rel(s.image, task_root),
            "mask": _rel(s.mask, task_root) if s.mask else "",
            "label": s.label or "",
            "split": sp,
            "stratum": st,
            "centre": c,
            "sha256": h,
            "mask_colours": ";".join(f"{k}:{v}" for k, v in info.get("colour_classes", {}).items()),
        }
        for s, sp, st, c, h, info in zip(loaded.samples, split, strata, centres, loaded.sha256, infos)
    ]
    return rows, source, problems


def fingerprint(splits: pd.DataFrame) -> str:
    """SHA-256 over every used file's task, relative name, split and content hash."""
    h = hashlib.sha256()
    for row in splits.sort_values(["task", "file"]).itertuples():
        h.update(f"{row.task}|{row.file}|{row.split}|{row.sha256}\n".encode())
    return h.hexdigest()


def prepare(
    profile: str,
    data_root: str | Path = "",
    reports_root: str | Path = "",
    image_size: int | None = None,
    seed: int | None = None,
    skip_bad: bool = False,
    classes: list[str] | None = None,
    cache: ImageCache | None = None,
    held_out_centre: str | None = None,
) -> PreparedData:
    """Validate and split the data of a run and write ``reports/<profile>/data/``.

    Raises DataError listing every problem, unless `skip_bad`, in which case bad
    files are left out and listed in the report. Fewer than 2 usable classes is
    always an error. Frames of `held_out_centre` (default: the embedded data's
    `HELD_OUT_CENTRE`; none for real data) form the out-of-centre test split.
    """
    prof = get_profile(profile)
    image_size = image_size or prof.image_size
    seed = prof.seed if seed is None else seed
    cache = cache or ImageCache(paths.cache_dir())
    sources = resolve_sources(data_root, profile)
    bad: list[BadFile] = []
    notes: list[BadFile] = []  # left out on purpose (hidden files, sub-folders the layout does not search)
    scanned: dict[str, tuple[list[Sample], Path]] = {}
    found_classes: list[str] = []
    if sources.classification:
        samples, found_classes, problems = scan_classification(
            sources.classification, classes, sources.classification_masks, notes
        )
        bad += problems
        scanned["classification"] = (samples, sources.classification)
    if sources.segmentation:
        samples, problems = scan_segmentation(sources.segmentation, notes)
        bad += problems
        scanned["segmentation"] = (samples, sources.segmentation)
    if sources.unlabeled:
        samples, problems = scan_image_folder(sources.unlabeled, notes)
        bad += problems
        scanned["unlabeled"] = (samples, sources.unlabeled)
    sets: dict[str, LoadedSet] = {}
    for task, (samples, _) in scanned.items():
        sets[task], problems = load_samples(samples, image_size, cache, desc=task)
        bad += problems
    if sources.classification:
        usable = sorted({s.label for s in sets["classification"].samples if s.label})
        if len(usable) < 2:
            raise DataError(
                sources.classification,
                [
                    BadFile(
                        str(sources.classification),
                        f"fewer than 2 usable classes ({', '.join(usable) or 'none'}); classification needs at least 2",
                    )
                ]
                + bad,
            )
        found_classes = [c for c in found_classes if c in usable]
    if bad and not skip_bad:
        raise DataError(sources.root, bad, SKIP_HINT)
    centre_of = read_centres(sources.root)
    if held_out_centre is None:
        held_out_centre = HELD_OUT_CENTRE if sources.origin == "synthetic" else ""
    if held_out_centre and held_out_centre not in set(centre_of.values()):
        raise DataError(
            sources.root / CENTRES_FILE,
            [BadFile(str(sources.root / CENTRES_FILE), f"no frame of the held-out centre {held_out_centre!r}")],
        )
    rows: list[dict] = []
    split_source: dict[str, str] = {}
    for task, loaded in sets.items():
        if task == "segmentation":
            strata = [f"{min(int(c), 3)} polyp(s)" for c in polyp_counts(loaded.masks)]
        elif task == "classification":
            strata = [str(lab) for lab in loaded.labels]
        else:
            strata = [""] * len(loaded.samples)
        centres = [centre_of.get(_rel(s.image, sources.root), "") for s in loaded.samples]
        task_rows, split_source[task], problems = _split_rows(
            task,
            loaded,
            scanned[task][1],
            strata,
            centres,
            held_out_centre,
            *prof.fractions(task),
            seed,
            prof.max_train_frames,
        )
        rows += task_rows
        bad += problems
    table = pd.DataFrame(rows, columns=SPLIT_COLUMNS)
    table = table[table["split"] != "unlisted"].reset_index(drop=True)
    counts = {
        task: {str(k): int(v) for k, v in grp.groupby("split").size().items()} for task, grp in table.groupby("task")
    }
    label_counts = {
        f"{k[0]}/{k[1]}": int(v)
        for k, v in table[table["task"] == "classification"].groupby(["split", "label"]).size().items()
    }
    report = {
        "profile": profile,
        "seed": seed,
        "image_size": image_size,
        "origin": sources.origin,
        "description": sources.describe(),
        "data_root": str(sources.root),
        "sources": {
            t: str(getattr(sources, t)) if getattr(sources, t) else None
            for t in ("classification", "classification_masks", "segmentation", "unlabeled")
        },
        "classes": found_classes,
        "counts": counts,
        "class_counts": label_counts,
        "centres": {
            "source": str(sources.root / CENTRES_FILE) if centre_of else None,
            "held_out": held_out_centre or None,
            "counts": {
                task: {str(k): int(v) for k, v in grp.groupby("centre").size().items()}
                for task, grp in table[table["centre"] != ""].groupby("task")
            },
            "described": sources.generator.get("centres", {}),
        },
        "split_source": split_source,
        "fingerprint": fingerprint(table),
        "generator": sources.generator,
        "skip_bad": skip_bad,
        "bad_files": [{"path": b.path, "problem": b.problem} for b in bad],
        "masks": mask_summary(sets),
        "warnings": mask_warnings(sets),
        "notes": [{"path": n.path, "note": n.problem} for n in notes],
    }
    out = paths.data_report_dir(profile, reports_root)
    write_csv(out / "splits.csv", table)
    write_csv(out / "bad_files.csv", pd.DataFrame(report["bad_files"], columns=["path", "problem"]))
    write_json(out / "data_report.json", report)
    return PreparedData(sources, table, sets, found_classes, bad, report)


def mask_summary(sets: dict[str, LoadedSet]) -> dict:
    """How the masks were encoded, and the colour classes of colour-coded ones (e.g. red / green polyps)."""
    encodings: dict[str, int] = {}
    classes: dict[str, dict[str, int]] = {}
    for loaded in sets.values():
        for info in loaded.mask_info:
            if not info:
                continue
            encodings[info["encoding"]] = encodings.get(info["encoding"], 0) + 1
            for name, pixels in info.get("colour_classes", {}).items():
                entry = classes.setdefault(name, {"masks": 0, "pixels": 0})
                entry["masks"] += 1
                entry["pixels"] += pixels
    return {"encodings": encodings, "colour_classes": classes}


def mask_warnings(sets: dict[str, LoadedSet]) -> list[dict]:
    """Masks whose polyp pixels were lost (drawn but not decoded as polyp, or vanished when resized)."""
    return [
        {"path": str(s.mask), "problem": info["warning"]}
        for loaded in sets.values()
        for s, info in zip(loaded.samples, loaded.mask_info)
        if info.get("warning")
    ]


def provenance(report: dict, split: str) -> str:
    """One line every table and figure carries: which data, split, seed and profile made it.

    The run seed (the profile's `seed`: the generator, the splits and each
    stage's own draws) is named as such, apart from a table's training seeds.
    """
    return (
        f"Data: {report['description']} (fingerprint {report['fingerprint'][:12]}) · split: {split} · "
        f"run seed {report['seed']} · profile {report['profile']} · image size {report['image_size']} px"
    )


def read_data_report(profile: str, reports_root: str | Path = "", data_root: str | Path | None = None) -> dict:
    """The data report notebook 00 wrote; a clear error if it has not run, or ran on other data.

    `data_root` is the data the calling notebook was asked to use ("" = the
    embedded data): a report about other data must never be reported on.
    """
    path = paths.data_report_dir(profile, reports_root) / "data_report.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebook 00_data first (./run_all.sh --only 00_data)")
    report = read_json(path)
    if data_root is not None:
        wanted = str(Path(data_root).expanduser().resolve()) if str(data_root) else "the embedded synthetic data"
        found = report["data_root"] if report["origin"] == "real" else "the embedded synthetic data"
        if wanted != found:
            raise DataError(
                path,
                [BadFile(str(path), f"describes {found}, but this notebook was asked for {wanted}")],
                "Run notebook 00_data with the same data_root first (./run_all.sh --data-root ... runs it).",
            )
    return report


def split_samples(
    task: str, split: str | list[str] | None, profile: str, reports_root: str | Path = ""
) -> tuple[Path, list[Sample], pd.DataFrame]:
    """The files of one task's split(s) as notebook 00 recorded them, without decoding any: (task root,
    samples, their rows of ``splits.csv``). `split=None`: every split of the task."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    report = read_data_report(profile, reports_root)
    root = report["sources"][task]
    if root is None:
        raise ValueError(f"the data in {report['data_root']} has no {task} layout")
    table = pd.read_csv(paths.data_report_dir(profile, reports_root) / "splits.csv", keep_default_na=False)
    wanted = [split] if isinstance(split, str) else split
    rows = table[(table["task"] == task) & (table["split"].isin(wanted) if wanted else True)].reset_index(drop=True)
    root = Path(root)
    samples = [Sample(root / r.file, r.label or None, (root / r.mask) if r.mask else None) for r in rows.itertuples()]
    return root, samples, rows


def load_split(
    task: str,
    split: str | list[str] | None,
    profile: str,
    reports_root: str | Path = "",
    image_size: int | None = None,
    cache: ImageCache | None = None,
) -> tuple[LoadedSet, pd.DataFrame]:
    """Arrays of one task's split(s) as notebook 00 recorded them (decoded through the cache).

    `split=None` loads every split of the task. Returns the set and its rows of
    ``splits.csv`` in the same order.
    """
    root, samples, rows = split_samples(task, split, profile, reports_root)
    loaded, bad = load_samples(
        samples,
        image_size or read_data_report(profile, reports_root)["image_size"],
        cache or ImageCache(paths.cache_dir()),
        desc=f"{task}/{split or 'all'}",
    )
    if bad:
        raise DataError(root, bad, "These files changed since notebook 00 validated them: re-run 00_data.")
    return loaded, rows
