"""Writing stage outputs so that a crash never leaves a file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def readable(tmp: str | Path) -> None:
    """Give a temporary file the mode of an ordinary new file (0644 under the usual umask), not mkstemp's 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def write_text(path: Path, text: str) -> Path:
    """Write via a temporary file in the same folder, then rename (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return write_text(path, frame.to_csv(index=False))


def save_figure(fig: Any, folder: Path, name: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as `<folder>/<name>.png` (atomically).

    Returns nothing, so a notebook cell ending with it shows the figure (inline
    backend) rather than a path.
    """
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


SUMMARY = "summary.json"


def write_summary(folder: Path, provenance: str, text: str, **details: Any) -> Path:
    """A stage's summary.json: the provenance line and headline text the report shows, plus the details (verdicts,
    choices, tables as records) that later stages and `report.choices` read back with `read_summary`."""
    return write_json(Path(folder) / SUMMARY, {"provenance": provenance, **details, "text": text})


def read_summary(folder: Path) -> dict[str, Any]:
    """What `write_summary` wrote in `folder`; empty when the stage did not write one (it did not run, or has none)."""
    path = Path(folder) / SUMMARY
    return read_json(path) if path.is_file() else {}
