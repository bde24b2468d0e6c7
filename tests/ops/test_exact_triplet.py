"""Exact all-negatives Triplet-InfoNCE: chunked PyTorch path vs brute force."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from host_syncs import record_host_syncs
from hypothesis import given
from hypothesis import strategies as st

from unihpr.ops.exact_triplet import exact_triplet_info_nce, exact_triplet_num_terms


def brute_force(x1, x2, x3, tau, anchors=None):
    """All B³ triplets scored by eigvalsh of the explicit Gram matrix, masked per anchor.

    Returns (loss, lam_pos, lam_neg) like the op.
    """
    x1, x2, x3 = (F.normalize(x, dim=1) for x in (x1, x2, x3))
    B = x1.shape[0]
    i, j, k = torch.meshgrid(*(torch.arange(B),) * 3, indexing="ij")
    m = torch.stack([x1[i.reshape(-1)], x2[j.reshape(-1)], x3[k.reshape(-1)]], dim=1)
    lam = torch.linalg.eigvalsh(m @ m.transpose(1, 2))[:, -1].reshape(B, B, B)
    anchors = torch.arange(B) if anchors is None else anchors
    losses, pos, neg = [], [], []
    for a in anchors.tolist():
        member = (i == a) | (j == a) | (k == a)
        assert int(member.sum()) == exact_triplet_num_terms(B)
        losses.append(torch.logsumexp(lam[member] / tau, 0) - lam[a, a, a] / tau)
        pos.append(lam[a, a, a])
        neg.append((lam[member].sum() - lam[a, a, a]) / (int(member.sum()) - 1))
    return torch.stack(losses).mean(), torch.stack(pos), torch.stack(neg)


def sims(x1, x2, x3):
    x1, x2, x3 = (F.normalize(x, dim=1) for x in (x1, x2, x3))
    return x1 @ x2.T, x1 @ x3.T, x2 @ x3.T


def embeddings(B, D, seed, dtype=torch.float64, aligned=0.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(B, D, generator=g, dtype=dtype)
    return [
        (aligned * base + torch.randn(B, D, generator=g, dtype=dtype)).requires_grad_()
        for _ in range(3)
    ]


@pytest.mark.parametrize("B", [2, 3, 5, 8])
@pytest.mark.parametrize("aligned", [0.0, 3.0])
def test_value_and_gradients_match_brute_force(B, aligned):
    xs = embeddings(B, 6, seed=B, aligned=aligned)
    tau = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    ref, ref_pos, ref_neg = brute_force(*xs, tau)
    loss, lam_pos, lam_neg = exact_triplet_info_nce(*sims(*xs), tau)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lam_pos, ref_pos, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lam_neg, ref_neg, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(loss, [*xs, tau])
    ref_grads = torch.autograd.grad(ref, [*xs, tau])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_anchor_subset_matches_brute_force():
    xs = embeddings(6, 5, seed=3)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    anchors = torch.tensor([4, 1, 2])
    ref = brute_force(*xs, tau, anchors)[0]
    loss = exact_triplet_info_nce(*sims(*xs), tau, anchors=anchors, chunk_size=4)[0]
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(torch.autograd.grad(loss, [*xs, tau]), torch.autograd.grad(ref, [*xs, tau])):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_gradcheck_float64_tiny():
    s = [t.detach().requires_grad_() for t in sims(*embeddings(3, 4, seed=1))]
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    anchors = torch.tensor([0, 2])

    def fn(s12, s13, s23, t):
        return exact_triplet_info_nce(s12, s13, s23, t, anchors=anchors, chunk_size=2)[0]

    assert torch.autograd.gradcheck(fn, (*s, tau))


@given(
    B=st.integers(2, 7),
    chunk=st.integers(1, 60),
    seed=st.integers(0, 2**16),
)
def test_chunk_size_invariance(B, chunk, seed):
    s = [t.detach().requires_grad_() for t in sims(*embeddings(B, 4, seed=seed))]
    tau = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    loss_a = exact_triplet_info_nce(*s, tau, chunk_size=chunk)[0]
    ga = torch.autograd.grad(loss_a, [*s, tau])
    loss_b = exact_triplet_info_nce(*s, tau, chunk_size=10_000)[0]
    gb = torch.autograd.grad(loss_b, [*s, tau])
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-13, atol=1e-13)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-13)


def test_small_temperature_float32_is_finite_and_accurate():
    # τ = 0.01 puts logits in [100, 300]: a naive exp overflows float32.
    xs = embeddings(6, 8, seed=7, aligned=2.0)
    ref = brute_force(*xs, 0.01)[0]
    s32 = [t.detach().float().requires_grad_() for t in sims(*xs)]
    loss = exact_triplet_info_nce(*s32, 0.01, chunk_size=5)[0]
    grads = torch.autograd.grad(loss, s32)
    assert torch.isfinite(loss)
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-4, atol=1e-3)


def test_positive_at_equal_cosines_has_finite_gradient():
    # All three embeddings identical: a = b = c = 1 on the diagonal, where
    # autograd through arccos would give NaN.
    x = torch.randn(4, 5, dtype=torch.float64)
    xs = [x.clone().requires_grad_() for _ in range(3)]
    loss = exact_triplet_info_nce(*sims(*xs), 0.2)[0]
    grads = torch.autograd.grad(loss, xs)
    assert all(torch.isfinite(g).all() for g in grads)
    ref = brute_force(*[x.clone().requires_grad_() for _ in range(3)], 0.2)[0]
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)


def test_gradients_reach_only_required_inputs():
    s = list(sims(*embeddings(4, 3, seed=2)))
    s12 = s[0].detach().requires_grad_()
    loss = exact_triplet_info_nce(s12, s[1].detach(), s[2].detach(), 0.2)[0]
    loss.backward()
    assert s12.grad is not None and torch.isfinite(s12.grad).all()
    assert s12.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"s12": torch.zeros(3, 4)}, ValueError, "square"),
        ({"s13": torch.zeros(4, 4)}, ValueError, r"s13 has shape \(4, 4\) but s12 has \(3, 3\)"),
        ({"s23": torch.zeros(3, 3, dtype=torch.long)}, TypeError, "s23"),
        ({"anchors": torch.tensor([0, 3])}, ValueError, r"anchors must lie in \[0, 3\)"),
        ({"anchors": torch.tensor([-1])}, ValueError, r"got values \[-1\]"),
        ({"anchors": torch.tensor([0.0])}, TypeError, "anchors must be an int32 or int64"),
        ({"anchors": torch.tensor([], dtype=torch.long)}, ValueError, "at least one row"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": 10**12}, ValueError, r"chunk_size must be an int >= 1 and <= 268435456"),
        ({"chunk_size": 2.0}, TypeError, "chunk_size must be an int"),
        ({"backend": "cuda"}, ValueError, "backend"),
        ({"backend": "compile"}, ValueError, "not available for this computation"),
        ({"tau": torch.ones(2)}, ValueError, "tau must be a scalar"),
        ({"tau": -0.2}, ValueError, "tau must be finite and > 0"),
        ({"tau": float("nan")}, ValueError, "tau must be finite and > 0"),
        ({"tau": torch.tensor(0.0)}, ValueError, "tau must be finite and > 0"),
        ({"s13": torch.zeros(3, 3, dtype=torch.float64)}, ValueError, "s13 has dtype"),
        ({"s23": torch.zeros(3, 3, device="meta")}, ValueError, "s23 is a meta tensor"),
    ],
)
def test_bad_input_raises(kwargs, exc, match):
    args = {"s12": torch.zeros(3, 3), "s13": torch.zeros(3, 3), "s23": torch.zeros(3, 3)}
    args.update({k: v for k, v in kwargs.items() if k in args})
    rest = {k: v for k, v in kwargs.items() if k not in args}
    tau = rest.pop("tau", 0.2)
    with pytest.raises(exc, match=match):
        exact_triplet_info_nce(args["s12"], args["s13"], args["s23"], tau, **rest)


def test_batch_of_one_raises():
    with pytest.raises(ValueError, match="at least 2"):
        exact_triplet_info_nce(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), 0.2)


def test_int32_anchors_non_contiguous_float64():
    xs = embeddings(5, 4, seed=9)
    s = [t.detach().T.contiguous().T for t in sims(*xs)]
    anchors = torch.tensor([3, 0], dtype=torch.int32)
    loss = exact_triplet_info_nce(*s, 0.2, anchors=anchors)[0]
    ref = brute_force(*[x.detach() for x in xs], 0.2, anchors.long())[0]
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)


def test_validate_false_reads_nothing_on_the_host():
    s = [t.detach().float().requires_grad_() for t in sims(*embeddings(5, 4, seed=10))]
    tau = torch.tensor(0.2, requires_grad=True)
    with record_host_syncs() as calls:
        loss = exact_triplet_info_nce(*s, tau, anchors=torch.tensor([1, 4]), validate=False)[0]
        loss.backward()
    assert calls == []
