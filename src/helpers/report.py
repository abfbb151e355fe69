"""Headline metrics of a run, read from what each stage saved, and their check against a reference.

`collect` turns a run folder (``reports/<profile>/``) into one flat table of
named metrics — never re-typed numbers — each with its seed-to-seed spread
where the stage measured one. `make_reference` freezes such a table with a
tolerance per metric into ``reports/reference/<profile>/metrics.json``, and
`verify` (``python -m helpers verify``) compares a new run with it.

What is guaranteed (see `helpers.numerics`): a course run pins one CPU code
path, and on that path the same code, data and seed give *identical* metrics
— measured across instruction-set changes of the libraries on one x86-64 CPU
(`benchmarks/numerics_cost.py`). `verify` says how many metrics are identical
and whether the run's code path is the reference's.

Tolerance rule (also written into every reference file), for where identity
does not hold (the `native` code path, another architecture, a GPU): there,
floating-point differences send training down another path, as a different
seed would. A metric averaged over seeds gets `max(FLOOR, 2 × std)` with std
the larger of its own spread over seeds and its stage's median spread (a row
whose few seeds happened to agree does not get a tolerance of zero); a
single-run metric gets `max(FLOOR, 2 × the median seed std of its stage)`, or
of the whole run when its stage has no seeds (deployment); the
OpenVINO-vs-PyTorch parity gets the notebook's own tolerance.

Metrics are keyed by *role*, not by what was chosen on validation: the SSL
row of notebook 04 is `seg.<arch>.best.ssl.*` whatever augmentation row won.
The choices themselves (`choices`) are compared as their own lines, so a
choice that moved is reported as such, never as missing metrics.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from . import course, tables
from .artifacts import figure_caption, read_json, read_summary
from .paths import in_run

FLOOR = 0.01
PARITY_TOLERANCE = 1e-3
RULE = (
    "pinned code path: identical results expected; tolerance for other code paths: metric averaged over seeds: "
    "max(0.01, 2 x max(its std over seeds, median std of its stage)); single-run metric: max(0.01, 2 x median std "
    "over seeds of its stage, or of the whole run for a stage without seeds); OpenVINO FP32 parity: 1e-3 absolute."
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", str(text).lower()).strip("_")


def _rows(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def collect(run: Path) -> dict[str, dict]:
    """Every headline metric of a run: name -> {value, std (over seeds, or None), stage, source}.

    Stages that did not run (or do not apply to the data) simply contribute
    nothing; `verify` reports their reference metrics as missing.
    """
    run = Path(run)
    out: dict[str, dict] = {}

    def add(name: str, value, std, notebook: str, source: Path) -> None:
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            std = None if std is None or (isinstance(std, float) and np.isnan(std)) else float(std)
            stage = course.folder(notebook)
            out[name] = {"value": float(value), "std": std, "stage": stage, "source": str(source.relative_to(run))}

    if (t := _rows(f := in_run(run, course.SSL) / "few_label_eval.csv")) is not None:
        for r in t.itertuples():
            add(
                f"ssl.{_slug(r.method)}.{_slug(r.encoder)}.labels_{r.label_fraction:g}.macro_f1",
                r.macro_f1_mean,
                r.macro_f1_std,
                course.SSL,
                f,
            )
    if (t := _rows(f := in_run(run, course.KD) / "results.csv")) is not None:
        for r in t.to_dict("records"):
            who = "teacher" if "teacher" in str(r["student"]) else f"{_slug(r['student'])}.{_slug(r['method'])}"
            name = f"kd.{who}.labels_{r['budget']:g}"  # T is a choice on validation: `choices` reports it
            for metric in ("test_macro_f1", "test_accuracy"):
                add(
                    f"{name}.{metric}", r[f"{metric}_mean"], r[f"{metric}_std"] if r["runs"] > 1 else None, course.KD, f
                )
    if (t := _rows(f := in_run(run, course.SEG) / "results.csv")) is not None:
        for r in t.to_dict("records"):
            row = (
                "best" if r["init"] != "random" else _slug(r["augmentation"])
            )  # SSL init runs on the row chosen on val
            for metric in ("test_dice", "test_iou", "test_out_dice", "test_out_iou", "test_multi_dice"):
                if f"{metric}_mean" not in r:
                    continue  # no out-of-centre split (real data from one centre), or no multi-polyp test frame
                add(
                    f"seg.{r['arch']}.{row}.{_slug(r['init'])}.{metric}",
                    r[f"{metric}_mean"],
                    r[f"{metric}_std"] if r["runs"] > 1 else None,
                    course.SEG,
                    f,
                )
    if (t := _rows(f := in_run(run, course.ENSEMBLE) / "segmentation_results.csv")) is not None:
        for r in t.to_dict("records"):
            add(
                f"ens.seg.{_slug(r['model'])}.test_dice",
                r["test_dice_mean"],
                r["test_dice_std"] if r["runs"] > 1 else None,
                course.ENSEMBLE,
                f,
            )
    if (t := _rows(f := in_run(run, course.ENSEMBLE) / "classification_results.csv")) is not None:
        for r in t.to_dict("records"):
            model = re.sub(r"_t[\d.]+$", "_chosen_t", _slug(r["model"]))  # T chosen on validation: a choice
            add(f"ens.cls.{model}.test_macro_f1", r["macro_f1"], None, course.ENSEMBLE, f)
    if (t := _rows(f := in_run(run, course.DEPLOY) / "accuracy_by_precision.csv")) is not None:
        for r in t.to_dict("records"):
            for metric in ("accuracy", "macro_f1", "dice", "iou"):
                if metric in r:
                    add(f"deploy.{r['model']}.{_slug(r['runtime'])}.test_{metric}", r[metric], None, course.DEPLOY, f)
            if r["runtime"] == "OpenVINO FP32":
                add(
                    f"deploy.{r['model']}.fp32_parity_max_abs_logit_diff",
                    r["max_abs_logit_diff"],
                    None,
                    course.DEPLOY,
                    f,
                )
    return out


def choices(run: Path) -> dict[str, str]:
    """What each stage chose on validation (best row, temperature, student, vote), read from its saved files."""
    run, out = Path(run), {}
    if (f := in_run(run, course.KD) / "students" / "index.json").is_file():
        out["kd.best_student"] = str(read_json(f).get("best"))
    kd = read_summary(in_run(run, course.KD))
    for v in kd.get("verdicts", []):
        out[f"kd.{v['student']}.labels_{v['budget']:g}.temperature"] = f"{v['temperature']:g}"
    if cam := kd.get("cam_choice"):
        out["kd.cam"] = f"{cam['method']} at stride {cam['stride']}"
    if (f := in_run(run, course.SEG) / "models" / "index.json").is_file():
        index = read_json(f)
        out |= {f"seg.{arch}.best_row": str(row) for arch, row in index.get("best_rows", {}).items()}
        out["seg.best_model"] = str(index.get("best"))
    if summary := read_summary(in_run(run, course.ENSEMBLE)):
        for verdict in summary.get("segmentation") or []:
            out["ens.seg.best_member"] = str(verdict.get("best_member"))
        if summary.get("segmentation"):
            out["ens.seg.best_vote"] = str(summary["segmentation"][0].get("ensemble"))
        if cls := summary.get("classification"):
            out["ens.cls.best_member"], out["ens.cls.best_vote"] = str(cls["best_member"]), str(cls["best_vote"])
    return out


def tolerances(metrics: dict[str, dict]) -> dict[str, float]:
    """The tolerance of each metric by `RULE`."""
    seeded = [m["std"] for m in metrics.values() if m["std"] is not None]
    overall = float(np.median(seeded)) if seeded else 0.0
    stage_std: dict[str, float] = {}
    for stage in {m["stage"] for m in metrics.values()}:
        stds = [m["std"] for m in metrics.values() if m["stage"] == stage and m["std"] is not None]
        stage_std[stage] = (
            float(np.median(stds)) if stds else overall
        )  # a stage without seeds: the run's typical spread
    out = {}
    for name, m in metrics.items():
        if name.endswith("parity_max_abs_logit_diff"):
            out[name] = PARITY_TOLERANCE
        else:
            out[name] = max(FLOOR, 2 * max(m["std"] or 0.0, stage_std[m["stage"]]))
    return out


def make_reference(run: Path, profile: str) -> dict:
    """A reference table from a finished run: every metric, its tolerance, and where it came from."""
    run = Path(run)
    metrics = collect(run)
    if not metrics:
        raise ValueError(f"{run}: no stage metrics found (has the course run for this profile?)")
    manifest = read_json(run / "manifest.json") if (run / "manifest.json").is_file() else {}
    tol = tolerances(metrics)
    return {
        "profile": profile,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_run": {
            "git": manifest.get("git"),
            "data": manifest.get("data", {}).get("fingerprint"),
            "environment": {k: manifest.get("environment", {}).get(k) for k in ("platform", "cpu", "cpu_count", "gpu")},
            "numerics": manifest.get("numerics"),
        },
        "tolerance_rule": RULE,
        "choices": choices(run),
        "metrics": {
            n: {"value": m["value"], "tolerance": tol[n], "seed_std": m["std"], "source": m["source"]}
            for n, m in sorted(metrics.items())
        },
    }


def verify(run: Path, reference: dict) -> pd.DataFrame:
    """One row per reference metric (OK / FAIL / MISSING) and per choice made on validation (SAME / CHOICE DIFFERS)."""
    measured = collect(run)
    rows = []
    found = choices(run)
    for name, ref in reference.get("choices", {}).items():
        got = found.get(name)
        rows.append(
            {
                "metric": f"choice {name}",
                "reference": ref,
                "measured": got,
                "difference": np.nan,
                "tolerance": np.nan,
                "status": "SAME" if got == ref else "CHOICE DIFFERS",
            }
        )
    for name, ref in reference["metrics"].items():
        got = measured.get(name, {}).get("value")
        if got is None:
            status, diff = "MISSING", np.nan
        else:
            diff = abs(got - ref["value"])
            status = "OK" if diff <= ref["tolerance"] + 1e-12 else "FAIL"
        rows.append(
            {
                "metric": name,
                "reference": ref["value"],
                "measured": got,
                "difference": diff,
                "tolerance": ref["tolerance"],
                "status": status,
            }
        )
    return pd.DataFrame(rows)


STATUSES = ("OK", "FAIL", "MISSING", "SAME", "CHOICE DIFFERS")


def verdict_line(table: pd.DataFrame) -> str:
    """'90 OK, 0 FAIL, 0 MISSING; 85 identical; choices: 7 SAME, 0 CHOICE DIFFERS'."""
    counts = table["status"].value_counts().to_dict()
    metrics = table[table["status"].isin(("OK", "FAIL"))]
    identical = int((metrics["difference"] == 0).sum())
    return (
        ", ".join(f"{counts.get(k, 0)} {k}" for k in ("OK", "FAIL", "MISSING")) + f"; {identical} of {len(metrics)} "
        "measured metrics identical to the reference; choices made on validation: "
        + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("SAME", "CHOICE DIFFERS"))
    )


def code_paths(run_numerics: dict | None, reference_numerics: dict | None) -> str:
    """One line: the numeric code path of the run and of the reference, and whether identity can be expected."""

    def show(n: dict | None) -> str:
        if not n:
            return "not recorded"
        pins = " ".join(f"{k}={v}" for k, v in sorted((n.get("variables") or {}).items()) if k != "COURSE_NUMERICS")
        isa = (
            "AVX-512"
            if "avx512f" in (n.get("cpu_flags") or [])
            else "AVX2"
            if "avx2" in (n.get("cpu_flags") or [])
            else "?"
        )
        return f"{n.get('mode')}, {n.get('threads')} threads, CPU with {isa}" + (f" ({pins})" if pins else "")

    same = bool(
        run_numerics
        and reference_numerics
        and run_numerics.get("mode") == reference_numerics.get("mode") == "pinned"
        and run_numerics.get("threads") == reference_numerics.get("threads")
    )
    return f"code path of this run: {show(run_numerics)}; of the reference: {show(reference_numerics)} -> " + (
        "both pinned alike: identical metrics expected"
        if same
        else "not the same pinned path: differences within the tolerances are expected"
    )


# What the report shows per stage: its saved tables (each opens with its provenance line) and key figures.
SECTIONS = [
    (course.EDA, "Data", [], ["class_balance.png", "mask_stats.png"]),
    (
        course.SSL,
        "Self-supervised pretraining: SimCLR vs random init with few labels",
        ["few_label_eval.md"],
        ["few_label_eval.png"],
    ),
    (
        course.KD,
        "Knowledge distillation: teacher, students from scratch, distilled, and distilled with a transfer set",
        ["results.md", "cost.md", "cam_scores.md"],
        ["students_macro_f1.png", "confusion_matrices.png", "cam_energy.png"],
    ),
    (
        course.SEG,
        "Segmentation: the augmentation ablation, in-centre and out-of-centre",
        ["results.md", "cross_centre.md", "external.md"],
        ["ablation_dice.png", "best_worst_cases.png", "out_of_centre_worst_cases.png", "external_centres.png"],
    ),
    (
        course.ENSEMBLE,
        "Ensembles",
        ["segmentation_results.md", "centres.md", "classification_results.md"],
        ["segmentation_ensembles.png", "vote_rescue.png", "centres.png"],
    ),
    (course.DEPLOY, "Deployment: OpenVINO precision and speed", ["deployment.md"], ["benchmark.png"]),
]
# The course brief's published numbers that are not the same setting as any run: shown as context, labelled so.
CONTEXT = {
    course.KD: 'Published (course brief, polyp KD project, Kvasir v2 subset): "near 100%" classification, '
    "reported without split, per-class metrics or a normal class; not comparable with any profile here.",
    course.ENSEMBLE: "Published (course brief, lung STAS segmentation, DeepLabV3+ at 800 px on pathology slides): "
    "3-encoder voting Dice 0.90 / 0.91 vs best single 0.88 / 0.90 (public / private). Another dataset: the size of "
    "the effect is the comparison, not the numbers.",
}


def _published_table(run: Path) -> str:
    path = in_run(run, course.SEG) / "published_comparison.csv"
    if not path.is_file():
        return ""
    table = pd.read_csv(path)
    return (
        "Published beside this run (course brief: U-Net on Kvasir-SEG 900/100, SGD 1e-2, batch 8, 60 epochs; "
        "labelled *published*):\n\n" + tables.markdown(table, 3)
    )


def manifest_section(manifest: dict) -> str:
    """The run manifest as a reader needs it: code, environment, profile, seeds, data, per-notebook time."""
    git, env, data = manifest.get("git") or {}, manifest.get("environment") or {}, manifest.get("data") or {}
    seeds = {
        nb: {k: v for k, v in params.items() if "seed" in k}
        for nb, params in (manifest.get("profile_settings") or {}).get("notebook_params", {}).items()
    }
    lines = [
        f"- Profile **{manifest.get('profile')}**, run seed {manifest.get('seed')} (data, splits, each stage's own "
        "draws); training seeds per stage: "
        + ", ".join(f"{nb.split('_')[0]} {s}" for nb, s in seeds.items() if s)
        + ".",
        f"- Code: git {git.get('commit', '?')}"
        + (" (**uncommitted changes**)" if git.get("dirty") else " (clean)")
        + ".",
        f"- Data: {data.get('description')} · fingerprint {str(data.get('fingerprint'))[:16]} · splits: "
        + "; ".join(f"{k}: {v}" for k, v in (data.get("split_source") or {}).items())
        + ".",
        f"- Machine: {env.get('platform')}, CPU {env.get('cpu')} × {env.get('cpu_count')}, "
        f"GPU {env.get('gpu') or 'none'}, "
        f"Python {env.get('python')}.",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v) + ".",
        f"- Started {manifest.get('started')}"
        + (
            f", finished {manifest['finished']}"
            if manifest.get("finished")
            else " (the run was still going when this report was written)"
        )
        + ".",
    ]
    status = {"running": "writing this report"}
    times = pd.DataFrame(
        [
            {
                "notebook": e["name"],
                "status": "ok, up to date (reused)" if e.get("up_to_date") else status.get(e["status"], e["status"]),
                "run started (UTC)": (e.get("ran") or {}).get("started", ""),
                "at commit": str((e.get("ran") or {}).get("commit") or "")[:10],
                "wall time (s)": e.get("wall_s", ""),
            }
            for e in manifest.get("notebooks", [])
        ]
    )
    return "\n".join(lines) + ("\n\n" + times.to_markdown(index=False) if len(times) else "")


def render(run: Path, profile: str, reference: dict | None = None) -> str:
    """REPORT.md: every stage's saved headline tables, verdicts and key figures, the manifest, and the check
    against the reference. Figures are linked relative to the run folder."""
    run = Path(run)
    manifest = read_json(run / "manifest.json") if (run / "manifest.json").is_file() else {}
    parts = [
        f"# Course report · profile `{profile}`",
        "",
        "Every number below is read from the tables the notebooks saved under this folder; each table opens "
        "with the data, split, seed(s) and profile that produced it.",
        "",
    ]
    for stage, title, tables_, figures in SECTIONS:
        folder = in_run(run, stage)
        if not folder.is_dir():
            parts += [f"## {title}", "", f"*Not run for this profile or data (no `{folder.name}/`).*", ""]
            continue
        eda_summary = folder / "eda_summary.json"  # notebook 01's summary: data facts, not a stage's verdicts
        summary = read_summary(folder) or (read_json(eda_summary) if eda_summary.is_file() else {})
        parts += [f"## {title}", ""]
        if summary.get("provenance") and not tables_:
            parts += [summary["provenance"], ""]
        if summary.get("text") or summary.get("interpretation"):
            parts += [summary.get("text") or summary.get("interpretation"), ""]
        for name in tables_:
            if (folder / name).is_file():
                parts += [(folder / name).read_text().strip(), ""]
        if stage == course.SEG and (published := _published_table(run)):
            parts += [published, ""]
        if stage in CONTEXT:
            parts += [f"*{CONTEXT[stage]}*", ""]
        parts += [_image(folder, fig) for fig in figures if (folder / fig).is_file()] + [""]
    if reference is not None:
        table = verify(run, reference)
        parts += [
            "## Check against the reference",
            "",
            f"{len(reference['metrics'])} reference metrics and {len(reference.get('choices', {}))} choices "
            f"({reference['profile']} profile; tolerance rule: {reference['tolerance_rule']}): "
            f"{verdict_line(table)}.",
            "",
            code_paths(manifest.get("numerics"), (reference.get("from_run") or {}).get("numerics")) + ".",
            "",
        ]
        off = table[~table["status"].isin(("OK", "SAME"))]
        if len(off):
            parts += [tables.markdown(off, 4), ""]
    parts += [
        "## Run manifest",
        "",
        manifest_section(manifest) if manifest else "*No manifest.json in this folder.*",
        "",
    ]
    return "\n".join(parts)


def _image(folder: Path, fig: str) -> str:
    """A figure as Markdown, its alt text the provenance caption kept in the PNG (the file name for an old one)."""
    alt = " ".join(figure_caption(folder / fig).split()) or f"{folder.name} {fig}"
    alt = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"![{alt}]({folder.name}/{fig})"


def to_html(markdown_text: str, base: Path, title: str) -> str:
    """A self-contained HTML page: the Markdown rendered (mistune, with tables) and figures embedded as data URIs."""
    import base64

    import mistune

    body = mistune.create_markdown(plugins=["table"])(markdown_text)

    def embed(match: re.Match) -> str:
        path = Path(base) / match.group(1)
        if not path.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
        "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0;display:block;overflow-x:auto}"
        "td,th{border:1px solid #ccc;padding:2px 6px}"
        "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:0.4em 0}"
    )
    head = f"<meta charset='utf-8'><title>{title}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
