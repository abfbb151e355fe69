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


CAPTION_FONTSIZE = 7


def add_caption(fig: Any, caption: str) -> None:
    """Put `caption` under everything already drawn in `fig`, wrapped to the drawing's width.

    It is placed below the drawn content's bounding box (rotated tick labels
    included), so it never covers an axis; it is wrapped by hand, because
    matplotlib's own `wrap=True` on text outside the axes breaks
    `bbox_inches="tight"` (a large empty band in the PNG).
    """
    import textwrap

    if not caption.strip():
        raise ValueError("a figure's caption must say which data, split, seed and profile made it; got an empty one")
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    width, height = fig.get_size_inches()
    chars = max(40, int(box.width * 72 / (0.52 * CAPTION_FONTSIZE)))  # ~0.52 em per character
    text = "\n".join(textwrap.fill(part, chars) for part in caption.splitlines())
    fig.text(
        box.x0 / width, (box.y0 - 0.08) / height, text, ha="left", va="top", fontsize=CAPTION_FONTSIZE, color="0.3"
    )


def save_figure(fig: Any, folder: Path, name: str, *, caption: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as `<folder>/<name>.png` (atomically), with its provenance caption underneath.

    The caption is required: a figure saved on its own (and shown in the
    report) must say which data, split, seed and profile made it. It is drawn
    under the figure and also kept as the PNG's `Description` text, which the
    report reads back for the image's alt text (`figure_caption`). Returns
    nothing, so a notebook cell ending with it shows the figure (inline
    backend) rather than a path.
    """
    add_caption(fig, caption)
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Title": name, "Description": caption})
        readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def figure_caption(path: Path) -> str:
    """The caption `save_figure` kept in a PNG's `Description` text ("" for a PNG saved without one)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.info.get("Description", "")


SUMMARY = "summary.json"


def write_summary(folder: Path, provenance: str, text: str, **details: Any) -> Path:
    """A stage's summary.json: the provenance line and headline text the report shows, plus the details (verdicts,
    choices, tables as records) that later stages and `report.choices` read back with `read_summary`."""
    return write_json(Path(folder) / SUMMARY, {"provenance": provenance, **details, "text": text})


def read_summary(folder: Path) -> dict[str, Any]:
    """What `write_summary` wrote in `folder`; empty when the stage did not write one (it did not run, or has none)."""
    path = Path(folder) / SUMMARY
    return read_json(path) if path.is_file() else {}
