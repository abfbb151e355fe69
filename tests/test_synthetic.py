"""The embedded generator: deterministic, in the real layouts, masks consistent with what was drawn."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from helpers.data import synthetic
from helpers.data.synthetic import CLASS_SHARE, CLASSES, generate, render_frame


def tree_hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "synthetic"
    return generate(root, per_class=5, seg_pairs=4, unlabeled=3, seed=7, min_side=64, max_side=80, workers=2)


def test_same_seed_same_bytes(small, tmp_path):
    again = generate(
        tmp_path / "again", per_class=5, seg_pairs=4, unlabeled=3, seed=7, min_side=64, max_side=80, workers=1
    )
    assert tree_hashes(small) == tree_hashes(again)


def test_other_seed_other_images(small, tmp_path):
    other = generate(tmp_path / "other", per_class=5, seg_pairs=4, unlabeled=3, seed=8, min_side=64, max_side=80)
    a, b = tree_hashes(small), tree_hashes(other)
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) > len(a) // 2


def test_layouts_match_the_real_datasets(small):
    for cls in CLASSES:
        n = len(list((small / "kvasir-v2" / cls).glob("*.jpg")))
        assert n == max(2, round(5 * CLASS_SHARE[cls]))
    assert not (small / "kvasir-v2-masks" / "normal-cecum").exists()  # no polyp, no mask
    images = sorted(p.name for p in (small / "kvasir-seg" / "images").iterdir())
    masks = sorted(p.name for p in (small / "kvasir-seg" / "masks").iterdir())
    assert images == masks and len(images) == 4
    mask = Image.open(small / "kvasir-seg" / "masks" / images[0])
    assert mask.format == "JPEG" and mask.mode == "RGB"  # like Kvasir-SEG's masks
    assert len(list((small / "unlabeled").glob("*.jpg"))) == 3
    assert json.loads((small / "GENERATOR.json").read_text())["seed"] == 7


def test_identical_request_reuses_the_tree(small):
    before = {p: p.stat().st_mtime_ns for p in small.rglob("*.jpg")}
    generate(small, per_class=5, seg_pairs=4, unlabeled=3, seed=7, min_side=64, max_side=80)
    assert before == {p: p.stat().st_mtime_ns for p in small.rglob("*.jpg")}


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing"):
        generate(tmp_path / "mine", per_class=2, seg_pairs=1, unlabeled=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_mask_has_one_region_per_polyp(n):
    frame = render_frame(np.random.default_rng(n), 200, 240, n_polyps=n)
    assert frame.image.shape == (200, 240, 3) and frame.image.dtype == np.uint8
    assert set(np.unique(frame.mask)) <= {0, 1}
    regions = ndimage.label(frame.mask, structure=np.ones((3, 3)))[1]
    assert regions == frame.n_polyps == len(frame.polyp_areas)
    assert frame.mask.sum() == sum(frame.polyp_areas)
    assert frame.n_polyps == n  # 240x200 always has room for 3


def test_polyp_pixels_differ_from_their_surroundings():
    frame = render_frame(np.random.default_rng(3), 200, 240, n_polyps=1)
    inside = frame.image[frame.mask == 1].astype(float)
    ring = ndimage.binary_dilation(frame.mask, iterations=8) & ~ndimage.binary_dilation(frame.mask, iterations=3)
    outside = frame.image[ring].astype(float)
    assert np.abs(inside.mean(0) - outside.mean(0)).max() > 3 or abs(inside.std() - outside.std()) > 3


def test_dyed_frames_are_bluer():
    def blueness(dyed):
        vals = []
        for s in range(6):
            img = render_frame(np.random.default_rng(100 + s), 120, 140, 1, dyed=dyed).image.astype(float)
            vals.append((img[..., 2] - img[..., :2].mean(-1)).mean())
        return np.mean(vals)

    assert blueness(True) > blueness(False) + 5


def test_frame_rng_is_independent_of_order():
    job = synthetic._Job("seg", 3, 0, 64, 80)
    a = synthetic._files_for(job)
    synthetic._files_for(synthetic._Job("seg", 2, 0, 64, 80))
    assert synthetic._files_for(job) == a


def test_every_image_names_its_centre(small):
    lines = (small / synthetic.CENTRES_FILE).read_text().splitlines()
    assert lines[0] == "file,centre"
    listed = dict(line.split(",") for line in lines[1:])
    images = {str(p.relative_to(small)) for p in small.rglob("*.jpg") if "masks" not in str(p)}
    assert set(listed) == images  # every image, no mask
    assert set(listed.values()) <= set(synthetic.CENTRE_NAMES)


@pytest.mark.parametrize("centre", synthetic.CENTRES, ids=lambda c: c.name)
def test_a_centre_is_an_imaging_chain(centre):
    """Same anatomy (same RNG), other centre: other pixels; the opaque guide inset hides the polyp under it."""
    base = render_frame(np.random.default_rng(3), 120, 150, 1, centre=synthetic.CENTRES[0])
    frame = render_frame(np.random.default_rng(3), 120, 150, 1, centre=centre)
    assert frame.centre == centre.name and frame.mask.any()
    if centre is not synthetic.CENTRES[0]:
        assert np.abs(frame.image.astype(int) - base.image).mean() > 3
    corner = frame.image[-10:, 5:15].astype(int)  # inside the lower-left inset when there is one
    is_green = corner[..., 1].mean() > corner[..., 0].mean() + 10
    assert is_green == centre.guide_inset


def test_held_out_centre_is_one_of_them():
    assert synthetic.HELD_OUT_CENTRE in synthetic.CENTRE_NAMES
    assert abs(sum(c.share for c in synthetic.CENTRES) - 1) < 1e-9
