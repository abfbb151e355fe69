"""Polyp segmentation: per-image metrics and the polyp copy-paste augmentation (notebook 04).

Metrics are computed per image and then summarised as mean ± std over test
images, as the published Kvasir-SEG tables are. Copy-paste cuts a polyp by its
mask from one training frame and pastes it, with a soft edge, into a
polyp-free place of another, so the model sees frames with several polyps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

FOV_LUMA = 12  # pixels darker than this are the black frame around the endoscope's field of view


def per_image_metrics(pred: np.ndarray, target: np.ndarray) -> pd.DataFrame:
    """Dice, IoU, pixel accuracy, precision and recall of binary N x H x W masks, one row per image.

    Empty cases follow one rule: a ratio with nothing to find and nothing found
    is 1. Both masks empty: every metric is 1. Prediction empty, polyp present:
    Dice, IoU and recall are 0, precision is 1 (no false alarm). Polyp absent,
    something predicted: Dice, IoU and precision are 0, recall is 1.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"pred and target must both be N x H x W, got {pred.shape} and {target.shape}")
    p, t = pred.reshape(len(pred), -1).astype(bool), target.reshape(len(target), -1).astype(bool)
    tp = (p & t).sum(1).astype(float)
    fp, fn = (p & ~t).sum(1).astype(float), (~p & t).sum(1).astype(float)
    tn = (~p & ~t).sum(1).astype(float)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.ones_like(num), where=den > 0)

    return pd.DataFrame({"dice": ratio(2 * tp, 2 * tp + fp + fn), "iou": ratio(tp, tp + fp + fn),
                         "pixel_accuracy": (tp + tn) / p.shape[1], "precision": ratio(tp, tp + fp),
                         "recall": ratio(tp, tp + fn)})


def _soft_alpha(mask: np.ndarray, feather: float) -> np.ndarray:
    """1 deep inside the mask, ramping to 0 at its border over `feather` pixels, 0 outside: no bleed past the mask."""
    if feather <= 0:
        return mask.astype(np.float32)
    return np.clip(ndimage.distance_transform_edt(mask) / feather, 0, 1).astype(np.float32)


def paste_polyp(image: np.ndarray, mask: np.ndarray, src_image: np.ndarray, src_mask: np.ndarray,
                rng: np.random.Generator, feather: float = 3.0, margin: int = 4,
                tries: int = 30) -> tuple[np.ndarray, np.ndarray, bool]:
    """Paste one polyp (a connected component of `src_mask`) into a polyp-free place of `image`.

    The place keeps `margin` pixels from every existing polyp and lies inside
    the field of view. The new mask is exactly the old mask plus the pasted
    component. Returns (image, mask, pasted); nothing changes when no place fits.
    """
    labels, n = ndimage.label(src_mask > 0)
    if n == 0:
        return image, mask, False
    component = labels == rng.integers(1, n + 1)
    rows, cols = np.flatnonzero(component.any(1)), np.flatnonzero(component.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    piece, piece_img = component[y0:y1, x0:x1], src_image[y0:y1, x0:x1]
    h, w = piece.shape
    if h > image.shape[0] or w > image.shape[1]:
        return image, mask, False
    blocked = ndimage.binary_dilation(mask > 0, iterations=margin) if margin else mask > 0
    dark = image.mean(axis=2) < FOV_LUMA
    for _ in range(tries):
        y, x = int(rng.integers(0, image.shape[0] - h + 1)), int(rng.integers(0, image.shape[1] - w + 1))
        if (piece & (blocked[y:y + h, x:x + w] | dark[y:y + h, x:x + w])).any():
            continue
        alpha = _soft_alpha(piece, feather)[..., None]
        out_img, out_mask = image.copy(), mask.copy()
        region = out_img[y:y + h, x:x + w].astype(np.float32)
        out_img[y:y + h, x:x + w] = np.rint(alpha * piece_img + (1 - alpha) * region).astype(image.dtype)
        out_mask[y:y + h, x:x + w] = np.where(piece, 1, out_mask[y:y + h, x:x + w]).astype(mask.dtype)
        return out_img, out_mask, True
    return image, mask, False


class CopyPaste:
    """Augmentation: with probability `p`, paste 1..`max_pastes` polyps from a pool of training frames.

    The pool must come from the training split only, never validation or test.
    """

    def __init__(self, pool_images: np.ndarray, pool_masks: np.ndarray, p: float = 0.5, max_pastes: int = 2,
                 feather: float = 3.0, seed: int = 0):
        keep = pool_masks.reshape(len(pool_masks), -1).any(1)
        self.images, self.masks = pool_images[keep], pool_masks[keep]
        self.p, self.max_pastes, self.feather = p, max_pastes, feather
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.images) or self.rng.random() >= self.p:
            return image, mask
        for _ in range(int(self.rng.integers(1, self.max_pastes + 1))):
            i = int(self.rng.integers(len(self.images)))
            image, mask, _ = paste_polyp(image, mask, self.images[i], self.masks[i], self.rng, self.feather)
        return image, mask
