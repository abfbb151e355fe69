"""Staleness rules and staged runs: what re-runs, what is reused, and that a failed or killed run never touches
the last good report."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import course, incremental
from helpers.runner import discover, run_course

PACKAGE = Path(incremental.__file__).parent


def test_imports_resolve_relative_and_absolute_forms():
    tree = incremental.ast.parse("from . import images\nfrom .. import paths\nfrom ..segment import fit\nimport os")
    assert incremental._imports(tree, "helpers.data.course") == {
        "helpers",
        "helpers.data",
        "helpers.data.images",
        "helpers.paths",
        "helpers.segment",
        "helpers.segment.fit",
    }
    inside_package = incremental._imports(incremental.ast.parse("from .images import decode"), "helpers.data", True)
    assert inside_package == {"helpers", "helpers.data", "helpers.data.images", "helpers.data.images.decode"}
    lazy = "def f():\n    from helpers.segment import fit\n    import helpers.ensemble as e\n"
    assert {"helpers.segment", "helpers.ensemble"} <= incremental._imports(incremental.ast.parse(lazy))
    assert incremental._imports(incremental.ast.parse("import numpy\nfrom pandas import DataFrame")) == set()


def test_code_modules_follow_the_package_imports(tmp_path):
    pkg = tmp_path / "helpers"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import json\n")
    (pkg / "unused.py").write_text("")
    nb = new_notebook(cells=[new_code_cell("%matplotlib inline\n!ls\nfrom helpers.a import thing")])
    nbformat.write(nb, tmp_path / "n.ipynb")
    found = incremental.code_modules(incremental.notebook_code(tmp_path / "n.ipynb"), pkg)  # magics translated
    assert set(found) == {"helpers", "helpers.a", "helpers.b", "helpers.sub", "helpers.sub.c"}
    assert incremental.code_modules(["import os"], pkg) == {}
    # a notebook that does not parse depends on everything (rebuilding too much is safe)
    assert set(incremental.code_modules(["def broken(:"], pkg)) == set(found) | {"helpers.unused"}


def test_course_notebooks_depend_on_exactly_the_modules_they_use():
    """Editing one helper module makes exactly the notebooks that (transitively) import it stale."""
    users = {}
    for spec in discover():
        for module in incremental.code_modules(incremental.notebook_code(spec.path)):
            users.setdefault(module, set()).add(spec.name[:2])
    assert users["helpers.ssl"] == {"02", "03"}  # 03 distils on notebook 02's unlabeled pool
    assert users["helpers.ensemble"] == {"05"}
    assert users["helpers.deploy"] == {"06"}
    assert users["helpers.report"] == {"07"}
    assert users["helpers.segment"] == {"04", "05", "06"}
    assert users["helpers.paths"] == {"00", "01", "02", "03", "04", "05", "06", "07"}
    assert "helpers.runner" not in users and "helpers.incremental" not in users  # orchestration is not course code


def test_course_notebooks_declare_distinct_outputs_and_known_reads():
    specs = discover()
    names = {s.name for s in specs}
    owned = [o for s in specs for o in s.outputs]
    assert all(s.outputs for s in specs) and len(owned) == len(set(owned))
    for s in specs:
        assert set(s.reads) <= names and set(s.depends_on) <= set(s.reads)
    assert set(specs[-1].reads) == names - {specs[-1].name}  # the report reads every stage
    assert specs[-1].reads_files == ["reports/reference/{profile}/metrics.json"]  # and the reference it checks against


def _entry(**inputs):
    base = {
        "notebook": "n",
        "code": {"helpers.a": "1"},
        "parameters": {"seed": 0},
        "libraries": {"torch": "2"},
        "data": None,
        "upstream": {"00": "u"},
        "files": {"ref.json": "r"},
    }
    return base | inputs


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"notebook": "n2"}, "the notebook changed"),
        ({"code": {"helpers.a": "2"}}, "helpers code changed: helpers.a"),
        ({"code": {"helpers.a": "1", "helpers.b": "1"}}, "helpers code changed: helpers.b"),
        ({"parameters": {"seed": 1}}, "parameters changed: seed"),
        ({"libraries": {"torch": "3"}}, "library versions changed: torch"),
        ({"data": "d"}, "the data folder changed"),
        ({"upstream": {"00": "v"}}, "outputs it reads changed: 00"),
        ({"files": {"ref.json": "missing"}}, "files it reads changed: ref.json"),
    ],
)
def test_stale_reasons_name_what_changed(change, reason):
    previous = {"status": "ok", "inputs": _entry(), "outputs": "o"}
    assert incremental.stale_reasons(previous, _entry(**change), "o") == ([reason] if reason else [])


def test_stale_when_never_run_failed_or_outputs_touched():
    assert "no record" in incremental.stale_reasons(None, _entry(), "o")[0]
    assert "ended 'failed'" in incremental.stale_reasons({"status": "failed", "inputs": _entry()}, _entry(), "o")[0]
    assert incremental.stale_reasons({"status": "running"}, _entry(), "o") == ["its last run was interrupted"]
    touched = incremental.stale_reasons({"status": "ok", "inputs": _entry(), "outputs": "o"}, _entry(), "other")
    assert touched == ["its own outputs are missing or were modified"]


def test_notebook_digest_ignores_outputs_ids_and_counts(tmp_path):
    cell = new_code_cell("x = 1")
    nbformat.write(new_notebook(cells=[cell]), tmp_path / "a.ipynb")
    first = incremental.notebook_digest(tmp_path / "a.ipynb")
    ran = new_code_cell("x = 1", execution_count=3, outputs=[nbformat.v4.new_output("stream", text="hi")])
    nbformat.write(new_notebook(cells=[ran]), tmp_path / "a.ipynb")  # new cell id, an output, a count
    assert incremental.notebook_digest(tmp_path / "a.ipynb") == first
    tagged = new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[tagged]), tmp_path / "a.ipynb")
    assert incremental.notebook_digest(tmp_path / "a.ipynb") != first


def test_digest_of_outputs_ignores_hidden_temporaries_and_counts_absence(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.csv").write_text("1")
    d = incremental.Digests()
    first = d.tree(tmp_path, ["a"])
    (tmp_path / "a" / ".x.csv.123.tmp").write_text("half")
    assert d.tree(tmp_path, ["a"]) == first
    (tmp_path / "a" / "x.csv").write_text("2")
    assert d.tree(tmp_path, ["a"]) != first
    assert d.tree(tmp_path, ["missing"]) != d.tree(tmp_path, [])


def test_data_listing_changes_with_the_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"1")
    first = incremental.data_listing(str(tmp_path))
    assert incremental.data_listing("") is None and incremental.data_listing(str(tmp_path)) == first
    (tmp_path / "images" / "b.jpg").write_bytes(b"2")
    assert incremental.data_listing(str(tmp_path)) != first


def test_promote_and_recover_an_interrupted_swap(tmp_path):
    run = tmp_path / "smoke"
    run.mkdir()
    (run / "REPORT.md").write_text("old")
    stage = incremental.begin(run)
    assert (stage / "REPORT.md").read_text() == "old" and incremental.begin(run) == stage  # resumed, not re-copied
    (stage / "REPORT.md").write_text("new")
    assert (run / "REPORT.md").read_text() == "old"  # a copy: writing in staging never reaches the good run
    incremental.promote(stage, run)
    assert (run / "REPORT.md").read_text() == "new" and not stage.exists()
    # killed between the two renames of a swap: the run folder is away, the previous one is restored
    os.replace(run, incremental.previous_dir(run))
    incremental.recover(run)
    assert (run / "REPORT.md").read_text() == "new" and not incremental.previous_dir(run).exists()


# ---- whole runs on tiny notebooks -------------------------------------------------------------------------------


# The tiny course's table: 00 writes a/, 01 reads it and writes b/, 02 writes c/.
TOY = (course.Notebook("00_a", "a"), course.Notebook("01_b", "b", ("00_a",)), course.Notebook("02_c", "c"))


def _notebook(folder: Path, name: str, body: str) -> None:
    declared = 'profile = "cpu"\nseed = 0\nreports_root = ""' + ("\nskip_bad = False" if "skip_bad" in body else "")
    params = new_code_cell(declared)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


def _course(tmp_path: Path, b_extra: str = "", a_text: str = "f'a seed={seed} skip={skip_bad}'") -> tuple[Path, Path]:
    """00 writes a/ (uses paths), 01 reads a/ and writes b/ (uses tables), 02 writes c/ (uses paths only)."""
    nbs, pkg = tmp_path / "nbs", tmp_path / "pkg" / "helpers"
    nbs.mkdir(exist_ok=True)
    if not pkg.exists():
        shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    _notebook(
        nbs,
        "00_a",
        "from helpers import paths\nout = paths.run_dir(profile, reports_root) / 'a'\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        f"(out / 'a.txt').write_text({a_text})",
    )
    _notebook(
        nbs,
        "01_b",
        "from helpers import paths, tables\nrun = paths.run_dir(profile, reports_root)\n"
        "(run / 'b').mkdir(exist_ok=True)\n"
        f"(run / 'b' / 'b.txt').write_text('b<' + (run / 'a' / 'a.txt').read_text())\n{b_extra}",
    )
    _notebook(
        nbs,
        "02_c",
        "from helpers import paths\nout = paths.run_dir(profile, reports_root) / 'c'\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'c.txt').write_text('c')",
    )
    return nbs, pkg


def _run(tmp_path, nbs, pkg, capsys, **kw) -> tuple[int, dict]:
    code = run_course("smoke", reports_root=str(tmp_path / "reports"), notebooks=nbs, package=pkg, course=TOY, **kw)
    out = capsys.readouterr()
    lines = {}
    for name in ("00_a", "01_b", "02_c"):
        line = next((ln for ln in (out.out + out.err).splitlines() if ln.startswith(f"=== {name} ===")), "")
        lines[name] = line.removeprefix(f"=== {name} === ")
    return code, lines


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.notebooks
def test_incremental_runs_rerun_exactly_what_changed(tmp_path, capsys):
    nbs, pkg = _course(tmp_path)
    run = tmp_path / "reports" / "smoke"
    code, lines = _run(tmp_path, nbs, pkg, capsys)
    assert code == 0 and all(ln.startswith("runs: no record") for ln in lines.values())
    assert (run / "b" / "b.txt").read_text() == "b<a seed=0 skip=False"
    manifest = json.loads((run / "manifest.json").read_text())
    entry = manifest["notebooks"][1]
    assert entry["executed"] == "notebooks/01_b.ipynb" and entry["html"] == "notebooks/01_b.html"
    assert {"helpers.paths", "helpers.tables"} <= set(entry["inputs"]["code"]) and entry["inputs"][
        "upstream"
    ].keys() == {"00_a"}
    assert "reports_root" not in entry["parameters"] and not (tmp_path / "reports" / ".staging" / "smoke").exists()

    before = _snapshot(run)
    code, lines = _run(tmp_path, nbs, pkg, capsys)  # nothing changed: nothing runs, nothing is rewritten
    assert code == 0 and all(ln.startswith("up to date (reuses the run started") for ln in lines.values())
    assert _snapshot(run) == before

    (pkg / "tables.py").write_text((pkg / "tables.py").read_text() + "\n# an edit\n")
    code, lines = _run(tmp_path, nbs, pkg, capsys)  # only the notebook importing tables runs
    assert code == 0 and lines["01_b"] == "runs: helpers code changed: helpers.tables"
    assert lines["00_a"].startswith("up to date") and lines["02_c"].startswith("up to date")

    code, lines = _run(tmp_path, nbs, pkg, capsys, skip_bad=True)  # a parameter: 00 runs, 01 because a/ changed
    assert lines["00_a"] == "runs: parameters changed: skip_bad"
    assert lines["01_b"] == "runs: outputs it reads changed: 00_a" and lines["02_c"].startswith("up to date")
    assert (run / "b" / "b.txt").read_text() == "b<a seed=0 skip=True"

    (run / "c" / "c.txt").write_text("edited by hand")  # own output modified: it is rebuilt
    code, lines = _run(tmp_path, nbs, pkg, capsys, skip_bad=True)
    assert (
        lines["02_c"] == "runs: its own outputs are missing or were modified"
        and (run / "c" / "c.txt").read_text() == "c"
    )
    code, lines = _run(tmp_path, nbs, pkg, capsys, skip_bad=True, force=True, only=["02"])
    assert lines == {"00_a": "", "01_b": "", "02_c": "runs: forced (--force)"}


def _good_run(tmp_path, capsys) -> tuple[Path, Path, Path, Path, dict]:
    """A first successful run: notebooks, package copy, run folder, staging folder, and the run's bytes."""
    nbs, pkg = _course(tmp_path)
    run, stage = tmp_path / "reports" / "smoke", tmp_path / "reports" / ".staging" / "smoke"
    assert _run(tmp_path, nbs, pkg, capsys)[0] == 0
    return nbs, pkg, run, stage, _snapshot(run)


@pytest.mark.notebooks
def test_failed_run_keeps_the_previous_report_and_the_next_run_resumes(tmp_path, capsys):
    nbs, pkg, run, stage, good = _good_run(tmp_path, capsys)
    _course(tmp_path, b_extra="raise RuntimeError('planted')", a_text="'a v2'")
    code, lines = _run(tmp_path, nbs, pkg, capsys)
    assert code == 1 and lines["00_a"].startswith("runs: the notebook changed") and lines["01_b"].startswith("runs:")
    assert _snapshot(run) == good  # the good report is untouched, byte for byte
    assert (stage / "a" / "a.txt").read_text() == "a v2"  # this run's finished work waits in staging
    _course(tmp_path, a_text="'a v2'")  # 01 fixed
    code, lines = _run(tmp_path, nbs, pkg, capsys)
    assert code == 0 and lines["00_a"].startswith("up to date") and lines["01_b"] == "runs: its last run ended 'failed'"
    assert (run / "b" / "b.txt").read_text() == "b<a v2" and not stage.exists()


@pytest.mark.notebooks
def test_killed_run_leaves_the_previous_report_intact(tmp_path, capsys):
    nbs, pkg, run, stage, good = _good_run(tmp_path, capsys)
    # 01 now writes its output and then hangs: the run is killed while it works
    _course(tmp_path, b_extra="import time\nfor _ in range(600):\n    time.sleep(0.1)")
    script = (
        "import sys\nfrom pathlib import Path\nfrom helpers import course\nfrom helpers.runner import run_course\n"
        "TOY = (course.Notebook('00_a', 'a'), course.Notebook('01_b', 'b', ('00_a',)), course.Notebook('02_c', 'c'))\n"
        f"sys.exit(run_course('smoke', reports_root={str(tmp_path / 'reports')!r}, "
        f"notebooks=Path({str(nbs)!r}), package=Path({str(pkg)!r}), course=TOY))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (stage / "b" / "b.txt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (stage / "b" / "b.txt").is_file(), "the run never reached notebook 01"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _snapshot(run) == good
    _course(tmp_path)  # no more hanging: the next run resumes and completes
    code, lines = _run(tmp_path, nbs, pkg, capsys)
    # 01 had rewritten b.txt with the same bytes before the kill: the mark left in the manifest still re-runs it
    assert (
        code == 0 and lines["00_a"].startswith("up to date") and lines["01_b"] == "runs: its last run was interrupted"
    )
    assert not stage.exists() and (run / "b" / "b.txt").read_text() == "b<a seed=0 skip=False"
