"""Ensembles (notebook 05): soft and hard voting, flip test-time augmentation, and the case a vote fixes.

Several models trained under the same budget make different mistakes; a vote
keeps what most of them agree on. The voting rules are written here (they are
a few lines, and their tie rules matter), and tested on hand-made arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from .segment import predict_proba


def soft_vote(probas: np.ndarray) -> np.ndarray:
    """Mean probability over models (axis 0): M x ... -> ..."""
    return np.asarray(probas, dtype=np.float64).mean(0)


def hard_vote(masks: np.ndarray, probas: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel majority of M binary masks (axis 0).

    With an even M a pixel can tie (half the votes). A tie goes to the mean
    probability (>= 0.5 is polyp) when `probas` are given, else to background:
    half the votes is not a majority.
    """
    masks = np.asarray(masks).astype(bool)
    votes, m = masks.sum(0), len(masks)
    out = votes * 2 > m
    if probas is not None:
        out |= (votes * 2 == m) & (soft_vote(probas) >= 0.5)
    return out


def majority_class(preds: np.ndarray, n_classes: int, probas: np.ndarray | None = None) -> np.ndarray:
    """Most-voted class per sample from M x N predicted labels.

    A tie goes to the tied class with the highest mean probability when
    `probas` (M x N x K) are given, else to the lowest class index.
    """
    preds = np.asarray(preds)
    counts = np.stack([(preds == k).sum(0) for k in range(n_classes)], axis=1)  # N x K
    tied = counts == counts.max(1, keepdims=True)
    if probas is None:
        return tied.argmax(1)  # the first tied class
    return np.where(tied, soft_vote(probas), -np.inf).argmax(1)


def flip_tta(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Mean of the per-pixel predictions on N x H x W x 3 images, their horizontal and vertical flips
    (each flipped back): a cheap ensemble of one model with itself."""
    out = predict(images).astype(np.float64)
    out += predict(np.ascontiguousarray(images[:, :, ::-1]))[:, :, ::-1]
    out += predict(np.ascontiguousarray(images[:, ::-1]))[:, ::-1]
    return out / 3


def rescued(member_scores: np.ndarray, vote_scores: np.ndarray, fail_below: float = 0.5) -> np.ndarray:
    """Samples where at least one member fails (score < `fail_below`) and the vote does not, the
    biggest rescue first. Scores are per sample: Dice for masks, 1/0 for a right/wrong class."""
    member_scores, vote_scores = np.asarray(member_scores, float), np.asarray(vote_scores, float)
    worst = member_scores.min(0)
    hit = np.flatnonzero((worst < fail_below) & (vote_scores >= fail_below))
    return hit[np.argsort(-(vote_scores[hit] - worst[hit]), kind="stable")]


def member_probas(models: dict[str, nn.Module], images: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
    """Each segmentation model's per-pixel polyp probabilities (N x H x W), plain or with flip TTA."""
    if tta:
        return {
            f"{name} + flip TTA": flip_tta(lambda x, m=model: predict_proba(m, x), images)
            for name, model in models.items()
        }
    return {name: predict_proba(model, images) for name, model in models.items()}


def vote_masks(probas: dict[str, np.ndarray], tag: str = "") -> dict[str, np.ndarray]:
    """Binary masks of the soft vote (mean probability >= 0.5) and the hard vote (per-pixel majority,
    ties to the mean probability) over all `probas`, named with the number of models and `tag`."""
    stack = np.stack(list(probas.values()))
    return {
        f"soft vote ({len(stack)}){tag}": soft_vote(stack) >= 0.5,
        f"hard vote ({len(stack)}){tag}": hard_vote(stack >= 0.5, stack),
    }
