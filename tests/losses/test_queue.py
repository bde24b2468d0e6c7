"""EmbeddingQueue: past embeddings as extra negatives of the pair and triplet losses."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from reference_losses import triplet_loss_reference, with_positives

from unihpr.losses import (
    ContrastiveLoss,
    EmbeddingQueue,
    PairInfoNCE,
    TripletInfoNCE,
    UniformTripletSampler,
)
from unihpr.losses._preamble import Prepared


def embeddings(B, D, seed, n):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


def queued_pair_reference(x, y, qx, qy, tau, labels=None, qlabels=None):
    """½ (CE over [y; qy] of each x_i + CE over [x; qx] of each y_i), term by term."""
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    qx, qy = F.normalize(qx.double(), dim=1), F.normalize(qy.double(), dim=1)
    cols_y, cols_x = torch.cat([y, qy]), torch.cat([x, qx])
    all_labels = None if labels is None else torch.cat([labels, qlabels])
    total = x.new_zeros(())
    B = x.shape[0]
    for i in range(B):
        for anchor, cols in ((x[i], cols_y), (y[i], cols_x)):
            logp = torch.log_softmax(torch.stack([anchor @ c for c in cols]) / tau, 0)
            if labels is None:
                total = total - logp[i]
            else:
                pos = [p for p in range(len(cols)) if int(all_labels[p]) == int(labels[i])]
                total = total - sum(logp[p] for p in pos) / len(pos)
    return total / (2 * B)


@given(
    B=st.integers(2, 6),
    steps=st.integers(1, 4),
    size=st.integers(1, 12),
    seed=st.integers(0, 9999),
    with_labels=st.booleans(),
)
def test_pair_queue_matches_reference_over_steps(B, steps, size, seed, with_labels):
    queue = EmbeddingQueue(size)
    loss_fn = PairInfoNCE(0.2, queue=queue)
    history_x, history_y, history_l = [], [], []
    for step in range(steps):
        x, y = embeddings(B, 4, seed + step, 2)
        labels = torch.randint(3, (B,), generator=torch.Generator().manual_seed(step))
        labels = labels if with_labels else None
        got = loss_fn(x, y, labels=labels)
        # the queue held the last `size` rows pushed before this step
        qx = torch.cat(history_x)[-size:] if history_x else x.new_zeros(0, 4)
        qy = torch.cat(history_y)[-size:] if history_y else x.new_zeros(0, 4)
        ql = torch.cat(history_l)[-size:] if history_l else torch.zeros(0, dtype=torch.long)
        ref = queued_pair_reference(x, y, qx, qy, 0.2, labels, ql if with_labels else None)
        # the queue's row order is its storage order: compare the sets via the loss
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
        for g, r in zip(torch.autograd.grad(got, (x, y)), torch.autograd.grad(ref, (x, y))):
            torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)
        history_x.append(x.detach())
        history_y.append(y.detach())
        if with_labels:
            history_l.append(labels)
    assert len(queue) == min(size, steps * B)


def test_queue_gradients_only_through_the_batch_and_gradcheck():
    queue = EmbeddingQueue(10)
    loss_fn = PairInfoNCE(0.2, queue=queue)
    loss_fn(*embeddings(5, 3, 0, 2))  # fills the queue
    assert not queue.embeddings.requires_grad
    loss_fn.eval()  # no pushes while gradcheck evaluates
    x, y = embeddings(5, 3, 1, 2)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b), (x, y))
    assert len(queue) == 5


def test_eval_mode_does_not_push_and_reset_empties():
    queue = EmbeddingQueue(8)
    loss_fn = PairInfoNCE(0.1, queue=queue).eval()
    loss_fn(*embeddings(4, 3, 0, 2))
    assert len(queue) == 0
    loss_fn.train()(*embeddings(4, 3, 0, 2))
    assert len(queue) == 4
    queue.reset()
    assert len(queue) == 0
    x, y = embeddings(4, 3, 1, 2)
    torch.testing.assert_close(loss_fn(x, y), PairInfoNCE(0.1)(x, y))


def test_ring_buffer_keeps_the_newest_rows():
    queue = EmbeddingQueue(5)
    rows = [
        torch.arange(3 * k, 3 * k + 3, dtype=torch.float64)[:, None].expand(3, 2) for k in range(3)
    ]
    for r in rows:
        queue.push(Prepared([r], None))
    kept = sorted(queue.embeddings[0, :, 0].tolist())
    assert kept == [4.0, 5.0, 6.0, 7.0, 8.0]


def brute_force_exact_with_queue(xs, qs, tau):
    """Anchors: the batch rows; candidates: every triplet over batch + queue containing one of them."""
    ext = [F.normalize(torch.cat([x, q.double()]), dim=1) for x, q in zip(xs, qs)]
    B, n = xs[0].shape[0], ext[0].shape[0]
    terms = []
    for a in range(B):
        logits = []
        pos = None
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    if a not in (i, j, k):
                        continue
                    m = torch.stack([ext[0][i], ext[1][j], ext[2][k]])
                    logits.append(torch.linalg.eigvalsh(m @ m.T)[-1] / tau)
                    if i == j == k == a:
                        pos = len(logits) - 1
        logits = torch.stack(logits)
        terms.append(torch.logsumexp(logits, 0) - logits[pos])
    return torch.stack(terms).mean()


def test_exact_triplet_with_queue_matches_brute_force():
    queue = EmbeddingQueue(3)
    fn = TripletInfoNCE(0.2, negatives="all", chunk_size=4, queue=queue)
    first = embeddings(3, 4, 0, 3)
    fn(*first)
    xs = embeddings(3, 4, 1, 3)
    got = fn(*xs)
    ref = brute_force_exact_with_queue(xs, [f.detach() for f in first], 0.2)
    torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got, xs), torch.autograd.grad(ref, xs)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_sampled_triplet_with_queue_draws_over_batch_and_queue():
    queue = EmbeddingQueue(6)
    fn = TripletInfoNCE(0.2, num_negatives=40, queue=queue)
    fn(*embeddings(4, 5, 0, 3), generator=torch.Generator().manual_seed(0))
    xs = embeddings(4, 5, 1, 3)
    got = fn(*xs, generator=torch.Generator().manual_seed(1))
    # The same loss from the extended sets, the sampler drawing over B + Q = 8 rows
    # (the queue held the first batch during this step).
    negatives = UniformTripletSampler()(8, 40, generator=torch.Generator().manual_seed(1))
    negatives = type(negatives)(*(n[:4] for n in negatives))
    first = [F.normalize(x.detach(), dim=1) for x in embeddings(4, 5, 0, 3)]
    ext = [torch.cat([x, q]) for x, q in zip(xs, first)]
    ref = triplet_loss_reference(*ext, with_positives(torch.arange(4), negatives), 0.2)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    assert bool((torch.stack(list(negatives)) >= 4).any())  # queue rows were drawn


def test_contrastive_with_queue_is_the_sum_of_queued_terms():
    fn = ContrastiveLoss(
        PairInfoNCE(0.1, queue=EmbeddingQueue(16)), TripletInfoNCE(0.2, negatives="all"), 0.5
    )
    pairs = {k: PairInfoNCE(0.1, queue=EmbeddingQueue(16)) for k in ((0, 1), (0, 2), (1, 2))}
    trip = TripletInfoNCE(0.2, negatives="all", queue=EmbeddingQueue(16))
    for step in range(3):
        xs = embeddings(4, 6, step, 3)
        got = fn(*xs)
        expected = sum(p(xs[m], xs[n]) for (m, n), p in pairs.items()) + 0.5 * trip(*xs)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    _, info = fn(*embeddings(4, 6, 9, 3), return_diagnostics=True)
    assert 0 <= info["acc/image-pose2d"] <= 1


def test_queue_errors_name_the_problem():
    with pytest.raises(TypeError, match="queue must be an EmbeddingQueue"):
        PairInfoNCE(queue=[])
    with pytest.raises(ValueError, match="size must be"):
        EmbeddingQueue(0)
    queue = EmbeddingQueue(8)
    fn = PairInfoNCE(queue=queue)
    fn(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="dimension 3, got 2 of dimension 5"):
        fn(torch.randn(4, 5), torch.randn(4, 5))
    with pytest.raises(ValueError, match="holds embeddings without labels"):
        fn(torch.randn(4, 3), torch.randn(4, 3), labels=torch.arange(4))
