"""The softening lesson (temperature table, entropy) and the distilled-vs-scratch verdict."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import distill
from helpers.tables import as_markdown, compare, markdown, mean_std, rounded, signed


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


def _summary(transfer_test, transfer_std, kd_test=0.80, scratch_test=0.80, spread=0.01):
    runs = []
    for _seed, sign in enumerate([-1, 1]):
        for method, test, std in (
            ("scratch", scratch_test, spread),
            ("KD", kd_test, spread),
            ("KD + transfer", transfer_test, transfer_std),
        ):
            runs.append(
                {
                    "student": "s",
                    "budget": 0.1,
                    "labels": 30,
                    "method": method,
                    "temperature": 0.0 if method == "scratch" else 4.0,
                    "test_macro_f1": test + sign * std,
                }
            )
    return mean_std(pd.DataFrame(runs), ["student", "budget", "labels", "method", "temperature"], ["test_macro_f1"])


def test_three_way_kd_verdicts_use_the_one_rule():
    v = distill.verdicts(_summary(0.90, 0.01), "s", 0.1)
    assert v["temperature"] == 4.0 and v["labels"] == 30
    words = {(c["new"], c["base"]): c["words"] for c in v["comparisons"]}
    assert (
        words[("KD + transfer", "scratch")] == "is better than" and words[("KD + transfer", "KD")] == "is better than"
    )
    assert words[("KD", "scratch")].startswith("is at least as good")  # equal means: a tie, not a win
    assert "**is better than** scratch" in v["text"] and "30 labelled frames (10%)" in v["text"]
    assert distill.verdicts(_summary(0.805, 0.02), "s", 0.1)["comparisons"][1]["outcome"] == "tie_above"
    assert distill.verdicts(_summary(0.79, 0.02), "s", 0.1)["comparisons"][1]["outcome"] == "tie_below"
    assert distill.verdicts(_summary(0.60, 0.01), "s", 0.1)["comparisons"][2]["outcome"] == "worse"


def test_a_difference_that_rounds_to_zero_is_a_tie_printed_without_a_minus_sign():
    judged = compare(0.7600, 0.01, 0.7603, 0.01)
    assert judged["outcome"] == "tie_above" and f"{judged['gain']:+.3f}" == "+0.000"
    assert [signed(x) for x in (-0.0003, 0.0004, -0.0006, 0.0126)] == ["+0.000", "+0.000", "-0.001", "+0.013"]


def test_a_table_shows_a_value_that_rounds_to_zero_without_a_minus_sign():
    frame = pd.DataFrame({"model": ["a", "b"], "runs": [2, 3], "change": [-0.00002, -0.0126], "ok": [True, False]})
    shown = rounded(frame, 3)
    assert shown.to_markdown(index=False).count("-0 ") == 0 and "-0.013" in shown.to_markdown(index=False)
    assert [str(v) for v in shown["change"]] == ["0.0", "-0.013"]
    assert shown["runs"].dtype == frame["runs"].dtype and shown["ok"].dtype == bool  # only floats are touched
    assert frame["change"].iloc[0] == -0.00002  # the caller's table is left as it was
    # a table rounds as the sentence beside it does: 2.675 is stored just below 2.675 (pandas' round gives 2.68)
    assert rounded(pd.DataFrame({"x": [2.675]}), 2)["x"].iloc[0] == 2.67 and signed(2.675, 2) == "+2.67"


def test_a_markdown_table_shows_a_missing_value_as_a_dash_not_nan():
    """The report's cross-centre table read "nan" where a published source gives no in-centre Dice."""
    frame = pd.DataFrame(
        {"source": ["PraNet", "DUCK-Net"], "in dice": [0.818, np.nan], "note": ["x", None], "test": ["", "Kvasir"]}
    )
    text = markdown(frame, 3)
    assert "nan" not in text and "None" not in text and text.count("—") == 3
    assert text.splitlines()[0].startswith("| source   |   in dice |")  # numbers stay right-aligned
    full = pd.DataFrame({"model": ["a"], "change": [-0.00002], "runs": [2]})  # no gap: as `rounded` prints it
    assert markdown(full, 3) == rounded(full, 3).to_markdown(index=False)


def test_verdicts_start_with_the_teacher_against_scratch():
    v = distill.verdicts(_summary(0.90, 0.01), "s", 0.1, teacher=0.83)  # scratch 0.80 +- 0.014 over two seeds
    assert v["teacher_vs_scratch"]["outcome"] == "better" and v["teacher_vs_scratch"]["gain"] == pytest.approx(0.03)
    assert "the teacher (0.830) **is better than** scratch (+0.030)" in v["text"]
    close = distill.verdicts(_summary(0.90, 0.01, spread=0.02), "s", 0.1, teacher=0.82)  # +0.02 inside 0.028
    assert close["teacher_vs_scratch"]["outcome"] == "tie_above"
    assert "teacher_vs_scratch" not in distill.verdicts(_summary(0.90, 0.01), "s", 0.1)


def test_mean_std_and_markdown():
    frame = pd.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]})
    table = mean_std(frame, ["g"], ["x"])
    assert table["x_mean"].tolist() == [2.0, 5.0] and table["x_std"].tolist() == pytest.approx([math.sqrt(2), 0.0])
    assert table["runs"].tolist() == [2, 1]
    assert "2.000 ± 1.414" in as_markdown(table, ["x"])
