"""Splits: stratified, disjoint, deterministic; official lists used when present."""

from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest

from helpers import course, paths
from helpers.data import (
    UNUSED,
    DataError,
    find_split_lists,
    load_split,
    prepare,
    read_split_lists,
    split_samples,
    splits_from_lists,
    stratified_splits,
)
from helpers.profiles import PROFILES

from conftest import SHARED_KVASIR_SEG

STRATA = ["a"] * 60 + ["b"] * 30 + ["c"] * 10


def test_stratified_keeps_class_proportions():
    splits = stratified_splits(STRATA, 0.2, 0.2, seed=0)
    assert Counter(splits) == {"train": 60, "val": 20, "test": 20}
    for part in ("train", "val", "test"):
        share = Counter(s for s, p in zip(STRATA, splits) if p == part)
        n = sum(share.values())
        assert abs(share["a"] / n - 0.6) < 0.06 and abs(share["c"] / n - 0.1) < 0.06


def test_splits_are_deterministic_and_seed_dependent():
    assert stratified_splits(STRATA, 0.2, 0.2, seed=3) == stratified_splits(STRATA, 0.2, 0.2, seed=3)
    assert stratified_splits(STRATA, 0.2, 0.2, seed=3) != stratified_splits(STRATA, 0.2, 0.2, seed=4)


def test_tiny_strata_fall_back_to_a_plain_split():
    splits = stratified_splits(["x"] * 5 + ["y"], 0.2, 0.2, seed=0)
    assert len(splits) == 6 and set(splits) == {"train", "val", "test"}


def test_official_lists_val_becomes_test(tmp_path):
    names = [f"n{i}" for i in range(20)]
    listed = {n: ("val" if i < 5 else "train") for i, n in enumerate(names[:18])}
    splits, unlisted = splits_from_lists(names, ["s"] * 20, listed, val_fraction=0.2, seed=0)
    assert splits[:5] == ["test"] * 5
    assert Counter(splits[5:18]) == {"train": 10, "val": 3}
    assert unlisted == ["n18", "n19"] and splits[18:] == ["unlisted", "unlisted"]


def test_official_test_list_is_kept(tmp_path):
    splits, _ = splits_from_lists(["a", "b", "c"], ["s"] * 3, {"a": "train", "b": "val", "c": "test"}, 0.5, 0)
    assert splits == ["train", "val", "test"]


def test_prepare_uses_split_lists_in_a_subfolder(seg_tree, tmp_path):
    lists = seg_tree / "splits_medico2020"
    lists.mkdir()
    (lists / "train.txt").write_text("id0\nid1\nid2\nid3\n")
    (lists / "val.txt").write_text("id4\nid5\n")
    prepared = prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", image_size=16)
    table = pd.read_csv(paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "splits.csv")
    by_file = dict(zip(table["file"], table["split"]))
    assert by_file["images/id4.jpg"] == by_file["images/id5.jpg"] == "test"
    assert {by_file[f"images/id{i}.jpg"] for i in range(4)} <= {"train", "val"}
    assert "official lists" in prepared.report["split_source"]["segmentation"]


def test_splits_csv_is_disjoint_and_complete(cls_tree, tmp_path):
    prepare("smoke", data_root=cls_tree, reports_root=tmp_path / "r", image_size=16)
    table = pd.read_csv(paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "splits.csv")
    assert len(table) == 12 and table["file"].is_unique
    assert set(table["split"]) == {"train", "val", "test"}
    _, samples, rows = split_samples("classification", "val", "smoke", tmp_path / "r")  # names only, nothing decoded
    loaded, loaded_rows = load_split("classification", "val", "smoke", tmp_path / "r")
    assert [s.image for s in samples] == [s.image for s in loaded.samples] and rows.equals(loaded_rows)


def test_a_profiles_train_cap_keeps_a_seeded_draw_and_every_val_and_test_frame(cls_tree, tmp_path, monkeypatch):
    def splits(cap, out):
        monkeypatch.setitem(PROFILES, "smoke", replace(PROFILES["smoke"], max_train_frames=cap))
        report = prepare("smoke", data_root=cls_tree, reports_root=tmp_path / out, image_size=16).report
        table = pd.read_csv(paths.in_run(tmp_path / out / "smoke", course.DATA) / "splits.csv")
        return dict(zip(table["file"], table["split"])), report

    full, _ = splits(None, "all")
    capped, report = splits(3, "capped")
    train = {f for f, s in full.items() if s == "train"}
    assert len(train) > 3 and {f for f, s in capped.items() if s == "train"} < train
    assert {f for f, s in capped.items() if s == UNUSED} == train - {f for f, s in capped.items() if s == "train"}
    assert {f: s for f, s in capped.items() if s not in ("train", UNUSED)} == {
        f: s for f, s in full.items() if s != "train"
    }  # validation and test frames are never dropped
    assert report["counts"]["classification"]["train"] == 3 and "3 of the" in report["split_source"]["classification"]
    assert splits(3, "again")[0] == capped  # the same draw every time


def test_a_task_can_take_larger_evaluation_splits_than_the_profiles(cls_tree, tmp_path, monkeypatch):
    wider = replace(PROFILES["smoke"], task_fractions={"classification": (0.25, 0.5)})
    assert wider.fractions("classification") == (0.25, 0.5)
    assert wider.fractions("segmentation") == (wider.val_fraction, wider.test_fraction)  # other tasks keep the default
    monkeypatch.setitem(PROFILES, "smoke", wider)
    report = prepare("smoke", data_root=cls_tree, reports_root=tmp_path / "r", image_size=16).report
    assert report["counts"]["classification"] == {"train": 3, "val": 3, "test": 6}  # 12 frames
    assert "val 25%, test 50%" in report["split_source"]["classification"]


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_KVASIR_SEG.is_dir(), reason="real Kvasir-SEG not present (../shared/data/kvasir-seg)")
def test_real_kvasir_seg_official_lists():
    lists = find_split_lists(SHARED_KVASIR_SEG)
    listed = read_split_lists(lists)
    assert Counter(listed.values()) == {"train": 880, "val": 120}


def test_held_out_centre_is_the_out_of_centre_test_split(seg_tree, tmp_path):
    """Every frame of the held-out centre, and only those, is `test_out`; the rest split as before."""
    centre = {i: ("far" if i in (1, 4) else "near") for i in range(6)}
    rows = ["file,centre"] + [f"images/id{i}.jpg,{c}" for i, c in centre.items()]
    (seg_tree / "centres.csv").write_text("\n".join(rows) + "\n")
    prepared = prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", image_size=16, held_out_centre="far")
    table = pd.read_csv(paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "splits.csv", keep_default_na=False)
    by_file = dict(zip(table["file"], table["split"]))
    assert {f for f, s in by_file.items() if s == "test_out"} == {"images/id1.jpg", "images/id4.jpg"}
    assert set(table.loc[table["split"] != "test_out", "centre"]) == {"near"}
    assert prepared.report["centres"]["held_out"] == "far"
    assert prepared.report["centres"]["counts"]["segmentation"] == {"far": 2, "near": 4}
    # real data holds nothing out unless told
    prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r2", image_size=16)
    assert "test_out" not in set(
        pd.read_csv(paths.in_run(tmp_path / "r2" / "smoke", course.DATA) / "splits.csv")["split"]
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ("name,site\nimages/id0.jpg,a\n", "expected the columns file,centre"),
        ("file,centre\nimages/id0.jpg,\n", "line 2"),
    ],
)
def test_a_broken_centres_file_is_named(seg_tree, tmp_path, text, problem):
    (seg_tree / "centres.csv").write_text(text)
    with pytest.raises(DataError, match="centres.csv") as err:
        prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", image_size=16)
    assert problem in str(err.value)


def test_an_unknown_held_out_centre_is_an_error(seg_tree, tmp_path):
    (seg_tree / "centres.csv").write_text("file,centre\nimages/id0.jpg,a\n")
    with pytest.raises(DataError, match="no frame of the held-out centre 'b'"):
        prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", image_size=16, held_out_centre="b")
