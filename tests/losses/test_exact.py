"""TripletInfoNCE / ContrastiveLoss with negatives="all" (exact mode)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unihpr.losses import ContrastiveLoss, LearnableTemperature, PairInfoNCE, TripletInfoNCE


def exact_reference(x1, x2, x3, tau):
    """float64 brute force: eigvalsh over all B³ triplets, per-anchor membership mask."""
    x1, x2, x3 = (F.normalize(x.double(), dim=1) for x in (x1, x2, x3))
    B = x1.shape[0]
    i, j, k = torch.meshgrid(*(torch.arange(B),) * 3, indexing="ij")
    m = torch.stack([x1[i.reshape(-1)], x2[j.reshape(-1)], x3[k.reshape(-1)]], dim=1)
    lam = torch.linalg.eigvalsh(m @ m.transpose(1, 2))[:, -1].reshape(B, B, B)
    terms = []
    for a in range(B):
        member = (i == a) | (j == a) | (k == a)
        terms.append(torch.logsumexp(lam[member] / tau, 0) - lam[a, a, a] / tau)
    return torch.stack(terms).mean()


@pytest.mark.parametrize("B", [2, 4, 7])
def test_triplet_all_matches_brute_force(B):
    g = torch.Generator().manual_seed(B)
    xs = [torch.randn(B, 5, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    loss = TripletInfoNCE(temperature=0.2, negatives="all", chunk_size=3)(*xs)
    ref = exact_reference(*xs, 0.2)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(loss, xs), torch.autograd.grad(ref, xs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_exact_is_deterministic_and_ignores_generator():
    xs = [torch.randn(6, 8) for _ in range(3)]
    fn = TripletInfoNCE(negatives="all")
    a = fn(*xs, generator=torch.Generator().manual_seed(0))
    b = fn(*xs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # one computation twice in one process: bit-identical


def test_learnable_temperature_gets_exact_gradient():
    xs = [torch.randn(5, 4, dtype=torch.float64) for _ in range(3)]
    tau = LearnableTemperature(init=0.3, min=0.01, max=10.0)
    loss = TripletInfoNCE(temperature=tau, negatives="all")(*xs)
    loss.backward()
    # d/d log τ of the reference, by autograd through eigvalsh.
    log_tau = tau.log_tau.detach().double().clone().requires_grad_()
    ref = exact_reference(*xs, log_tau.exp())
    (ref_grad,) = torch.autograd.grad(ref, log_tau)
    torch.testing.assert_close(tau.log_tau.grad.double(), ref_grad, rtol=1e-5, atol=1e-6)


def test_contrastive_all_is_pairs_plus_exact_triplet():
    xs = [torch.randn(6, 8, dtype=torch.float64) for _ in range(3)]
    fn = ContrastiveLoss(triplet=TripletInfoNCE(negatives="all"), alpha=0.5)
    loss, info = fn(*xs, return_diagnostics=True)
    pair = PairInfoNCE(0.07)
    expected = (
        pair(xs[0], xs[1])
        + pair(xs[0], xs[2])
        + pair(xs[1], xs[2])
        + 0.5 * exact_reference(*xs, 0.2)
    )
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    assert info["loss/triplet"] == pytest.approx(float(exact_reference(*xs, 0.2)), rel=1e-9)
    assert 1.0 <= info["lambda/neg"] <= 3.0 and 1.0 <= info["lambda/pos"] <= 3.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"negatives": "some"}, "negatives"), ({"chunk_size": 0}, "chunk_size")],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TripletInfoNCE(**kwargs)
