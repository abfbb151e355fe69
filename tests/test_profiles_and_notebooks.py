"""One configuration source: notebook defaults equal the cpu profile; notebooks are clean."""

import ast

import nbformat
import papermill as pm
import pytest

from helpers import paths
from helpers.profiles import PROFILE_NAMES, PROFILES, get_profile
from helpers.runner import discover

NOTEBOOKS = discover()


def test_course_has_notebooks_in_order():
    names = [s.name for s in NOTEBOOKS]
    assert names[:3] == ["00_data", "01_eda", "02_contrastive_pretraining"]
    known = set(names)
    for spec in NOTEBOOKS:
        assert set(spec.depends_on) <= known, f"{spec.name} depends on unknown notebooks"
        assert all(names.index(d) < names.index(spec.name) for d in spec.depends_on), (
            f"{spec.name}: upstream runs later"
        )


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_parameters_cell_defaults_are_the_cpu_profile(spec):
    declared = pm.inspect_notebook(str(spec.path))
    defaults = {name: ast.literal_eval(p["default"]) for name, p in declared.items()}
    expected = PROFILES["cpu"].params_for(spec.name)
    for name, value in expected.items():
        assert name in defaults, f"{spec.path.name}: parameters cell does not declare {name}"
        assert defaults[name] == value, (
            f"{spec.path.name}: default {name}={defaults[name]!r}, cpu profile says {value!r}"
        )


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_notebook_is_committed_clean(spec):
    nb = nbformat.read(spec.path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert nb.cells[0].cell_type == "markdown" and "You will learn" in nb.cells[0].source
    assert "Exercises" in nb.cells[-1].source


def test_profiles_are_complete_and_ordered_by_size():
    assert set(PROFILES) == set(PROFILE_NAMES)
    smoke, cpu, full = (PROFILES[n] for n in ("smoke", "cpu", "full"))
    assert smoke.epochs <= cpu.epochs <= full.epochs
    assert smoke.synthetic.per_class < cpu.synthetic.per_class
    assert full.expects_real_data and full.image_size == 352


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, cpu, full"):
        get_profile("gpu")


def test_paths_come_from_one_place(tmp_path):
    assert paths.stage_dir("smoke", "01_eda", tmp_path) == tmp_path.resolve() / "smoke" / "01_eda"
    assert paths.synthetic_root("cpu") == paths.repo_root() / "data" / "synthetic" / "cpu"


def test_profiles_change_only_settings_the_cpu_profile_has():
    from helpers import profiles

    with pytest.raises(KeyError, match="03_knowledge_distillation.student_epoch"):
        profiles._changed(**{"03_knowledge_distillation": {"student_epoch": 3}})  # a typo must not pass silently
    smoke = profiles.PROFILES["smoke"].notebook_params["03_knowledge_distillation"]
    assert (
        smoke["student_epochs"] == 1
        and smoke["students"] == profiles.CPU_NOTEBOOKS["03_knowledge_distillation"]["students"]
    )
