"""Where every artifact lives. All stages ask here, so paths come from one place.

Layout under the repository::

    data/synthetic/<profile>/       embedded data, generated (ignored by git)
    data/cache/                     decoded, resized image cache (ignored)
    reports/<profile>/              everything a run writes
        data/                       splits.csv, data_report.json (notebook 00)
        <stage>/                    one folder per notebook (helpers.course.COURSE names it)
        notebooks/                  executed notebooks + HTML
        manifest.json               the run manifest
"""

from __future__ import annotations

from pathlib import Path

from . import course


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


STAGING = ".staging"  # a run in progress writes to <reports>/.staging/<profile>/, moved into place when it succeeds


def published(path: str | Path) -> Path:
    """Where a file written by a run in progress will be once the run succeeds: the staging copy moves into place.

    A notebook that tells its reader a path to type later (a shell command) must name this one.
    """
    parts = Path(path).parts
    if STAGING not in parts:
        return Path(path)
    i = len(parts) - 1 - parts[::-1].index(STAGING)
    return Path(*parts[:i], *parts[i + 1 :])


def reports_root(override: str | Path = "") -> Path:
    """Base folder of all reports; `override` (a notebook's `reports_root`) wins when set."""
    return Path(override).expanduser().resolve() if str(override) else repo_root() / "reports"


def run_dir(profile: str, reports: str | Path = "") -> Path:
    """`reports/<profile>/`: one profile's run."""
    return reports_root(reports) / profile


def stage_dir(profile: str, notebook: str, reports: str | Path = "", create: bool = True) -> Path:
    """`reports/<profile>/<folder of notebook>/` (e.g. `course.KD` -> `03_kd/`), created on demand."""
    path = in_run(run_dir(profile, reports), notebook)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def in_run(run: Path, notebook: str) -> Path:
    """The folder of `notebook` inside a given run folder (a staging copy, a test's run)."""
    return Path(run) / course.folder(notebook)


def data_report_dir(profile: str, reports: str | Path = "") -> Path:
    """Where notebook 00 writes the splits and the data report that later stages read."""
    return stage_dir(profile, course.DATA, reports)


def synthetic_root(profile: str) -> Path:
    """Where the embedded data of a profile is generated."""
    return repo_root() / "data" / "synthetic" / profile


def cache_dir() -> Path:
    """On-disk cache of decoded, resized images (keyed by file content)."""
    return repo_root() / "data" / "cache"


def reference_file(profile: str) -> Path:
    """The committed reference metrics of a profile (always in the checkout, whatever `reports_root` says)."""
    return repo_root() / "reports" / "reference" / profile / "metrics.json"
