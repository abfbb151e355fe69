"""Exploratory statistics and figures for notebook 01 (EDA).

Each function takes what `helpers.data.load_split` returns and gives back a
table or a matplotlib figure, so the notebook stays a sequence of calls and
the numbers can be tested. Colour statistics ignore the black frame around
the endoscope's field of view, which would otherwise dominate the means.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import ndimage

from .data import OUT_OF_CENTRE, LoadedSet, polyp_counts
from .runtime import overlay

FOV_LUMA = 12  # pixels darker than this are the black frame, not tissue
SPLIT_ORDER = ("train", "val", "test", OUT_OF_CENTRE)


def luma(images: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of uint8 RGB images (N x H x W)."""
    return images[..., 0] * 0.299 + images[..., 1] * 0.587 + images[..., 2] * 0.114


def split_counts(rows: pd.DataFrame, by: str = "label") -> pd.DataFrame:
    """Images per `by` value (rows) and split (columns), with totals."""
    table = pd.crosstab(rows[by].replace("", "(all)"), rows["split"], margins=True, margins_name="total")
    order = [c for c in (*SPLIT_ORDER, "pool", "total") if c in table.columns]
    return table[order]


def imbalance_ratio(rows: pd.DataFrame) -> float:
    """Largest class count divided by the smallest (1.0 = balanced)."""
    counts = rows["label"].value_counts()
    return float(counts.max() / counts.min())


def plot_class_balance(rows: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    sns.countplot(
        data=rows,
        y="label",
        hue="split",
        ax=ax,
        hue_order=[s for s in SPLIT_ORDER if s in set(rows["split"])],
    )
    ax.set(xlabel="images", ylabel="", title=title)
    return fig


def size_table(loaded: LoadedSet, rows: pd.DataFrame) -> pd.DataFrame:
    """Original width/height of each file (before resizing), with its label and split."""
    return pd.DataFrame(
        {
            "width": loaded.orig_sizes[:, 0],
            "height": loaded.orig_sizes[:, 1],
            "megapixels": loaded.orig_sizes.prod(axis=1) / 1e6,
            "label": rows["label"].replace("", "(all)").to_numpy(),
            "split": rows["split"].to_numpy(),
        }
    )


def plot_image_sizes(sizes: dict[str, pd.DataFrame]) -> plt.Figure:
    """Width x height scatter per task: real data varies, synthetic less so."""
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.6), squeeze=False)
    for ax, (task, df) in zip(axes[0], sizes.items()):
        sns.scatterplot(
            data=df,
            x="width",
            y="height",
            hue="label" if df["label"].nunique() > 1 else None,
            s=14,
            alpha=0.6,
            ax=ax,
            linewidth=0,
        )
        ax.set(title=f"{task}: {len(df)} images, {df[['width', 'height']].drop_duplicates().shape[0]} distinct sizes")
    fig.tight_layout()
    return fig


def colour_stats(loaded: LoadedSet, rows: pd.DataFrame) -> pd.DataFrame:
    """Per image: mean R, G, B and brightness (luma) over the field of view, 0-255."""
    images = loaded.images.astype(np.float32)
    y = luma(images)
    fov = y > FOV_LUMA
    n = np.maximum(fov.sum(axis=(1, 2)), 1)
    means = {c: (images[..., i] * fov).sum(axis=(1, 2)) / n for i, c in enumerate("RGB")}
    out = pd.DataFrame(
        {
            **means,
            "brightness": (y * fov).sum(axis=(1, 2)) / n,
            "under_exposed": ((y < 40) & fov).sum(axis=(1, 2)) / n,
            "over_exposed": ((y > 235) & fov).sum(axis=(1, 2)) / n,
        }
    )
    out["label"] = rows["label"].replace("", "(all)").to_numpy()
    return out


def plot_colour_stats(stats: pd.DataFrame, title: str) -> plt.Figure:
    long = stats.melt(id_vars="label", value_vars=["R", "G", "B", "brightness"], var_name="channel", value_name="mean")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.boxplot(data=long, x="channel", y="mean", hue="label", ax=ax, fliersize=2)
    ax.set(ylabel="mean value over the field of view (0-255)", xlabel="", title=title)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def mask_stats(loaded: LoadedSet, rows: pd.DataFrame) -> pd.DataFrame:
    """Per image with a mask: polyp coverage (fraction of the frame) and number of polyps."""
    has = loaded.has_mask()
    masks = loaded.masks[has] if loaded.masks is not None else np.zeros((0, 1, 1), np.uint8)
    return pd.DataFrame(
        {
            "coverage": masks.mean(axis=(1, 2)) if len(masks) else [],
            "polyps": polyp_counts(masks) if len(masks) else [],
            "label": rows["label"].replace("", "(all)").to_numpy()[has],
            "split": rows["split"].to_numpy()[has],
        }
    )


def plot_mask_stats(stats: pd.DataFrame, title: str) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    sns.histplot(stats["coverage"] * 100, bins=30, ax=a)
    a.set(xlabel="polyp area, % of the frame", ylabel="images", title=f"{title}: mask coverage")
    sns.countplot(x=stats["polyps"], ax=b, color="C1")
    b.set(xlabel="polyps per image (connected regions)", ylabel="images", title=f"{title}: polyps per image")
    fig.tight_layout()
    return fig


def sample_grid(loaded: LoadedSet, per_group: int = 4, seed: int = 0) -> plt.Figure:
    """A few random images per label (one row per class)."""
    labels = np.array([lab or "(all)" for lab in loaded.labels])
    groups = list(dict.fromkeys(labels))
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(groups), per_group, figsize=(2.2 * per_group, 2.3 * len(groups)), squeeze=False)
    for r, g in enumerate(groups):
        idx = np.flatnonzero(labels == g)
        pick = rng.choice(idx, size=min(per_group, len(idx)), replace=False)
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(pick):
                ax.imshow(loaded.images[pick[c]])
        axes[r][0].set_title(g, loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def centre_table(loaded: LoadedSet, rows: pd.DataFrame) -> pd.DataFrame:
    """Per centre: frames per split, and what its imaging chain does to the pixels (means over the field of view).

    Sharpness is the mean absolute Laplacian of the luma at the loaded size:
    soft focus and heavy JPEG lower it.
    """
    colours = colour_stats(loaded, rows.assign(label=rows["centre"].replace("", "(unknown)")))
    y = luma(loaded.images.astype(np.float32))
    sharp = [float(np.abs(ndimage.laplace(im)).mean()) for im in y]
    chain = colours.assign(sharpness=sharp).groupby("label")[["R", "G", "B", "brightness", "sharpness"]].mean().round(1)
    counts = pd.crosstab(rows["centre"].replace("", "(unknown)"), rows["split"])
    counts = counts[[c for c in SPLIT_ORDER if c in counts.columns]]
    return counts.join(chain).rename_axis("centre")


def centre_gallery(rows: pd.DataFrame, root: str, described: dict[str, str], held_out: str | None) -> plt.Figure:
    """The first frame of each centre, as stored (original size and aspect), with what its chain is."""
    from PIL import Image

    firsts = rows[rows["centre"] != ""].drop_duplicates("centre")
    fig, axes = plt.subplots(1, len(firsts), figsize=(3.3 * len(firsts), 3.4), squeeze=False)
    for ax, row in zip(axes[0], firsts.itertuples()):
        with Image.open(f"{root}/{row.file}") as im:
            ax.imshow(np.asarray(im.convert("RGB")))
            size = f"{im.width}×{im.height}"
        tag = " · HELD OUT" if row.centre == held_out else ""
        text = described.get(row.centre, "")
        ax.set_title(f"{row.centre}{tag} ({size})\n{text}", fontsize=7, wrap=True)
        ax.axis("off")
    fig.tight_layout()
    return fig


def overlay_grid(loaded: LoadedSet, n: int = 8, seed: int = 0) -> plt.Figure:
    """Random images that have masks, with the mask overlaid and its coverage in the title."""
    idx = np.flatnonzero(loaded.has_mask())
    pick = np.random.default_rng(seed).choice(idx, size=min(n, len(idx)), replace=False)
    cols = 4
    rows = max(1, int(np.ceil(len(pick) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick):
        ax.imshow(overlay(loaded.images[i], loaded.masks[i]))
        ax.set_title(f"{loaded.samples[i].image.stem[:14]}  {loaded.masks[i].mean():.0%}", fontsize=8)
    fig.tight_layout()
    return fig


def interpret(class_rows: pd.DataFrame | None, colours: pd.DataFrame | None, masks: pd.DataFrame | None) -> str:
    """A short, data-driven reading of the statistics for metric choice (markdown)."""
    lines = []
    if class_rows is not None and len(class_rows):
        ratio = imbalance_ratio(class_rows)
        counts = class_rows["label"].value_counts()
        lines.append(
            f"- **Class balance**: {len(counts)} classes, largest/smallest = {ratio:.2f} "
            f"({counts.idxmax()} {counts.max()} vs {counts.idxmin()} {counts.min()}). "
            + (
                "Balanced here, but real screening data is not: polyps are the rare class, so report "
                "**per-class recall** (sensitivity for polyps) and macro F1, never accuracy alone."
                if ratio < 1.5
                else "Imbalanced: accuracy rewards predicting the majority class; report **per-class recall** and "
                "macro F1, and consider a class-weighted loss."
            )
        )
    if colours is not None and len(colours):
        by = colours.groupby("label")[["R", "G", "B", "brightness"]].mean()
        if len(by) > 1:
            blue = by["B"] - by[["R", "G"]].mean(axis=1)
            lines.append(
                f"- **Colour**: the bluest class is {blue.idxmax()} (B minus mean(R,G) = {blue.max():.0f} vs "
                f"{blue.min():.0f} for {blue.idxmin()}): colour alone separates dyed frames, so a model can "
                "shortcut on dye; check it with Grad-CAM later."
            )
        under, over = colours["under_exposed"].mean(), colours["over_exposed"].mean()
        lines.append(
            f"- **Exposure**: brightness {colours['brightness'].mean():.0f} ± {colours['brightness'].std():.0f} "
            f"(0-255); on average {under:.1%} of the field of view is under-exposed and {over:.1%} saturated "
            "(specular highlights): use brightness/contrast jitter in training."
        )
    if masks is not None and len(masks):
        cov = masks["coverage"]
        small = (cov < 0.05).mean()
        multi = (masks["polyps"] > 1).mean()
        lines.append(
            f"- **Masks**: polyps cover {cov.median():.1%} of the frame (median; 5-95%: {cov.quantile(0.05):.1%}-"
            f"{cov.quantile(0.95):.1%}); {small:.0%} of frames have a polyp area under 5%. Pixel accuracy would be "
            "high for an empty prediction, so report **Dice and IoU per image**. "
            f"{multi:.0%} of frames show more than one polyp, which is what copy-paste augmentation adds."
        )
    return "\n".join(lines) if lines else "No statistics available for this data."
