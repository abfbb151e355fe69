"""The course in one table: each notebook, the folder it writes, what it needs and what it reads.

The runner plans a run from this table (order, what a failure blocks, what
makes a notebook out of date), `paths.stage_dir` turns a notebook's name into
its folder under `reports/<profile>/`, and a test checks that every notebook
in `notebooks/` has exactly one row. Code names a stage by the constants
below, never by its folder name. Adding a notebook: see the README.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA = "00_data"
EDA = "01_eda"
SSL = "02_contrastive_pretraining"
KD = "03_knowledge_distillation"
SEG = "04_segmentation_augmentation"
ENSEMBLE = "05_ensembling"
DEPLOY = "06_openvino_deployment"
REPORT = "07_report"


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course.

    `depends_on` must have succeeded in the same run state (a failure there
    blocks this one); `reads` are the notebooks whose outputs it reads, which
    make it out of date when they change (default: `depends_on`); `requires`
    are data tasks the data must provide ("classification", "segmentation");
    `writes` is what it owns under `reports/<profile>/` (default: its folder);
    `reads_files` are repository files it reads, "{profile}" filled in.
    """

    name: str
    folder: str
    depends_on: tuple[str, ...] = ()
    reads: tuple[str, ...] | None = None
    requires: tuple[str, ...] = ()
    writes: tuple[str, ...] | None = None
    reads_files: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.depends_on if self.reads is None else self.reads

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.folder,) if self.writes is None else self.writes


COURSE: tuple[Notebook, ...] = (
    Notebook(DATA, "data"),
    Notebook(EDA, "01_eda", (DATA,)),
    Notebook(SSL, "02_ssl", (DATA,)),
    Notebook(KD, "03_kd", (DATA, SSL), requires=("classification",)),
    Notebook(SEG, "04_seg", (DATA, SSL), requires=("segmentation",)),
    Notebook(ENSEMBLE, "05_ensemble", (DATA, SEG), reads=(DATA, KD, SEG), requires=("segmentation",)),
    Notebook(DEPLOY, "06_deploy", (DATA, KD, SEG)),
    Notebook(
        REPORT,
        "",  # writes at the top of the run folder
        (DATA,),
        reads=(DATA, EDA, SSL, KD, SEG, ENSEMBLE, DEPLOY),
        writes=("REPORT.md", "report.html"),
        reads_files=("reports/reference/{profile}/metrics.json",),
    ),
)

BY_NAME: dict[str, Notebook] = {nb.name: nb for nb in COURSE}


def notebook(name: str) -> Notebook:
    """The table's row for `name`, with an error that lists the course's notebooks."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the course table (helpers.course.COURSE): {', '.join(BY_NAME)}") from None


def folder(name: str) -> str:
    """The folder notebook `name` writes under `reports/<profile>/`."""
    return notebook(name).folder
