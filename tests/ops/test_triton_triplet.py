"""Triton kernels of the exact Triplet-InfoNCE vs the PyTorch path, on the CPU.

TRITON_INTERPRET=1 must be set before triton is imported: the kernels then run
in triton's numpy interpreter on CPU tensors (slow, so sizes stay tiny).
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from unihpr.ops.exact_triplet import exact_triplet_info_nce

# CI installs the `triton` extra in a separate step and runs `pytest -m triton`.
pytestmark = pytest.mark.triton


def _sims(B, D, seed, aligned):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(B, D, generator=g)
    xs = [F.normalize(aligned * base + torch.randn(B, D, generator=g), dim=1) for _ in range(3)]
    return [xs[0] @ xs[1].T, xs[0] @ xs[2].T, xs[1] @ xs[2].T]


def _run(sims, tau, anchors, backend):
    s = [t.clone().requires_grad_() for t in sims]
    t = torch.tensor(tau, requires_grad=True)
    loss, lam_pos, lam_neg = exact_triplet_info_nce(*s, t, anchors=anchors, backend=backend)
    grads = torch.autograd.grad(loss, [*s, t])
    return (loss, lam_pos, lam_neg, *grads)


@pytest.mark.parametrize(
    ("B", "anchors", "tau", "aligned"),
    [
        (2, None, 0.2, 0.0),
        (5, None, 0.2, 2.0),
        (7, torch.tensor([6, 0, 3]), 0.5, 1.0),
        (16, None, 0.05, 3.0),
        (16, None, 0.2, 0.0),
    ],
)
def test_triton_matches_torch_path(B, anchors, tau, aligned):
    sims = _sims(B, 8, seed=B, aligned=aligned)
    ref = _run(sims, tau, anchors, "torch")
    got = _run(sims, tau, anchors, "triton")
    names = ["loss", "lam_pos", "lam_neg", "d12", "d13", "d23", "dtau"]
    for name, r, g in zip(names, ref, got):
        # dτ = −Σ_t w(t) λ(t) / τ sums terms of size 1/τ that cancel, so its
        # float32 rounding error is larger (both paths are ~1e-4 off float64).
        rtol = 1e-3 if name == "dtau" else 2e-5
        torch.testing.assert_close(g, r, rtol=rtol, atol=2e-6, msg=name)


def test_triton_positive_with_identical_embeddings_is_finite():
    x = F.normalize(torch.randn(4, 6), dim=1)
    s = x @ x.T
    out = _run([s, s, s], 0.2, None, "triton")
    ref = _run([s, s, s], 0.2, None, "torch")
    for r, g in zip(ref, out):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, rtol=2e-5, atol=2e-6)


def test_triton_rejects_float64():
    s = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="float32"):
        exact_triplet_info_nce(s, s, s, 0.2, backend="triton")


def _special_cosines():
    """Random, near-repeated and exactly degenerate cosines, float32."""
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(300, 3, 7, generator=g), dim=-1)
    rand = [(x[:, 0] * x[:, 1]).sum(-1), (x[:, 0] * x[:, 2]).sum(-1), (x[:, 1] * x[:, 2]).sum(-1)]
    s = torch.rand(200, generator=g) * 1.5 - 0.5
    e = (torch.rand(200, 3, generator=g) - 0.5) * 1e-4
    sign = torch.where(torch.rand(200, generator=g) < 0.5, -1.0, 1.0)
    near = [s + e[:, 0], sign * (s + e[:, 1]), sign * (s + e[:, 2])]
    exact = torch.tensor([1.0, 0.9, 0.5, 0.0, -0.1, -0.5, 1e-15, 0.3])
    flat = [exact, exact, exact]
    pairs = [torch.tensor([0.4, 0.0, 0.7]), torch.tensor([0.4, 0.0, -0.2]), torch.zeros(3)]
    return [torch.cat(parts) for parts in zip(rand, near, flat, pairs)]


def test_in_kernel_lambda1_and_gradient_match_gram_py():
    """The kernels' own copy of the λ1 arithmetic against the reference in ops/gram.py."""
    from unihpr.ops.gram import lambda1_forward, lambda1_grad
    from unihpr.ops.triton_triplet import triton_lambda1_and_grad

    a, b, c = _special_cosines()
    parts = lambda1_forward(a, b, c)
    ref = (parts.lam, *lambda1_grad(a, b, c, parts.mu1, parts.r, parts.phi))
    got = triton_lambda1_and_grad(a, b, c)
    assert all(torch.isfinite(g).all() for g in got)
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=4e-7)
    # Near a repeated top eigenvalue the gradient is ill-conditioned: float32
    # rounding moves it by ~eps / gap, gap = (μ1 − μ2)(μ1 − μ3) / p (both
    # implementations measured within 5 eps / gap of the float64 value).
    p64 = lambda1_forward(a.double(), b.double(), c.double())
    gap = 4 * torch.sin(p64.phi / 3) * torch.sin(2 * torch.pi / 3 - p64.phi / 3)
    tol = 16 * torch.finfo(torch.float32).eps / gap.clamp_min(1e-30) + 2e-6
    for name, r, g in zip(["da", "db", "dc"], ref[1:], got[1:]):
        worst = ((g - r).abs().double() / tol).max()
        assert worst <= 1.0, (name, float(worst))
    # a = b = c exactly: 2/3 (s > 0), the subgradient -1/3 (s < 0), 0 at G = I
    expected = torch.tensor([2 / 3, 2 / 3, 2 / 3, 0.0, -1 / 3, -1 / 3, 2 / 3, 2 / 3])
    for g in (*ref[1:], *got[1:]):
        torch.testing.assert_close(g[500:508], expected, rtol=0, atol=1e-6)


def test_exact_losses_run_the_triton_backend_when_asked():
    from unihpr.losses import ContrastiveLoss, TripletInfoNCE

    x = [torch.randn(6, 5) for _ in range(3)]
    torch_loss = ContrastiveLoss(triplet=TripletInfoNCE(negatives="all", backend="torch"))(*x)
    triton_loss = ContrastiveLoss(triplet=TripletInfoNCE(negatives="all", backend="triton"))(*x)
    torch.testing.assert_close(triton_loss, torch_loss, rtol=2e-5, atol=2e-6)
