"""Knowledge distillation (Hinton, Vinyals & Dean, 2015), taught in notebook 03.

The student matches the teacher's probabilities softened by a temperature T
(the "dark knowledge" in the wrong classes' probabilities) plus the hard labels.
The loss is written here because the course teaches it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from . import tables


def softened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T): T > 1 reveals the teacher's 'dark knowledge' about the wrong classes."""
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.7,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    The T^2 factor keeps the soft term's gradients the same size whatever T is
    (they shrink as 1/T^2 otherwise), so alpha means the same at every T.
    `labels` may label only the first rows: the rows after them are
    *transfer-set* frames (Hinton et al.'s unlabeled frames), which have the
    teacher's soft targets but no label. The soft term averages over every
    row, the hard term over the labelled ones.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = softened(teacher_logits.detach(), temperature)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    hard = F.cross_entropy(student_logits[: len(labels)], labels, weight=class_weights)
    return alpha * soft + (1 - alpha) * hard


def temperature_table(logits: torch.Tensor, classes: list[str], temperatures: list[float]) -> pd.DataFrame:
    """One output softened at several T: rows are T, columns the class probabilities (the brief's table)."""
    rows = {f"T = {t:g}": softened(logits.float(), t).tolist() for t in temperatures}
    return pd.DataFrame.from_dict(rows, orient="index", columns=classes)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits per row (0 = one-hot, log2(k) = uniform)."""
    return -(probs * torch.log2(probs.clamp_min(1e-12))).sum(dim=-1)


def entropy_vs_temperature(logits: torch.Tensor, temperatures: list[float]) -> pd.DataFrame:
    """Mean and spread of the softened outputs' entropy over a set of frames, per T."""
    rows = []
    for t in temperatures:
        h = entropy(softened(logits.float(), t))
        rows.append(
            {
                "temperature": t,
                "entropy_mean": h.mean().item(),
                "entropy_q10": h.quantile(0.1).item(),
                "entropy_q90": h.quantile(0.9).item(),
                "max_entropy": float(np.log2(logits.shape[-1])),
            }
        )
    return pd.DataFrame(rows)


# The three comparisons of notebook 03, per student and label budget: (new, base).
COMPARISONS = (("KD", "scratch"), ("KD + transfer", "scratch"), ("KD + transfer", "KD"))


def verdicts(
    summary: pd.DataFrame, student: str, budget: float, metric: str = "macro_f1", teacher: float | None = None
) -> dict:
    """KD vs scratch, KD + transfer vs scratch and KD + transfer vs KD, for one student at one label budget.

    `summary` is a tables.mean_std table over seeds of the chosen runs, with
    columns student, budget, labels, method, temperature and `test_<metric>_*`.
    Each comparison uses `tables.compare`: a gain is clear only beyond the
    larger standard deviation over seeds. With `teacher` (that budget's
    teacher's test score, one run), the text starts with teacher vs scratch:
    the most distillation could pass on.
    """
    rows = summary[(summary["student"] == student) & (summary["budget"] == budget)].set_index("method")
    out = {"student": student, "budget": float(budget), "labels": int(rows["labels"].iloc[0])}
    out["temperature"] = float(rows.loc["KD", "temperature"])
    for method in ("scratch", "KD", "KD + transfer"):
        out[method] = float(rows.loc[method, f"test_{metric}_mean"])
        out[f"{method} std"] = float(rows.loc[method, f"test_{metric}_std"])
    parts, out["comparisons"] = [], []
    if teacher is not None:
        judged = tables.compare(teacher, 0.0, out["scratch"], out["scratch std"])
        out["teacher"], out["teacher_vs_scratch"] = float(teacher), judged
        parts.append(f"the teacher ({teacher:.3f}) **{judged['words']}** scratch ({judged['gain']:+.3f})")
    for new, base in COMPARISONS:
        judged = tables.compare(out[new], out[f"{new} std"], out[base], out[f"{base} std"])
        out["comparisons"].append({"new": new, "base": base, **judged})
        parts.append(f"{new} **{judged['words']}** {base} ({judged['gain']:+.3f})")
    scores = ", ".join(f"{m} {out[m]:.3f} ± {out[f'{m} std']:.3f}" for m in ("scratch", "KD", "KD + transfer"))
    out["text"] = (
        f"**{student}**, {out['labels']} labelled frames ({budget:.0%}), T = {out['temperature']:g} "
        f"chosen on validation: test macro F1 {scores} over {int(rows['runs'].min())} seeds: " + "; ".join(parts) + "."
    )
    return out
