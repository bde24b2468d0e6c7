"""SigLIPLoss and siglip_loss against SigLIP's formula in float64."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from reference_losses import siglip_reference
from torch import nn

from unihpr.losses import LearnableTemperature, SigLIPLoss, siglip_loss


def embeddings(B, D, seed, n=2):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


@given(
    B=st.integers(2, 7),
    D=st.integers(1, 6),
    seed=st.integers(0, 9999),
    tau=st.floats(0.05, 2.0),
    bias=st.floats(-12.0, 5.0),
    groups=st.one_of(st.none(), st.integers(1, 7)),
)
def test_siglip_matches_formula(B, D, seed, tau, bias, groups):
    x, y = embeddings(B, D, seed)
    labels = None
    if groups is not None:
        labels = torch.randint(groups, (B,), generator=torch.Generator().manual_seed(seed))
    got = SigLIPLoss(tau, bias)(x, y, labels=labels)
    ref = siglip_reference(x, y, tau, bias, labels)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, (x, y)), torch.autograd.grad(ref, (x, y))):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


def test_siglip_equals_open_clip_expression():
    # open_clip: logits = logit_scale * x @ y.T + logit_bias; labels = 2 * eye - 1;
    # loss = -F.logsigmoid(labels * logits).sum() / B (on normalised features).
    x, y = embeddings(9, 16, 1)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    scale, bias = 10.0, -10.0
    z = 2 * torch.eye(9, dtype=torch.float64) - 1
    expected = -F.logsigmoid(z * (scale * xn @ yn.T + bias)).sum() / 9
    torch.testing.assert_close(SigLIPLoss(1 / scale, bias)(x, y), expected, rtol=1e-12, atol=0)


def test_siglip_learnable_temperature_and_bias_gradcheck():
    x, y = embeddings(5, 3, 2)
    tau = LearnableTemperature(init=0.3, min=0.01, max=10).double()
    bias = nn.Parameter(torch.tensor(-2.0, dtype=torch.float64))
    loss_fn = SigLIPLoss(tau, bias)
    assert loss_fn.bias is bias and any(p is bias for p in loss_fn.parameters())

    def call(a, b, t, c):
        return siglip_loss(F.normalize(a, dim=1) @ F.normalize(b, dim=1).T, t, c)

    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(call, (x, y, t, c))
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b), (x, y))
    loss_fn(x, y).backward()
    # ∂L/∂b of the module against a central difference
    h, base = 1e-6, float(bias)
    with torch.no_grad():
        bias.fill_(base + h)
        up = float(loss_fn(x, y))
        bias.fill_(base - h)
        down = float(loss_fn(x, y))
    assert float(bias.grad) == pytest.approx((up - down) / (2 * h), rel=1e-6)
    assert tau.log_tau.grad is not None


def test_siglip_fixed_bias_is_a_buffer_and_functional_agrees():
    x, y = embeddings(6, 4, 3)
    loss_fn = SigLIPLoss(0.1, -10.0)
    assert list(loss_fn.parameters()) == [] and "bias" in dict(loss_fn.named_buffers())
    s = F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
    torch.testing.assert_close(loss_fn(x, y), siglip_loss(s, 0.1, -10.0))
    # Anchors: the rows' terms, each half divided by its own size, average to the whole.
    halves = [siglip_loss(s, 0.1, -10.0, anchors=torch.arange(3) + 3 * h) for h in range(2)]
    torch.testing.assert_close(0.5 * (halves[0] + halves[1]), loss_fn(x, y))


def test_siglip_rewards_alignment():
    x = torch.eye(6, dtype=torch.float64)
    fn = SigLIPLoss(0.05, -5.0)
    assert float(fn(x, x)) < float(fn(x, x.roll(1, 0)))


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"bias": "a"}, TypeError, "bias must be a real number"),
        ({"bias": float("nan")}, ValueError, "bias must be a finite number, got nan"),
        ({"bias": torch.zeros(2)}, ValueError, r"bias must have shape \(\)"),
        ({"bias": torch.tensor(1)}, TypeError, "bias must be a floating-point tensor"),
        ({"temperature": -1.0}, ValueError, "temperature must be a finite number >= 1"),
    ],
)
def test_siglip_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        SigLIPLoss(**kwargs)


def test_siglip_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"y has shape \(5, 3\)"):
        SigLIPLoss()(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="square"):
        siglip_loss(torch.randn(3, 4), 0.1, -10.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        SigLIPLoss()(torch.randn(4, 3), torch.randn(4, 3), labels=torch.arange(3))
