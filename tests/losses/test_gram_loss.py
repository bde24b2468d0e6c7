"""GRAMLoss against GRAM's objective written out in float64."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from reference_losses import gram_loss_reference

from unihpr.losses import GRAMLoss, LearnableTemperature, PairInfoNCE
from unihpr.losses.distributed import local_pair_info_nce
from unihpr.losses.gram_loss import anchor_tuple_volumes


def embeddings(B, D, seed, n):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


@pytest.mark.parametrize("K", [3, 4])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gram_matches_objective(K, smoothing):
    xs = embeddings(6, 8, K, K)
    got = GRAMLoss(0.07, smoothing)(*xs)
    ref = gram_loss_reference(xs, 0.07, smoothing)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, xs), torch.autograd.grad(ref, xs)):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


@given(
    K=st.integers(2, 4),
    B=st.integers(2, 6),
    seed=st.integers(0, 9999),
    tau=st.floats(0.05, 1.0),
    smoothing=st.floats(0.0, 0.5),
)
def test_gram_property_matches_objective(K, B, seed, tau, smoothing):
    xs = embeddings(B, K + 2, seed, K)  # D > K: the volumes stay above the floor
    torch.testing.assert_close(
        GRAMLoss(tau, smoothing)(*xs), gram_loss_reference(xs, tau, smoothing), rtol=1e-9, atol=1e-9
    )


def test_gram_gradcheck_with_learnable_temperature():
    xs = embeddings(4, 6, 1, 3)
    tau = LearnableTemperature(init=0.1, min=0.01, max=10).double()
    fn = GRAMLoss(tau)
    assert torch.autograd.gradcheck(lambda *a: fn(*a), tuple(xs))
    fn(*xs).backward()
    assert tau.log_tau.grad is not None


def test_gram_two_modalities_is_a_sine_logit_pair_loss():
    x, y = embeddings(5, 4, 2, 2)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    vol = anchor_tuple_volumes([xn, yn])
    torch.testing.assert_close(vol, torch.sqrt(1 - (xn @ yn.T) ** 2))


def test_gram_labels_and_anchor_rows():
    xs = embeddings(6, 7, 3, 3)
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    full = GRAMLoss(0.1, 0.0)(*xs, labels=labels)
    # With labels the rows are a SupCon pair loss over the volume logits.
    ns = [F.normalize(x, dim=1) for x in xs]
    L = -anchor_tuple_volumes(ns)
    ref = local_pair_info_nce(L, L.T, torch.arange(6), 0.1, labels=labels)
    torch.testing.assert_close(full, ref)
    part = anchor_tuple_volumes(ns, torch.tensor([1, 4]))
    torch.testing.assert_close(part, -L[[1, 4]])
    assert not torch.allclose(full, GRAMLoss(0.1, 0.0)(*xs))
    # ... and the plain pair loss is a different objective.
    assert not torch.allclose(GRAMLoss(0.1, 0.0)(xs[0], xs[1]), PairInfoNCE(0.1)(xs[0], xs[1]))


def test_gram_bad_arguments():
    with pytest.raises(
        ValueError, match=r"label_smoothing must be a finite number >= 0 and < 1, got 1\.0"
    ):
        GRAMLoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match="at least 2 embedding sets"):
        GRAMLoss()(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"embeddings\[2\] has shape"):
        GRAMLoss()(torch.randn(4, 3), torch.randn(4, 3), torch.randn(5, 3))
