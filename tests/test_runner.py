"""The headless runner: failures are reported with the cell, independent notebooks still run."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.runner import NotebookSpec, run_course, select


def make_notebook(folder, name, source, depends_on=(), requires=()):
    params = new_code_cell('profile = "cpu"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(source)])
    nb.metadata["course"] = {"depends_on": list(depends_on), "requires": list(requires)}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.mark.notebooks
def test_failure_names_notebook_and_cell_and_independent_notebooks_run(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    make_notebook(nbs, "00_ok", "print('profile is', profile)")
    make_notebook(nbs, "01_fails", "x = 1\nraise ValueError('planted failure')", depends_on=["00_ok"])
    make_notebook(nbs, "02_after_failure", "print('never')", depends_on=["01_fails"])
    make_notebook(nbs, "03_independent", "print('still runs')", depends_on=["00_ok"])
    code = run_course("smoke", reports_root=str(tmp_path / "reports"), notebooks=nbs)
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
    specs = [NotebookSpec("00_data", None), NotebookSpec("01_eda", None), NotebookSpec("02_ssl", None)]
    assert [s.name for s in select(specs, ["01"])] == ["01_eda"]
    assert [s.name for s in select(specs, ["00_data", "02"])] == ["00_data", "02_ssl"]
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
    make_notebook(nbs, "03_needs_labels", "raise RuntimeError('must not run')", requires=["classification"])
    report = tmp_path / "reports" / "smoke" / "data" / "data_report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"sources": {"classification": None, "segmentation": "/x/kvasir-seg"}}))
    assert run_course("smoke", reports_root=str(tmp_path / "reports"), notebooks=nbs) == 0
    assert "03_needs_labels === not applicable: the data has no classification layout" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "reports" / "smoke" / "manifest.json").read_text())
    assert manifest["notebooks"][0]["status"] == "not applicable"
