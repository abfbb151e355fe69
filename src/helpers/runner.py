"""Execute the course's notebooks headlessly with Papermill, in order, and record the run.

The course table (`helpers.course.COURSE`) says which notebooks each one
depends on, reads and writes; when one fails, the run goes on with the
notebooks that do not depend on it, then exits non-zero. A notebook whose
inputs have not changed since its last successful run is *up to date* and is
not executed again (``--force`` runs it anyway); see `helpers.incremental`.
Work happens in a staging copy that replaces ``reports/<profile>/`` only when
everything that ran succeeded. The executed copies and their HTML go to
``notebooks/``; ``manifest.json`` records the commit, versions, profile, data
source and, per notebook, its status, time, inputs and outputs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from . import course as course_table
from . import incremental, numerics, paths
from .artifacts import read_json, write_json, write_text
from .profiles import get_profile
from .provenance import environment, git_state, package_versions

KERNEL_NAME = "colonoscopy-course"
MANIFEST = "manifest.json"


@dataclass
class NotebookSpec:
    name: str  # file stem, e.g. "01_eda"
    path: Path
    depends_on: list[str] = field(default_factory=list)  # must have succeeded in this run state
    requires: list[str] = field(default_factory=list)  # data tasks, e.g. "classification"
    outputs: list[str] = field(default_factory=list)  # files/folders it writes under reports/<profile>/
    reads: list[str] = field(default_factory=list)  # notebooks whose outputs it reads (default: depends_on)
    reads_files: list[str] = field(default_factory=list)  # repository files it reads, "{profile}" filled in

    def owned(self) -> list[str]:
        """Everything under the run folder this notebook's run replaces, executed copies included."""
        return [*self.outputs, f"notebooks/{self.name}.ipynb", f"notebooks/{self.name}.html"]


def discover(
    folder: Path | None = None, course: tuple[course_table.Notebook, ...] = course_table.COURSE
) -> list[NotebookSpec]:
    """The notebooks of `folder` in course order (by file name), each with its row of the course table.

    A notebook without a row, or a row without a notebook, is an error: the
    table is the one place that says what the course is made of.
    """
    folder = Path(folder or paths.notebooks_dir())
    rows = {row.name: row for row in course}
    files = {path.stem: path for path in sorted(folder.glob("[0-9]*.ipynb"))}
    if unlisted := sorted(set(files) - set(rows)):
        raise SystemExit(f"error: {', '.join(unlisted)} in {folder} not in the course table (helpers/course.py)")
    if missing := sorted(set(rows) - set(files)):
        raise SystemExit(f"error: the course table lists {', '.join(missing)}, which {folder} does not have")
    return [
        NotebookSpec(
            name,
            path,
            list(rows[name].depends_on),
            list(rows[name].requires),
            list(rows[name].outputs),
            list(rows[name].inputs),
            list(rows[name].reads_files),
        )
        for name, path in files.items()
    ]


def select(specs: list[NotebookSpec], only: list[str] | None) -> list[NotebookSpec]:
    """Filter by `--only` names; a name matches a notebook's stem or its number prefix."""
    if not only:
        return specs
    chosen = [s for s in specs if any(s.name == o or s.name.split("_")[0] == o or s.name.startswith(o) for o in only)]
    unknown = [o for o in only if not any(s.name == o or s.name.startswith(o) for s in specs)]
    if unknown:
        raise SystemExit(
            f"error: no notebook matches {', '.join(unknown)}; notebooks: {', '.join(s.name for s in specs)}"
        )
    return chosen


def upstream_of(specs: list[NotebookSpec], chosen: list[NotebookSpec]) -> dict[str, str]:
    """Notebooks not chosen whose outputs the chosen ones read (transitively): name -> the chosen notebook needing it.

    A selection must never be computed from an upstream notebook whose own
    inputs changed (another data folder, other parameters or code): these are
    checked like the chosen ones, and run when out of date.
    """
    by_name = {s.name: s for s in specs}
    needed: dict[str, str] = {}
    todo = [(s, s.name) for s in chosen]
    while todo:
        spec, origin = todo.pop()
        for name in dict.fromkeys([*spec.depends_on, *spec.reads]):
            if name in by_name and name not in needed and by_name[name] not in chosen:
                needed[name] = origin
                todo.append((by_name[name], origin))
    return needed


def kernel_name() -> str:
    """The course kernel registered by the bootstrap, else the default Python kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def export_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    return write_text(executed.with_suffix(".html"), body)


def declared_parameters(spec: NotebookSpec, params: dict) -> dict:
    """The profile values this notebook's `parameters` cell declares (the others are not its inputs)."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(spec.path)))
    return {k: v for k, v in params.items() if k in declared}


def run_notebook(spec: NotebookSpec, params: dict, run: Path) -> dict:
    """Execute one notebook into `run`; return its manifest entry (never raises for a failing cell)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    executed = run / "notebooks" / f"{spec.name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    entry = {"name": spec.name, "executed": executed.relative_to(run).as_posix(), "parameters": params}
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(spec.path),
            str(executed),
            parameters=params,
            kernel_name=kernel_name(),
            cwd=str(spec.path.parent),
            log_output=True,
            progress_bar=True,
        )
        entry["status"] = "ok"
    except PapermillExecutionError as exc:
        entry.update(
            status="failed",
            error={"cell": exc.exec_count, "cell_index": exc.cell_index, "type": exc.ename, "message": exc.evalue},
        )
        print(
            f"\nFAILED: notebook {spec.name}, cell [{exc.exec_count}] (index {exc.cell_index}): {exc.ename}: "
            f"{exc.evalue}\n        partial executed copy: {executed}",
            file=sys.stderr,
            flush=True,
        )
    except Exception as exc:  # kernel death, missing kernel, bad notebook JSON
        entry.update(status="failed", error={"cell": None, "type": type(exc).__name__, "message": str(exc)})
        print(f"\nFAILED: notebook {spec.name} did not run: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    entry["wall_s"] = round(time.perf_counter() - start, 2)
    if executed.is_file():
        entry["html"] = export_html(executed).relative_to(run).as_posix()
    return entry


def _absent_tasks(spec: NotebookSpec, run: Path) -> list[str]:
    """Data tasks a notebook needs that the prepared data (notebook 00's report) lacks."""
    report = paths.in_run(run, course_table.DATA) / "data_report.json"
    if not spec.requires or not report.is_file():
        return []
    sources = read_json(report).get("sources", {})
    return [task for task in spec.requires if not sources.get(task)]


def _write_manifest(path: Path, prof, started: str, entries: dict, specs: list[NotebookSpec], finished: bool) -> dict:
    """The run manifest; written after every notebook (`finished` False) and once more at the end."""
    data_report = paths.in_run(path.parent, course_table.DATA) / "data_report.json"
    data = read_json(data_report) if data_report.is_file() else {}
    manifest = {
        "profile": prof.name,
        "profile_settings": prof.to_dict(),
        "seed": prof.seed,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds") if finished else None,
        "git": git_state(),
        "environment": environment(),
        "numerics": numerics.describe(),
        "data": {
            k: data.get(k) for k in ("origin", "description", "data_root", "fingerprint", "split_source", "counts")
        },
        "notebooks": [entries[s.name] for s in specs if s.name in entries],
    }
    write_json(path, manifest)
    return manifest


def describe(entry: dict) -> str:
    """One line per notebook for the end-of-run summary."""
    if entry.get("up_to_date"):
        ran = entry.get("ran") or {}
        return f"up to date (reuses the run started {ran.get('started')}, commit {str(ran.get('commit'))[:10]}" + (
            " with uncommitted changes)" if ran.get("dirty") else ")"
        )
    return entry["status"] + (f": {entry['reason']}" if entry.get("reason") else "")


def unwritable(folder: Path) -> str:
    """Why reports cannot be written to `folder` ("" when they can), found before any notebook runs."""
    if folder.exists() and not folder.is_dir():
        return f"cannot write reports to {folder}: it is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        where = "" if exc.filename in (None, str(folder)) else f"{exc.filename}: "
        return f"cannot write reports to {folder}: {where}{exc.strerror or exc}"
    return ""


@dataclass
class _Plan:
    """What a run will consider, decided before anything is touched."""

    prof: object
    data_root: str
    external: list[str]
    specs: list[NotebookSpec]
    chosen: list[NotebookSpec]
    needed: dict[str, str]  # notebook -> the selected one that reads its outputs
    considered: list[NotebookSpec]
    run: Path


@dataclass
class _State:
    """One run in progress: where it works, what the manifest says, what ran and what failed."""

    run: Path
    stage: Path
    work: Path
    entries: dict
    started: str
    this_run: dict
    libraries: dict
    digests: incremental.Digests = field(default_factory=incremental.Digests)
    failed: set = field(default_factory=set)
    executed: list = field(default_factory=list)


def _plan(profile, data_root, only, reports_root, external, notebooks, course) -> _Plan | int:
    """Check the arguments and pick the notebooks to consider; an exit code (2) for bad arguments."""
    prof = get_profile(profile)
    if data_root:
        data_root = str(Path(data_root).expanduser().resolve())
        if not Path(data_root).is_dir():
            print(f"error: --data-root {data_root}: no such folder", file=sys.stderr)
            return 2
    external = [str(Path(e).expanduser().resolve()) for e in external or []]
    for folder in external:
        if not Path(folder).is_dir():
            print(f"error: --external {folder}: no such folder", file=sys.stderr)
            return 2
    if not data_root and prof.expects_real_data:
        print(
            f"warning: profile {profile!r} is meant for real data (--data-root); running on the embedded "
            "synthetic data at full size, which is slow on CPU",
            file=sys.stderr,
        )
    specs = discover(notebooks, course)
    chosen = select(specs, only)
    needed = upstream_of(specs, chosen)
    considered = [s for s in specs if s in chosen or s.name in needed]
    run = paths.run_dir(profile, reports_root)
    problem = unwritable(run.parent)  # the run folder itself appears only when a run succeeds (staging)
    if problem:
        print(f"error: --reports-root: {problem}", file=sys.stderr)
        return 2
    return _Plan(prof, data_root, external, specs, chosen, needed, considered, run)


def _open(run: Path) -> _State:
    """Recover from a crash, resume a kept staging folder, and note what this run is made of."""
    incremental.recover(run)
    stage = incremental.staging_dir(run)
    work = stage if stage.is_dir() else run
    if work == stage:
        print(
            f"resuming the unfinished run kept in {stage} (its finished notebooks count as done; delete the "
            f"folder to start over from {run})",
            file=sys.stderr,
        )
    manifest = read_json(work / MANIFEST) if (work / MANIFEST).is_file() else {}
    git = git_state()
    path = numerics.describe()
    libraries = {
        "python": sys.version.split()[0],
        **package_versions(),
        "numerics": f"{path['mode']}, {path['threads']} threads, "
        + " ".join(f"{k}={v}" for k, v in sorted(path["variables"].items())),
    }
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return _State(
        run=run,
        stage=stage,
        work=work,
        entries={e["name"]: e for e in manifest.get("notebooks", [])},
        started=started,
        this_run={"started": started, "commit": git["commit"], "dirty": git["dirty"]},
        libraries=libraries,
    )


def _execute(spec: NotebookSpec, plan: _Plan, state: _State, params: dict, force: bool, package) -> None:
    """One notebook: skipped (upstream failed), not applicable, up to date, or run; the manifest follows."""
    prof, entries = plan.prof, state.entries
    blocked = [d for d in spec.depends_on if d in state.failed]
    if blocked:
        print(f"\n=== {spec.name} === skipped: upstream {', '.join(blocked)} failed", file=sys.stderr)
        entries[spec.name] = {"name": spec.name, "status": "skipped", "reason": f"upstream {', '.join(blocked)} failed"}
        state.failed.add(spec.name)
        return
    absent = _absent_tasks(spec, state.work)
    if absent:
        reason = f"the data has no {' or '.join(absent)} layout"
        print(f"\n=== {spec.name} === not applicable: {reason}", file=sys.stderr)
        if entries.get(spec.name, {}).get("status") != "not applicable":
            state.work = incremental.begin(state.run)
            incremental.clear(state.work, spec.owned())
            entries[spec.name] = {"name": spec.name, "status": "not applicable", "reason": reason}
        return
    by_name = {s.name: s for s in plan.specs}
    upstream = {r: state.digests.tree(state.work, by_name[r].outputs) for r in spec.reads if r in by_name}
    profile = prof.name
    files = {f.format(profile=profile): paths.repo_root() / f.format(profile=profile) for f in spec.reads_files}
    now = incremental.inputs(spec.path, params, state.libraries, upstream, state.digests, package, files)
    reasons = incremental.stale_reasons(entries.get(spec.name), now, state.digests.tree(state.work, spec.outputs))
    forced = force and spec in plan.chosen
    if not reasons and not forced:
        entries[spec.name] = entries[spec.name] | {"up_to_date": True}
        print(f"=== {spec.name} === {describe(entries[spec.name])}", flush=True)
        return
    why = "forced (--force)" if forced else "; ".join(reasons)
    if spec.name in plan.needed:
        why = f"not selected, but {plan.needed[spec.name]} reads its outputs and it is out of date: {why}"
    print(f"\n=== {spec.name} === runs: {why}", flush=True)
    state.work = incremental.begin(state.run)
    incremental.clear(state.work, spec.owned())
    entries[spec.name] = {"name": spec.name, "status": "running", "ran": state.this_run}  # a kill leaves this mark
    _write_manifest(state.work / MANIFEST, prof, state.started, entries, plan.specs, finished=False)
    params["reports_root"] = str(state.work.parent)
    entry = run_notebook(spec, params, state.work)
    entry |= {"ran": state.this_run, "up_to_date": False, "inputs": now}
    entry["parameters"] = {k: v for k, v in params.items() if k not in incremental.LOCATION_PARAMETERS}
    state.executed.append(spec.name)
    if entry["status"] == "ok":
        entry["outputs"] = state.digests.tree(state.work, spec.outputs)
    else:
        state.failed.add(spec.name)
    entries[spec.name] = entry
    _write_manifest(
        state.work / MANIFEST, prof, state.started, entries, plan.specs, finished=False
    )  # the report reads it


def _finish(plan: _Plan, state: _State) -> int:
    """Close the manifest; replace the run folder only when everything that ran succeeded."""
    run, stage = state.run, state.stage
    if state.work == run:
        print(f"\nnothing to do: every selected notebook is up to date in {run} (--force runs them anyway)")
        return 0
    manifest = _write_manifest(
        state.work / MANIFEST, plan.prof, state.started, state.entries, plan.specs, finished=True
    )
    print(f"\nmanifest: {run / MANIFEST}")
    for e in manifest["notebooks"]:
        print(f"  {e['name']:<32} {e.get('wall_s', '-')!s:>8} s  {describe(e)}")
    if state.failed:
        print(
            f"\n{len(state.failed)} notebook(s) did not finish: {', '.join(sorted(state.failed))}.\n{run} is unchanged "
            f"(the previous report stays); this run's results are kept in {stage}, and the next run resumes from "
            "them, re-running only what failed or changed.",
            file=sys.stderr,
        )
        return 1
    incremental.promote(state.work, run)
    stale = [
        s.name
        for s in plan.specs
        if s not in plan.considered
        and s.name in state.entries
        and state.entries[s.name].get("status") == "ok"
        and any(r in state.executed for r in s.reads)
    ]
    if stale:
        print(
            f"note: not selected but reading what this run changed, so now out of date: {', '.join(stale)} "
            "(a run without --only brings them up to date)",
            file=sys.stderr,
        )
    return 0


def run_course(
    profile: str = "cpu",
    data_root: str = "",
    only: list[str] | None = None,
    reports_root: str = "",
    skip_bad: bool = False,
    external: list[str] | None = None,
    notebooks: Path | None = None,
    force: bool = False,
    package: Path | None = None,
    numerics_mode: str = "pinned",
    course: tuple[course_table.Notebook, ...] = course_table.COURSE,
) -> int:
    """Run the out-of-date notebooks among those selected; return the process exit code.

    Three steps: plan (arguments, selection), execute (each considered
    notebook in order, in a staging copy), finish (manifest, promotion).
    `package` is the folder whose modules count as the notebooks' code (the
    installed `helpers` by default; tests point it at a copy they edit);
    `notebooks` and `course` a folder of notebooks and its table (tests).
    """
    plan = _plan(profile, data_root, only, reports_root, external, notebooks, course)
    if isinstance(plan, int):
        return plan
    numerics.apply(numerics_mode, plan.prof.threads)  # the kernels this run starts inherit it
    with incremental.locked(plan.run):
        state = _open(plan.run)
        try:
            for spec in plan.considered:
                params = declared_parameters(
                    spec,
                    plan.prof.params_for(spec.name, data_root=plan.data_root, reports_root=reports_root)
                    | {"skip_bad": skip_bad, "external": plan.external},
                )
                _execute(spec, plan, state, params, force, package)
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: {plan.run} is unchanged; the notebooks finished so far are kept in {state.stage} "
                "and the next run resumes from them",
                file=sys.stderr,
            )
            return 130
        return _finish(plan, state)
