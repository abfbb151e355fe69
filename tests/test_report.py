"""Headline metrics from a run's saved tables, the tolerance rule, and `verify` passing and failing."""

import json

import pandas as pd
import pytest

from helpers import course, paths, report, tables
from helpers.__main__ import main


def _fake_run(root, dice_shift=0.0, with_deploy=True):
    """A run folder with the tables notebooks 03, 04 and 06 write (only the columns `collect` reads)."""
    (paths.in_run(root, course.KD)).mkdir(parents=True)
    pd.DataFrame(
        [
            {
                "student": "resnet18 (teacher)",
                "budget": 1.0,
                "method": "SSL + fine-tune",
                "temperature": None,
                "runs": 1,
                "test_macro_f1_mean": 0.75,
                "test_macro_f1_std": 0.0,
                "test_accuracy_mean": 0.70,
                "test_accuracy_std": 0.0,
            },
            {
                "student": "resnet18",
                "budget": 0.1,
                "method": "KD + transfer",
                "temperature": 4.0,
                "runs": 3,
                "test_macro_f1_mean": 0.70,
                "test_macro_f1_std": 0.02,
                "test_accuracy_mean": 0.68,
                "test_accuracy_std": 0.03,
            },
        ]
    ).to_csv(paths.in_run(root, course.KD) / "results.csv", index=False)
    (paths.in_run(root, course.SEG)).mkdir()
    pd.DataFrame(
        [
            {
                "arch": "unet",
                "augmentation": "+ copy-paste",
                "init": "random",
                "runs": 2,
                "test_dice_mean": 0.80 + dice_shift,
                "test_dice_std": 0.004,
                "test_iou_mean": 0.70,
                "test_iou_std": 0.03,
            }
        ]
    ).to_csv(paths.in_run(root, course.SEG) / "results.csv", index=False)
    if with_deploy:
        (paths.in_run(root, course.DEPLOY)).mkdir()
        pd.DataFrame(
            [
                {
                    "model": "student",
                    "runtime": "OpenVINO FP32",
                    "max_abs_logit_diff": 3e-6,
                    "accuracy": 0.7,
                    "macro_f1": 0.72,
                }
            ]
        ).to_csv(paths.in_run(root, course.DEPLOY) / "accuracy_by_precision.csv", index=False)
    return root


def test_collect_names_every_headline_metric_with_its_seed_spread(tmp_path):
    metrics = report.collect(_fake_run(tmp_path / "run"))
    assert metrics["kd.teacher.labels_1.test_macro_f1"] == {
        "value": 0.75,
        "std": None,
        "stage": course.folder(course.KD),
        "source": f"{course.folder(course.KD)}/results.csv",
    }
    assert metrics["kd.resnet18.kd_transfer.labels_0.1.test_macro_f1"]["std"] == 0.02
    assert metrics["seg.unet.copy_paste.random.test_dice"]["value"] == 0.80
    assert metrics["deploy.student.fp32_parity_max_abs_logit_diff"]["value"] == 3e-6


def test_tolerances_follow_the_stated_rule(tmp_path):
    tol = report.tolerances(report.collect(_fake_run(tmp_path / "run")))
    # 2 x max(own std 0.02, median std of its stage: 0.02, 0.03 -> 0.025): a lucky small spread is not trusted
    assert tol["kd.resnet18.kd_transfer.labels_0.1.test_macro_f1"] == pytest.approx(0.05)
    assert tol["kd.teacher.labels_1.test_macro_f1"] == pytest.approx(
        0.05
    )  # single run: 2 x median std of its stage (0.02, 0.03)
    assert tol["seg.unet.copy_paste.random.test_dice"] == pytest.approx(0.034)  # own 0.004 < stage median 0.017
    assert tol["seg.unet.copy_paste.random.test_iou"] == pytest.approx(0.06)  # own 0.03 > stage median
    assert tol["deploy.student.fp32_parity_max_abs_logit_diff"] == report.PARITY_TOLERANCE
    assert tol["deploy.student.openvino_fp32.test_accuracy"] == pytest.approx(0.05)  # no seeds in 06: the run's median


def test_verify_passes_a_matching_run_and_fails_a_drifted_or_incomplete_one(tmp_path, capsys):
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(report.make_reference(_fake_run(tmp_path / "ref"), "cpu")))
    same = _fake_run(tmp_path / "same")
    args = ["verify", "--profile", "cpu", "--reference", str(reference), "--run-dir"]
    assert main(args + [str(same)]) == 0
    assert "0 FAIL, 0 MISSING" in capsys.readouterr().out
    drifted = _fake_run(tmp_path / "drifted", dice_shift=0.05)
    assert main(args + [str(drifted)]) == 1
    out = capsys.readouterr().out
    assert "seg.unet.copy_paste.random.test_dice" in out and "FAIL" in out
    partial = _fake_run(tmp_path / "partial", with_deploy=False)
    table = report.verify(partial, json.loads(reference.read_text()))
    assert set(table.loc[table["metric"].str.startswith("deploy."), "status"]) == {"MISSING"}
    assert main(args + [str(partial)]) == 1
    assert main(["verify", "--reference", str(tmp_path / "none.json")]) == 2


def _choices(root, best_row):
    """Notebook 04's SSL row (run on the augmentation row chosen on validation) and its index of choices."""
    results = pd.read_csv(paths.in_run(root, course.SEG) / "results.csv")
    ssl = results.iloc[0].to_dict() | {"augmentation": best_row, "init": "ssl", "test_dice_mean": 0.81}
    pd.concat([results, pd.DataFrame([ssl])]).to_csv(paths.in_run(root, course.SEG) / "results.csv", index=False)
    (paths.in_run(root, course.SEG) / "models").mkdir()
    (paths.in_run(root, course.SEG) / "models" / "index.json").write_text(
        json.dumps({"best_rows": {"unet": best_row}, "best": "x"})
    )
    return root


def test_a_choice_that_moved_is_its_own_line_and_its_metrics_keep_their_role_keys(tmp_path, capsys):
    ref_run = _choices(_fake_run(tmp_path / "ref"), "geometric")
    assert "seg.unet.best.ssl.test_dice" in report.collect(ref_run)
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(report.make_reference(ref_run, "cpu")))
    assert json.loads(reference.read_text())["choices"]["seg.unet.best_row"] == "geometric"
    moved = _choices(_fake_run(tmp_path / "moved"), "none")
    table = report.verify(moved, json.loads(reference.read_text()))
    row = table.set_index("metric").loc["choice seg.unet.best_row"]
    assert (row["reference"], row["measured"], row["status"]) == ("geometric", "none", "CHOICE DIFFERS")
    assert "MISSING" not in set(table["status"])  # the SSL row is keyed by its role, not by the row it ran on
    assert main(["verify", "--reference", str(reference), "--run-dir", str(moved)]) == 0
    out = capsys.readouterr().out
    assert "1 CHOICE DIFFERS" in out and "identical to the reference" in out


def test_verify_says_whether_the_code_paths_allow_identical_results():
    pinned = {
        "mode": "pinned",
        "threads": 2,
        "variables": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
        "cpu_flags": ["avx2", "avx512f"],
    }
    assert "identical metrics expected" in report.code_paths(pinned, pinned | {"cpu_flags": ["avx2"]})
    assert "differences within the tolerances" in report.code_paths(pinned | {"mode": "native"}, pinned)
    assert "not recorded" in report.code_paths(None, pinned)


def test_manifest_section_says_which_notebooks_were_reused_and_from_when():
    ran = {"started": "2026-11-01T10:00:00+00:00", "commit": "1234567890abcdef"}
    manifest = {
        "profile": "smoke",
        "seed": 0,
        "git": {"commit": "feedbeef", "dirty": False},
        "notebooks": [
            {"name": "00_data", "status": "ok", "up_to_date": True, "ran": ran, "wall_s": 5.0},
            {
                "name": "01_eda",
                "status": "failed",
                "ran": ran | {"started": "2026-11-02T10:00:00+00:00"},
                "wall_s": 1.0,
            },
            {"name": "07_report", "status": "running", "ran": ran},
        ],
    }
    text = report.manifest_section(manifest)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| 0")}
    assert (
        "ok, up to date (reused)" in rows["00_data"]
        and "2026-11-01T10:00:00" in rows["00_data"]
        and "1234567890" in rows["00_data"]
    )
    assert "failed" in rows["01_eda"] and "2026-11-02" in rows["01_eda"]
    assert "writing this report" in rows["07_report"]


def test_a_stage_summary_round_trips_and_feeds_the_reports_choices(tmp_path):
    from helpers.artifacts import read_summary, write_summary

    kd = paths.in_run(tmp_path, course.KD)
    assert read_summary(kd) == {}  # a stage that did not run
    verdicts = [{"student": "resnet10t", "budget": 0.1, "temperature": 4.0}]
    write_summary(kd, "data: synthetic", "- a verdict", verdicts=verdicts)
    assert read_summary(kd) == {"provenance": "data: synthetic", "verdicts": verdicts, "text": "- a verdict"}
    assert report.choices(tmp_path) == {"kd.resnet10t.labels_0.1.temperature": "4"}


def test_interval_line_reads_each_centre_with_its_interval():
    table = pd.DataFrame(
        [{"model": "unet", "centre": "in-centre test", "dice": 0.8, "dice_lo": 0.75, "dice_hi": 0.85}]
        + [{"model": "unet", "centre": "etis", "dice": 0.4, "dice_lo": 0.3, "dice_hi": 0.5}]
    )
    line = tables.interval_line(table)
    assert line == "unet on in-centre test 0.800 [0.750, 0.850]; unet on etis 0.400 [0.300, 0.500]"
