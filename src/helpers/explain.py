"""Grad-CAM (with pytorch-grad-cam) and a number for "does the model look at the polyp?".

Pictures alone invite cherry-picking, so notebook 03 also scores every test
polyp frame with a mask by the *energy pointing game*: the share of the CAM's
total energy that falls inside the polyp mask. A map that ignores the image
scores, on average, the mask's share of the frame; that is the random baseline.
The *pointing game* (Zhang et al., 2018) asks a plainer question: is the map's
hottest pixel inside the mask? A random map hits about as often as the mask's
share of the frame.

Which map method and which layer are readable is an empirical question: on
small frames, a shallow stage resolves more but knows less about the class.
`choose_cam` answers it on validation frames, so the test frames score the
chosen map once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.utils.data import DataLoader

from .training import ArrayDataset


def cam_layer(model: nn.Module, max_reduction: int = 32) -> nn.Module:
    """The deepest feature stage of a timm model whose stride is at most `max_reduction`.

    Grad-CAM's map has that stage's resolution: at 64 px the last stage of a
    ResNet (stride 32) is 2 x 2, too coarse to locate anything; the stride-16
    stage gives 4 x 4 and the stride-8 stage 8 x 8 (`choose_cam` picks on
    validation frames).
    """
    stages = [f for f in model.feature_info if f["reduction"] <= max_reduction]
    if not stages:
        raise ValueError(f"{type(model).__name__} has no feature stage with stride <= {max_reduction}")
    return model.get_submodule(stages[-1]["module"])


# Grad-CAM weights each channel by its gradient averaged over the whole map, so a channel that fires on the polyp
# and on a fold gets one weight for both; HiResCAM (Draelos & Carin, 2020) multiplies gradient and activation
# position by position, which for a network ending in global average pooling + a linear head is exactly each
# position's contribution to the class score.
CAM_METHODS = {"gradcam": GradCAM, "hirescam": HiResCAM}
CAM_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}


def gradcam(
    model: nn.Module,
    layer: nn.Module,
    images: np.ndarray,
    targets: list[int],
    batch_size: int = 32,
    method: str = "gradcam",
) -> np.ndarray:
    """Class activation maps (N x H x W, each scaled to [0, 1]) of uint8 images for the given target classes.

    `method` is a key of CAM_METHODS (pytorch-grad-cam's implementations).
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {sorted(CAM_METHODS)}")
    model.eval()
    dev = next(model.parameters()).device
    loader = DataLoader(ArrayDataset(images), batch_size=batch_size, shuffle=False)
    maps, start = [], 0
    with CAM_METHODS[method](model=model, target_layers=[layer]) as cam:
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


def centre_maps(n: int, size: int) -> np.ndarray:
    """The same map for every frame, a Gaussian on the frame's centre (sd a quarter of the side): the pointing
    game's *centre* baseline (Zhang et al., 2018).

    It ignores the image but knows where polyps usually are: endoscopists
    centre what they look at, and the generator keeps polyps off the border.
    A model's map that does not beat it has not shown that it finds the polyp.
    """
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    return np.repeat(np.exp(-(yy**2 + xx**2) / (2 * (size / 4) ** 2))[None], n, axis=0)


def baselines(n: int, size: int, stride: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The two maps that ignore the image, named as `cam_finding` expects: random maps at the stride's resolution
    and the centre map."""
    return {"random maps": random_maps(n, size, max(1, size // stride), seed), "centre map": centre_maps(n, size)}


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


def choose_cam(
    models: dict[str, nn.Module],
    images: np.ndarray,
    targets: np.ndarray,
    masks: np.ndarray,
    methods: list[str],
    strides: list[int],
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Score every (method, stride) on these (validation) frames; choose the one whose *weaker* model leads its
    random maps by most in the pointing game (ties: in energy).

    Each candidate is judged against random maps of its own resolution, so a
    coarse map is not favoured for hitting large masks by luck, and by the
    weaker model, since the chosen map must be readable for every model
    compared. Returns the table (one row per candidate) and the chosen row.
    """
    size = images.shape[1]
    rows = []
    for method in methods:
        for stride in strides:
            cams = {
                name: gradcam(m, cam_layer(m, stride), images, targets, method=method) for name, m in models.items()
            }
            cams["random maps"] = baselines(len(images), size, stride, seed)["random maps"]
            _, table = cam_scores(cams, masks)
            rand = table.loc["random maps"]
            row = {"method": method, "stride": stride}
            for name in models:
                row[f"{name} pointing"] = table.loc[name, "pointing_hit_rate"]
                row[f"{name} energy"] = table.loc[name, "energy_mean"]
            row["random pointing"], row["random energy"] = rand["pointing_hit_rate"], rand["energy_mean"]
            # a model without any map (NaN) points nowhere: it counts as 0, never as missing
            weakest = {k: min(np.nan_to_num(row[f"{n} {k}"]) for n in models) for k in ("pointing", "energy")}
            row["weaker lead, pointing"] = weakest["pointing"] - rand["pointing_hit_rate"]
            row["weaker lead, energy"] = weakest["energy"] - rand["energy_mean"]
            rows.append(row)
    table = pd.DataFrame(rows)
    best = table.sort_values(["weaker lead, pointing", "weaker lead, energy"], ascending=False, kind="stable").index[0]
    table["chosen"] = table.index == best
    return table, table.loc[best].to_dict()


def cam_name(method: str, stride: int) -> str:
    """'HiResCAM at stride 16': how a table or a sentence names a map."""
    return f"{CAM_NAMES[method]} at stride {stride}"


def cam_finding(table: pd.DataFrame, how: str) -> str:
    """Whether teacher and student (rows 0 and 1 of `cam_scores`' table) are clearly above each baseline row
    ("random maps", and "centre map" where present), on each score.

    "Clearly" means by more than twice the standard error of the difference of two means over the frames
    (std / sqrt(frames) of each row): on a hundred frames, 11% pointing-game hits against random maps' 10% is
    noise, not a finding.
    """
    t, s = table.iloc[0], table.iloc[1]
    n = float(t["frames"])
    baselines = {name: table.loc[name] for name in ("random maps", "centre map") if name in table.index}

    def clear(row: pd.Series, base: pd.Series, score: str, std: str) -> bool:
        return row[score] - base[score] > 2 * np.sqrt((row[std] ** 2 + base[std] ** 2) / n)

    scores = (("energy_mean", "energy_std", "energy in mask"), ("pointing_hit_rate", "pointing_hit_std", "pointing"))
    verdicts = [
        f"{who} {'clearly above' if clear(row, base, score, std) else 'NOT clearly above'} {name} on {words}"
        for name, base in baselines.items()
        for score, std, words in scores
        for who, row in (("teacher", t), ("student", s))
    ]
    energy = ", ".join(f"{name} {b['energy_mean']:.2f}" for name, b in baselines.items())
    hits = ", ".join(f"{name} {b['pointing_hit_rate']:.0%}" for name, b in baselines.items())
    return (
        f"{how} ({int(n)} test frames): energy in mask teacher {t['energy_mean']:.2f}, "
        f"student {s['energy_mean']:.2f}, {energy}; "
        f"pointing-game hits {t['pointing_hit_rate']:.0%}, {s['pointing_hit_rate']:.0%}, {hits}: "
        + ", ".join(verdicts)
        + " (by more than twice the standard error)."
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

    from .runtime import overlay as outline

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
