"""Classifier building, training, metrics and cost measurements."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn

from helpers import classify, measure, parallel
from helpers.training import save_weights


def test_metrics_on_a_hand_made_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array(
        [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]
    )
    m = classify.metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["recall[a]"] == 0.5 and m["precision[b]"] == pytest.approx(2 / 3) and m["f1[c]"] == 1.0
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 0.8, 1.0]))
    assert 0.5 < m["roc_auc"] <= 1.0
    assert np.isnan(classify.metrics(np.array([0, 0]), proba[:2], ["a", "b", "c"])["roc_auc"])  # undefined
    table = classify.per_class_table(y, proba, ["a", "b", "c"])
    assert table["support"].tolist() == [2, 2, 2]


def test_class_weights_are_balanced():
    w = classify.class_weights(np.array([0, 0, 0, 1]), 2)
    assert w.tolist() == pytest.approx([4 / 6, 4 / 2])


def test_build_loads_an_encoder_checkpoint_and_refuses_a_wrong_one(tmp_path):
    encoder = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = save_weights(encoder, tmp_path / "encoder.pt")
    model = classify.build("resnet18", 3, path)
    assert torch.equal(model.conv1.weight, encoder.conv1.weight) and model.fc.out_features == 3
    with pytest.raises(ValueError, match="does not fit a mobilenetv3_small_100"):
        classify.build("mobilenetv3_small_100", 3, path)


def _toy_data(n=48, size=32, seed=0):
    """Class = which colour channel is bright: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.random((n, size, size, 3)) * 60).astype(np.uint8)
    x[np.arange(n), :, :, y] += 150
    return x, y


@pytest.mark.parametrize("with_teacher", [False, True])
def test_fit_learns_and_keeps_the_best_validation_epoch(with_teacher):
    x, y = _toy_data()
    torch.manual_seed(0)
    teacher = classify.build("mobilenetv3_small_100", 3) if with_teacher else None
    model = classify.build("resnet18", 3)
    history = classify.fit(
        model,
        x,
        y,
        x,
        y,
        epochs=5,
        lr=1e-3,
        batch_size=16,
        seed=0,
        image_size=32,
        teacher=teacher,
        temperature=3.0,
        weights=classify.class_weights(y, 3),
    )
    assert len(history) == 5 and history["kept"].iloc[0]
    best = history["val_macro_f1"].max()
    score = classify.metrics(y, classify.predict_proba(model, x), ["r", "g", "b"])["macro_f1"]
    assert score == pytest.approx(best)  # the restored weights are the best epoch's
    if not with_teacher:
        assert best > 0.9


def test_label_subset_is_stratified_fixed_and_keeps_two_per_class():
    y = np.array([0] * 50 + [1] * 30 + [2] * 5)
    few = classify.label_subset(y, 0.1, seed=0)
    assert np.bincount(y[few]).tolist() == [5, 3, 2]  # 10% per class, never fewer than two
    assert np.array_equal(few, classify.label_subset(y, 0.1, seed=0)) and np.all(np.diff(few) > 0)
    assert np.array_equal(classify.label_subset(y, 1.0, seed=3), np.arange(len(y)))
    with pytest.raises(ValueError, match="label budget"):
        classify.label_subset(y, 0.0, seed=0)


def test_fit_with_a_transfer_set_trains_the_fixed_number_of_steps_and_needs_a_teacher(monkeypatch):
    """Few labels + transfer frames: every step draws one labelled and one transfer batch, and the KD loss gets the
    labelled rows first (the only ones its hard term may read)."""
    x, y = _toy_data(n=12)
    transfer, _ = _toy_data(n=40, seed=1)
    seen = []
    real = classify.kd_loss

    def spy(student_logits, teacher_logits, labels, **kw):
        seen.append((len(student_logits), len(labels)))
        return real(student_logits, teacher_logits, labels, **kw)

    monkeypatch.setattr(classify, "kd_loss", spy)
    torch.manual_seed(0)
    teacher = classify.build("mobilenetv3_small_100", 3)
    model = classify.build("mobilenetv3_small_100", 3)
    args = dict(epochs=2, lr=1e-3, batch_size=8, seed=0, image_size=32, steps_per_epoch=5)
    classify.fit(model, x, y, x, y, teacher=teacher, transfer_images=transfer, **args)
    assert seen == [(16, 8)] * 10  # 2 epochs x 5 steps, though 12 labelled frames are 1.5 batches
    with pytest.raises(ValueError, match="needs a teacher"):
        classify.fit(model, x, y, x, y, transfer_images=transfer, **args)


def test_checkpoint_names_and_the_students_index_round_trip(tmp_path):
    assert classify.checkpoint_name("resnet10t", "KD + transfer", 4.0) == "resnet10t_kd_transfer_T4"
    assert classify.checkpoint_name("resnet10t", "scratch", float("nan")) == "resnet10t_scratch"
    (tmp_path / "teacher.json").write_text('{"model": "resnet18"}')
    save_weights(classify.build("resnet18", 3), tmp_path / "teacher.pt")
    student = classify.build("mobilenetv3_small_100", 3)
    entry = {"model": "mobilenetv3_small_100", "method": "KD", "temperature": 4.0, "budget": 1.0, "seed": 0}
    classify.save_students(tmp_path, {"m_kd_T4": student}, {"m_kd_T4": entry}, ["a", "b", "c"], 32, "m_kd_T4")
    loaded = classify.load_saved(tmp_path, "m_kd_T4")
    assert torch.equal(loaded.conv_stem.weight, student.conv_stem.weight)
    assert type(classify.load_saved(tmp_path)).__name__ == "ResNet"


def test_macs_and_size_of_known_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    # conv: 8*8 outputs x 4 channels x (3*3*3) MACs; linear: 256 x 5
    assert measure.macs(model, (1, 3, 8, 8)) == 8 * 8 * 4 * 27 + 256 * 5
    assert measure.parameter_count(model) == 4 * 27 + 256 * 5 + 5
    assert measure.weights_mb(model) == pytest.approx((4 * 27 + 256 * 5 + 5) * 4 / 1e6)
    row = measure.cost_row("toy", nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1)), 16, repeats=3, threads=1)
    assert row["latency_median_ms"] > 0 and row["latency_p90_ms"] >= row["latency_median_ms"] and row["threads"] == 1


def test_teacher_for_refuses_a_teacher_that_could_not_teach(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 02 first"):
        classify.teacher_for(tmp_path, ["resnet10t"], [0.1, 1.0])
    save_weights(classify.build("resnet18", 3), tmp_path / "encoder.pt")
    (tmp_path / "encoder.json").write_text('{"encoder": "resnet18"}')
    assert classify.teacher_for(tmp_path, ["resnet10t"], [0.1, 1.0]) == "resnet18"
    with pytest.raises(ValueError, match="must compress"):
        classify.teacher_for(tmp_path, ["resnet18"], [1.0])
    with pytest.raises(ValueError, match="must include 1.0"):
        classify.teacher_for(tmp_path, ["resnet10t"], [0.1])


def test_student_grid_runs_every_method_and_does_not_depend_on_the_worker_count(monkeypatch):
    x, y = _toy_data(n=24)
    splits = {"train": (x, y), "val": (x[:12], y[:12]), "test": (x[12:], y[12:])}
    teacher = classify.build("mobilenetv3_small_100", 3)
    args = (["mobilenetv3_small_100"], [1.0], [1.0, 3.0], [0, 1], splits, ["r", "g", "b"], {1.0: teacher}, x)
    kw = dict(epochs=1, lr=1e-3, batch_size=8, image_size=32)
    runs, models = classify.student_grid(*args, **kw)
    # per seed: scratch, KD, KD + transfer; plus the first seed's losing temperature trial
    assert runs.groupby("method").size().to_dict() == {"KD": 3, "KD + transfer": 2, "scratch": 2}
    assert (~runs["chosen"]).sum() == 1 and sorted(models) == sorted(
        (runs["student"][0], 1.0, m) for m in classify.METHODS
    )
    monkeypatch.setattr(parallel, "workers", lambda: 1)
    here, _ = classify.student_grid(*args, **kw)
    pd.testing.assert_frame_equal(runs.drop(columns="train_s"), here.drop(columns="train_s"))


def test_save_teacher_writes_what_load_saved_reads_and_every_curve(tmp_path):
    teacher, few = classify.build("resnet18", 3), classify.build("resnet18", 3)
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_macro_f1": [0.2, 0.9, 0.5], "train_loss": [1.0, 0.5, 0.25]})
    curve = history.assign(val_macro_f1=[0.1, 0.3, 1 / 3])
    recipe = dict(model="resnet18", epochs=3, lr=1e-3, seed=0)
    classify.save_teacher(
        tmp_path, {0.1: (few, curve), 1.0: (teacher, history)}, keep=1.0, classes=list("abc"), **recipe
    )
    facts = json.loads((tmp_path / "teacher.json").read_text())
    assert facts["best_epoch"] == 2 and facts["budget"] == 1.0 and facts["lr"] == 1e-3
    classify.save_students(tmp_path, {}, {}, ["a", "b", "c"], 32, None)
    assert torch.equal(classify.load_saved(tmp_path).conv1.weight, teacher.conv1.weight)
    # the curves come back exactly, keyed by (budget, lr), only for the recipe the teachers were trained with
    known, why_not = classify.saved_teacher_histories(tmp_path, model="resnet18", epochs=3, seed=0)
    assert why_not == "" and sorted(known) == [(0.1, 1e-3), (1.0, 1e-3)]
    pd.testing.assert_frame_equal(known[0.1, 1e-3], curve)
    pd.testing.assert_frame_equal(known[1.0, 1e-3], history)
    known, why_not = classify.saved_teacher_histories(tmp_path, model="resnet18", epochs=100, seed=0)
    assert known == {} and "epochs (3, not 100)" in why_not
    (tmp_path / classify.TEACHER_HISTORIES).unlink()
    assert "missing" in classify.saved_teacher_histories(tmp_path, model="resnet18")[1]


def test_teacher_ablation_trains_only_the_runs_it_does_not_already_have(monkeypatch):
    calls = []

    def fake_run_all(fn, jobs, shared, desc):
        calls.extend(jobs)
        return [(pd.DataFrame({"epoch": [1, 2], "val_macro_f1": [0.4, 0.5]}), {}) for _ in jobs]

    monkeypatch.setattr(classify, "run_all", fake_run_all)
    y = np.repeat([0, 1, 2], 10)
    splits = {"train": (np.zeros((30, 8, 8, 3), np.uint8), y)}
    known = {(1.0, 1e-3): pd.DataFrame({"epoch": [1, 2], "val_macro_f1": [0.9, 0.7]})}
    kw = dict(epochs=2, batch_size=4, image_size=8, seed=0, known=known)
    table = classify.teacher_ablation("resnet18", Path("encoder.pt"), [0.1, 1.0], [1e-3], splits, 3, **kw)
    # four runs in the table; the SimCLR run at 100% labels was read, the other three trained
    assert (
        len(table) == 4
        and len(calls) == 3
        and {"budget": 1.0, "encoder_weights": Path("encoder.pt"), "lr": 1e-3} not in calls
    )
    read = table[table["source"] != "trained here"].iloc[0]
    assert (read["budget"], read["init"], read["val_macro_f1_best"], read["best_epoch"]) == (
        1.0,
        "SimCLR (notebook 02)",
        0.9,
        1,
    )
    assert table.loc[table["source"] == "trained here", "val_macro_f1_best"].eq(0.5).all()
