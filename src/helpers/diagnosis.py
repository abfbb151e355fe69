"""What the scripts that question notebook 03's choices share (scripts/teacher_ablation.py, label_budget.py).

They train as a course run does (pinned numerics, notebook 03's parameters
and teacher) and see the train and validation splits only: a choice they
inform is never made on the test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import numerics
from .profiles import PROFILES, Profile

if TYPE_CHECKING:  # numpy and torch load only after the numerics are pinned (start)
    import numpy as np


class Diagnosis(NamedTuple):
    profile: Profile
    params: dict  # notebook 03's parameters in this profile
    ssl_dir: Path
    teacher: str  # the teacher's architecture: notebook 02's encoder
    report: dict  # notebook 00's data report
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # train and val as (images, class indices)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every diagnosis takes: which profile, and where its run's reports are."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", choices=list(PROFILES))
    parser.add_argument("--reports-root", default="", help="where the run's reports are (default: reports/)")
    return parser


def start(args: argparse.Namespace) -> Diagnosis | None:
    """Pin the numerics as a run does (before torch loads), then read the run's inputs; None, after saying what to
    run, when notebook 02's encoder is missing."""
    profile = PROFILES[args.profile]
    numerics.apply("pinned", profile.threads)
    import numpy as np

    from . import classify, course, data, paths

    params = profile.params_for("03_knowledge_distillation")
    ssl_dir = paths.stage_dir(args.profile, course.SSL, args.reports_root, create=False)
    try:
        teacher = classify.teacher_for(ssl_dir, params["students"], params["label_budgets"])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    report = data.read_data_report(args.profile, args.reports_root)
    splits = {}
    for split in ("train", "val"):
        loaded, rows = data.load_split("classification", split, args.profile, args.reports_root, profile.image_size)
        splits[split] = (loaded.images, np.array([report["classes"].index(c) for c in rows["label"]]))
    return Diagnosis(profile, params, ssl_dir, teacher, report, splits)
