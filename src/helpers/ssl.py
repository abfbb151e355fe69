"""Contrastive self-supervised pretraining (SimCLR-style), taught in notebook 02.

NT-Xent (normalised-temperature cross-entropy, a form of InfoNCE) is written
here rather than imported because the course teaches it: two augmented views
of the same image should be each other's nearest neighbour among all 2N
embeddings of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent over a batch of paired embeddings z1[i] <-> z2[i] (shape N x D).

    Each of the 2N embeddings is a query whose positive is its partner view and
    whose negatives are the other 2N - 2 embeddings; cosine similarities are
    divided by `temperature`. Returns the mean over all 2N queries.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be N x D, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # no self-match
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)
