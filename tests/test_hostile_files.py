"""Hostile folders (issue 17): every odd file is used, refused or noted by name, and nothing is touched.

The predictor's cases live in `test_deploy.py`; the mask encodings in `test_mask_encodings.py`.
"""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from helpers import course, paths
from helpers.data import prepare

from conftest import snapshot, write_image, write_mask


def _pairs(root: Path, n: int, ext: str = ".jpg", mask_ext: str = ".png") -> Path:
    for i in range(n):
        write_image(root / "images" / f"p{i}{ext}", size=(40, 30), colour=(150 + 10 * i, 80, 70))
        write_mask(root / "masks" / f"p{i}{mask_ext}", size=(40, 30))
    return root


def _same_name(root):  # x.jpg and a flipped x.png share one mask: neither may be guessed
    write_image(root / "images" / "x.jpg")
    Image.open(root / "images" / "x.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "images" / "x.png")
    write_mask(root / "masks" / "x.png")


def _bomb(root):  # a 60-byte PNG that declares 30000 x 30000 pixels
    from test_deploy import _png_header_only

    (root / "images" / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    write_mask(root / "masks" / "bomb.png")


def _exif_rotated(root):  # stored 40x30 with orientation 6: every viewer shows it 30x40, like its mask
    (root / "images").mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (40, 30), (120, 60, 50))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(root / "images" / "turned.jpg", exif=exif)
    write_mask(root / "masks" / "turned.png", size=(30, 40), box=(5, 5, 20, 25))


def _underscore(root):  # `_x.jpg` is an ordinary name
    write_image(root / "images" / "_first.jpg")
    write_mask(root / "masks" / "_first.png")


def _sub_folder(root):  # Kvasir-SEG keeps files directly in images/: a sub-folder is not searched, and says so
    write_image(root / "images" / "extra" / "e0.jpg")


def _hidden(root):  # macOS leaves `._x.jpg` copies and `__MACOSX/` in archives: never data, but noted
    (root / "images" / "._p0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    write_image(root / "images" / "__MACOSX" / "p1.jpg")


CASES = {
    # case: (make, pairs used, {file: words of its problem}, {file: words of its note}), files relative to the folder
    "same name": (
        _same_name,
        4,
        {"images/x.jpg": "share the name", "images/x.png": "share the name", "masks/x.png": "mask has no image"},
        {},
    ),
    "decompression bomb": (_bomb, 4, {"images/bomb.png": "decompression bomb"}, {}),
    "EXIF orientation": (_exif_rotated, 5, {}, {}),
    "underscore name": (_underscore, 5, {}, {}),
    "sub-folder": (_sub_folder, 4, {}, {"images/extra": "sub-folder not searched"}),
    "hidden files": (_hidden, 4, {}, {"images/._p0.jpg": "hidden file", "images/__MACOSX": "sub-folder not searched"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_odd_files_are_used_refused_or_noted_by_name(tmp_path, case):
    make, used, problems, notes = CASES[case]
    root = _pairs(tmp_path / "polyps", 4)
    make(root)
    before = snapshot(root)
    prepared = prepare("smoke", data_root=root, reports_root=tmp_path / "reports", skip_bad=True)
    report = prepared.report
    assert sum(report["counts"]["segmentation"].values()) == used
    bad = {str(Path(b["path"]).relative_to(root)): b["problem"] for b in report["bad_files"]}
    assert set(bad) == set(problems), bad
    for name, words in problems.items():
        assert words in bad[name], bad[name]
    noted = {str(Path(n["path"]).relative_to(root)): n["note"] for n in report["notes"]}
    assert set(noted) == set(notes), noted
    for name, words in notes.items():
        assert words in noted[name], noted[name]
    assert snapshot(root) == before  # nothing in the user's folder changed


def test_exif_orientation_is_applied_as_viewers_do(tmp_path):
    root = _pairs(tmp_path / "polyps", 0)
    _exif_rotated(root)
    prepared = prepare("smoke", data_root=root, reports_root=tmp_path / "reports", image_size=32)
    assert prepared.sets["segmentation"].orig_sizes.tolist() == [[30, 40]]  # width x height as displayed


def test_a_folder_of_upper_case_extensions_is_read(tmp_path):
    root = _pairs(tmp_path / "polyps", 5, ext=".JPG", mask_ext=".JPEG")
    assert (
        sum(prepare("smoke", data_root=root, reports_root=tmp_path / "r").report["counts"]["segmentation"].values())
        == 5
    )


@pytest.mark.notebooks
def test_notebook_00_runs_on_three_pairs(tmp_path):
    from helpers.runner import run_course

    root = _pairs(tmp_path / "tiny", 3)
    assert run_course("smoke", data_root=str(root), reports_root=str(tmp_path / "reports"), only=["00"]) == 0
    report = json.loads((paths.in_run(tmp_path / "reports" / "smoke", course.DATA) / "data_report.json").read_text())
    assert sum(report["counts"]["segmentation"].values()) == 3


def _read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes through permission bits; /sys refuses even root
        if not _sys_refuses():
            pytest.skip("no read-only folder to try as root here")
        return Path("/sys/course-reports")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "reports"


def _sys_refuses() -> bool:
    try:
        os.mkdir("/sys/course-probe")
    except OSError:
        return True
    os.rmdir("/sys/course-probe")
    return False


@pytest.mark.parametrize("kind", ["a file", "read-only"])
def test_a_reports_root_that_cannot_be_written_is_one_line(tmp_path, capsys, kind):
    from helpers.__main__ import main

    if kind == "a file":
        where = tmp_path / "reports.txt"
        where.write_text("mine")
    else:
        where = _read_only(tmp_path)
    assert main(["run", "--profile", "smoke", "--only", "00", "--reports-root", str(where)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --reports-root: cannot write reports to") and "\n" not in err
    assert "Traceback" not in err
    assert main(["data", "--profile", "smoke", "--reports-root", str(where)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "\n" not in err
    if kind == "a file":
        assert where.read_text() == "mine"


def test_nothing_is_silently_dropped_from_a_class_folder(tmp_path):
    root = tmp_path / "kvasir-v2"
    for cls in ("polyps", "normal-cecum"):
        for i in range(3):
            write_image(root / cls / f"{cls}{i}.jpg", colour=(100 + 40 * i, 60, 50))
    write_image(root / "_unsorted" / "u0.jpg")
    write_image(root / "polyps" / "_late.jpg")
    report = prepare("smoke", data_root=root, reports_root=tmp_path / "r").report
    assert report["classes"] == ["normal-cecum", "polyps"]
    assert sum(report["counts"]["classification"].values()) == 7  # `_late.jpg` is used
    assert [Path(n["path"]).name for n in report["notes"]] == ["_unsorted"]
