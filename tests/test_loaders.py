"""Loaders on synthetic and hand-made real-layout trees, and every bad-input case."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import course, paths
from helpers.data import (
    DataError,
    ImageCache,
    detect_sources,
    generate,
    load_samples,
    prepare,
    scan_classification,
    scan_image_folder,
    scan_segmentation,
)

from conftest import snapshot, write_image, write_mask


def load(samples, size=16):
    return load_samples(samples, size, ImageCache(None))


def problems_of(fn):
    with pytest.raises(DataError) as err:
        fn()
    return str(err.value)


# --- layouts that work ------------------------------------------------------------------------------------


def test_classification_tree_classes_from_folders(cls_tree):
    samples, classes, bad = scan_classification(cls_tree)
    assert classes == ["dyed-lifted-polyps", "normal-cecum", "polyps"] and not bad
    loaded, bad = load(samples)
    assert not bad and loaded.images.shape == (12, 16, 16, 3) and loaded.masks is None
    assert sorted(set(loaded.orig_sizes[:, 0])) == [40, 48]


def test_classification_subset_of_classes(cls_tree):
    samples, classes, _ = scan_classification(cls_tree, classes=["normal-cecum", "polyps"])
    assert classes == ["normal-cecum", "polyps"] and {s.label for s in samples} == set(classes)


def test_segmentation_pairs_resized_together(seg_tree):
    samples, bad = scan_segmentation(seg_tree)
    loaded, more = load(samples, size=20)
    assert not bad and not more and loaded.masks.shape == (6, 20, 20)
    assert set(np.unique(loaded.masks)) == {0, 1}  # JPEG grey edges thresholded
    # the box covers x 5..20 of 40+ px and y 5..15 of 32+ px: the mask keeps its place after resizing
    assert loaded.masks[0][:2].sum() == 0 and loaded.masks[0][5, 5] == 1


def test_generic_image_folder(tmp_path):
    write_image(tmp_path / "frames" / "a.jpg")
    write_image(tmp_path / "frames" / "sub" / "b.png")
    samples, bad = scan_image_folder(tmp_path / "frames")
    assert [s.image.name for s in samples] == ["a.jpg", "b.png"] and not bad
    assert detect_sources(tmp_path / "frames").unlabeled == (tmp_path / "frames").resolve()


def test_synthetic_tree_reads_with_the_same_loaders(tmp_path):
    root = generate(tmp_path / "syn", per_class=4, seg_pairs=3, unlabeled=2, min_side=64, max_side=72)
    src = detect_sources(root)
    cls, classes, bad = scan_classification(src.classification, mask_root=src.classification_masks)
    assert len(classes) == 3 and not bad
    loaded, bad = load(cls)
    assert not bad
    has = loaded.has_mask()
    labels = np.array(loaded.labels)
    assert has[labels != "normal-cecum"].all() and not has[labels == "normal-cecum"].any()
    assert all(loaded.masks[i].any() for i in np.flatnonzero(has))
    seg, bad = scan_segmentation(src.segmentation)
    assert len(seg) == 3 and not bad


def test_modes_are_converted_to_rgb(tmp_path):
    arr16 = (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "deep.png")
    Image.new("CMYK", (40, 30), (0, 200, 200, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("L", (40, 30), 120).save(tmp_path / "grey.png")
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(tmp_path / "alpha.png")
    samples, _ = scan_image_folder(tmp_path)
    loaded, bad = load(samples)
    assert not bad and loaded.images.shape == (4, 16, 16, 3)
    deep = loaded.images[[s.image.name for s in samples].index("deep.png")]
    assert deep.max() > 200  # rescaled from 16 bit, not clipped to white or black


# --- every bad-input case: a clear error naming the file and the problem -----------------------------------


def test_empty_file(seg_tree):
    (seg_tree / "images" / "id0.jpg").write_bytes(b"")
    samples, _ = scan_segmentation(seg_tree)
    _, bad = load(samples)
    assert [(b.path.endswith("id0.jpg"), b.problem) for b in bad] == [(True, "empty file (0 bytes)")]


def test_truncated_jpeg(seg_tree):
    data = (seg_tree / "images" / "id1.jpg").read_bytes()
    (seg_tree / "images" / "id1.jpg").write_bytes(data[: len(data) // 2])
    _, bad = load(scan_segmentation(seg_tree)[0])
    assert len(bad) == 1 and bad[0].path.endswith("id1.jpg") and "truncated" in bad[0].problem


def test_non_image_with_image_extension(seg_tree):
    (seg_tree / "images" / "id2.jpg").write_text("<html>not found</html>")
    _, bad = load(scan_segmentation(seg_tree)[0])
    assert len(bad) == 1 and bad[0].path.endswith("id2.jpg") and "not an image" in bad[0].problem


def test_non_image_extension_in_class_folder(cls_tree):
    (cls_tree / "polyps" / "notes.txt").write_text("hello")
    _, _, bad = scan_classification(cls_tree)
    assert len(bad) == 1 and bad[0].path.endswith("notes.txt") and ".txt" in bad[0].problem


def test_image_without_mask_and_mask_without_image(seg_tree):
    (seg_tree / "masks" / "id3.jpg").unlink()
    (seg_tree / "images" / "id4.jpg").unlink()
    _, bad = scan_segmentation(seg_tree)
    found = {b.path.split("/")[-2] + "/" + b.path.split("/")[-1]: b.problem for b in bad}
    assert found["images/id3.jpg"].startswith("image has no mask")
    assert found["masks/id4.jpg"].startswith("mask has no image")


def test_mask_size_differs(seg_tree):
    write_mask(seg_tree / "masks" / "id5.jpg", size=(10, 10), box=(1, 1, 5, 5))
    _, bad = load(scan_segmentation(seg_tree)[0])
    assert len(bad) == 1 and bad[0].path.endswith("masks/id5.jpg") and "differs from its image" in bad[0].problem


def test_empty_class_folder(cls_tree):
    (cls_tree / "empty-class").mkdir()
    _, classes, bad = scan_classification(cls_tree)
    assert "empty-class" not in classes
    assert len(bad) == 1 and bad[0].path.endswith("empty-class") and "empty class folder" in bad[0].problem


def test_fewer_than_two_classes_is_an_error_even_with_skip_bad(tmp_path):
    for i in range(3):
        write_image(tmp_path / "one" / "polyps" / f"{i}.jpg")
    (tmp_path / "one" / "normal").mkdir()
    text = problems_of(lambda: prepare("smoke", data_root=tmp_path / "one", reports_root=tmp_path / "r", skip_bad=True))
    assert "fewer than 2 usable classes" in text and "polyps" in text


def test_missing_folder_and_missing_class(tmp_path, cls_tree):
    assert "does not exist" in problems_of(lambda: detect_sources(tmp_path / "nope"))
    text = problems_of(lambda: scan_classification(cls_tree, classes=["polyps", "ulcerative-colitis"]))
    assert "ulcerative-colitis" in text and "does not exist" in text


def test_prepare_lists_every_problem_at_once_and_touches_nothing(seg_tree, tmp_path):
    (seg_tree / "images" / "id0.jpg").write_bytes(b"")
    (seg_tree / "masks" / "id3.jpg").unlink()
    before = snapshot(seg_tree)
    text = problems_of(lambda: prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r"))
    assert "2 problem(s)" in text and "id0.jpg: empty file" in text and "id3.jpg: image has no mask" in text
    assert "--skip-bad" in text
    assert snapshot(seg_tree) == before
    assert not (paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "splits.csv").exists()


def test_skip_bad_leaves_files_out_and_reports_them(seg_tree, tmp_path):
    (seg_tree / "images" / "id0.jpg").write_text("not an image")
    before = snapshot(seg_tree)
    prepared = prepare("smoke", data_root=seg_tree, reports_root=tmp_path / "r", skip_bad=True, image_size=16)
    assert snapshot(seg_tree) == before
    splits = pd.read_csv(paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "splits.csv")
    assert len(splits) == 5 and "images/id0.jpg" not in set(splits["file"])
    bad = pd.read_csv(paths.in_run(tmp_path / "r" / "smoke", course.DATA) / "bad_files.csv")
    assert bad["path"].str.endswith("id0.jpg").tolist() == [True]
    assert prepared.report["origin"] == "real" and prepared.report["skip_bad"]
