"""Segmentation augmentations (notebook 04's ablation), applied to a whole batch at once.

Each augmentation is switchable by name and applied to each frame with
probability `p`, independently. Geometric steps (rotation by up to 90°, flips,
zoom in or out) are one affine matrix per frame, applied to the batch in a
single `grid_sample` call: image bilinear, mask nearest, so masks stay binary
and aligned. Colour jitter (brightness, contrast, saturation, a slight hue
rotation) and Gaussian blur act on the image only, with a parameter per frame.
Copy-paste cuts a polyp by its mask from one training frame and pastes it,
with a soft edge, into a polyp-free place of another, so the model sees frames
with several polyps; the polyps and the places they may not go are cut once,
not per sample.

Why batched: applied frame by frame with torchvision's transforms on the main
thread, the loop with the full row ran at 27% of the bare training step's rate
(12.7 vs 46.6 images/s on 2 cores); batched it keeps up
(`benchmarks/training_throughput.py`). All randomness comes from one
`torch.Generator` (and one NumPy generator for copy-paste), so a seed gives the
same batches on every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .training import IMAGENET_MEAN, IMAGENET_STD

FOV_LUMA = 12  # pixels darker than this are the black frame around the endoscope's field of view

GEOMETRIC = ["rotate", "hflip", "vflip", "zoom"]
AUGMENTATIONS = (*GEOMETRIC, "colour", "blur", "copy_paste")
# The ablation's rows, each adding one idea to the one before, as in the original project.
ABLATION = {
    "none": [],
    "geometric": GEOMETRIC,
    "+ colour": [*GEOMETRIC, "colour"],
    "+ blur": [*GEOMETRIC, "colour", "blur"],
    "+ copy-paste": [*GEOMETRIC, "colour", "blur", "copy_paste"],
}

MAX_ANGLE = 90.0  # degrees either way: the endoscope has no 'up'
ZOOM = (0.75, 1.33)  # zoom out .. in, same output size
JITTER = {"brightness": 0.15, "contrast": 0.15, "saturation": 0.1, "hue": 0.02}  # slight: hue carries meaning
BLUR_SIGMA, BLUR_SIZE = (0.3, 1.5), 5  # motion/defocus blur


def check(names: list[str] | tuple[str, ...]) -> None:
    """Refuse unknown augmentation names, listing the known ones."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}")


# --- copy-paste --------------------------------------------------------------------------------------------


def soft_alpha(mask: np.ndarray, feather: float) -> np.ndarray:
    """1 deep inside the mask, ramping to 0 at its border over `feather` pixels, 0 outside: no bleed past the mask."""
    if feather <= 0:
        return mask.astype(np.float32)
    return np.clip(ndimage.distance_transform_edt(mask) / feather, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class Piece:
    """One polyp cut from a frame: its pixels, its shape, its soft edge and the room it keeps around it."""

    image: np.ndarray  # h x w x 3 uint8
    shape: np.ndarray  # h x w bool
    alpha: np.ndarray  # h x w x 1 float32
    reach: np.ndarray  # (h + 2 margin) x (w + 2 margin) bool: the shape grown by `margin`


def cut_pieces(image: np.ndarray, mask: np.ndarray, feather: float = 3.0, margin: int = 4) -> list[Piece]:
    """Every connected polyp of a frame (8-connectivity), ready to paste."""
    labels, n = ndimage.label(mask > 0, structure=np.ones((3, 3), bool))
    pieces = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        shape = labels[box] == k
        grown = np.pad(shape, margin)
        reach = ndimage.binary_dilation(grown, iterations=margin) if margin else grown
        pieces.append(Piece(image[box], shape, soft_alpha(shape, feather)[..., None], reach))
    return pieces


def blocked_map(image: np.ndarray, mask: np.ndarray, margin: int = 4) -> np.ndarray:
    """Where nothing may be pasted: near an existing polyp or outside the field of view; padded by `margin`."""
    near = ndimage.binary_dilation(mask > 0, iterations=margin) if margin else mask > 0
    return np.pad(near | (image.mean(axis=2) < FOV_LUMA), margin, constant_values=True)


def place(
    image: np.ndarray, mask: np.ndarray, blocked: np.ndarray, piece: Piece, rng: np.random.Generator, tries: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Paste `piece` at a random free place; returns (image, mask, blocked, pasted). Inputs are never modified.

    The new mask is exactly the old mask plus the piece; `blocked` grows by the
    piece's reach so that a second paste keeps its distance too.
    """
    h, w = piece.shape.shape
    margin = (piece.reach.shape[0] - h) // 2
    if h > image.shape[0] or w > image.shape[1]:
        return image, mask, blocked, False
    for _ in range(tries):
        y, x = int(rng.integers(0, image.shape[0] - h + 1)), int(rng.integers(0, image.shape[1] - w + 1))
        if (piece.shape & blocked[y + margin : y + margin + h, x + margin : x + margin + w]).any():
            continue
        out_img, out_mask, out_blocked = image.copy(), mask.copy(), blocked.copy()
        region = out_img[y : y + h, x : x + w].astype(np.float32)
        out_img[y : y + h, x : x + w] = np.rint(piece.alpha * piece.image + (1 - piece.alpha) * region).astype(
            image.dtype
        )
        out_mask[y : y + h, x : x + w] = np.where(piece.shape, 1, out_mask[y : y + h, x : x + w]).astype(mask.dtype)
        out_blocked[y : y + h + 2 * margin, x : x + w + 2 * margin] |= piece.reach
        return out_img, out_mask, out_blocked, True
    return image, mask, blocked, False


def paste_polyp(
    image: np.ndarray,
    mask: np.ndarray,
    src_image: np.ndarray,
    src_mask: np.ndarray,
    rng: np.random.Generator,
    feather: float = 3.0,
    margin: int = 4,
    tries: int = 30,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Paste one polyp of `src_mask` (chosen at random) into a polyp-free place of `image`, `margin` pixels away
    from every existing polyp and inside the field of view. Returns (image, mask, pasted)."""
    pieces = cut_pieces(src_image, src_mask, feather, margin)
    if not pieces:
        return image, mask, False
    piece = pieces[int(rng.integers(len(pieces)))]
    image, mask, _, pasted = place(image, mask, blocked_map(image, mask, margin), piece, rng, tries)
    return image, mask, pasted


class CopyPaste:
    """With probability `p`, paste 1..`max_pastes` polyps chosen among every polyp of a pool of frames.

    The pool must come from the training split only, never validation or test.
    """

    def __init__(
        self,
        pool_images: np.ndarray,
        pool_masks: np.ndarray,
        p: float = 0.5,
        max_pastes: int = 2,
        feather: float = 3.0,
        margin: int = 4,
        seed: int = 0,
    ):
        self.pieces = [
            piece for image, mask in zip(pool_images, pool_masks) for piece in cut_pieces(image, mask, feather, margin)
        ]
        self.p, self.max_pastes, self.margin = p, max_pastes, margin
        self.rng = np.random.default_rng(seed)

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, blocked: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`blocked` (from `blocked_map`) may be given when it was computed once for this frame."""
        if not self.pieces or self.rng.random() >= self.p:
            return image, mask
        blocked = blocked_map(image, mask, self.margin) if blocked is None else blocked
        for _ in range(int(self.rng.integers(1, self.max_pastes + 1))):
            piece = self.pieces[int(self.rng.integers(len(self.pieces)))]
            image, mask, blocked, _ = place(image, mask, blocked, piece, self.rng)
        return image, mask


# --- batched image and mask transforms ---------------------------------------------------------------------


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _geometric(
    x: torch.Tensor, y: torch.Tensor, names: list[str], p: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One affine matrix per frame (output -> input coordinates), image bilinear, mask nearest, black outside."""
    n = len(x)
    draw = {name: torch.rand(n, generator=g) < p for name in GEOMETRIC}  # drawn for all, so the stream is fixed
    angle = torch.deg2rad(_uniform(n, -MAX_ANGLE, MAX_ANGLE, g))
    scale = _uniform(n, *ZOOM, g)
    angle = torch.where(draw["rotate"] & ("rotate" in names), angle, torch.zeros(n))
    scale = torch.where(draw["zoom"] & ("zoom" in names), scale, torch.ones(n))
    fx = torch.where(draw["hflip"] & ("hflip" in names), -1.0, 1.0)
    fy = torch.where(draw["vflip"] & ("vflip" in names), -1.0, 1.0)
    moved = (angle != 0) | (scale != 1) | (fx != 1) | (fy != 1)
    if not moved.any():
        return x, y
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([fx * cos, -fx * sin, torch.zeros(n)], 1), torch.stack([fy * sin, fy * cos, torch.zeros(n)], 1)], 1
    )[moved]
    grid = F.affine_grid(theta, [int(moved.sum()), 1, *x.shape[-2:]], align_corners=False)
    x, y = x.clone(), y.clone()
    x[moved] = F.grid_sample(x[moved], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y[moved] = F.grid_sample(y[moved], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x, y


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
# Its inverse, written out (float32): computed by `torch.linalg.inv`, MKL's LAPACK gave other last bits on an Intel
# Xeon than on the AMD CPU that made the reference (scripts/numerics_probe.py); these are the reference's.
_YIQ_TO_RGB = torch.tensor(
    [
        [1.0, 0.9561706781387329, 0.6214325428009033],
        [1.0000001192092896, -0.2726886570453644, -0.6468132138252258],
        [1.0, -1.1037439107894897, 1.7006230354309082],
    ]
)


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`matrix @ x` over dimension 1 (N x 3 x 3 with N x 3 x ...), as three products summed in order.

    Not `einsum`/`bmm`: those go to MKL, whose small products differed in the last bit between an Intel and an
    AMD CPU under the same pin; elementwise products and sums are PyTorch's own kernels, the same on both.
    """
    shape = (*matrix.shape[:2], *[1] * (x.dim() - 2))
    return sum(matrix[:, :, k].reshape(shape) * x[:, None, k] for k in range(3))


def _colour(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter, one draw per frame, on images in [0, 1]."""
    n = len(x)
    chosen = torch.rand(n, generator=g) < p
    b, c, s = (
        _uniform(n, 1 - JITTER[k], 1 + JITTER[k], g).view(n, 1, 1, 1) for k in ("brightness", "contrast", "saturation")
    )
    hue = _uniform(n, -JITTER["hue"], JITTER["hue"], g) * 2 * math.pi
    luma = _RGB_TO_YIQ[0].view(1, 3, 1, 1)
    out = (x * b).clamp(0, 1)
    mean = (out * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    out = ((out - mean) * c + mean).clamp(0, 1)
    grey = (out * luma).sum(1, keepdim=True)
    out = (grey + (out - grey) * s).clamp(0, 1)
    rotate = torch.zeros(n, 3, 3)  # hue: a rotation of the chroma plane (I, Q) of YIQ
    rotate[:, 0, 0] = 1
    rotate[:, 1, 1], rotate[:, 1, 2], rotate[:, 2, 1], rotate[:, 2, 2] = hue.cos(), -hue.sin(), hue.sin(), hue.cos()
    matrix = _mix(_mix(_YIQ_TO_RGB.expand(n, 3, 3), rotate), _RGB_TO_YIQ.expand(n, 3, 3))
    return torch.where(chosen.view(n, 1, 1, 1), _mix(matrix, out).clamp(0, 1), x)


def _blur(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Gaussian blur with a sigma per frame: one grouped, separable convolution for the batch."""
    n, ch, h, w = x.shape
    chosen = torch.rand(n, generator=g) < p
    sigma = _uniform(n, *BLUR_SIGMA, g)
    offsets = torch.arange(BLUR_SIZE, dtype=torch.float32) - BLUR_SIZE // 2
    # the normalised Gaussian weights are a softmax of -d^2 / (2 sigma^2): PyTorch's own exp, where torch.exp goes to
    # MKL's vector math, which gave other bits on an Intel CPU than on the reference's AMD one
    kernel = torch.softmax(-0.5 * (offsets[None] / sigma[:, None]) ** 2, dim=1).repeat_interleave(ch, 0)  # n*ch x size
    pad = BLUR_SIZE // 2
    flat = F.pad(x.reshape(1, n * ch, h, w), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * ch, 1, BLUR_SIZE, 1), groups=n * ch)
    flat = F.conv2d(flat, kernel.view(n * ch, 1, 1, BLUR_SIZE), groups=n * ch)
    return torch.where(chosen.view(n, 1, 1, 1), flat.view(n, ch, h, w), x)


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, names: list[str], p: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x 3 x H x W frames and N x 1 x H x W {0,1} masks -> normalised float images and float masks.

    The named augmentations (copy-paste excepted: it needs the pool, see
    `SegmentationBatches`) each apply to a frame with probability `p`.
    """
    check(names)
    x, y = images.contiguous().float() / 255, masks.float()
    if any(n in GEOMETRIC for n in names):
        x, y = _geometric(x, y, names, p, g)
    if "colour" in names:
        x = _colour(x, p, g)
    if "blur" in names:
        x = _blur(x, p, g)
    return (x - _MEAN) / _STD, y


def unnormalise(x: torch.Tensor) -> np.ndarray:
    """Normalised N x 3 x H x W -> uint8 N x H x W x 3, to look at what the model sees."""
    return ((x * _STD + _MEAN).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


class SegmentationBatches:
    """Shuffled, augmented training batches drawn from frames held in memory, a whole batch at a time.

    Iterating gives one epoch. The copy-paste pool is this same (training) set,
    so nothing from validation or test is ever pasted.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        augment: list[str] | tuple[str, ...] = (),
        batch_size: int = 16,
        seed: int = 0,
        p: float = 0.5,
        drop_last: bool = True,
    ):
        check(augment)
        self.images, self.masks = images, masks
        self.names = [n for n in augment if n != "copy_paste"]
        self.batch_size, self.p = batch_size, p
        self.drop_last = drop_last and len(images) > batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.copy_paste = CopyPaste(images, masks, p=p, seed=seed) if "copy_paste" in augment else None
        self.blocked = (
            [blocked_map(i, m, self.copy_paste.margin) for i, m in zip(images, masks)] if self.copy_paste else []
        )

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.images), generator=self.generator).numpy()
        for b in range(len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            images, masks = self.images[index], self.masks[index]
            if self.copy_paste is not None:
                pasted = [self.copy_paste(images[k], masks[k], self.blocked[i]) for k, i in enumerate(index)]
                images, masks = np.stack([a for a, _ in pasted]), np.stack([m for _, m in pasted])
            yield augment_batch(
                torch.from_numpy(images).permute(0, 3, 1, 2),
                torch.from_numpy(masks)[:, None],
                self.names,
                self.p,
                self.generator,
            )
