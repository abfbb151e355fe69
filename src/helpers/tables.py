"""Result tables over repeated runs: mean ± std, so a reader can judge a difference against the noise."""

from __future__ import annotations

import pandas as pd


def mean_std(frame: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """`<metric>_mean`, `<metric>_std` (0 for a single run) and `runs` per group, in first-seen order (NaN keys kept)."""
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
