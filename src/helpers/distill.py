"""Knowledge distillation (Hinton, Vinyals & Dean, 2015), taught in notebook 03.

The student matches the teacher's probabilities softened by a temperature T
(the "dark knowledge" in the wrong classes' probabilities) plus the hard labels.
The loss is written here because the course teaches it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softened(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T): T > 1 reveals the teacher's 'dark knowledge' about the wrong classes."""
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.7, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    The T^2 factor keeps the soft term's gradients the same size whatever T is
    (they shrink as 1/T^2 otherwise), so alpha means the same at every T.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = softened(teacher_logits.detach(), temperature)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * temperature**2
    hard = F.cross_entropy(student_logits, labels, weight=class_weights)
    return alpha * soft + (1 - alpha) * hard
