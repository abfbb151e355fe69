"""Execute the course's notebooks headlessly with Papermill, in order, and record the run.

Each notebook declares its upstream notebooks in its metadata
(``metadata.course.depends_on``); when one fails, the run goes on with the
notebooks that do not depend on it, then exits non-zero. The executed copies
and their HTML go to ``reports/<profile>/notebooks/``; ``manifest.json`` records
the commit, versions, profile, data source and per-notebook status and time.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from . import paths
from .artifacts import read_json, write_json, write_text
from .profiles import get_profile

KERNEL_NAME = "colonoscopy-course"
KEY_PACKAGES = ("torch", "torchvision", "timm", "segmentation-models-pytorch", "openvino", "nncf", "papermill",
                "numpy", "pillow", "scikit-learn", "pandas", "matplotlib", "seaborn", "grad-cam")


@dataclass
class NotebookSpec:
    name: str  # file stem, e.g. "01_eda"
    path: Path
    depends_on: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # data tasks, e.g. "classification"


def discover(folder: Path | None = None) -> list[NotebookSpec]:
    """Notebooks in course order (by file name) with their declared upstream notebooks."""
    folder = Path(folder or paths.notebooks_dir())
    specs = []
    for path in sorted(folder.glob("[0-9]*.ipynb")):
        meta = nbformat.read(path, as_version=4).metadata.get("course", {})
        specs.append(NotebookSpec(path.stem, path, list(meta.get("depends_on", [])), list(meta.get("requires", []))))
    return specs


def select(specs: list[NotebookSpec], only: list[str] | None) -> list[NotebookSpec]:
    """Filter by `--only` names; a name matches a notebook's stem or its number prefix."""
    if not only:
        return specs
    chosen = [s for s in specs if any(s.name == o or s.name.split("_")[0] == o or s.name.startswith(o) for o in only)]
    unknown = [o for o in only if not any(s.name == o or s.name.startswith(o) for s in specs)]
    if unknown:
        raise SystemExit(f"error: no notebook matches {', '.join(unknown)}; notebooks: {', '.join(s.name for s in specs)}")
    return chosen


def kernel_name() -> str:
    """The course kernel registered by the bootstrap, else the default Python kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def git_state() -> dict:
    root = paths.repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def environment() -> dict:
    """Versions and hardware, so a reviewer can tell what produced a number."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "gpu": gpu, "packages": versions}


def export_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    return write_text(executed.with_suffix(".html"), body)


def _declared_parameters(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def run_notebook(spec: NotebookSpec, params: dict, out_dir: Path) -> dict:
    """Execute one notebook; return its manifest entry (never raises for a failing cell)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    declared = _declared_parameters(spec.path)
    params = {k: v for k, v in params.items() if k in declared}
    executed = out_dir / f"{spec.name}.ipynb"
    out_dir.mkdir(parents=True, exist_ok=True)
    entry = {"name": spec.name, "executed": str(executed), "parameters": params}
    print(f"\n=== {spec.name} ===", flush=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(spec.path), str(executed), parameters=params, kernel_name=kernel_name(),
                            cwd=str(spec.path.parent), log_output=True, progress_bar=True)
        entry["status"] = "ok"
    except PapermillExecutionError as exc:
        entry.update(status="failed", error={"cell": exc.exec_count, "cell_index": exc.cell_index,
                                             "type": exc.ename, "message": exc.evalue})
        print(f"\nFAILED: notebook {spec.name}, cell [{exc.exec_count}] (index {exc.cell_index}): {exc.ename}: "
              f"{exc.evalue}\n        partial executed copy: {executed}", file=sys.stderr, flush=True)
    except Exception as exc:  # kernel death, missing kernel, bad notebook JSON
        entry.update(status="failed", error={"cell": None, "type": type(exc).__name__, "message": str(exc)})
        print(f"\nFAILED: notebook {spec.name} did not run: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    entry["wall_s"] = round(time.perf_counter() - start, 2)
    if executed.is_file():
        entry["html"] = str(export_html(executed))
    return entry


def _absent_tasks(spec: NotebookSpec, run: Path) -> list[str]:
    """Data tasks a notebook needs that the prepared data (notebook 00's report) lacks."""
    report = run / "data" / "data_report.json"
    if not spec.requires or not report.is_file():
        return []
    sources = read_json(report).get("sources", {})
    return [task for task in spec.requires if not sources.get(task)]


def _write_manifest(path: Path, prof, started: str, entries: dict, specs: list[NotebookSpec], finished: bool) -> dict:
    """The run manifest; written after every notebook (`finished` False) and once more at the end."""
    data_report = path.parent / "data" / "data_report.json"
    data = read_json(data_report) if data_report.is_file() else {}
    manifest = {
        "profile": prof.name, "profile_settings": prof.to_dict(), "seed": prof.seed, "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds") if finished else None, "git": git_state(),
        "environment": environment(),
        "data": {k: data.get(k) for k in ("origin", "description", "data_root", "fingerprint", "split_source", "counts")},
        "notebooks": [entries[s.name] for s in specs if s.name in entries],
    }
    write_json(path, manifest)
    return manifest


def run_course(profile: str = "cpu", data_root: str = "", only: list[str] | None = None, reports_root: str = "",
               skip_bad: bool = False, notebooks: Path | None = None) -> int:
    """Run the selected notebooks of a profile; return the process exit code."""
    prof = get_profile(profile)
    if data_root:
        data_root = str(Path(data_root).expanduser().resolve())
        if not Path(data_root).is_dir():
            print(f"error: --data-root {data_root}: no such folder", file=sys.stderr)
            return 2
    elif prof.expects_real_data:
        print(f"warning: profile {profile!r} is meant for real data (--data-root); running on the embedded "
              "synthetic data at full size, which is slow on CPU", file=sys.stderr)
    specs = discover(notebooks)
    chosen = select(specs, only)
    run = paths.run_dir(profile, reports_root)
    manifest_path = run / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    entries = {e["name"]: e for e in manifest.get("notebooks", [])}
    failed: set[str] = set()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for spec in chosen:
        blocked = [d for d in spec.depends_on if d in failed]
        if blocked:
            print(f"\n=== {spec.name} === skipped: upstream {', '.join(blocked)} failed", file=sys.stderr)
            entries[spec.name] = {"name": spec.name, "status": "skipped", "reason": f"upstream {', '.join(blocked)} failed"}
            failed.add(spec.name)
            continue
        absent = _absent_tasks(spec, run)
        if absent:
            reason = f"the data has no {' or '.join(absent)} layout"
            print(f"\n=== {spec.name} === not applicable: {reason}", file=sys.stderr)
            entries[spec.name] = {"name": spec.name, "status": "not applicable", "reason": reason}
            continue
        params = prof.params_for(spec.name, data_root=data_root, reports_root=reports_root) | {"skip_bad": skip_bad}
        entries[spec.name] = run_notebook(spec, params, run / "notebooks")
        if entries[spec.name]["status"] != "ok":
            failed.add(spec.name)
        _write_manifest(manifest_path, prof, started, entries, specs, finished=False)  # the report notebook reads it
    manifest = _write_manifest(manifest_path, prof, started, entries, specs, finished=True)
    print(f"\nmanifest: {manifest_path}")
    for e in manifest["notebooks"]:
        print(f"  {e['name']:<32} {e['status']:<8} {e.get('wall_s', '-')!s:>8} s")
    if failed:
        print(f"\n{len(failed)} notebook(s) did not finish: {', '.join(sorted(failed))}", file=sys.stderr)
        return 1
    return 0
