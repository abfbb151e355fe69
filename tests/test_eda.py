"""EDA statistics on arrays where the answer is known."""

from pathlib import Path

import numpy as np
import pandas as pd

from helpers import eda
from helpers.data import LoadedSet, Sample


def make_set(images, masks=None, labels=None):
    n = len(images)
    samples = [
        Sample(Path(f"{i}.jpg"), labels[i] if labels else None, Path(f"{i}.png") if masks is not None else None)
        for i in range(n)
    ]
    return LoadedSet(samples, np.asarray(images, np.uint8), masks, np.tile([40, 30], (n, 1)), ["x"] * n)


def test_colour_stats_ignore_the_black_frame():
    img = np.zeros((1, 10, 10, 3), np.uint8)
    img[0, 2:8, 2:8] = (200, 100, 50)  # tissue in the middle, black frame around it
    rows = pd.DataFrame({"label": ["polyps"], "split": ["train"]})
    stats = eda.colour_stats(make_set(img), rows)
    assert stats.loc[0, ["R", "G", "B"]].tolist() == [200, 100, 50]


def test_mask_stats_count_regions_and_coverage():
    masks = np.zeros((2, 10, 10), np.uint8)
    masks[0, 0:2, 0:2] = 1
    masks[0, 5:7, 5:7] = 1
    masks[1, :5, :] = 1
    rows = pd.DataFrame({"label": ["", ""], "split": ["train", "test"]})
    stats = eda.mask_stats(make_set(np.zeros((2, 10, 10, 3)), masks), rows)
    assert stats["polyps"].tolist() == [2, 1] and stats["coverage"].tolist() == [0.08, 0.5]


def test_interpretation_follows_the_numbers():
    rows = pd.DataFrame({"label": ["normal"] * 9 + ["polyp"], "split": ["train"] * 10})
    text = eda.interpret(rows, None, None)
    assert "9.00" in text and "Imbalanced" in text and "per-class recall" in text
    balanced = eda.interpret(pd.DataFrame({"label": ["a", "b"], "split": ["train", "train"]}), None, None)
    assert "Balanced here" in balanced


def test_overlay_marks_the_mask_outline():
    img = np.full((6, 6, 3), 100, np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[2:4, 2:4] = 1
    out = eda.overlay(img, mask)
    assert (out[0, 0] == 100).all() and tuple(out[2, 2]) == (0, 255, 0)
