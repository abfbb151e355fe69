"""One configuration source: notebook defaults equal the cpu profile; notebooks are clean."""

import ast
import tomllib

import nbformat
import papermill as pm
import pytest

from helpers import course, paths
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


def _names_read(path) -> set[str]:
    """Every name a notebook's code cells (not its parameters cell) load."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    trees = [ast.parse(transform(c.source)) for c in cells if "parameters" not in c.metadata.get("tags", [])]
    return {n.id for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Name)}


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_parameters_cell_declares_what_the_notebook_reads_with_the_cpu_values(spec):
    """Declared parameters are inputs (changing one re-runs the notebook): a notebook declares only those it reads."""
    declared = pm.inspect_notebook(str(spec.path))
    defaults = {name: ast.literal_eval(p["default"]) for name, p in declared.items()}
    cpu = PROFILES["cpu"]
    expected, own, read = cpu.params_for(spec.name), cpu.notebook_params.get(spec.name, {}), _names_read(spec.path)
    for name, value in expected.items():
        if name in own or name in read:
            assert name in defaults, f"{spec.path.name}: parameters cell does not declare {name}"
            assert defaults[name] == value, f"{spec.path.name}: default {name}={defaults[name]!r}, cpu says {value!r}"
    for name in defaults:
        assert name in read, f"{spec.path.name} declares {name} but never reads it"
        assert name in expected or name in ("skip_bad", "external"), f"{spec.path.name}: {name} is in no profile"


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
    assert smoke.notebook_params[course.SEG]["seg_epochs"] < cpu.notebook_params[course.SEG]["seg_epochs"]
    assert smoke.synthetic.per_class < cpu.synthetic.per_class
    assert full.expects_real_data and full.image_size == 352


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="smoke, cpu, full"):
        get_profile("gpu")


def test_paths_come_from_one_place(tmp_path):
    assert paths.stage_dir("smoke", course.KD, tmp_path) == tmp_path.resolve() / "smoke" / course.folder(course.KD)
    with pytest.raises(KeyError, match="not in the course table"):
        paths.stage_dir("smoke", course.folder(course.KD), tmp_path)  # a folder name is not a notebook
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


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.name)
def test_notebook_code_cells_are_short(spec):
    """Notebooks are thin: narrative and calls into helpers. Logic longer than this belongs in the package."""
    cells = [c.source.splitlines() for c in nbformat.read(spec.path, as_version=4).cells if c.cell_type == "code"]
    assert max(len(lines) for lines in cells) <= 20, f"{spec.path.name}: a code cell over 20 lines"
    width = tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    assert max(len(line) for lines in cells for line in lines) <= width, f"{spec.path.name}: a line over {width}"
