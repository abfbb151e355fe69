"""The softening lesson (temperature table, entropy) and the distilled-vs-scratch verdict."""

import math

import pandas as pd
import pytest
import torch

from helpers import distill
from helpers.tables import as_markdown, mean_std


def test_temperature_table_matches_hand_computed_softmax():
    logits = torch.tensor([2.0, 0.0, -2.0])
    table = distill.temperature_table(logits, ["a", "b", "c"], [1, 2])
    z = math.exp(2) + 1 + math.exp(-2)
    assert table.loc["T = 1", "a"] == pytest.approx(math.exp(2) / z)
    z2 = math.e + 1 + math.exp(-1)
    assert table.loc["T = 2", "c"] == pytest.approx(math.exp(-1) / z2)
    assert table.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])


def test_entropy_bits_and_its_growth_with_temperature():
    assert distill.entropy(torch.tensor([[0.5, 0.5]])).item() == pytest.approx(1.0)
    assert distill.entropy(torch.tensor([[1.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-9)
    logits = torch.tensor([[4.0, 1.0, -1.0], [0.0, 3.0, 0.5]])
    curve = distill.entropy_vs_temperature(logits, [1, 3, 5, 100])
    assert curve["entropy_mean"].is_monotonic_increasing
    assert curve["entropy_mean"].iloc[-1] == pytest.approx(math.log2(3), abs=0.01)  # T -> inf: uniform


def _summary(kd_test, kd_std, scratch_test=0.80, scratch_std=0.01):
    runs = []
    for _seed, sign in enumerate([-1, 1]):
        runs.append(
            {
                "student": "s",
                "method": "scratch",
                "temperature": float("nan"),
                "test_macro_f1": scratch_test + sign * scratch_std,
                "val_macro_f1": 0.5,
            }
        )
        for t, val in ((1.0, 0.6), (4.0, 0.7)):  # T = 4 wins on validation
            test = kd_test if t == 4.0 else 0.0  # the T that loses on validation scores badly on test
            runs.append(
                {
                    "student": "s",
                    "method": "KD",
                    "temperature": t,
                    "test_macro_f1": test + sign * kd_std,
                    "val_macro_f1": val,
                }
            )
    return mean_std(
        pd.DataFrame(runs).fillna({"temperature": 0.0}),
        ["student", "method", "temperature"],
        ["test_macro_f1", "val_macro_f1"],
    )


def test_kd_verdict_picks_temperature_on_validation_and_respects_the_spread():
    v = distill.verdict(_summary(0.90, 0.01), "s")
    assert v["temperature"] == 4.0 and v["verdict"] == "is better than" and v["at_least_scratch"]
    assert v["kd_val"] == pytest.approx(0.7)
    assert distill.verdict(_summary(0.805, 0.02), "s")["verdict"].startswith("is at least as good")
    assert distill.verdict(_summary(0.79, 0.02), "s")["verdict"].startswith("is slightly below")
    worse = distill.verdict(_summary(0.60, 0.01), "s")
    assert (
        worse["verdict"] == "is worse than" and not worse["at_least_scratch"] and "**is worse than**" in worse["text"]
    )


def test_mean_std_and_markdown():
    frame = pd.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]})
    table = mean_std(frame, ["g"], ["x"])
    assert table["x_mean"].tolist() == [2.0, 5.0] and table["x_std"].tolist() == pytest.approx([math.sqrt(2), 0.0])
    assert table["runs"].tolist() == [2, 1]
    assert "2.000 ± 1.414" in as_markdown(table, ["x"])
