"""Grad-CAM (with pytorch-grad-cam) and a number for "does the model look at the polyp?".

Pictures alone invite cherry-picking, so notebook 03 also scores every test
polyp frame with a mask by the *energy pointing game*: the share of the CAM's
total energy that falls inside the polyp mask. A map that ignores the image
scores, on average, the mask's share of the frame; that is the random baseline.
The *pointing game* (Zhang et al., 2018) asks a plainer question: is the map's
hottest pixel inside the mask? A random map hits about as often as the mask's
share of the frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.utils.data import DataLoader

from .training import ArrayDataset


def cam_layer(model: nn.Module, max_reduction: int = 32) -> nn.Module:
    """The deepest feature stage of a timm model whose stride is at most `max_reduction`.

    Grad-CAM's map has that stage's resolution: at 64 px the last stage of a
    ResNet (stride 32) is 2 x 2, too coarse to locate anything; the stride-8
    stage gives 8 x 8, fine enough to resolve a polyp.
    """
    stages = [f for f in model.feature_info if f["reduction"] <= max_reduction]
    if not stages:
        raise ValueError(f"{type(model).__name__} has no feature stage with stride <= {max_reduction}")
    return model.get_submodule(stages[-1]["module"])


def gradcam(
    model: nn.Module, layer: nn.Module, images: np.ndarray, targets: list[int], batch_size: int = 32
) -> np.ndarray:
    """Grad-CAM maps (N x H x W, each scaled to [0, 1]) of uint8 images for the given target classes."""
    model.eval()
    dev = next(model.parameters()).device
    loader = DataLoader(ArrayDataset(images), batch_size=batch_size, shuffle=False)
    maps, start = [], 0
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for x in loader:
            batch_targets = [ClassifierOutputTarget(int(t)) for t in targets[start : start + len(x)]]
            maps.append(cam(input_tensor=x.to(dev), targets=batch_targets))
            start += len(x)
    return np.concatenate(maps)


def energy_in_mask(cams: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: sum(cam inside mask) / sum(cam). NaN where the map is all zero (nothing to point with)."""
    cams = cams.astype(np.float64)
    inside = (cams * (masks > 0)).reshape(len(cams), -1).sum(1)
    total = cams.reshape(len(cams), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def pointing_game(cams: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image: 1.0 if the map's hottest pixel lies inside the mask, else 0.0; NaN where the map is all zero."""
    flat = cams.reshape(len(cams), -1)
    hottest = flat.argmax(1)
    hit = (masks.reshape(len(masks), -1)[np.arange(len(cams)), hottest] > 0).astype(np.float64)
    return np.where(flat.max(1) > 0, hit, np.nan)


def random_maps(n: int, size: int, grid: int, seed: int = 0) -> np.ndarray:
    """Maps that ignore the image but look like CAMs: uniform noise on a `grid` x `grid` layer, upsampled bilinearly."""
    noise = torch.from_numpy(np.random.default_rng(seed).random((n, 1, grid, grid)))
    return F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def cam_scores(cams: dict[str, np.ndarray], masks: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per frame, per map: energy share inside the mask and pointing-game hit; and their mean, std, median.

    A map that is zero everywhere (no positive evidence for the class) has no
    score; `frames with a map` counts the rest.
    """
    per_frame = pd.concat(
        {
            name: pd.DataFrame({"energy": energy_in_mask(c, masks), "hit": pointing_game(c, masks)})
            for name, c in cams.items()
        },
        names=["map", "frame"],
    ).reset_index()
    table = per_frame.groupby("map", sort=False).agg(
        energy_mean=("energy", "mean"),
        energy_std=("energy", "std"),
        energy_median=("energy", "median"),
        pointing_hit_rate=("hit", "mean"),
        pointing_hit_std=("hit", "std"),
        frames_with_a_map=("energy", "count"),
    )
    table["frames"] = len(masks)
    table["mask_area_share"] = float((masks > 0).reshape(len(masks), -1).mean(1).mean())
    return per_frame, table


def cam_finding(table: pd.DataFrame, stride: int) -> str:
    """Which of teacher and student (rows 0 and 1 of `cam_scores`' table; row 2 the random maps) is clearly above
    the random baseline, on each score.

    "Clearly" means by more than twice the standard error of the difference of two means over the frames
    (std / sqrt(frames) of each row): on a hundred frames, 11% pointing-game hits against random maps' 10% is
    noise, not a finding.
    """
    t, s, r = (table.iloc[i] for i in range(3))
    n = float(t["frames"])

    def clear(row: pd.Series, score: str, std: str) -> bool:
        return row[score] - r[score] > 2 * np.sqrt((row[std] ** 2 + r[std] ** 2) / n)

    scores = (("energy_mean", "energy_std", "energy in mask"), ("pointing_hit_rate", "pointing_hit_std", "pointing"))
    verdicts = [
        f"{who} {'clearly above' if clear(row, score, std) else 'NOT clearly above'} random on {words}"
        for score, std, words in scores
        for who, row in (("teacher", t), ("student", s))
    ]
    return (
        f"Grad-CAM at stride {stride} ({int(n)} test frames): energy in mask teacher {t['energy_mean']:.2f}, "
        f"student {s['energy_mean']:.2f}, random {r['energy_mean']:.2f}; "
        f"pointing-game hits {t['pointing_hit_rate']:.0%}, {s['pointing_hit_rate']:.0%}, "
        f"random {r['pointing_hit_rate']:.0%}: " + ", ".join(verdicts) + " (by more than twice the standard error)."
    )


def pick_frames(correct: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` frames to show, seeded: up to half of them misclassified (the ones worth a look), the rest right."""
    rng = np.random.default_rng(seed)
    right, wrong = np.flatnonzero(correct), np.flatnonzero(~np.asarray(correct))
    k = min(len(wrong), n // 2)
    picked = [rng.choice(wrong, k, replace=False), rng.choice(right, min(len(right), n - k), replace=False)]
    return np.concatenate(picked).astype(int)


def overlay(image: np.ndarray, cam: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """The frame with the map as a 'jet' heat overlay (uint8)."""
    import matplotlib

    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    return (((1 - strength) * image / 255.0 + strength * heat) * 255).clip(0, 255).astype(np.uint8)


def plot_cams(images: np.ndarray, cams: dict[str, np.ndarray], captions: list[str], masks: np.ndarray | None = None):
    """Rows of frames: the image (with the mask outline when given), then each model's map."""
    import matplotlib.pyplot as plt

    from .eda import overlay as outline

    n = len(images)
    fig, axes = plt.subplots(n, 1 + len(cams), figsize=(2.3 * (1 + len(cams)), 2.35 * n), squeeze=False)
    for r in range(n):
        shown = outline(images[r], masks[r]) if masks is not None else images[r]
        axes[r, 0].imshow(shown)
        axes[r, 0].set_ylabel(captions[r], fontsize=7)
        for c, (name, maps) in enumerate(cams.items(), start=1):
            axes[r, c].imshow(overlay(images[r], maps[r]))
            if r == 0:
                axes[r, c].set_title(name, fontsize=9)
    axes[0, 0].set_title("frame (mask outline)" if masks is not None else "frame", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig
