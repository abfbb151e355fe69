"""Segmentation metrics (including empty cases) and the polyp copy-paste augmentation."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import augment, parallel, segment
from helpers.training import seed_everything


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
        img, mask, pasted = augment.paste_polyp(
            dst_img, dst_mask, src_img, src_mask, np.random.default_rng(seed), feather=2
        )
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
        core = new & (augment.soft_alpha(new, 2) == 1)
        assert core.sum() > 0 and (img[core] == (230, 200, 40)).all()  # image and mask aligned
    assert np.array_equal(dst_img, before[0]) and np.array_equal(dst_mask, before[1])  # inputs not modified


def test_paste_gives_up_when_there_is_no_room():
    full_img, full_mask = _frame(size=24, polyp=(12, 12, 30))
    src_img, src_mask = _frame(polyp=(40, 40, 6))
    img, mask, pasted = augment.paste_polyp(full_img, full_mask, src_img, src_mask, np.random.default_rng(0))
    assert not pasted and img is full_img and mask is full_mask


def test_copy_paste_transform_adds_polyps_from_the_pool():
    pool = [_frame(polyp=(40, 40, 6)), _frame()]  # the polyp-free frame is left out of the pool
    aug = augment.CopyPaste(np.stack([p[0] for p in pool]), np.stack([p[1] for p in pool]), p=1.0, max_pastes=3)
    assert len(aug.pieces) == 1  # one polyp in the whole pool
    img, mask = aug(*_frame(polyp=(10, 10, 5)))
    from scipy import ndimage

    assert ndimage.label(mask)[1] >= 2 and img.shape == (64, 64, 3)


def _toy(n=12, size=64, seed=0):
    """Bright discs on dark mucosa: the mask is exactly where the red channel is high."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        y, x = rng.integers(16, size - 16, 2)
        image, mask = _frame(size, polyp=(y, x, int(rng.integers(6, 12))), colour=(250, 200, 190))
        images.append(image)
        masks.append(mask)
    return np.stack(images), np.stack(masks)


def _batch(images, masks, names, p=1.0, seed=0):
    return augment.augment_batch(
        torch.from_numpy(images).permute(0, 3, 1, 2),
        torch.from_numpy(masks)[:, None],
        names,
        p,
        torch.Generator().manual_seed(seed),
    )


def test_batched_augmentations_move_image_and_mask_together():
    images, masks = _toy(8)
    with pytest.raises(ValueError, match="unknown augmentation"):
        _batch(images, masks, ["rotate", "sharpen"])
    for seed in range(4):
        x, y = _batch(images, masks, augment.ABLATION["+ blur"], p=0.7, seed=seed)
        assert x.shape == (8, 3, 64, 64) and x.dtype == torch.float32 and y.shape == (8, 1, 64, 64)
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}  # nearest-neighbour resampling keeps masks binary
        red = augment.unnormalise(x)[..., 0] > 190  # the disc, read back from the transformed image
        assert ((red == y[:, 0].bool().numpy()).mean(axis=(1, 2)) > 0.97).all()  # aligned up to edge pixels


def test_a_flip_is_exact_and_p_zero_changes_nothing():
    images, masks = _toy(3)
    plain_x, plain_y = _batch(images, masks, [])
    x, y = _batch(images, masks, ["hflip"])
    assert torch.allclose(x, plain_x.flip(-1), atol=1e-5) and torch.equal(y, plain_y.flip(-1))
    x, y = _batch(images, masks, augment.ABLATION["+ blur"], p=0.0)
    assert torch.equal(x, plain_x) and torch.equal(y, plain_y)
    assert np.array_equal(augment.unnormalise(plain_x), images)  # what the model sees, read back exactly


def test_colour_and_blur_never_touch_the_mask_and_blur_keeps_flat_areas():
    images, masks = _toy(3)
    x, y = _batch(images, masks, ["colour", "blur"])
    assert torch.equal(y[:, 0], torch.from_numpy(masks).float())
    flat = np.full((2, 16, 16, 3), 120, np.uint8)
    x, _ = _batch(flat, np.zeros((2, 16, 16), np.uint8), ["blur"])
    assert np.abs(augment.unnormalise(x).astype(int) - 120).max() <= 1


def test_batches_are_seeded_and_cover_the_epoch():
    images, masks = _toy(10)
    first = [x for x, _ in augment.SegmentationBatches(images, masks, augment.ABLATION["+ copy-paste"], 4, seed=3)]
    again = [x for x, _ in augment.SegmentationBatches(images, masks, augment.ABLATION["+ copy-paste"], 4, seed=3)]
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again))  # 10 frames, batch 4, drop last
    assert len(augment.SegmentationBatches(images, masks, [], 16)) == 1  # fewer frames than a batch: one batch


def test_copy_paste_in_the_batches_adds_polyps_from_the_training_set_only():
    images, masks = _toy(6)
    batches = augment.SegmentationBatches(images, masks, ["copy_paste"], batch_size=6, seed=1, drop_last=False)
    areas = [y.sum((1, 2, 3)) for _ in range(3) for _, y in batches]
    assert max(float(a.sum()) for a in areas) > masks.sum()  # some frames got a pasted polyp
    assert len(batches.copy_paste.pieces) == 6  # one polyp per training frame, nothing else


def _encoder_checkpoint(tmp_path, name):
    import timm

    path = tmp_path / f"{name}.pt"
    torch.save(timm.create_model(name, pretrained=False, num_classes=0).state_dict(), path)
    return path


@pytest.mark.parametrize("arch", ["unet", "deeplabv3plus"])
def test_build_starts_from_the_ssl_encoder_and_refuses_a_wrong_one(tmp_path, arch):
    path = _encoder_checkpoint(tmp_path, "resnet18")
    model = segment.build(arch, "resnet18", path)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(model.encoder.model.state_dict()["layer3.0.conv1.weight"], saved["layer3.0.conv1.weight"])
    assert not torch.equal(
        segment.build(arch, "resnet18").encoder.model.state_dict()["conv1.weight"], saved["conv1.weight"]
    )
    with pytest.raises(ValueError, match="does not fit a resnet34 encoder"):
        segment.build(arch, "resnet34", path)
    with pytest.raises(ValueError, match="unknown architecture"):
        segment.build("segformer", "resnet18")


def test_losses_match_a_hand_computed_case():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1  # 4 of 16 pixels
    zero = torch.zeros(1, 1, 4, 4)  # p = 0.5 everywhere
    # soft Dice = 2 * (0.5 * 4) / (0.5 * 16 + 4) = 1/3; soft IoU = 2 / (8 + 4 - 2) = 0.2; BCE = ln 2
    assert segment.loss_fn("dice_bce")(zero, target).item() == pytest.approx(2 / 3 + np.log(2), abs=1e-5)
    assert segment.loss_fn("jaccard")(zero, target).item() == pytest.approx(0.8, abs=1e-5)
    perfect = (target * 2 - 1) * 20
    assert segment.loss_fn("dice_bce")(perfect, target).item() < 1e-6
    with pytest.raises(ValueError, match="unknown loss"):
        segment.loss_fn("focal")


def test_fit_learns_toy_discs_and_keeps_the_best_validation_epoch():
    train, val = _toy(16, seed=0), _toy(8, seed=1)
    seed_everything(0)
    model = segment.build("unet", "resnet18")
    history = segment.fit(model, train, val, ["hflip"], epochs=4, lr=3e-3, batch_size=8, seed=0)
    dice = segment.per_image_metrics(segment.predict_proba(model, val[0]) >= 0.5, val[1])["dice"].mean()
    assert dice == pytest.approx(history["val_dice"].max()) and dice > 0.5
    assert history.loc[history["val_dice"].idxmax(), "kept"]


def test_grid_rejects_unknown_rows_and_ssl_without_weights():
    data = {s: _toy(4) for s in ("train", "val", "test")}
    with pytest.raises(ValueError, match="not an ABLATION row"):
        segment.train_grid(
            [{"arch": "unet", "encoder": "resnet18", "augmentation": "mixup", "init": "random"}], [0], data, 1, 1e-3, 4
        )
    with pytest.raises(ValueError, match="needs `encoder_weights`"):
        segment.train_grid(
            [{"arch": "unet", "encoder": "resnet18", "augmentation": "none", "init": "SSL"}], [0], data, 1, 1e-3, 4
        )


def test_ablation_verdicts_claim_only_differences_beyond_the_spread():
    rows = [
        ("none", "random", 0.70, 0.01, 0.70),
        ("geometric", "random", 0.76, 0.02, 0.75),
        ("+ blur", "random", 0.71, 0.03, 0.71),
        ("+ copy-paste", "random", 0.60, 0.01, 0.60),
        ("geometric", "SSL", 0.77, 0.02, 0.77),
    ]
    summary = pd.DataFrame(
        [
            {
                "arch": "unet",
                "augmentation": a,
                "init": i,
                "test_dice_mean": m,
                "test_dice_std": s,
                "val_dice_mean": v,
                "runs": 2,
            }
            for a, i, m, s, v in rows
        ]
    )
    assert segment.best_row(summary, "unet") == "geometric"
    by = {(v["new"], v["base"]): v for v in segment.ablation_verdicts(summary, "unet")}
    assert by[("geometric", "none")]["outcome"] == "better"
    assert by[("+ blur", "none")]["outcome"] == "tie_above"
    assert (
        by[("+ copy-paste", "none")]["outcome"] == "worse"
        and "**is worse than**" in by[("+ copy-paste", "none")]["text"]
    )
    assert by[("+ copy-paste", "+ blur")]["outcome"] == "worse"
    assert by[("geometric + SSL init", "geometric")]["outcome"] == "tie_above"


def test_grid_scores_every_test_set_and_verdicts_name_it():
    data = {s: _toy(4) for s in ("train", "val", "test", "test_out", "test_multi")}
    cfg = [{"arch": "unet", "encoder": "resnet18", "augmentation": "none", "init": "random"}]
    runs, _ = segment.train_grid(cfg, [0], data, 1, 1e-3, 4)
    for s in ("test", "test_out", "test_multi"):
        assert 0 <= runs.loc[0, f"{s}_dice"] <= 1 and f"{s}_iou" in runs
    assert "val_dice" in runs and "train_dice" not in runs
    summary = pd.DataFrame(
        [
            {
                "arch": "unet",
                "augmentation": a,
                "init": "random",
                "test_out_dice_mean": m,
                "test_out_dice_std": 0.01,
                "runs": 2,
            }
            for a, m in (("none", 0.5), ("+ colour", 0.6))
        ]
    )
    (verdict,) = segment.ablation_verdicts(summary, "unet", "test_out")
    assert verdict["outcome"] == "better" and verdict["test_set"] == "test_out"
    assert verdict["text"].startswith("unet, out-of-centre test:")


def _ablation(rows: list[tuple]) -> pd.DataFrame:
    """A U-Net ablation summary from (augmentation, init, test Dice, its std, validation Dice) rows."""
    return pd.DataFrame(
        [
            {
                "arch": "unet",
                "augmentation": a,
                "init": i,
                "test_dice_mean": m,
                "test_dice_std": s,
                "test_iou_mean": m - 0.1,
                "val_dice_mean": v,
                "runs": 2,
            }
            for a, i, m, s, v in rows
        ]
    )


def test_published_augmentation_row_is_matched_with_an_augmented_row_even_when_none_wins():
    """The cpu run had matched the published 'augmentation' U-Net with 'unet · none' (no augmentation won on
    validation): a row without augmentation is no match for it, and a pretrained row without augmentation says
    so in its comparable column, also on real data at full resolution."""
    summary = _ablation(
        [
            ("none", "random", 0.73, 0.01, 0.70),
            ("geometric", "random", 0.68, 0.01, 0.61),
            ("+ blur", "random", 0.70, 0.02, 0.62),
            ("none", "SSL", 0.69, 0.01, 0.67),
        ]
    )
    assert segment.best_row(summary, "unet") == "none"
    assert segment.best_row(summary, "unet", augmented=True) == "+ blur"
    table = segment.published_comparison(summary, comparable=True).set_index("setting")
    assert table["this run"].tolist() == [
        "unet · none · random init",
        "unet · + blur · random init",
        "unet · none · SSL init",
    ]
    assert table.loc["augmentation", "dice"] == pytest.approx(0.70)
    assert table["comparable"].tolist() == ["yes", "yes", "no: this row has no augmentation"]
    synthetic = segment.published_comparison(summary, comparable=False)["comparable"].tolist()
    assert synthetic[0] == "no: other data / resolution / budget"
    assert synthetic[2] == "no: other data / resolution / budget; this row has no augmentation"
    only_none = segment.published_comparison(_ablation([("none", "random", 0.73, 0.01, 0.70)]), comparable=True)
    assert only_none["this run"].tolist()[1:] == ["not run", "not run"]
    assert only_none["comparable"].tolist() == ["yes", "no: not run", "no: not run"]


def _runs(still: int, total: int = 4, epochs: int = 6) -> pd.DataFrame:
    """`total` runs of `epochs`, `still` of which kept one of their last two epochs."""
    return pd.DataFrame({"epochs": [epochs] * total, "best_epoch": [epochs] * still + [2] * (total - still)})


def test_augmentation_lesson_says_whether_it_shows_and_reads_the_reason_from_the_budget():
    summary = _ablation(
        [
            ("none", "random", 0.73, 0.01, 0.70),
            ("geometric", "random", 0.68, 0.01, 0.61),
            ("+ blur", "random", 0.72, 0.02, 0.6),
        ]
    )
    verdicts = segment.ablation_verdicts(summary, "unet")
    assert [v["outcome"] for v in verdicts] == ["worse", "tie_below"]
    under = segment.augmentation_lesson(verdicts, _runs(still=3))
    assert "**does not show**" in under and "(1 of 2 comparisons are worse, 1 within the spread)" in under
    assert "3 of 4 runs were still improving" in under and "under-fitted" in under
    fitted = segment.augmentation_lesson(verdicts, _runs(still=1))
    assert "**does not show**" in fitted and "budget was not the limit (3 of 4 runs peaked" in fitted
    assert "under-fitted" not in fitted
    assert segment.budget_line(_runs(still=3)).startswith("3 of 4 runs kept one of their last two epochs")
    assert segment.budget_line(_runs(still=2)).startswith("2 of 4 runs peaked before")
    helped = _ablation([("none", "random", 0.70, 0.01, 0.70), ("geometric", "random", 0.76, 0.02, 0.75)])
    shows = segment.augmentation_lesson(segment.ablation_verdicts(helped, "unet"), _runs(still=4))
    assert shows.startswith("The augmentation lesson **shows** in 1 of 1 comparisons")
    assert "unet geometric (in-centre test, +0.060)" in shows and "under-fitted" not in shows
    # SSL initialisation and copy-paste against blur are other questions, not the augmentation lesson
    ssl_only = [{"base": "none", "new": "none + SSL init", "outcome": "better"}]
    assert "was not asked" in segment.augmentation_lesson(ssl_only, _runs(still=4))


def test_saved_models_index_round_trips_through_load_model(tmp_path):
    """The writer of models/index.json sits next to its reader: what save_models writes, load_model rebuilds."""
    key = ("unet", "resnet18", "+ copy-paste", "random", 0)
    torch.manual_seed(0)
    model = segment.build("unet", "resnet18")
    columns = ["arch", "encoder", "augmentation", "init", "seed"]
    runs = pd.DataFrame([dict(zip(columns, key), val_dice=0.7, test_dice=0.6)])
    rows = {"unet": key[2]}
    entries = segment.save_models(tmp_path, {key: model}, {key}, runs, ["test"], 64, {"epochs": 1}, rows, key)
    name = segment.checkpoint_name(*key)
    assert name == "unet_resnet18_copy-paste_random_seed0" and entries[name]["test_dice"] == pytest.approx(0.6)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["best"] == name and index["checkpoints"][name]["augment"] == augment.ABLATION["+ copy-paste"]
    loaded = segment.load_model(tmp_path, name)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_grid_results_do_not_depend_on_how_many_runs_go_side_by_side(monkeypatch):
    """Every CPU run trains on one thread, in this process or in a worker: the worker count changes only the time."""
    data = {s: _toy(4) for s in ("train", "val", "test")}
    cfg = [{"arch": "unet", "encoder": "resnet18", "augmentation": "geometric", "init": "random"}]
    side_by_side, models = segment.train_grid(cfg, [0, 1], data, 1, 1e-3, 4)
    monkeypatch.setattr(parallel, "workers", lambda: 1)
    here, models_here = segment.train_grid(cfg, [0, 1], data, 1, 1e-3, 4)
    pd.testing.assert_frame_equal(side_by_side.drop(columns="train_s"), here.drop(columns="train_s"))
    for key, model in models.items():
        assert all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), models_here[key].state_dict().values())
        )


def test_centre_drops_reads_each_rows_out_of_centre_loss():
    summary = pd.DataFrame(
        [
            {
                "arch": "unet",
                "augmentation": "none",
                "init": "random",
                "test_dice_mean": 0.8,
                "test_out_dice_mean": 0.7,
            },
            {
                "arch": "unet",
                "augmentation": "geometric",
                "init": "SSL",
                "test_dice_mean": 0.6,
                "test_out_dice_mean": 0.65,
            },
            {  # a loss too small to show: no "-0.000"
                "arch": "deeplabv3plus",
                "augmentation": "colour",
                "init": "random",
                "test_dice_mean": 0.7003,
                "test_out_dice_mean": 0.7,
            },
        ]
    )
    assert segment.centre_drops(summary) == (
        "unet none -0.100; unet geometric + SSL +0.050; deeplabv3plus colour +0.000"
    )
