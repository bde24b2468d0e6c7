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
