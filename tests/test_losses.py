"""NT-Xent and KD losses against hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers.distill import kd_loss, softened
from helpers.ssl import nt_xent


def test_nt_xent_matches_a_hand_computed_two_pair_batch():
    # Unit vectors: view pairs (a, a') and (b, b'); a.a' = 0.8, a.b = 0, a.b' = 0.6, a'.b = 0.6, a'.b' = 0, b.b' = 0.8
    a, a2 = torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.6])
    b, b2 = torch.tensor([0.0, 1.0]), torch.tensor([0.6, 0.8])
    t = 0.5
    z1, z2 = torch.stack([a, b]), torch.stack([a2, b2])
    # query a: positive a' (0.8), negatives b (0.0), b' (0.6) -> -log(e^{1.6} / (e^{1.6} + e^{0} + e^{1.2}))
    la = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(0.0) + math.exp(1.2)))
    # query b: positive b' (0.8), negatives a (0.0), a' (0.6)
    lb = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(0.0) + math.exp(1.2)))
    # query a': positive a (0.8), negatives b (0.6), b' (0.48+0.48=0.96)
    la2 = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(1.2) + math.exp(1.92)))
    # query b': positive b (0.8), negatives a (0.6), a' (0.96)
    lb2 = la2
    expected = (la + lb + la2 + lb2) / 4
    assert nt_xent(z1, z2, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_is_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-6)
    assert nt_xent(3 * z1, 0.5 * z2).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-5)


def test_nt_xent_rewards_matching_views():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 16, generator=g)
    assert nt_xent(z, z + 0.01 * torch.randn(6, 16, generator=g)) < nt_xent(z, torch.randn(6, 16, generator=g))
    with pytest.raises(ValueError, match="N x D"):
        nt_xent(z, z[:3])


def test_kd_equals_cross_entropy_at_alpha_zero():
    g = torch.Generator().manual_seed(2)
    s, t, y = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.tensor([0, 1, 2, 1])
    assert kd_loss(s, t, y, temperature=4, alpha=0.0).item() == pytest.approx(F.cross_entropy(s, y).item())


def test_kd_soft_part_vanishes_when_student_equals_teacher():
    g = torch.Generator().manual_seed(3)
    s, y = torch.randn(4, 3, generator=g), torch.tensor([0, 1, 2, 1])
    assert kd_loss(s, s.clone(), y, temperature=3, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(s, s.clone(), y, temperature=3, alpha=0.6).item() == pytest.approx(
        0.4 * F.cross_entropy(s, y).item()
    )


def test_kd_transfer_rows_enter_the_soft_term_only():
    """Hand case: 2 labelled rows + 1 transfer row. Soft term = T^2 * mean over all 3 rows of KL(p_t || p_s);
    hard term = CE over the 2 labelled rows."""
    s = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    y, temperature, alpha = torch.tensor([0, 1]), 2.0, 0.7

    def kl(tr, sr):
        p = [math.exp(v / temperature) for v in tr]
        q = [math.exp(v / temperature) for v in sr]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        return sum(a * math.log(a / b) for a, b in zip(p, q))

    soft = temperature**2 * sum(kl(t[i].tolist(), s[i].tolist()) for i in range(3)) / 3
    hard = sum(-math.log(math.exp(s[i, y[i]].item()) / sum(math.exp(v) for v in s[i].tolist())) for i in range(2)) / 2
    got = kd_loss(s, t, y, temperature=temperature, alpha=alpha).item()
    assert got == pytest.approx(alpha * soft + (1 - alpha) * hard, rel=1e-5)
    # the transfer row matters: dropping it changes the loss
    assert kd_loss(s[:2], t[:2], y, temperature=temperature, alpha=alpha).item() != pytest.approx(got)


def test_kd_gradient_scale_does_not_depend_on_temperature():
    g = torch.Generator().manual_seed(4)
    t, y = torch.randn(8, 3, generator=g), torch.zeros(8, dtype=torch.long)
    s0 = torch.randn(8, 3, generator=g)

    def grad_norm(temperature, scale_fix=True):
        s = s0.clone().requires_grad_(True)
        loss = kd_loss(s, t, y, temperature=temperature, alpha=1.0)
        if not scale_fix:
            loss = loss / temperature**2
        loss.backward()
        return s.grad.norm().item()

    assert grad_norm(8) / grad_norm(4) == pytest.approx(1.0, abs=0.1)
    assert grad_norm(8, scale_fix=False) / grad_norm(4, scale_fix=False) == pytest.approx(0.25, abs=0.05)


def test_softening_flattens_but_keeps_the_order():
    logits = torch.tensor([[4.0, 1.0, 0.0]])
    p1, p3 = softened(logits, 1.0)[0], softened(logits, 3.0)[0]
    assert p1.argsort().tolist() == p3.argsort().tolist()
    assert p3[1] > p1[1] and p3[0] < p1[0]
    assert p1.sum().item() == pytest.approx(1.0) and p3.sum().item() == pytest.approx(1.0)
