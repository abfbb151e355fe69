"""The headless runner: failures are reported with the cell, independent notebooks still run."""

import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import course, paths
from helpers.runner import NotebookSpec, discover, run_course, select, upstream_of


def make_notebook(folder, name, source, depends_on=(), requires=()) -> course.Notebook:
    """A tiny notebook in `folder`, and its row of the course table the test runs."""
    params = new_code_cell('profile = "cpu"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")
    return course.Notebook(name, f"{name}_out", tuple(depends_on), requires=tuple(requires))


@pytest.mark.notebooks
def test_failure_names_notebook_and_cell_and_independent_notebooks_run(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    table = (
        make_notebook(nbs, "00_ok", "print('profile is', profile)"),
        make_notebook(nbs, "01_fails", "x = 1\nraise ValueError('planted failure')", depends_on=["00_ok"]),
        make_notebook(nbs, "02_after_failure", "print('never')", depends_on=["01_fails"]),
        make_notebook(nbs, "03_independent", "print('still runs')", depends_on=["00_ok"]),
    )
    code = run_course("smoke", reports_root=str(tmp_path / "reports"), notebooks=nbs, course=table)
    err = capsys.readouterr().err
    assert code == 1
    # cell [3]: Papermill inserts the injected-parameters cell after the parameters cell
    assert "FAILED: notebook 01_fails, cell [3]" in err and "ValueError: planted failure" in err
    assert "partial executed copy" in err and "02_after_failure === skipped" in err
    # a failed run leaves its results in the staging folder, never in reports/smoke/
    assert not (tmp_path / "reports" / "smoke").exists()
    manifest = json.loads((tmp_path / "reports" / ".staging" / "smoke" / "manifest.json").read_text())
    status = {e["name"]: e["status"] for e in manifest["notebooks"]}
    assert status == {"00_ok": "ok", "01_fails": "failed", "02_after_failure": "skipped", "03_independent": "ok"}
    failed = next(e for e in manifest["notebooks"] if e["name"] == "01_fails")
    assert failed["error"]["type"] == "ValueError" and failed["error"]["cell"] == 3
    executed = nbformat.read(tmp_path / "reports" / ".staging" / "smoke" / failed["executed"], as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))
    ok = nbformat.read(tmp_path / "reports" / ".staging" / "smoke" / "notebooks" / "00_ok.ipynb", as_version=4)
    assert "profile is smoke" in "".join(o.get("text", "") for c in ok.cells for o in c.get("outputs", []))
    assert manifest["profile"] == "smoke" and "torch" in manifest["environment"]["packages"]
    assert set(manifest["git"]) == {"commit", "dirty"}


def test_only_selects_by_name_or_number():
    specs = [NotebookSpec("00_data", None), NotebookSpec("01_eda", None), NotebookSpec("02_pretrain", None)]
    assert [s.name for s in select(specs, ["01"])] == ["01_eda"]
    assert [s.name for s in select(specs, ["00_data", "02"])] == ["00_data", "02_pretrain"]
    assert select(specs, None) == specs
    with pytest.raises(SystemExit, match="no notebook matches 09"):
        select(specs, ["09"])


def test_missing_data_root_fails_before_any_notebook(tmp_path, capsys):
    assert run_course("smoke", data_root=str(tmp_path / "nope"), reports_root=str(tmp_path / "r")) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_notebook_whose_data_task_is_absent_is_not_applicable(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    table = (make_notebook(nbs, "03_needs_labels", "raise RuntimeError('must not run')", requires=["classification"]),)
    report = paths.in_run(tmp_path / "reports" / "smoke", course.DATA) / "data_report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"sources": {"classification": None, "segmentation": "/x/kvasir-seg"}}))
    assert run_course("smoke", reports_root=str(tmp_path / "reports"), notebooks=nbs, course=table) == 0
    assert "03_needs_labels === not applicable: the data has no classification layout" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "reports" / "smoke" / "manifest.json").read_text())
    assert manifest["notebooks"][0]["status"] == "not applicable"


def test_upstream_of_follows_reads_transitively():
    specs = [
        NotebookSpec("00_data", None),
        NotebookSpec("01_eda", None, ["00_data"]),
        NotebookSpec("02_pretrain", None, ["00_data"]),
        NotebookSpec("07_report", None, reads=["01_eda", "02_pretrain"]),
    ]
    assert upstream_of(specs, [specs[1]]) == {"00_data": "01_eda"}
    assert upstream_of(specs, [specs[3]]) == {"01_eda": "07_report", "02_pretrain": "07_report", "00_data": "07_report"}
    assert upstream_of(specs, specs[:2]) == {}


def _new_polyp_folder(root, bad=True):
    """Kvasir-SEG layout from hand-made frames (upper-case .JPEG), plus the bad files of the trust issue."""
    import numpy as np
    from PIL import Image

    from helpers.data import render_frame

    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(10):
        frame = render_frame(rng, 96, 112, n_polyps=1)
        Image.fromarray(frame.image).save(root / "images" / f"p{i}.JPEG", quality=90)
        Image.fromarray(frame.mask * 255).save(root / "masks" / f"p{i}.png")
    if bad:
        good = (root / "images" / "p0.JPEG").read_bytes()
        (root / "images" / "truncated.jpg").write_bytes(good[: len(good) // 3])
        (root / "masks" / "truncated.png").write_bytes((root / "masks" / "p0.png").read_bytes())
        (root / "images" / "notes.jpg").write_text("not an image")
        (root / "masks" / "notes.png").write_bytes((root / "masks" / "p0.png").read_bytes())
        (root / "images" / "lonely.jpg").write_bytes(good)
    return root


@pytest.mark.notebooks
def test_only_01_with_new_data_runs_00_first_and_reports_the_new_data(tmp_path, capsys):
    """The trust issue's case 1: `--only 01 --data-root DIR` after a run on other data."""
    from conftest import snapshot

    reports = str(tmp_path / "reports")
    assert run_course("smoke", reports_root=reports, only=["00", "01"]) == 0
    eda = paths.in_run(tmp_path / "reports" / "smoke", course.EDA) / "eda_summary.json"
    assert "synthetic" in json.loads(eda.read_text())["provenance"]
    before = eda.read_bytes()
    folder = _new_polyp_folder(tmp_path / "hospital-b")
    untouched = snapshot(folder)
    capsys.readouterr()
    assert run_course("smoke", data_root=str(folder), reports_root=reports, only=["01"]) == 1  # bad files: refuses
    out, err = capsys.readouterr()
    assert "=== 00_data === runs: not selected, but 01_eda reads its outputs and it is out of date" in out
    for name in ("truncated.jpg", "notes.jpg", "lonely.jpg"):
        assert name in err, name  # every bad file is named
    assert "01_eda === skipped: upstream 00_data failed" in err
    assert eda.read_bytes() == before  # the last good report is untouched, never relabelled
    assert run_course("smoke", data_root=str(folder), reports_root=reports, only=["01"], skip_bad=True) == 0
    summary = json.loads(eda.read_text())
    assert f"real data in {folder}" in summary["provenance"] and summary["class_counts"] is None
    report = json.loads((paths.in_run(tmp_path / "reports" / "smoke", course.DATA) / "data_report.json").read_text())
    assert sum(report["counts"]["segmentation"].values()) == 10
    assert {b["path"].rsplit("/", 1)[-1] for b in report["bad_files"]} >= {"truncated.jpg", "notes.jpg", "lonely.jpg"}
    manifest = json.loads((tmp_path / "reports" / "smoke" / "manifest.json").read_text())
    assert manifest["data"]["data_root"] == str(folder) and manifest["numerics"]["mode"] == "pinned"
    assert snapshot(folder) == untouched


def test_a_notebook_refuses_a_data_report_about_other_data(tmp_path):
    from helpers.data import DataError, read_data_report

    path = paths.in_run(tmp_path / "smoke", course.DATA) / "data_report.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"origin": "synthetic", "data_root": "/x/synthetic"}))
    assert read_data_report("smoke", tmp_path, "")["origin"] == "synthetic"
    assert read_data_report("smoke", tmp_path)["origin"] == "synthetic"  # no expectation: no check
    with pytest.raises(
        DataError, match=r"describes the embedded synthetic data, but this notebook was asked for /elsewhere"
    ):
        read_data_report("smoke", tmp_path, "/elsewhere")
    path.write_text(json.dumps({"origin": "real", "data_root": str(tmp_path)}))
    assert read_data_report("smoke", tmp_path, str(tmp_path))["origin"] == "real"
    with pytest.raises(DataError, match="asked for the embedded synthetic data"):
        read_data_report("smoke", tmp_path, "")


def test_the_course_table_and_the_notebooks_folder_must_agree(tmp_path):
    a, b = make_notebook(tmp_path, "00_a", "x = 1"), make_notebook(tmp_path, "01_b", "x = 2", depends_on=["00_a"])
    assert [(s.name, s.outputs, s.reads) for s in discover(tmp_path, (a, b))] == [
        ("00_a", ["00_a_out"], []),
        ("01_b", ["01_b_out"], ["00_a"]),
    ]
    with pytest.raises(SystemExit, match="01_b in .* not in the course table"):
        discover(tmp_path, (a,))
    with pytest.raises(SystemExit, match="lists 02_c, which"):
        discover(tmp_path, (a, b, course.Notebook("02_c", "c")))


def test_no_stage_folder_name_is_written_outside_the_course_table():
    """Code names a stage by its notebook (helpers.course constants); only the table knows the folder."""
    folders = {nb.folder for nb in course.COURSE if nb.folder not in ("", "data", nb.name)}
    root = paths.repo_root()
    files = [*root.glob("src/helpers/**/*.py"), *root.glob("tests/*.py"), *root.glob("benchmarks/*.py")]
    files += list(root.glob("notebooks/*.ipynb"))
    found = [
        f"{path.relative_to(root)}: {folder}"
        for path in files
        if path.name != "course.py"
        for folder in folders
        if re.search(rf"[\"']{folder}[/\"'\\]", path.read_text())  # a string that starts with the folder
    ]
    assert not found, found
    assert discover()  # and the real notebooks folder agrees with the table
