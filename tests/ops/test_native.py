"""Native CPU kernels (unihpr.ops.native) against float64 references and the PyTorch paths."""

from __future__ import annotations

import shutil
import sys
import threading
import warnings
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings

from unihpr.losses import (
    ContrastiveLoss,
    LearnableTemperature,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletInfoNCE,
    UniformTripletSampler,
    with_positives,
)
from unihpr.losses.triplet import _sampled_triplet_body
from unihpr.ops import largest_gram_eigenvalue, native

needs_native = pytest.mark.skipif(
    not native.available(), reason="native CPU kernels unavailable (no working C compiler?)"
)
SAMPLERS = [UniformTripletSampler(), ShuffleTripletSampler(), SwapOneTripletSampler()]
INDEX_DTYPES = [torch.int32, torch.int64]


@pytest.fixture
def set_threads():
    """``torch.set_num_threads``, with the original count restored afterwards."""
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


@pytest.fixture
def no_native(monkeypatch):
    """Force every caller onto its PyTorch path (undone after the test)."""

    def disable():
        monkeypatch.setitem(native._state, "lib", None)
        assert not native.available()

    return disable


def spy(monkeypatch, *names):
    """Count the calls of the native entry points ``names`` (those that exist)."""
    calls = []
    for name in names:
        fn = getattr(native, name, None)
        if fn is None:
            continue

        def wrapper(*args, _fn=fn, _name=name, **kwargs):
            calls.append(_name)
            return _fn(*args, **kwargs)

        monkeypatch.setattr(native, name, wrapper)
    return calls


# ---------------------------------------------------------------- λ1


def gram64(a, b, c):
    a, b, c = (t.double() for t in torch.broadcast_tensors(a, b, c))
    G = torch.eye(3, dtype=torch.float64).repeat(*a.shape, 1, 1)
    G[..., 0, 1] = G[..., 1, 0] = a
    G[..., 0, 2] = G[..., 2, 0] = b
    G[..., 1, 2] = G[..., 2, 1] = c
    return G


def eig_reference(a, b, c):
    """float64 eigvalsh of the Gram matrix of the (already rounded) inputs."""
    return torch.linalg.eigvalsh(gram64(a, b, c))[..., -1]


def top_gap(a, b, c):
    ev = torch.linalg.eigvalsh(gram64(a, b, c))
    return ev[..., -1] - ev[..., -2]


def unit_cosines(n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, 3, dim, generator=g, dtype=torch.float64), dim=-1)
    a = (x[:, 0] * x[:, 1]).sum(-1)
    b = (x[:, 0] * x[:, 2]).sum(-1)
    c = (x[:, 1] * x[:, 2]).sum(-1)
    return a.float(), b.float(), c.float()


def f32(*values):
    return [torch.tensor(v, dtype=torch.float32) for v in values]


HALF_TINY = [-0.5 + d for d in (0.0, 3e-8, 6e-8, 1e-7, 1e-6, 1e-5)]
ADVERSARIAL = [
    (0.0, 0.0, 0.0),
    (1.0, 1.0, 1.0),
    (-1.0, -1.0, -1.0),
    (1.0, -1.0, -1.0),
    (-1.0, 1.0, -1.0),
    (1.0, 1.0, -1.0),
    (1.0, 0.0, 0.0),
    (0.0, 0.0, -1.0),
    (1 / 3, 1 / 3, 1 / 3),
    (0.5, 0.5, 0.5),
    (-0.1, -0.1, -0.1),
    (-0.3, -0.3, -0.3),
    *[(s, s, s) for s in HALF_TINY],
    (-0.5 + 1e-7, -0.5, -0.5 - 1e-7),
    (0.3 + 1e-7, 0.3, 0.3 - 1e-7),
    (0.9, 0.9, 1.0),
    (-0.9, -0.9, 1.0),
    (1e-20, -1e-20, 1e-20),
    (1e-30, 1e-30, 1e-30),
    (1 - 2**-24, 1 - 2**-24, 1 - 2**-24),
    (-1 + 2**-24, 1 - 2**-24, -1 + 2**-24),
]
cosine = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 1 / 3, 1e-8, -1e-8, 1 - 2**-24]),
    st.floats(-1.0, 1.0, width=32),
)


@needs_native
@pytest.mark.parametrize("abc", ADVERSARIAL, ids=str)
def test_lambda1_adversarial_matches_eigvalsh(abc):
    a, b, c = f32(*abc)
    got = native.lambda1(a.reshape(1), b.reshape(1), c.reshape(1))
    assert got.dtype == torch.float32 and got.shape == (1,)
    assert abs(float(got.double() - eig_reference(a, b, c))) <= 1e-6
    # the public function takes the same kernel for float32 CPU tensors
    assert torch.equal(largest_gram_eigenvalue(a, b, c), got.reshape(()))


@needs_native
@given(cosine, cosine, cosine)
def test_lambda1_any_symmetric_matches_eigvalsh(a, b, c):
    # The closed form holds for any symmetric unit-diagonal matrix, PSD or not.
    a, b, c = (t.reshape(1) for t in f32(a, b, c))
    got = native.lambda1(a, b, c)
    assert abs(float(got.double() - eig_reference(a, b, c))) <= 1e-6


@needs_native
@given(
    dim=st.integers(2, 64),
    seed=st.integers(0, 2**31 - 1),
    equal=st.floats(-0.5, 1.0, width=32),
    tiny=st.floats(-1e-6, 1e-6),
    kind=st.sampled_from(["random", "equal", "perturbed"]),
)
def test_lambda1_cosines_match_eigvalsh(dim, seed, equal, tiny, kind):
    if kind == "random":
        a, b, c = unit_cosines(1, dim, seed)
    elif kind == "equal":
        a, b, c = (torch.tensor([equal]) for _ in range(3))
    else:
        a, b, c = (torch.tensor([v]) for v in (equal + tiny, equal, equal - tiny))
    got = native.lambda1(a, b, c)
    assert abs(float(got.double() - eig_reference(a, b, c))) <= 1e-6


@needs_native
def test_lambda1_bulk_multithreaded(set_threads):
    # Above the kernel's 2^15-element threshold: several threads, vector loop.
    a, b, c = unit_cosines(50_000, 5, seed=1)
    ref = eig_reference(a, b, c)
    for threads in (1, 2):
        set_threads(threads)
        got = native.lambda1(a, b, c)
        assert (got.double() - ref).abs().max() <= 1e-6
        ga, gb, gc = native.lambda1_grad(a, b, c, torch.ones_like(a))
        assert all(bool(g.abs().max() <= 1.0) and g.isfinite().all() for g in (ga, gb, gc))


@needs_native
def test_lambda1_gradient_matches_float64_path():
    a, b, c = unit_cosines(3000, 4, seed=2)
    upstream = torch.rand(3000, generator=torch.Generator().manual_seed(0)) + 0.5
    x32 = [t.clone().requires_grad_() for t in (a, b, c)]
    lam32 = largest_gram_eigenvalue(*x32)
    (lam32 * upstream).sum().backward()
    x64 = [t.double().requires_grad_() for t in (a, b, c)]
    lam64 = largest_gram_eigenvalue(*x64)  # float64: the PyTorch path
    (lam64 * upstream.double()).sum().backward()
    torch.testing.assert_close(lam32.double(), lam64.detach(), rtol=0, atol=1e-6)
    separated = top_gap(a, b, c) > 1e-3
    assert separated.float().mean() > 0.95
    for t32, t64 in zip(x32, x64):
        assert t32.grad.dtype == torch.float32
        diff = (t32.grad.double() - t64.grad)[separated]
        assert diff.abs().max() <= 1e-5


@needs_native
@given(cosine, cosine, cosine, st.floats(-2.0, 2.0, width=32))
def test_lambda1_grad_kernel_matches_float64_path(a, b, c, upstream):
    x32 = [t.reshape(1) for t in f32(a, b, c)]
    assume(float(top_gap(*x32)) > 1e-3)
    got = native.lambda1_grad(*x32, torch.tensor([upstream]))
    x64 = [t.double().requires_grad_() for t in x32]
    largest_gram_eigenvalue(*x64).backward(torch.tensor([upstream], dtype=torch.float64))
    for g, t in zip(got, x64):
        assert abs(float(g.double() - t.grad)) <= 1e-5 * max(1.0, abs(upstream))


@needs_native
@given(st.floats(1e-3, 1.0))
def test_gradient_at_equal_positive_cosines_is_two_thirds(s):
    inputs = [torch.tensor(s, requires_grad=True) for _ in range(3)]
    largest_gram_eigenvalue(*inputs).backward()
    for t in inputs:
        assert float(t.grad) == pytest.approx(2 / 3, abs=1e-6)


@needs_native
@pytest.mark.parametrize("s", [0.0, -0.1, -0.3, -0.45, *HALF_TINY])
def test_repeated_top_eigenvalue_gives_finite_bounded_subgradient(s):
    # a = b = c = s < 0: the top eigenvalue -s is double; the symmetric
    # subgradient is -1/3 per partial (0 at G = I), as on the PyTorch path.
    inputs = [torch.tensor(s, dtype=torch.float32, requires_grad=True) for _ in range(3)]
    largest_gram_eigenvalue(*inputs).backward()
    expected = 0.0 if s == 0.0 else -1 / 3
    for t in inputs:
        g = float(t.grad)
        assert torch.isfinite(t.grad) and -1.0 <= g <= 1.0
        assert g == pytest.approx(expected, abs=1e-6)


@needs_native
@pytest.mark.parametrize("abc", ADVERSARIAL, ids=str)
def test_gradient_finite_and_bounded_on_adversarial_inputs(abc):
    inputs = [torch.tensor([v], dtype=torch.float32, requires_grad=True) for v in abc]
    largest_gram_eigenvalue(*inputs).backward(torch.tensor([1.0]))
    for t in inputs:
        assert bool(torch.isfinite(t.grad).all()) and float(t.grad.abs().max()) <= 1.0


@needs_native
def test_broadcast_and_non_contiguous_inputs():
    g = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.rand(*shape, generator=g) * 1.6 - 0.8

    cases = [
        # broadcast: (4, 1), (1, 5), ()
        (rand(4, 1), rand(1, 5), rand(())),
        # non-contiguous: a transpose, a strided slice, an expanded row
        (rand(6, 8).t(), rand(8, 12)[:, ::2], rand(1, 6).expand(8, 6)),
    ]
    for a, b, c in cases:
        x32 = [t.detach().requires_grad_() for t in (a, b, c)]
        if a.dim() == 2 and a.shape == (8, 6):
            assert not x32[0].is_contiguous() and not x32[1].is_contiguous()
        lam = largest_gram_eigenvalue(*x32)
        shape = torch.broadcast_shapes(a.shape, b.shape, c.shape)
        assert lam.shape == shape and lam.dtype == torch.float32
        w = torch.rand(shape, generator=g)
        (lam * w).sum().backward()
        x64 = [t.detach().double().requires_grad_() for t in (a, b, c)]
        lam64 = largest_gram_eigenvalue(*x64)
        (lam64 * w.double()).sum().backward()
        torch.testing.assert_close(lam.double(), lam64.detach(), rtol=0, atol=1e-6)
        for t32, t64 in zip(x32, x64):
            assert t32.grad.shape == t32.shape
            torch.testing.assert_close(t32.grad.double(), t64.grad, rtol=1e-5, atol=1e-5)


@needs_native
def test_usable_requires_contiguous_cpu_tensors():
    x = torch.zeros(4, 6)
    assert native.usable(x, x[0])
    assert not native.usable(x.t())
    assert not native.usable(x, x[:, ::2])


@needs_native
def test_empty_input():
    a = torch.zeros(0, requires_grad=True)
    lam = largest_gram_eigenvalue(a, a, a)
    assert lam.shape == (0,)
    lam.sum().backward()
    assert a.grad.shape == (0,)


# ---------------------------------------------------------------- triplet kernel


def similarities(B1, B2, B3, D, seed):
    """float32 cosine matrices (B1, B2), (B1, B3), (B2, B3) of random unit vectors."""
    g = torch.Generator().manual_seed(seed)
    x1, x2, x3 = (
        F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=1)
        for n in (B1, B2, B3)
    )
    return [s.float().contiguous() for s in (x1 @ x2.T, x1 @ x3.T, x2 @ x3.T)]


def body_reference(sims, i, j, k, tau, anchors=None, need_grad=True):
    """The PyTorch body in float64 on the same float32 similarities."""
    if anchors is not None:
        i, j, k = with_positives(anchors, TripletIndices(i, j, k))
    s64 = [s.double() for s in sims]
    tau64 = torch.tensor(tau, dtype=torch.float64)
    return _sampled_triplet_body(*s64, i, j, k, tau64, need_grad, False)


def assert_triplet_close(got, ref):
    loss, lam, *grads, grad_tau = got
    rloss, rlam, *rgrads, rgrad_tau = ref
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert lam.dtype == torch.float32 and lam.shape == rlam.shape
    torch.testing.assert_close(loss.double(), rloss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lam.double(), rlam, rtol=0, atol=1e-6)
    for g, r in zip(grads, rgrads):
        assert g.dtype == torch.float32 and g.shape == r.shape
        scale = max(1.0, float(r.abs().max()))
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-6 * scale)
    assert grad_tau.dtype == torch.float32 and grad_tau.dim() == 0
    scale = max(1.0, abs(float(rgrad_tau)))
    torch.testing.assert_close(grad_tau.double(), rgrad_tau, rtol=1e-5, atol=1e-6 * scale)


def uniform_negatives(B, N, anchors, seed, dtype):
    return UniformTripletSampler()(
        B, N, anchors=anchors, generator=torch.Generator().manual_seed(seed), dtype=dtype
    )


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("B", [2, 3, 17, 40])
def test_triplet_matches_float64_body(B, dtype):
    sims = similarities(B, B, B, 8, seed=B)
    anchors = torch.arange(B, dtype=dtype)
    neg = uniform_negatives(B, 2 * B + 1, anchors, seed=B, dtype=dtype)
    got_a = native.triplet_sampled(*sims, *neg, 0.2, True, anchors=anchors)
    full = with_positives(anchors, neg)
    assert full.image.dtype == dtype
    got_p = native.triplet_sampled(*sims, *full, 0.2, True)
    # anchors= and explicit positives are the same computation: bit-equal
    assert len(got_a) == len(got_p) == 6
    for x, y in zip(got_a, got_p):
        assert torch.equal(x, y)
    assert got_a[1].shape == (B, 2 * B + 2)
    assert_triplet_close(got_a, body_reference(sims, *neg, 0.2, anchors=anchors))


@needs_native
@settings(max_examples=40, deadline=None)
@given(
    B1=st.integers(1, 12),
    B2=st.integers(1, 12),
    B3=st.integers(1, 12),
    D=st.integers(1, 6),
    A=st.integers(1, 10),
    N=st.integers(1, 12),
    dtype=st.sampled_from(INDEX_DTYPES),
    use_anchors=st.booleans(),
    tau=st.floats(0.05, 2.0),
    seed=st.integers(0, 10_000),
)
def test_triplet_rectangular_random_indices(B1, B2, B3, D, A, N, dtype, use_anchors, tau, seed):
    """Rectangular S and arbitrary (even repeated) indices, as the body supports."""
    sims = similarities(B1, B2, B3, D, seed)
    g = torch.Generator().manual_seed(seed)
    i, j, k = (torch.randint(n, (A, N), generator=g).to(dtype) for n in (B1, B2, B3))
    anchors = torch.randint(min(B1, B2, B3), (A,), generator=g).to(dtype) if use_anchors else None
    got = native.triplet_sampled(*sims, i, j, k, tau, True, anchors=anchors)
    assert got[1].shape == (A, N + use_anchors)
    assert_triplet_close(got, body_reference(sims, i, j, k, tau, anchors=anchors))


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("A", [1, 5, 23])
def test_triplet_anchor_subset(A, dtype):
    """The distributed path: negatives of all rows drawn, this rank's rows kept."""
    B, N = 24, 30
    sims = similarities(B, B, B, 6, seed=A)
    rows = torch.randperm(B, generator=torch.Generator().manual_seed(A))[:A].to(dtype)
    neg_all = uniform_negatives(B, N, torch.arange(B, dtype=dtype), seed=A, dtype=dtype)
    neg = TripletIndices(*(n[rows.long()].contiguous() for n in neg_all))
    got = native.triplet_sampled(*sims, *neg, 0.5, True, anchors=rows)
    assert got[1].shape == (A, N + 1)
    assert_triplet_close(got, body_reference(sims, *neg, 0.5, anchors=rows))
    # rows that are no anchor's and never indexed get no gradient
    used = torch.zeros(B, B, dtype=torch.bool)
    full = with_positives(rows, neg)
    used[full.image.long(), full.pose2d.long()] = True
    assert torch.all(got[2][~used] == 0)


@needs_native
@pytest.mark.parametrize("value", [0.0, 0.3, 1.0, -0.5, -0.5 + 1e-7, -0.2])
def test_triplet_constant_similarities(value):
    """a = b = c everywhere: equal-cosine (2/3) and repeated-eigenvalue branches;
    repeated identical triplets accumulate into one cell."""
    B, N = 5, 7
    sims = [torch.full((B, B), value) for _ in range(3)]
    anchors = torch.arange(B)
    neg = TripletIndices(*(torch.zeros(B, N, dtype=torch.int64) + 1 for _ in range(3)))
    got = native.triplet_sampled(*sims, *neg, 0.1, True, anchors=anchors)
    ref = body_reference(sims, *neg, 0.1, anchors=anchors)
    assert_triplet_close(got, ref)
    for g in got[2:5]:
        assert bool(torch.isfinite(g).all())


@needs_native
def test_triplet_without_grad_returns_loss_and_lam_only():
    B = 9
    sims = similarities(B, B, B, 4, seed=0)
    anchors = torch.arange(B)
    neg = uniform_negatives(B, 11, anchors, seed=0, dtype=torch.int64)
    out = native.triplet_sampled(*sims, *neg, 0.3, False, anchors=anchors)
    full = native.triplet_sampled(*sims, *neg, 0.3, True, anchors=anchors)
    assert len(out) == 2
    assert torch.equal(out[0], full[0]) and torch.equal(out[1], full[1])
    ref = body_reference(sims, *neg, 0.3, anchors=anchors, need_grad=False)
    assert len(ref) == 2
    torch.testing.assert_close(out[0].double(), ref[0], rtol=1e-6, atol=1e-6)


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
def test_triplet_thread_count_invariance(dtype, set_threads):
    B, N = 40, 60
    sims = similarities(B, B, B, 8, seed=7)
    anchors = torch.arange(B, dtype=dtype)
    neg = uniform_negatives(B, N, anchors, seed=7, dtype=dtype)
    results = {}
    for threads in (1, 2, 3):
        set_threads(threads)
        results[threads] = native.triplet_sampled(*sims, *neg, 0.1, True, anchors=anchors)
        # deterministic for a given thread count
        again = native.triplet_sampled(*sims, *neg, 0.1, True, anchors=anchors)
        assert all(torch.equal(x, y) for x, y in zip(results[threads], again))
    for threads in (2, 3):
        for x, y in zip(results[1], results[threads]):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    assert_triplet_close(results[2], body_reference(sims, *neg, 0.1, anchors=anchors))


@needs_native
def test_triplet_concurrent_calls_match_serial(set_threads):
    """Calls from several Python threads (the kernel's cached workspace is
    shared; a call that finds it busy allocates its own)."""
    set_threads(2)
    jobs = []
    for n in range(6):
        B = 10 + 3 * n
        sims = similarities(B, B, B, 5, seed=n)
        anchors = torch.arange(B)
        neg = uniform_negatives(B, 2 * B, anchors, seed=n, dtype=torch.int64)
        jobs.append((sims, neg, anchors))
    serial = [native.triplet_sampled(*s, *neg, 0.2, True, anchors=a) for s, neg, a in jobs]
    results: dict[int, list] = {}

    def work(n):
        s, neg, a = jobs[n]
        results[n] = [native.triplet_sampled(*s, *neg, 0.2, True, anchors=a) for _ in range(5)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, expected in enumerate(serial):
        for out in results[n]:
            assert all(torch.equal(x, y) for x, y in zip(out, expected))


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("B", [2, 3, 17, 40])
@pytest.mark.parametrize("subset", [False, True])
def test_triplet_uniform_draws_equal_decoded_indices(B, dtype, subset):
    """The kernel decoding UniformTripletSampler draws itself is the same
    computation as on the decoded indices."""
    sims = similarities(B, B, B, 6, seed=B)
    g = torch.Generator().manual_seed(B)
    anchors = torch.randperm(B, generator=g)[: max(1, B // 2)] if subset else torch.arange(B)
    anchors = anchors.to(dtype)
    u = draws(B, len(anchors), 2 * B + 3, dtype, seed=B)
    neg = UniformTripletSampler.decode(u, anchors, B)
    got_u = native.triplet_sampled_uniform(*sims, u, anchors, B, 0.2, True)
    got_i = native.triplet_sampled(*sims, *neg, 0.2, True, anchors=anchors)
    assert len(got_u) == 6 and got_u[1].shape == (len(anchors), 2 * B + 4)
    for x, y in zip(got_u, got_i):
        assert torch.equal(x, y)
    assert_triplet_close(got_u, body_reference(sims, *neg, 0.2, anchors=anchors))
    no_grad = native.triplet_sampled_uniform(*sims, u, anchors, B, 0.2, False)
    assert len(no_grad) == 2 and torch.equal(no_grad[0], got_u[0])


# ---------------------------------------------------------------- end to end


def embeddings32(B, D, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g).requires_grad_() for _ in range(3)]


def loss_and_grads(make_loss, B, D, seed):
    loss_fn = make_loss()
    x = embeddings32(B, D, seed)
    loss = loss_fn(*x, generator=torch.Generator().manual_seed(seed))
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [*x, *params])
    return loss.detach(), grads


TRIPLET_ENTRIES = ("triplet_sampled", "triplet_sampled_uniform")


@needs_native
@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@pytest.mark.parametrize("B,N", [(2, None), (12, None), (16, 40)])
def test_triplet_info_nce_native_equals_pytorch(sampler, B, N, monkeypatch, no_native):
    def make():
        tau = LearnableTemperature(init=0.2, min=0.01, max=10.0)
        return TripletInfoNCE(tau, sampler=sampler, num_negatives=N)

    calls = spy(monkeypatch, *TRIPLET_ENTRIES)
    loss_n, grads_n = loss_and_grads(make, B, 8, seed=B)
    assert calls, "the native triplet kernel was not used"
    no_native()
    calls.clear()
    loss_t, grads_t = loss_and_grads(make, B, 8, seed=B)
    assert not calls
    assert len(grads_n) == 4  # three embeddings and log τ
    torch.testing.assert_close(loss_n, loss_t, rtol=1e-5, atol=1e-5)
    for g_n, g_t in zip(grads_n, grads_t):
        torch.testing.assert_close(g_n, g_t, rtol=1e-4, atol=1e-5)


@needs_native
@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_contrastive_loss_native_equals_pytorch(sampler, monkeypatch, no_native):
    def make():
        return ContrastiveLoss(alpha=1.0, triplet_temperature=0.2, sampler=sampler)

    calls = spy(monkeypatch, *TRIPLET_ENTRIES)
    loss_n, grads_n = loss_and_grads(make, 14, 6, seed=3)
    assert calls
    no_native()
    loss_t, grads_t = loss_and_grads(make, 14, 6, seed=3)
    torch.testing.assert_close(loss_n, loss_t, rtol=1e-5, atol=1e-5)
    for g_n, g_t in zip(grads_n, grads_t):
        torch.testing.assert_close(g_n, g_t, rtol=1e-4, atol=1e-5)


@needs_native
@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_from_similarities_anchor_subset_native_equals_pytorch(sampler, monkeypatch, no_native):
    """A rank's share of the global batch, as the distributed path calls it."""
    B = 13
    sims = [s.requires_grad_() for s in similarities(B, B, B, 5, seed=4)]
    rows = torch.tensor([1, 4, 5, 12])
    loss_fn = TripletInfoNCE(0.3, sampler=sampler, num_negatives=20)

    def run():
        gen = torch.Generator().manual_seed(9)
        loss, lam = loss_fn.from_similarities(*sims, generator=gen, anchors=rows)
        return loss.detach(), lam, torch.autograd.grad(loss, sims)

    calls = spy(monkeypatch, *TRIPLET_ENTRIES)
    loss_n, lam_n, grads_n = run()
    assert calls
    no_native()
    loss_t, lam_t, grads_t = run()
    assert lam_n.shape == lam_t.shape == (4, 21)
    torch.testing.assert_close(loss_n, loss_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lam_n, lam_t, rtol=0, atol=1e-5)
    for g_n, g_t in zip(grads_n, grads_t):
        torch.testing.assert_close(g_n, g_t, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- sampler decoding


def draws(B, A, N, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(3 * B * B - 3 * B, (A, N), generator=g, dtype=torch.int64)
    # the edges of the range and of the three planes
    edges = torch.tensor(
        [0, 1, B * B - 2, B * B - 1, B * B, 2 * B * B - B - 1, 2 * B * B - B, 3 * B * B - 3 * B - 1]
    ).clamp(0, 3 * B * B - 3 * B - 1)
    u[:, : min(N, len(edges))] = edges[:N]
    return u.to(dtype)


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("B", [2, 3, 17, 100])
@pytest.mark.parametrize("subset", [False, True])
def test_uniform_decode_matches_pytorch(B, dtype, subset):
    g = torch.Generator().manual_seed(B)
    anchors = torch.randperm(B, generator=g)[: max(1, B // 3)] if subset else torch.arange(B)
    anchors = anchors.to(dtype)
    u = draws(B, len(anchors), 40, dtype, seed=B)
    got = native.uniform_decode(u, anchors, B)
    ref = UniformTripletSampler.decode(u, anchors, B)
    for x, y in zip(got, ref):
        assert x.dtype == dtype and torch.equal(x, y)
    a = anchors[:, None]
    i, j, k = got
    assert not ((i == a) & (j == a) & (k == a)).any()
    assert ((i == a) | (j == a) | (k == a)).all()


@needs_native
@pytest.mark.parametrize(
    "B,dtype", [(26_000, torch.int32), (40_000, torch.int64), (3_000_000, torch.int64)]
)
def test_uniform_decode_large_batch(B, dtype, set_threads):
    # large B: near int32 overflow, and the double-estimated divisions in int64
    set_threads(2)
    anchors = torch.tensor([0, 1, B // 2, B - 2, B - 1], dtype=dtype).repeat(10)
    u = draws(B, len(anchors), 700, dtype, seed=1)  # 35 000 draws: multithreaded
    got = native.uniform_decode(u, anchors, B)
    ref = UniformTripletSampler.decode(u, anchors, B)
    assert all(torch.equal(x, y) for x, y in zip(got, ref))


@needs_native
@pytest.mark.parametrize("dtype", INDEX_DTYPES)
@pytest.mark.parametrize("B", [2, 3, 17, 100])
def test_uniform_sampler_same_indices_without_native(B, dtype, monkeypatch, no_native):
    anchors = torch.arange(0, B, 2)
    calls = spy(monkeypatch, "uniform_decode")

    def sample():
        gen = torch.Generator().manual_seed(B)
        return UniformTripletSampler()(B, 3 * B, anchors=anchors, generator=gen, dtype=dtype)

    with_native = sample()
    assert calls
    no_native()
    calls.clear()
    without = sample()
    assert not calls
    for x, y in zip(with_native, without):
        assert x.dtype == dtype and torch.equal(x, y)


# ---------------------------------------------------------------- build machinery


def denormals_intact():
    tiny32 = torch.tensor(1e-40, dtype=torch.float32)
    product = torch.full((64,), 1e-30) * torch.full((64,), 1e-10)  # vectorised float32
    smallest = float("5e-324")
    return (
        bool(tiny32 != 0)
        and bool((product != 0).all())
        and smallest > 0
        and sys.float_info.min / 2 > 0
    )


@needs_native
def test_loading_library_keeps_denormals():
    assert native.library() is not None
    assert denormals_intact()
    # linked with -ffast-math the library would contain crtfastmath's constructor
    assert b"set_fast_math" not in Path(native.library()._name).read_bytes()


@needs_native
def test_build_into_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHPR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("UNIHPR_NATIVE", raising=False)
    monkeypatch.setattr(native, "_state", {})
    lib = native.library()
    assert lib is not None and native.build_error() is None
    built = list(tmp_path.rglob("*.so"))
    assert Path(lib._name) in built
    assert all(p.suffix == ".so" for p in tmp_path.rglob("*") if p.is_file())  # no leftovers
    assert native.library() is lib
    assert denormals_intact()  # checked right after a fresh load in this thread
    a, b, c = unit_cosines(100, 3, seed=0)
    assert (native.lambda1(a, b, c).double() - eig_reference(a, b, c)).abs().max() <= 1e-6
    # a new process (fresh state) reuses the cached library without compiling
    mtime = Path(lib._name).stat().st_mtime_ns

    def no_compile(*args):
        raise AssertionError("recompiled although the library is cached")

    monkeypatch.setattr(native, "_compile", no_compile)
    monkeypatch.setattr(native, "_state", {})
    again = native.library()
    assert again is not None and Path(again._name) == Path(lib._name)
    assert Path(lib._name).stat().st_mtime_ns == mtime


def test_missing_compiler_warns_and_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHPR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "unihpr-no-such-compiler")
    monkeypatch.delenv("UNIHPR_NATIVE", raising=False)
    monkeypatch.setattr(native, "_state", {})
    with pytest.warns(RuntimeWarning, match="unihpr-no-such-compiler"):
        assert native.library() is None
    err = native.build_error()
    assert isinstance(err, str) and "unihpr-no-such-compiler" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not retried
        assert native.library() is None and not native.available()
        assert not native.usable(torch.zeros(3))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    # callers keep their PyTorch paths
    a, b, c = unit_cosines(50, 4, seed=1)
    got = largest_gram_eigenvalue(a, b, c)
    assert (got.double() - eig_reference(a, b, c)).abs().max() <= 1e-5
    neg = uniform_negatives(6, 5, torch.arange(6), seed=0, dtype=torch.int32)
    assert neg.image.shape == (6, 5)


@pytest.mark.skipif(sys.platform != "linux", reason="uses /bin/false as a failing compiler")
def test_failing_compiler_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHPR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # found on PATH, but every command fails
    monkeypatch.delenv("UNIHPR_NATIVE", raising=False)
    monkeypatch.setattr(native, "_state", {})
    with pytest.warns(RuntimeWarning, match="failed"):
        assert native.library() is None
    assert "failed" in native.build_error()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@needs_native
def test_disabled_context_manager():
    with native.disabled():
        assert native.library() is None and not native.available()
        with native.disabled():
            pass
        assert not native.available()  # the inner block restores "disabled"
        a = torch.full((3,), 0.5, requires_grad=True)
        largest_gram_eigenvalue(a, a, a).sum().backward()
        torch.testing.assert_close(a.grad, torch.full((3,), 2.0))
    assert native.available()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("UNIHPR_NATIVE", "0")
    assert native.library() is None
    assert not native.available()
    assert not native.usable(torch.zeros(3))
    calls = spy(monkeypatch, "lambda1", "lambda1_grad", "uniform_decode", *TRIPLET_ENTRIES)
    x = [t.requires_grad_() for t in unit_cosines(20, 3, seed=2)]
    largest_gram_eigenvalue(*x).sum().backward()
    TripletInfoNCE(0.2)(*embeddings32(6, 4, 0)).backward()
    assert not calls


@pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("cc") is None, reason="needs Linux with a C compiler"
)
def test_kernels_build_where_a_compiler_exists():
    # CI runs on such a machine: without this, a broken build would only show
    # up as skipped native tests and a silently slower loss.
    assert native.available(), native.build_error()


def _sims(B1=4, B2=5, B3=6):
    return (torch.rand(B1, B2), torch.rand(B1, B3), torch.rand(B2, B3))


def _idx(A=3, N=2, dtype=torch.int32):
    return tuple(torch.zeros(A, N, dtype=dtype) for _ in range(3))


@needs_native
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: native.lambda1(torch.rand(3), torch.rand(4), torch.rand(3)), "shapes must match"),
        (lambda: native.lambda1(torch.rand(3).double(), *torch.rand(2, 3)), "float32"),
        (lambda: native.lambda1(torch.rand(3, 2).T, *torch.rand(2, 2, 3)), "contiguous"),
        (
            lambda: native.lambda1_grad(*torch.rand(3, 4), torch.rand(5)),
            "shapes must match",
        ),
        (lambda: native.triplet_sampled(*_sims()[:2], torch.rand(4, 6), *_idx(), 0.2, True), "s23"),
        (lambda: native.triplet_sampled(*_sims(), *_idx(dtype=torch.int16), 0.2, True), "dtype"),
        (
            lambda: native.triplet_sampled(
                *_sims(), torch.full((3, 2), 4, dtype=torch.int32), *_idx()[1:], 0.2, True
            ),
            r"i must lie in \[0, 4\)",
        ),
        (
            lambda: native.triplet_sampled(
                *_sims(), *_idx()[:2], torch.full((3, 2), -1, dtype=torch.int32), 0.2, True
            ),
            "k must lie",
        ),
        (
            lambda: native.triplet_sampled(
                *_sims(), *_idx(), 0.2, True, anchors=torch.tensor([0, 1, 9], dtype=torch.int32)
            ),
            "anchors must lie",
        ),
        (
            lambda: native.triplet_sampled(
                *_sims(), *_idx(), 0.2, True, anchors=torch.zeros(2, dtype=torch.int32)
            ),
            "anchors",
        ),
        (lambda: native.triplet_sampled(*_sims(), *_idx(A=0), 0.2, True), "at least one anchor"),
        (
            lambda: native.triplet_sampled_uniform(
                *_sims(4, 4, 4),
                torch.full((4, 3), 36, dtype=torch.int32),
                torch.arange(4, dtype=torch.int32),
                4,
                0.2,
                True,
            ),
            r"draws must lie in \[0, 36\)",
        ),
        (
            lambda: native.triplet_sampled_uniform(
                *_sims(), *_idx()[:1], torch.arange(3, dtype=torch.int32), 4, 0.2, True
            ),
            "uniform draws need",
        ),
        (
            lambda: native.uniform_decode(
                torch.full((2, 3), 36, dtype=torch.int32), torch.arange(2, dtype=torch.int32), 4
            ),
            "u must lie",
        ),
        (
            lambda: native.uniform_decode(
                torch.zeros(2, 3, dtype=torch.int32), torch.arange(2, dtype=torch.int64), 4
            ),
            "anchors must be",
        ),
    ],
)
def test_bad_input_raises_before_the_kernel(call, message):
    with pytest.raises(ValueError, match=message):
        call()
