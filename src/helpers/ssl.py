"""Contrastive self-supervised pretraining (SimCLR-style), taught in notebook 02.

Two augmented views of the same unlabeled frame go through a timm encoder and a
projection head; NT-Xent pulls the two views together and pushes the other
frames of the batch away. The loss is written here because the course teaches
it. The encoder is then judged the way the course's premise needs: with few
labels (linear probe and k-NN on frozen features) against the same encoder
randomly initialised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import timm
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .progress import progress
from .tables import mean_std
from .training import IMAGENET_MEAN, IMAGENET_STD, device


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent over a batch of paired embeddings z1[i] <-> z2[i] (shape N x D).

    Each of the 2N embeddings is a query whose positive is its partner view and
    whose negatives are the other 2N - 2 embeddings; cosine similarities are
    divided by `temperature`. Returns the mean over all 2N queries.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be N x D, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # no self-match
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def simclr_views(image_size: int) -> v2.Compose:
    """The SimCLR augmentation: crop+resize, flips, rotation, colour jitter, blur.

    Hue jitter is kept small: in colonoscopy colour carries meaning (blue dye,
    redness), and a representation blind to it would throw that away.
    """
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(image_size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(20),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.3, 0.03)], p=0.8),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.5),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class TwoViews(Dataset):
    """Each item is two independent augmentations of the same frame."""

    def __init__(self, images: np.ndarray, transform: v2.Compose):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.transform(self.images[i])


class SimCLR(nn.Module):
    """timm encoder (global-pooled features) + a 2-layer projection head."""

    def __init__(self, encoder_name: str, projection_dim: int = 128):
        super().__init__()
        self.encoder = timm.create_model(encoder_name, pretrained=False, num_classes=0)
        width = self.encoder.num_features
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def pretrain(
    model: SimCLR,
    images: np.ndarray,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    temperature: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Train `model` on unlabeled uint8 frames; returns the loss per epoch."""
    dev = device()
    model.to(dev).train()
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        TwoViews(images, simclr_views(image_size)),
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(images) > batch_size,
        generator=generator,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    history = []
    bar = progress(range(1, epochs + 1), desc="SimCLR epochs")
    for epoch in bar:
        losses = []
        for v1, v2_ in loader:
            loss = nt_xent(model(v1.to(dev)), model(v2_.to(dev)), temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "loss": float(np.mean(losses))})
        bar.set_postfix(nt_xent=f"{history[-1]['loss']:.3f}", refresh=False)
    model.eval()
    return pd.DataFrame(history)


def label_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified `fraction` of the labeled train split (at least 2 per class)."""
    idx = np.arange(len(labels))
    if fraction >= 1:
        return idx
    n_classes = len(np.unique(labels))
    n = max(int(round(fraction * len(labels))), 2 * n_classes)
    subset, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=seed)
    return np.sort(subset)


def few_label_eval(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fractions: list[float],
    repeats: int,
    seed: int,
) -> pd.DataFrame:
    """Linear probe (logistic regression) and 5-NN on frozen features, per label budget.

    Small budgets are drawn `repeats` times (different labeled subsets), so the
    spread shows how much luck is in one draw.
    """
    rows = []
    for fraction in fractions:
        for r in range(1 if fraction >= 1 else repeats):
            idx = label_subset(train_y, fraction, seed + r)
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
            knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(5, len(idx)), metric="cosine"))
            for name, clf in (("linear probe", probe), ("5-NN", knn)):
                pred = clf.fit(train_x[idx], train_y[idx]).predict(test_x)
                rows.append(
                    {
                        "label_fraction": fraction,
                        "labels": len(idx),
                        "draw": r,
                        "method": name,
                        "accuracy": accuracy_score(test_y, pred),
                        "macro_f1": f1_score(test_y, pred, average="macro"),
                    }
                )
    return pd.DataFrame(rows)


def compare(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean ± std of macro F1 and accuracy per encoder, method and label budget."""
    frame = pd.concat(df.assign(encoder=name) for name, df in results.items())
    return mean_std(frame, ["label_fraction", "labels", "method", "encoder"], ["macro_f1", "accuracy"])


def verdict(table: pd.DataFrame, method: str = "linear probe") -> dict:
    """SSL vs random init at the smallest label budget, by the course's one rule (`tables.compare`).

    A gain counts only beyond the larger standard deviation over label draws:
    a gain inside the noise of one lucky draw is not claimed.
    """
    from . import tables

    fraction = table["label_fraction"].min()
    small = table[(table["label_fraction"] == fraction) & (table["method"] == method)].set_index("encoder")
    ssl_f1, rand_f1 = small.loc["SimCLR", "macro_f1_mean"], small.loc["random init", "macro_f1_mean"]
    ssl_std, rand_std = small.loc["SimCLR", "macro_f1_std"], small.loc["random init", "macro_f1_std"]
    judged = tables.compare(ssl_f1, ssl_std, rand_f1, rand_std, spread_of="over label draws")
    text = (
        f"With {fraction:.0%} of the labels ({int(small['labels'].iloc[0])} frames), the {method} on SimCLR features "
        f"reaches macro F1 {ssl_f1:.3f} ± {ssl_std:.3f} vs {rand_f1:.3f} ± {rand_std:.3f} for random init: "
        f"pretraining **{judged['words']}** random initialisation (difference {judged['gain']:+.3f})."
    )
    return {
        "label_fraction": float(fraction),
        "ssl_f1": float(ssl_f1),
        "random_f1": float(rand_f1),
        **judged,
        "verdict": judged["words"],
        "text": text,
    }


def view_grid(images: np.ndarray, image_size: int, n: int = 4, seed: int = 0):
    """Original frames and two SimCLR views of each: what 'the same image' means to the loss."""
    import matplotlib.pyplot as plt

    torch.manual_seed(seed)
    views = simclr_views(image_size)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6))
    for c in range(n):
        axes[0, c].imshow(images[c])
        for r in (1, 2):
            axes[r, c].imshow((views(images[c]) * std + mean).clamp(0, 1).permute(1, 2, 0).numpy())
    for ax, title in zip(axes[:, 0], ("original", "view 1", "view 2")):
        ax.set_ylabel(title)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_embeddings(features: dict[str, np.ndarray], labels: list[str]):
    """2-D PCA of frozen features per encoder, coloured by class."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from sklearn.decomposition import PCA

    fig, axes = plt.subplots(1, len(features), figsize=(5.2 * len(features), 4.2), squeeze=False)
    for ax, (name, feats) in zip(axes[0], features.items()):
        xy = PCA(n_components=2, random_state=0).fit_transform(StandardScaler().fit_transform(feats))
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=labels, s=18, ax=ax, linewidth=0, alpha=0.8)
        ax.set(title=f"{name}: PCA of test-split features", xlabel="PC 1", ylabel="PC 2")
    fig.tight_layout()
    return fig


def unlabeled_pool(profile: str, reports_root: str, image_size: int) -> tuple[np.ndarray, str]:
    """Frames to pretrain on: the unlabeled pool, else the *train* splits' images with labels ignored.

    Validation and test frames are never used, so the few-label evaluation
    stays honest; nor are a held-out centre's frames (they stay unseen).
    """
    from .data import load_split, read_data_report

    sources = read_data_report(profile, reports_root)["sources"]
    if sources["unlabeled"]:
        pool, _ = load_split("unlabeled", "pool", profile, reports_root, image_size)
        return pool.images, f"unlabeled pool ({len(pool.images)} frames)"
    parts = [
        load_split(task, "train", profile, reports_root, image_size)[0].images
        for task in ("classification", "segmentation")
        if sources[task]
    ]
    images = np.concatenate(parts)
    return images, f"train-split frames with labels ignored ({len(images)} frames; no unlabeled folder in this data)"
