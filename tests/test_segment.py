"""Segmentation metrics (including empty cases) and the polyp copy-paste augmentation."""

import numpy as np
import pytest

from helpers import segment


def test_metrics_hand_case_and_empty_rules():
    t = np.zeros((4, 4, 4), bool)
    p = np.zeros((4, 4, 4), bool)
    t[0, :2, :2] = True  # 4 pixels
    p[0, :2, :3] = True  # 6 pixels, 4 overlap
    t[2, 0, 0] = True  # image 2: polyp missed
    p[3, 0, 0] = True  # image 3: false alarm on a polyp-free frame; image 1: both empty
    m = segment.per_image_metrics(p, t)
    assert m.loc[0, "dice"] == pytest.approx(8 / 10) and m.loc[0, "iou"] == pytest.approx(4 / 6)
    assert m.loc[0, "precision"] == pytest.approx(4 / 6) and m.loc[0, "recall"] == 1.0
    assert m.loc[0, "pixel_accuracy"] == pytest.approx(14 / 16)
    assert m.loc[1].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert (m.loc[2, "dice"], m.loc[2, "iou"], m.loc[2, "recall"], m.loc[2, "precision"]) == (0, 0, 0, 1)
    assert (m.loc[3, "dice"], m.loc[3, "iou"], m.loc[3, "precision"], m.loc[3, "recall"]) == (0, 0, 0, 1)
    with pytest.raises(ValueError, match="N x H x W"):
        segment.per_image_metrics(p[0], t[0])


def _frame(size=64, polyp=None, colour=(200, 120, 110)):
    image = np.full((size, size, 3), (150, 60, 50), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    if polyp:
        y, x, r = polyp
        yy, xx = np.mgrid[:size, :size]
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        image[disc], mask[disc] = colour, 1
    return image, mask


def test_paste_is_exact_binary_aligned_and_never_over_a_polyp():
    dst_img, dst_mask = _frame(polyp=(14, 14, 8))
    src_img, src_mask = _frame(polyp=(40, 40, 9), colour=(230, 200, 40))
    before = dst_img.copy(), dst_mask.copy()
    for seed in range(20):
        img, mask, pasted = segment.paste_polyp(dst_img, dst_mask, src_img, src_mask, np.random.default_rng(seed),
                                                feather=2)
        assert pasted and set(np.unique(mask)) == {0, 1}
        new = (mask == 1) & (dst_mask == 0)
        assert new.sum() == src_mask.sum()  # the pasted component, whole, exactly
        assert (mask[dst_mask == 1] == 1).all()  # the old polyp is kept
        grown = np.zeros_like(new)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(new, dy, 0), dx, 1)
        assert not (grown & (dst_mask == 1)).any()  # nothing pasted over or touching the existing polyp
        assert np.array_equal(img[mask == 0], dst_img[mask == 0])  # outside the new mask the image is untouched
        core = new & (segment._soft_alpha(new, 2) == 1)
        assert core.sum() > 0 and (img[core] == (230, 200, 40)).all()  # image and mask aligned
    assert np.array_equal(dst_img, before[0]) and np.array_equal(dst_mask, before[1])  # inputs not modified


def test_paste_gives_up_when_there_is_no_room():
    full_img, full_mask = _frame(size=24, polyp=(12, 12, 30))
    src_img, src_mask = _frame(polyp=(40, 40, 6))
    img, mask, pasted = segment.paste_polyp(full_img, full_mask, src_img, src_mask, np.random.default_rng(0))
    assert not pasted and img is full_img and mask is full_mask


def test_copy_paste_transform_adds_polyps_from_the_pool():
    pool = [_frame(polyp=(40, 40, 6)), _frame()]  # the polyp-free frame is left out of the pool
    aug = segment.CopyPaste(np.stack([p[0] for p in pool]), np.stack([p[1] for p in pool]), p=1.0, max_pastes=3)
    assert len(aug.images) == 1
    img, mask = aug(*_frame(polyp=(10, 10, 5)))
    from scipy import ndimage

    assert ndimage.label(mask)[1] >= 2 and img.shape == (64, 64, 3)
