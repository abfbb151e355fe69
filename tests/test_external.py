"""External test sets (--external): validated like the data, recorded, never modified, never trained on."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import course, paths, segment, tables
from helpers.data import DataError, describe_external, load_external, prepare, prepare_external
from helpers.runner import run_course

from conftest import second_centre, snapshot


def test_a_second_centre_is_recorded_and_reloaded_untouched(tmp_path):
    centre = second_centre(tmp_path / "Hospital-B")
    before = snapshot(centre)
    sets = prepare_external([centre], "smoke", tmp_path / "r", image_size=32)
    assert list(sets) == ["Hospital-B"] and len(sets["Hospital-B"].samples) == 6
    assert sets["Hospital-B"].masks.any()  # 0/1 PNG masks read as polyp
    info = json.loads((paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "external.json").read_text())
    assert info["sets"][0]["frames"] == 6 and info["sets"][0]["folder"] == str(centre)
    loaded = load_external("smoke", tmp_path / "r", 32)
    assert np.array_equal(loaded["Hospital-B"][0], sets["Hospital-B"].images)
    assert snapshot(centre) == before  # nothing the user owns is written


def test_no_external_set_gives_nothing(tmp_path):
    assert prepare_external([], "smoke", tmp_path / "r", image_size=32) == {}
    assert load_external("smoke", tmp_path / "r", 32) == {}


def test_bad_external_folders_are_named(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="not a Kvasir-SEG layout"):
        prepare_external([tmp_path / "flat"], "smoke", tmp_path / "r", image_size=32)
    a = second_centre(tmp_path / "a" / "Same")
    b = second_centre(tmp_path / "b" / "Same")
    with pytest.raises(DataError, match="a second external set named 'Same'"):
        prepare_external([a, b], "smoke", tmp_path / "r", image_size=32)
    (a / "images" / "c2_0.jpg").write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match="c2_0.jpg"):
        prepare_external([a], "smoke", tmp_path / "r", image_size=32)
    kept = prepare_external([a], "smoke", tmp_path / "r", image_size=32, skip_bad=True)
    assert len(kept["Same"].samples) == 5
    assert "c2_0.jpg" in json.dumps(
        json.loads((paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "external.json").read_text())
    )


def test_a_training_frame_cannot_test(seg_tree, tmp_path):
    prepared = prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", image_size=16)
    train = prepared.splits[prepared.splits["split"] == "train"].iloc[0]
    leak = second_centre(tmp_path / "Leak", n=2)
    (leak / "images" / "copied.jpg").write_bytes((seg_tree / train["file"]).read_bytes())
    Image.open(seg_tree / train["mask"]).save(leak / "masks" / "copied.png")
    with pytest.raises(DataError, match="identical to a train/val frame"):
        prepare_external([leak], "smoke", tmp_path / "r", image_size=16, seen=prepared.splits)


def test_runner_refuses_a_missing_external_folder(tmp_path, capsys):
    assert run_course("smoke", external=[str(tmp_path / "nowhere")], reports_root=str(tmp_path / "r")) == 2
    assert "--external" in capsys.readouterr().err and not (tmp_path / "r" / "smoke").exists()


def test_bootstrap_interval_by_hand():
    assert tables.bootstrap_ci(np.full(10, 0.7)) == pytest.approx((0.7, 0.7))
    lo, hi = tables.bootstrap_ci(np.array([0.0, 1.0] * 50))
    assert lo < 0.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.05, abs=0.03)  # sd of the mean: 0.5 / sqrt(100)
    assert tables.bootstrap_ci(np.array([0.2, 0.9, 0.4])) == tables.bootstrap_ci(np.array([0.2, 0.9, 0.4]))
    assert np.isnan(tables.bootstrap_ci(np.array([0.5]))[0])


def test_intervals_average_seeds_per_frame_first():
    a = pd.DataFrame({"dice": [1.0, 0.0], "iou": [1.0, 0.0]})
    b = pd.DataFrame({"dice": [0.0, 1.0], "iou": [0.0, 1.0]})
    row = segment.with_intervals([a, b])
    assert row["frames"] == 2 and row["dice"] == 0.5 and row["dice_lo"] == row["dice_hi"] == 0.5


def test_provenance_names_every_external_set_and_the_setting_gaps(tmp_path):
    centre = second_centre(tmp_path / "Hospital-C", n=3)
    prepare_external([centre], "smoke", tmp_path / "r", image_size=32)
    line = describe_external("smoke", tmp_path / "r")
    assert line.startswith("external Hospital-C: ") and str(centre) in line and "3 frames" in line
    assert describe_external("smoke", tmp_path / "nothing") == ""
    assert segment.setting_gaps("real", 352, "full") == "other test split"
    assert (
        segment.setting_gaps("synthetic", 64, "cpu")
        == "synthetic training data, 64 px, short training budget, other test split"
    )
