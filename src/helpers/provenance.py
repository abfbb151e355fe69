"""What produced a number: the code's git state and the software/hardware it ran on.

Every notebook prints `environment()` at its top, and the run manifest records
both; kept apart from the runner so that editing the runner does not count as
a change to every notebook's code (see `helpers.incremental`).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys

from . import paths

KEY_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "segmentation-models-pytorch",
    "openvino",
    "nncf",
    "papermill",
    "numpy",
    "pillow",
    "scikit-learn",
    "pandas",
    "matplotlib",
    "seaborn",
    "grad-cam",
)


def git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it (None outside git)."""
    root = paths.repo_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the libraries whose behaviour can change a result."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict:
    """Versions and hardware, so a reviewer can tell what produced a number."""
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "packages": package_versions(),
    }
