"""Grad-CAM on a toy model whose answer is known, and the energy pointing game."""

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn

from helpers import explain


class PlantedFeature(nn.Module):
    """Class 1's logit is the mean of a 'red detector' map (stride 2); class 0's is its negative."""

    def __init__(self):
        super().__init__()
        self.detector = nn.Conv2d(3, 1, kernel_size=2, stride=2)
        with torch.no_grad():
            self.detector.weight.zero_()
            self.detector.weight[0, 0] = 1.0  # red channel
            self.detector.weight[0, 1:] = -1.0  # minus green and blue
            self.detector.bias.fill_(0.0)
        self.act = nn.ReLU()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.act(self.detector(x)).mean(dim=(2, 3)))


def _frames(n=6, size=32, seed=0):
    """Grey frames with one red square at a random place; the square's mask is the known answer."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 110, np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        y, x = rng.integers(0, size - 8, 2) // 2 * 2
        images[i, y : y + 8, x : x + 8] = (230, 30, 30)
        masks[i, y : y + 8, x : x + 8] = 1
    return images, masks


def test_gradcam_points_at_the_planted_feature():
    images, masks = _frames()
    model = PlantedFeature()
    cams = explain.gradcam(model, model.act, images, targets=[1] * len(images), batch_size=4)
    assert cams.shape == masks.shape and cams.min() >= 0 and cams.max() <= 1
    share = explain.energy_in_mask(cams, masks)
    baseline = explain.energy_in_mask(explain.random_maps(len(images), 32, grid=16, seed=0), masks)
    assert share.min() > 0.8  # the map sits on the square (bilinear upsampling blurs its edge a little)
    assert baseline.mean() == pytest.approx(masks.mean(), abs=0.05)  # noise scores the square's area share
    for i in range(len(images)):  # and the hottest pixel is inside the square
        assert masks[i].flat[cams[i].argmax()] == 1


def test_energy_in_mask_hand_case():
    cam = np.zeros((1, 4, 4))
    cam[0, 0, 0], cam[0, 3, 3] = 3.0, 1.0
    mask = np.zeros((1, 4, 4))
    mask[0, :2, :2] = 1
    assert explain.energy_in_mask(cam, mask)[0] == pytest.approx(0.75)
    assert np.isnan(explain.energy_in_mask(np.zeros((1, 4, 4)), mask)[0])


def test_pointing_game_and_cam_scores_hand_case():
    cams = np.zeros((3, 4, 4))
    cams[0, 0, 1] = 1.0  # hottest pixel inside the mask
    cams[1, 3, 3], cams[1, 0, 0] = 1.0, 0.5  # hottest outside, some energy inside
    masks = np.zeros((3, 4, 4))
    masks[:, :2, :2] = 1
    hits = explain.pointing_game(cams, masks)
    assert hits[0] == 1.0 and hits[1] == 0.0 and np.isnan(hits[2])  # an all-zero map points nowhere
    per_frame, table = explain.cam_scores({"model": cams}, masks)
    row = table.loc["model"]
    assert row["pointing_hit_rate"] == pytest.approx(0.5) and row["frames_with_a_map"] == 2 and row["frames"] == 3
    assert row["energy_mean"] == pytest.approx((1.0 + 0.5 / 1.5) / 2) and row["mask_area_share"] == pytest.approx(0.25)
    assert len(per_frame) == 3


def test_cam_layer_respects_the_stride_limit():
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    assert explain.cam_layer(model, 32) is model.layer4
    assert explain.cam_layer(model, 16) is model.layer3
    assert explain.cam_layer(model, 8) is model.layer2  # the course's choice: 8 x 8 maps at 64 px
    student = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    assert explain.cam_layer(student, 8) is student.layer2
    mobile = timm.create_model("mobilenetv3_small_100", pretrained=False, num_classes=3)
    assert explain.cam_layer(mobile, 16) is mobile.blocks[3]
    with pytest.raises(ValueError, match="stride"):
        explain.cam_layer(model, 1)


def test_overlay_and_plot_shapes():
    images, masks = _frames(2)
    cams = np.random.default_rng(0).random((2, 32, 32))
    assert explain.overlay(images[0], cams[0]).shape == (32, 32, 3)
    fig = explain.plot_cams(images, {"a": cams, "b": cams}, ["x", "y"], masks)
    assert len(fig.axes) == 6


def test_cam_finding_calls_a_model_above_random_only_beyond_twice_the_standard_error():
    rows = {  # energy mean, energy std, hit rate, hit std
        "teacher": (0.154, 0.095, 0.112, 0.317),
        "student": (0.201, 0.093, 0.193, 0.396),
        "random maps": (0.122, 0.072, 0.101, 0.303),
    }
    cols = ["energy_mean", "energy_std", "pointing_hit_rate", "pointing_hit_std"]
    table = pd.DataFrame(rows, index=cols).T.assign(frames=109)
    text = explain.cam_finding(table, explain.cam_name("hirescam", 16))
    assert text.startswith("HiResCAM at stride 16 (109 test frames)")
    # energy: teacher 0.032 above random, 2 standard errors = 2 * sqrt((0.095^2 + 0.072^2) / 109) = 0.023
    assert "teacher clearly above random maps on energy in mask" in text
    assert "student clearly above random maps on energy in mask" in text
    # pointing: teacher 0.011 above, 2 SE = 0.084: noise; student 0.092 above, 2 SE = 0.095: not clear either
    assert "teacher NOT clearly above random maps on pointing" in text
    assert "student NOT clearly above random maps on pointing" in text
    table.loc["student", "pointing_hit_rate"] = 0.25  # 0.149 above random, 2 SE = 0.096 (std kept)
    assert "student clearly above random maps on pointing" in explain.cam_finding(table, "Grad-CAM")


class TwoStages(PlantedFeature):
    """PlantedFeature with timm's `feature_info`: the red detector at stride 2 and a 4 x 4 average of it at stride 8."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.feature_info = [{"module": "act", "reduction": 2}, {"module": "pool", "reduction": 8}]

    def forward(self, x):
        return self.head(self.pool(self.act(self.detector(x))).mean(dim=(2, 3)))


def test_choose_cam_scores_every_candidate_and_picks_the_weaker_models_largest_lead():
    images, masks = _frames(8)
    models = {"a": TwoStages(), "b": TwoStages()}
    table, chosen = explain.choose_cam(models, images, [1] * 8, masks, ["gradcam", "hirescam"], [2, 8], seed=0)
    assert list(zip(table["method"], table["stride"])) == [
        ("gradcam", 2),
        ("gradcam", 8),
        ("hirescam", 2),
        ("hirescam", 8),
    ]
    assert table["chosen"].sum() == 1 and chosen["method"] == table.loc[table["chosen"], "method"].item()
    # the planted square: every map points at it at stride 2, whichever method
    assert (table.loc[table["stride"] == 2, ["a pointing", "b pointing"]] == 1.0).all().all()
    lead = table[["a pointing", "b pointing"]].min(axis=1) - table["random pointing"]
    assert table["weaker lead, pointing"].tolist() == pytest.approx(lead.tolist())
    assert chosen["weaker lead, pointing"] == pytest.approx(lead.max())
    # a model that looks nowhere drags its candidates down: the weaker model decides
    blind = TwoStages()
    with torch.no_grad():
        blind.head.weight.zero_()
    table, _ = explain.choose_cam({"a": TwoStages(), "blind": blind}, images, [1] * 8, masks, ["gradcam"], [2], seed=0)
    assert np.isnan(table.loc[0, "blind pointing"]) and table.loc[0, "a pointing"] == 1.0  # no gradient, no map
    assert table.loc[0, "weaker lead, pointing"] == pytest.approx(-table.loc[0, "random pointing"])
    with pytest.raises(ValueError, match="unknown CAM method"):
        explain.gradcam(TwoStages(), TwoStages().act, images, [1] * 8, method="scorecam")


def test_centre_maps_ignore_the_image_and_the_finding_judges_against_them_too():
    maps = explain.baselines(3, 16, stride=8)["centre map"]
    assert maps.shape == (3, 16, 16) and (maps[0] == maps[2]).all() and maps[0].max() == pytest.approx(maps[0, 7, 8])
    masks = np.zeros((2, 16, 16))
    masks[0, 6:10, 6:10], masks[1, :3, :3] = 1, 1  # a central polyp is hit, one in the corner is not
    assert explain.pointing_game(maps[:2], masks).tolist() == [1.0, 0.0]
    rows = {  # energy mean, energy std, hit rate, hit std
        "teacher": (0.207, 0.14, 0.228, 0.42),
        "student": (0.168, 0.073, 0.156, 0.364),
        "random maps": (0.126, 0.075, 0.092, 0.289),
        "centre map": (0.221, 0.12, 0.435, 0.496),
    }
    cols = ["energy_mean", "energy_std", "pointing_hit_rate", "pointing_hit_std"]
    table = pd.DataFrame(rows, index=cols).T.assign(frames=294)
    text = explain.cam_finding(table, "HiResCAM at stride 16")
    assert "random maps 9%, centre map 44%" in text  # 0.435 shows as 44%
    # teacher 0.136 above random, 2 SE = 2 * sqrt((0.42^2 + 0.289^2) / 294) = 0.059
    assert "teacher clearly above random maps on pointing" in text
    assert "teacher NOT clearly above centre map on pointing" in text  # it is below
    assert "student NOT clearly above centre map on energy in mask" in text


def test_pick_frames_shows_up_to_half_wrong_frames_and_is_seeded():
    correct = np.array([True] * 8 + [False] * 3)
    picked = explain.pick_frames(correct, 6, seed=0)
    assert len(set(picked)) == 6 and (~correct[picked]).sum() == 3
    assert (explain.pick_frames(correct, 6, seed=0) == picked).all()
    one_wrong = np.array([True] * 8 + [False])
    picked = explain.pick_frames(one_wrong, 6)
    assert len(set(picked)) == 6 and (~one_wrong[picked]).sum() == 1
    assert len(explain.pick_frames(np.array([True, False]), 6)) == 2  # fewer frames than asked: all of them
