"""Incremental regeneration: which notebooks must run again, and a staged run that never breaks the last good report.

A notebook's *inputs* are its cells (code and tags), the `helpers` modules its code imports
(followed through the package's own imports), its parameters (not where the
reports go), the versions of the key libraries, the real data folder when one
is given, and the files written by the notebooks it reads
(`reads`, else `depends_on`, in the course table `helpers.course.COURSE`), and
other repository files it reads (`reads_files`, e.g. the committed reference).
Their digests are recorded in the run manifest. A notebook whose recorded
inputs and own outputs still match is *up to date* and is not executed.

A run with anything to do works in a copy, `<reports>/.staging/<profile>/`,
and swaps it in for `<reports>/<profile>/` only when every notebook it ran
succeeded. A failed or killed run leaves the previous report untouched; the
next run resumes from the staging copy, where the notebooks that did finish
are up to date.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat

from .paths import STAGING

PACKAGE = "helpers"
PREVIOUS = ".previous"  # the last good run, kept while a new one replaces it
LOCATION_PARAMETERS = ("reports_root",)  # where a run writes is not an input of what it computes


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def notebook_code(path: Path) -> list[str]:
    """A notebook's code cells as plain Python (IPython magics translated, so `ast` can read them)."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    return [transform(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def notebook_digest(path: Path) -> str:
    """Digest of what a notebook computes: its cells' sources and tags.

    Outputs, execution counts, cell ids and editor metadata are left out, so
    opening and saving a notebook in Jupyter does not make it stale.
    """
    nb = nbformat.read(path, as_version=4)
    cells = [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]
    return text_digest({"cells": cells})


def _imports(tree: ast.AST, current: str | None = None, is_package: bool = False) -> set[str]:
    """`helpers` module names a piece of code may import, with every parent package (its `__init__` runs too).

    `from helpers import a` yields both `helpers` and `helpers.a`; names that
    are functions rather than modules are dropped later, when no file has them.
    Imports inside functions count: they run when the function is called.
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                base = current.split(".") if is_package else current.split(".")[:-1]
                module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == PACKAGE:
                names |= {module} | {f"{module}.{a.name}" for a in node.names}
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def _module_file(name: str, root: Path) -> Path | None:
    """`helpers.data.course` -> its file under `root` (the package folder); None for a non-module name."""
    base = root.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def code_modules(sources: Iterable[str], root: Path | None = None) -> dict[str, Path]:
    """The package modules some code uses, directly or through the package's own imports, with their files.

    Code that does not parse (a notebook being edited) is taken to use the
    whole package: rebuilding too much is safe, too little is not.
    """
    root = root or package_dir()
    try:
        todo = set().union(*(_imports(ast.parse(s)) for s in sources))
    except SyntaxError:
        todo = {
            (PACKAGE + "." + ".".join(p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
            for p in root.rglob("*.py")
        }
    found: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if name in found or path is None:
            continue
        found[name] = path
        todo |= _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py") - found.keys()
    return dict(sorted(found.items()))


class Digests:
    """SHA-256 of files, memoised on (path, size, mtime, inode) so one run hashes each file once."""

    def __init__(self) -> None:
        self._memo: dict[tuple, str] = {}

    def file(self, path: Path) -> str:
        st = Path(path).stat()
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._memo:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._memo[key] = h.hexdigest()
        return self._memo[key]

    def tree(self, run: Path, names: Iterable[str]) -> str:
        """One digest of named files/folders under `run` (hidden temporary files left out, absence counted)."""
        h = hashlib.sha256()
        for name in names:
            target = run / name
            files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
            for path in files:
                rel = path.relative_to(run)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                h.update(f"{rel.as_posix()}\t{self.file(path) if path.is_file() else 'missing'}\n".encode())
        return h.hexdigest()


def text_digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def data_listing(folder: str) -> str | None:
    """Digest of a real data folder's listing (relative path, size, modification time); None for embedded data.

    The embedded synthetic data is generated by code that is already an input.
    """
    if not folder:
        return None
    root = Path(folder)
    return text_digest(
        [
            (p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]
    )


def inputs(
    notebook: Path,
    parameters: dict,
    libraries: dict,
    upstream: dict[str, str],
    digests: Digests,
    root: Path | None = None,
    files: dict[str, Path] | None = None,
) -> dict:
    """Everything a notebook's results depend on, as digests (recorded in the manifest).

    `files`: other files it reads (e.g. the committed reference metrics), by
    the name they are declared under; an absent file counts as "missing".
    """
    params = {k: v for k, v in parameters.items() if k not in LOCATION_PARAMETERS}
    return {
        "notebook": notebook_digest(notebook),
        "code": {name: digests.file(path) for name, path in code_modules(notebook_code(notebook), root).items()},
        "parameters": json.loads(json.dumps(params, default=str)),
        "libraries": libraries,
        "data": data_listing(str(params.get("data_root") or "")),
        **({"external": {f: data_listing(f) for f in params["external"]}} if params.get("external") else {}),
        "upstream": upstream,
        "files": {name: digests.file(path) if path.is_file() else "missing" for name, path in (files or {}).items()},
    }


def stale_reasons(previous: dict | None, now: dict, outputs_now: str) -> list[str]:
    """Why a notebook must run again (empty: up to date), in words a user can act on."""
    if previous and previous.get("status") == "running":
        return ["its last run was interrupted"]
    if not previous or "inputs" not in previous:
        return ["no record of its inputs (never run by this runner)"]
    if previous.get("status") != "ok":
        return [f"its last run ended '{previous.get('status')}'"]
    before, reasons = previous["inputs"], []
    if before.get("notebook") != now["notebook"]:
        reasons.append("the notebook changed")
    for key, what in (
        ("code", "helpers code changed"),
        ("parameters", "parameters changed"),
        ("libraries", "library versions changed"),
        ("upstream", "outputs it reads changed"),
        ("files", "files it reads changed"),
    ):
        old, new = before.get(key) or {}, now[key]
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
            reasons.append(f"{what}: {', '.join(changed)}")
    if before.get("data") != now["data"]:
        reasons.append("the data folder changed")
    if previous.get("outputs") != outputs_now:
        reasons.append("its own outputs are missing or were modified")
    return reasons


def staging_dir(run: Path) -> Path:
    return run.parent / STAGING / run.name


def previous_dir(run: Path) -> Path:
    return run.parent / PREVIOUS / run.name


@contextmanager
def locked(run: Path) -> Iterator[None]:
    """One run per reports folder and profile at a time (the OS drops the lock if the process dies)."""
    lock = run.parent / STAGING / f"{run.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"error: another run of profile {run.name!r} is writing {run.parent} (lock {lock})"
            ) from None
        yield


def recover(run: Path) -> None:
    """Finish a swap that was interrupted between its two renames."""
    previous = previous_dir(run)
    if previous.exists():
        if run.exists():
            shutil.rmtree(previous)
        else:
            os.replace(previous, run)


def begin(run: Path) -> Path:
    """The staging copy of `run` to work in: resumed if a failed run left one, else copied from the last good run."""
    stage = staging_dir(run)
    if stage.is_dir():
        return stage
    partial = stage.with_name(stage.name + ".copying")  # a copy cut short never passes for a staging folder
    shutil.rmtree(partial, ignore_errors=True)
    if run.is_dir():
        shutil.copytree(run, partial, symlinks=True)
    else:
        partial.mkdir(parents=True)
    os.replace(partial, stage)
    return stage


def promote(stage: Path, run: Path) -> None:
    """Swap a finished staging folder in for the run folder (two renames; `recover` completes a cut swap)."""
    previous = previous_dir(run)
    previous.parent.mkdir(parents=True, exist_ok=True)
    if run.exists():
        os.replace(run, previous)
    os.replace(stage, run)
    shutil.rmtree(previous, ignore_errors=True)


def clear(work: Path, names: Iterable[str]) -> None:
    """Remove a notebook's old outputs from the staging folder before it runs, so none can outlive it."""
    for name in names:
        target = work / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
