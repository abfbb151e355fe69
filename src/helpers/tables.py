"""Result tables over repeated runs: mean ± std, and one rule for when a difference counts.

Every verdict in the course (KD vs scratch, augmentation vs none, ensemble vs
its best member) uses `compare`, so "better" means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def mean_std(frame: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """`<metric>_mean`, `<metric>_std` (0 for a single run) and `runs` per group, first-seen order, NaN keys kept."""
    grouped = frame.groupby(by, sort=False, dropna=False)[metrics]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["runs"] = grouped.size()
    return out.reset_index().fillna({f"{m}_std": 0.0 for m in metrics})


def as_markdown(table: pd.DataFrame, metrics: list[str], digits: int = 3) -> str:
    """The group columns and `runs`, then each of `metrics` as one 'mean ± std' column (other metrics left out)."""
    keys = [c for c in table.columns if not c.endswith(("_mean", "_std"))]
    shown = table[keys].astype(object).where(table[keys].notna(), "—")
    for m in metrics:
        shown[m] = [f"{a:.{digits}f} ± {b:.{digits}f}" for a, b in zip(table[f"{m}_mean"], table[f"{m}_std"])]
    return shown.to_markdown(index=False)


def _shown(value: float, digits: int = 3) -> float:
    """`value` as a table shows it: rounded to `digits`, with -0.0 turned into 0.0 (by adding 0.0)."""
    return round(value, digits) + 0.0


def rounded(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """`frame` as a table shows it: each float as `_shown` rounds it (as the sentences beside the table do), so a
    value that rounds to zero is 0, never -0.

    pandas prints a rounded -0.00002 as "-0", which reads as a loss where there is none; every table the course
    shows goes through here (integer and text columns are left as they are).
    """
    out = frame.copy()
    floats = out.select_dtypes("floating").columns
    out[floats] = out[floats].map(lambda value: _shown(value, digits))
    return out


def markdown(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    """`frame` as a Markdown table: rounded as `rounded` does, and a missing value (NaN, None or an empty text)
    shown as "—", not "nan" or a blank (a published table with no in-centre number, an FP32 IR's INT8 ops)."""
    shown = rounded(frame, digits)
    return shown.astype(object).where(shown.notna() & shown.ne(""), None).to_markdown(index=index, missingval="—")


def signed(value: float, digits: int = 3) -> str:
    """A difference with its sign at the shown precision: one that rounds to zero prints +0.000, never -0.000."""
    return f"{_shown(value, digits):+.{digits}f}"


# How a difference reads, by `compare`'s outcome.
WORDS = {
    "better": "is better than",
    "tie_above": "is at least as good as (within the spread {spread})",
    "tie_below": "is slightly below, within the spread {spread},",
    "worse": "is worse than",
}


def compare(
    new: float, new_std: float, base: float, base_std: float, digits: int = 3, spread_of: str = "over seeds"
) -> dict:
    """`new` vs `base` (means over runs): clearly better or worse only beyond the larger std over runs.

    The difference is rounded to the shown precision first, so a gap nobody
    can see in the table is a tie (and prints as +0.000, never -0.000). `spread_of` says what the spread is over,
    in the words. Returns gain, spread, outcome (a key of WORDS) and its words.
    """
    gain, spread = _shown(new - base, digits), max(new_std, base_std)
    if gain > spread:
        outcome = "better"
    elif gain >= 0:
        outcome = "tie_above"
    elif -gain <= spread:
        outcome = "tie_below"
    else:
        outcome = "worse"
    words = WORDS[outcome].format(spread=spread_of)
    return {"gain": float(gain), "spread": float(spread), "outcome": outcome, "words": words}


def bootstrap_ci(values: np.ndarray, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (e.g. per-image Dice): resample the images.

    Says how much a mean over *these* frames could move with other frames from
    the same source; seeded, so the interval is reproducible.
    """
    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def interval_markdown(table: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "iou"), digits: int = 3) -> str:
    """Per model and centre: frames, then each metric as 'mean [lo, hi]' (the `<metric>_lo/_hi` interval)."""
    shown = table[["model", "centre", "frames"]].copy()
    for m in metrics:
        shown[m] = [
            f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
            for v, lo, hi in zip(table[m], table[f"{m}_lo"], table[f"{m}_hi"])
        ]
    return shown.to_markdown(index=False)


def interval_line(table: pd.DataFrame, metric: str = "dice") -> str:
    """The per-centre table in one sentence: 'model on centre mean [lo, hi]; ...' (for a summary's bullet)."""
    return "; ".join(
        f"{r['model']} on {r['centre']} {r[metric]:.3f} [{r[f'{metric}_lo']:.3f}, {r[f'{metric}_hi']:.3f}]"
        for _, r in table.iterrows()
    )
