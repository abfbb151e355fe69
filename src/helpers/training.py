"""What every training notebook shares: seeding, array datasets, feature extraction, checkpoints."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .progress import progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch and ask PyTorch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor() -> v2.Compose:
    """uint8 HWC array -> normalised float CHW tensor (the evaluation transform)."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ArrayDataset(Dataset):
    """Images held in memory (decoded once by helpers.data) with optional labels and a transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, transform: Callable | None = None):
        self.images, self.labels, self.transform = images, labels, transform or to_tensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.transform(self.images[i])
        return x if self.labels is None else (x, int(self.labels[i]))


@torch.no_grad()
def extract_features(model: nn.Module, images: np.ndarray, batch_size: int = 64, desc: str = "features") -> np.ndarray:
    """Pooled features (or logits) of `model` for uint8 images, in order, in eval mode."""
    model.eval()
    dev = next(model.parameters()).device
    loader = DataLoader(ArrayDataset(images), batch_size=batch_size, shuffle=False)
    out = [model(x.to(dev)).float().cpu() for x in progress(loader, desc=desc, leave=False)]
    return torch.cat(out).numpy()


def save_weights(model: nn.Module, path: Path) -> Path:
    """State dict only: loading it never runs code from the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def load_encoder(model: nn.Module, path: Path, name: str, allowed_missing: str = "") -> nn.Module:
    """Load notebook 02's encoder state dict into `model`; refuse one that does not fit.

    Only keys starting with `allowed_missing` (a fresh head) may be absent, so
    a wrong checkpoint fails loudly instead of silently training from scratch.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another architecture
        raise ValueError(f"{path} does not fit a {name} encoder: {str(err).splitlines()[1].strip()}") from None
    wrong = [k for k in missing if not (allowed_missing and k.startswith(allowed_missing))] + list(unexpected)
    if wrong:
        raise ValueError(f"{path} does not fit a {name} encoder: mismatched keys {wrong[:5]}")
    return model
