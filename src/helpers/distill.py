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
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = softened(teacher_logits.detach(), temperature)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    hard = F.cross_entropy(student_logits, labels, weight=class_weights)
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


def verdict(summary: pd.DataFrame, student: str, metric: str = "macro_f1") -> dict:
    """Distilled vs scratch for one student, on the test split, with T chosen on validation.

    `summary` is a tables.mean_std table over seeds with columns student,
    method ("scratch" or "KD"), temperature, `test_<metric>_*` and
    `val_<metric>_mean`. The distilled row is the T with the best mean
    validation score, so the test split never picks T. A gain is called clear
    only when it exceeds the larger standard deviation over seeds.
    """
    rows = summary[summary["student"] == student]
    scratch = rows[rows["method"] == "scratch"].iloc[0]
    kd_rows = rows[rows["method"] == "KD"]
    kd = kd_rows.loc[kd_rows[f"val_{metric}_mean"].idxmax()]
    s_mean, s_std = scratch[f"test_{metric}_mean"], scratch[f"test_{metric}_std"]
    k_mean, k_std = kd[f"test_{metric}_mean"], kd[f"test_{metric}_std"]
    judged = tables.compare(k_mean, k_std, s_mean, s_std)
    gain, spread, word = judged["gain"], judged["spread"], judged["words"]
    text = (
        f"**{student}**: distilled at T = {kd['temperature']:g} (chosen on validation) reaches test macro F1 "
        f"{k_mean:.3f} ± {k_std:.3f} vs {s_mean:.3f} ± {s_std:.3f} from scratch over {int(kd['runs'])} seed(s): "
        f"the distilled student **{word}** the scratch one (difference {gain:+.3f})."
    )
    return {
        "student": student,
        "temperature": float(kd["temperature"]),
        "kd": float(k_mean),
        "kd_std": float(k_std),
        "scratch": float(s_mean),
        "scratch_std": float(s_std),
        "gain": float(gain),
        "spread": float(spread),
        "kd_val": float(kd[f"val_{metric}_mean"]),
        "at_least_scratch": bool(gain >= 0),
        "verdict": word,
        "text": text,
    }
