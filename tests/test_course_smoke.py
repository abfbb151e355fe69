"""Every notebook of the course, executed with Papermill in the smoke profile."""

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import course, paths, tables
from helpers.runner import discover, run_course

from conftest import SHARED_KVASIR_SEG


@pytest.mark.notebooks
def test_all_notebooks_run_in_smoke_profile(tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    assert run_course("smoke", reports_root=str(reports)) == 0
    run = reports / "smoke"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [e["name"] for e in manifest["notebooks"]] == [s.name for s in discover()]
    assert all(e["status"] == "ok" for e in manifest["notebooks"])
    assert manifest["data"]["origin"] == "synthetic" and len(manifest["data"]["fingerprint"]) == 64
    for spec in discover():
        assert (run / "notebooks" / f"{spec.name}.html").stat().st_size > 10_000
    import nbformat

    eda_nb = nbformat.read(run / "notebooks" / "01_eda.ipynb", as_version=4)
    shown = sum("image/png" in o.get("data", {}) for c in eda_nb.cells for o in c.get("outputs", []))
    assert shown >= 6, "figures must be shown inline in the executed notebook, not only saved"
    for spec in discover():
        executed = nbformat.read(run / "notebooks" / f"{spec.name}.ipynb", as_version=4)
        outputs = [o for c in executed.cells for o in c.get("outputs", [])]
        assert not any(o.get("name") == "stderr" and "Warning" in o["text"] for o in outputs), spec.name
        shown = [
            "".join(o.get("data", {}).get("text/plain", "")) for o in outputs if o.get("output_type") == "display_data"
        ]
        assert not any("Warning" in text for text in shown), spec.name  # e.g. a library's warning rendered as display
    splits = pd.read_csv(paths.in_run(run, course.DATA) / "splits.csv")
    assert set(splits["task"]) == {"classification", "segmentation", "unlabeled"}
    # one centre held out whole: its frames are the out-of-centre test split of every task, and nothing else is
    assert set(splits.loc[splits["split"] == "test_out", "centre"]) == {"etis"}
    assert "etis" not in set(splits.loc[splits["split"] != "test_out", "centre"])
    for fig in ("class_balance", "image_sizes", "colour_stats", "mask_stats", "samples", "mask_overlays", "centres"):
        assert (paths.in_run(run, course.EDA) / f"{fig}.png").stat().st_size > 5_000, fig
    summary = json.loads((paths.in_run(run, course.EDA) / "eda_summary.json").read_text())
    assert summary["imbalance_ratio"] == pytest.approx(2.5) and "per-class recall" in summary["interpretation"]
    ssl_dir = paths.in_run(run, course.SSL)
    import torch

    from helpers.ssl import SimCLR
    from helpers.training import load_weights

    state = torch.load(ssl_dir / "encoder.pt", weights_only=True)
    assert any(k.startswith("layer4") for k in state)
    meta = json.loads((ssl_dir / "encoder.json").read_text())
    encoder = load_weights(SimCLR(meta["encoder"]).encoder, ssl_dir / "encoder.pt")  # strict: every key must fit
    assert torch.equal(encoder.conv1.weight, state["conv1.weight"])
    loss = pd.read_csv(ssl_dir / "loss.csv")
    assert len(loss) == 1 and loss["loss"].notna().all()
    table = pd.read_csv(ssl_dir / "few_label_eval.csv")
    assert set(table["encoder"]) == {"SimCLR", "random init"} and table["macro_f1_mean"].between(0, 1).all()
    assert json.loads((ssl_dir / "summary.json").read_text())["outcome"] in tables.WORDS  # the course's one rule
    _check_kd_outputs(paths.in_run(run, course.KD))
    _check_seg_outputs(paths.in_run(run, course.SEG), rows=5, seeds=1)
    _check_ensemble_outputs(paths.in_run(run, course.ENSEMBLE), classification=True)
    _check_deploy_outputs(paths.in_run(run, course.DEPLOY), ["student", "teacher", "segmenter"])
    text = (run / "REPORT.md").read_text()
    for heading in ("Knowledge distillation", "augmentation ablation", "Ensembles", "OpenVINO", "## Run manifest"):
        assert heading in text, heading
    assert text.count("Data: synthetic") >= 5 and "published" in text  # provenance lines and the published U-Net rows
    assert "run seed 0 · profile smoke" in text and "Profile **smoke**, run seed 0" in text  # not a training seed
    assert "data:image/png;base64," in (run / "report.html").read_text()  # self-contained
    # every file of the run belongs to the notebook that writes it (so a re-run can replace exactly its own files)
    claimed = {o for s in discover() for o in s.outputs} | {"notebooks", "manifest.json"}
    assert {p.name for p in run.iterdir()} == claimed
    assert not any(
        str(reports / ".staging") in p.read_text() for p in run.rglob("*") if p.suffix in {".json", ".csv", ".md"}
    )
    # a second run finds everything up to date: it executes nothing and rewrites nothing
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert run_course("smoke", reports_root=str(reports)) == 0
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    # CI's reproducibility check: this run against the committed smoke reference, every metric and choice
    from helpers import report

    checked = report.verify(run, json.loads(paths.reference_file("smoke").read_text()))
    assert set(checked["status"]) <= {"OK", "SAME"}, checked[~checked["status"].isin(["OK", "SAME"])].to_string()
    # the teacher ablation (scripts/teacher_ablation.py) runs on a finished run: both inits at each budget; the
    # SimCLR runs are the run's own teachers, read from 03_kd, and trained again (--retrain) they come out identical
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "teacher_ablation.py"
    command = [sys.executable, str(script), "--profile", "smoke", "--reports-root", str(reports), "--epochs", "1"]

    def ablation_rows(*extra: str) -> dict[str, list[str]]:
        printed = subprocess.run([*command, *extra], capture_output=True, text=True, check=True).stdout
        assert "scored on validation only" in printed
        rows = [line.split("|")[1:-1] for line in printed.splitlines() if "random" in line or "SimCLR" in line]
        assert sorted(r[2].strip() for r in rows) == ["SimCLR (notebook 02)"] * 2 + ["random"] * 2, printed
        return {" ".join(r[:3]): r for r in rows}

    read, retrained = ablation_rows(), ablation_rows("--retrain")
    assert {k: r[-1].strip() for k, r in read.items() if "SimCLR" in k} == dict.fromkeys(
        [k for k in read if "SimCLR" in k], "the run's teacher (03_kd)"
    )
    assert all(r[-1].strip() == "trained here" for r in retrained.values())
    assert {k: r[:-1] for k, r in read.items()} == {k: r[:-1] for k, r in retrained.items()}
    # the label-budget check (scripts/label_budget.py): notebook 03's grid at another budget, on validation only
    script = script.with_name("label_budget.py")
    printed = subprocess.run(
        [sys.executable, str(script), "--profile", "smoke", "--reports-root", str(reports), "--epochs", "1"]
        + ["--budgets", "0.5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "scored on validation only" in printed
    rows = [cells for line in printed.splitlines() if (cells := line.split("|")[1:-1]) and cells[0].strip() == "0.5"]
    methods = sorted(r[3].strip() for r in rows)
    assert methods == sorted(["fine-tuned SSL encoder"] + ["scratch", "KD", "KD + transfer"] * 2), printed
    assert manifest["numerics"]["mode"] == "pinned" and manifest["numerics"]["threads"] == 2
    assert manifest["numerics"]["variables"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    # another CPU code path: MKL and NumPy capped at AVX2 as on a CPU without AVX-512. Under the course's pin
    # (oneDNN at AVX2, 2 threads) a reference made there verifies this run with every metric identical.
    from helpers import numerics

    for name, value in numerics.AVX2_ONLY.items():
        monkeypatch.setenv(name, value)
    assert run_course("smoke", reports_root=str(tmp_path / "avx2-only")) == 0
    reference = report.make_reference(tmp_path / "avx2-only" / "smoke", "smoke")
    assert reference["from_run"]["numerics"]["variables"]["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    checked = report.verify(run, reference)
    metrics = checked[checked["status"].isin(["OK", "FAIL"])]
    assert len(metrics) == len(reference["metrics"]) > 50
    # NNCF's INT8 calibration is the one step measured not to be bit-identical across the two (4th decimal of the
    # INT8 segmenter's Dice): it must stay within tolerance; everything PyTorch and NumPy compute is identical
    int8 = metrics["metric"].str.contains(".openvino_int8.", regex=False)
    assert (metrics.loc[~int8, "difference"] == 0).all(), metrics[~int8 & (metrics["difference"] != 0)].to_string()
    assert set(checked["status"]) <= {"OK", "SAME"}


def _check_kd_outputs(kd):
    import torch

    from helpers import classify
    from helpers.training import load_weights

    runs = pd.read_csv(kd / "runs.csv")
    # 2 budgets x 2 students x (2 scratch + 2 temperatures tried on seed 0 + KD seed 1 + 2 KD + transfer)
    assert len(runs) == 2 * 2 * 7 and (~runs["chosen"]).sum() == 2 * 2
    assert set(runs["method"]) == {"scratch", "KD", "KD + transfer"} and set(runs["budget"]) == {0.25, 1.0}
    assert (runs.groupby("budget")["labels"].max().diff().dropna() > 0).all()  # the few-label runs saw fewer labels
    assert runs["test_macro_f1"].between(0, 1).all() and runs["test_accuracy"].between(0, 1).all()
    results = pd.read_csv(kd / "results.csv")
    assert "teacher" in results["student"].iloc[0] and "test_recall[polyps]_mean" in results
    assert (results["student"].str.contains("teacher")).sum() == 2  # one teacher per label budget
    assert "± " in (kd / "results.md").read_text() and "Data: synthetic" in (kd / "results.md").read_text()
    cost = pd.read_csv(kd / "cost.csv").set_index("model")
    assert (cost["size ratio (teacher / model)"].iloc[1:] > 1).all()  # the teacher is larger than every student
    assert (cost["MMACs"] > 0).all() and (cost["latency_median_ms"] > 0).all()
    cam = pd.read_csv(kd / "cam_scores.csv")
    assert list(cam["map"])[-2:] == ["random maps", "centre map"] and cam["energy_mean"].dropna().between(0, 1).all()
    assert cam["pointing_hit_rate"].dropna().between(0, 1).all()
    assert (cam["frames_with_a_map"] <= cam["frames"]).all() and cam["frames_with_a_map"].iloc[-1] > 0
    summary = json.loads((kd / "summary.json").read_text())
    assert {(v["student"], v["budget"]) for v in summary["verdicts"]} == {
        (s, b) for s in ("resnet10t", "mobilenetv3_small_100") for b in (0.25, 1.0)
    }
    assert all(len(v["comparisons"]) == 3 for v in summary["verdicts"])
    index = json.loads((kd / "students" / "index.json").read_text())
    best = index["checkpoints"][index["best"]]
    assert (
        len(index["checkpoints"]) == 2 * 3 and best["model"] != json.loads((kd / "teacher.json").read_text())["model"]
    )
    model = load_weights(classify.build(best["model"], len(index["classes"])), kd / "students" / f"{index['best']}.pt")
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    for fig in (
        "teacher_training",
        "entropy_vs_temperature",
        "students_macro_f1",
        "confusion_matrices",
        "cam_energy",
        "gradcam_examples",
    ):
        assert (kd / f"{fig}.png").stat().st_size > 5_000, fig


def _check_seg_outputs(seg, rows, seeds, out_of_centre=True):
    import torch

    from helpers import segment

    runs = pd.read_csv(seg / "runs.csv")
    # every row for U-Net, both ends for DeepLabV3+ (arch_comparison_rows), and each one's SSL-init row
    assert len(runs) == (rows + 2 + 2) * seeds
    assert set(runs["init"]) == {"random", "SSL"} and runs["test_dice"].between(0, 1).all()
    if out_of_centre:
        assert runs["test_out_dice"].between(0, 1).all()  # the held-out centre, scored by every model
    else:  # real data from one centre: no out-of-centre split, and no column pretending there is one
        assert "test_out_dice" not in runs
    results = pd.read_csv(seg / "results.csv")
    assert {"test_dice_mean", "test_dice_std", "test_iou_mean", "test_dice_sd_images_mean"} <= set(results.columns)
    assert out_of_centre == ({"test_out_dice_mean", "test_out_iou_std"} <= set(results.columns))
    assert "out-of-centre" in (seg / "cross_centre.md").read_text()
    assert "± " in (seg / "results.md").read_text() and "Data: " in (seg / "results.md").read_text()
    summary = json.loads((seg / "summary.json").read_text())
    assert summary["verdicts"] and all(
        v["outcome"] in {"better", "tie_above", "tie_below", "worse"} for v in summary["verdicts"]
    )
    published = pd.read_csv(seg / "published_comparison.csv")
    assert published["published dice"].tolist() == [0.744, 0.787, 0.790]
    index = json.loads((seg / "models" / "index.json").read_text())
    model = segment.load_model(seg / "models", index["best"])
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    for fig in ("augmentations", "ablation_dice", "best_worst_cases"):
        assert (seg / f"{fig}.png").stat().st_size > 5_000, fig


def _check_ensemble_outputs(ens, classification):
    seg = pd.read_csv(ens / "segmentation_results.csv")
    assert {"soft vote (3)", "hard vote (3)", "soft vote (3) + flip TTA"} <= set(seg["model"])
    assert (seg["ms_per_frame"] > 0).all() and seg["test_dice_mean"].between(0, 1).all()
    summary = json.loads((ens / "summary.json").read_text())
    assert len(summary["members"]) == 3 and summary["segmentation"]
    assert (summary["classification"] is not None) == classification
    if classification:
        cls = pd.read_csv(ens / "classification_results.csv")
        # notebook 03 saves 2 students x (scratch, KD, KD + transfer); the teacher makes 7
        assert "hard vote: students + teacher (7)" in set(cls["model"]) and cls["macro_f1"].between(0, 1).all()
    assert (ens / "segmentation_ensembles.png").stat().st_size > 5_000


def _check_deploy_outputs(dep, models):
    from helpers import deploy

    accuracy = pd.read_csv(dep / "accuracy_by_precision.csv")
    assert set(accuracy["model"]) == set(models)
    assert set(accuracy["runtime"]) == {"PyTorch FP32", "OpenVINO FP32", "OpenVINO FP16", "OpenVINO INT8"}
    fp32 = accuracy[accuracy["runtime"] == "OpenVINO FP32"]
    assert (fp32["max_abs_logit_diff"] <= 1e-3).all()  # parity
    bench = pd.read_csv(dep / "benchmark.csv")
    assert (
        # PyTorch and every IR per model; the teacher, never deployed, is exported in FP32 only
        len(bench) == 4 * len(models) - 2 * ("teacher" in models)
        and (bench["latency_median_ms"] > 0).all()
        and (bench["throughput_fps"] > 0).all()
    )
    assert bench["threads"].nunique() == 1  # PyTorch and OpenVINO timed on the same thread count
    check = pd.read_csv(dep / "benchmark_app_check.csv")
    assert (check["benchmark_app_median_ms"] > 0).all()
    # the run is pinned, and OpenVINO reads the pin: benchmark_app also measured each IR without it
    assert (check[deploy.UNPINNED] > 0).all()
    assert "pinned code path" in json.loads((dep / "summary.json").read_text())["text"]
    for model in models:
        for precision in ("fp32",) if model == "teacher" else ("fp32", "fp16", "int8"):
            assert deploy.read_card(dep / "ir" / f"{model}_{precision}.xml")["precision"] == precision.upper()
    demo = pd.read_csv(dep / "predictor_demo" / models[-1] / "predictions.csv", keep_default_na=False)
    assert (demo["status"] == "error").sum() == 3 and (demo["status"] == "ok").sum() >= 3
    assert "Data: " in (dep / "deployment.md").read_text()
    assert (dep / "benchmark.png").stat().st_size > 5_000
    from helpers import serve

    refused = pd.read_csv(dep / "serve_errors.csv")  # notebook 06 called the running server with each bad input
    assert list(refused["code"]) == list(refused["bad input"]) == list(serve.bad_requests(b"").keys())
    assert [serve.ERRORS[c] for c in refused["code"]] == list(refused["status"])
    load = pd.read_csv(dep / "serve_load.csv")
    assert set(load["mode"]) == {"in process", "HTTP"} and (load["errors"] == 0).all() and (load["requests"] > 0).all()
    text = json.loads((dep / "summary.json").read_text())["text"]
    clients, target = serve.THROUGHPUT_TARGET  # the summary gives every client count and judges the target's
    assert all(f"x at {n} client" in text for n in load["clients"].unique())
    assert f"the target, at least {target:.2f} at {clients} clients with no errors, is " in text


@pytest.mark.notebooks
@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_KVASIR_SEG.is_dir(), reason="real Kvasir-SEG not present (../shared/data/kvasir-seg)")
def test_course_runs_on_real_kvasir_seg(tmp_path):
    from conftest import second_centre, snapshot

    before = {k: v for k, v in list(snapshot(SHARED_KVASIR_SEG).items())[:50]}
    # a second centre made by hand from frames the course only tests on (official val = the course's test split)
    names = (SHARED_KVASIR_SEG / "splits_medico2020" / "val.txt").read_text().split()[:12]
    frames = [(SHARED_KVASIR_SEG / "images" / f"{n}.jpg", SHARED_KVASIR_SEG / "masks" / f"{n}.jpg") for n in names]
    other = second_centre(tmp_path / "Hospital-B", n=12, frames=frames)
    other_before = snapshot(other)
    reports = tmp_path / "reports"
    assert (
        run_course(
            "smoke",
            data_root=str(SHARED_KVASIR_SEG),
            only=["00", "01", "02", "03", "04", "05", "06", "07"],
            reports_root=str(reports),
            external=[str(other)],
        )
        == 0
    )
    assert snapshot(other) == other_before  # an external set is never written
    external = pd.read_csv(paths.in_run(reports / "smoke", course.SEG) / "external.csv")
    assert set(external["centre"]) == {"in-centre test", "Hospital-B"} and (external["frames"] > 0).all()
    assert (external["dice_lo"] <= external["dice"]).all() and (external["dice"] <= external["dice_hi"]).all()
    centres = pd.read_csv(paths.in_run(reports / "smoke", course.ENSEMBLE) / "centres.csv")
    assert set(centres["centre"]) == {"in-centre test", "Hospital-B"} and centres["model"].str.contains("vote").any()
    text = (reports / "smoke" / "REPORT.md").read_text()
    assert "Hospital-B" in text and "published" in text and "95% bootstrap interval" in text
    assert "no class labels in this data, so no few-label evaluation" in text  # 02 says why its table is absent
    status = {
        e["name"]: e["status"] for e in json.loads((reports / "smoke" / "manifest.json").read_text())["notebooks"]
    }
    assert status["03_knowledge_distillation"] == "not applicable"  # Kvasir-SEG has no classification labels
    report = json.loads((paths.in_run(reports / "smoke", course.DATA) / "data_report.json").read_text())
    assert report["origin"] == "real" and report["counts"]["segmentation"]["test"] == 120
    assert sum(report["counts"]["segmentation"].values()) == 1000 and not report["bad_files"]
    assert report["counts"]["segmentation"]["train"] == 96  # the smoke profile's cap; the rest recorded as unused
    assert "splits_medico2020/train.txt" in report["split_source"]["segmentation"]
    sizes = pd.read_csv(paths.in_run(reports / "smoke", course.EDA) / "image_sizes.csv")
    assert sizes.loc[sizes["level_0"] == "segmentation"].set_index("level_1").loc["width", "max"] == 1920
    _check_seg_outputs(
        paths.in_run(reports / "smoke", course.SEG), rows=5, seeds=1, out_of_centre=False
    )  # the segmentation track on the real frames
    _check_ensemble_outputs(paths.in_run(reports / "smoke", course.ENSEMBLE), classification=False)
    _check_deploy_outputs(paths.in_run(reports / "smoke", course.DEPLOY), ["segmenter"])
    not_run = f"Not run for this profile or data (no `{course.folder(course.KD)}/`)"
    assert not_run in (reports / "smoke" / "REPORT.md").read_text()
    assert {k: v for k, v in list(snapshot(SHARED_KVASIR_SEG).items())[:50]} == before
