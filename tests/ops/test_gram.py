"""Tests of the closed-form largest Gram eigenvalue and its custom backward."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from host_syncs import record_host_syncs
from hypothesis import given

from unihpr.ops import gram_volume, lambda1_from_cosines, lambda1_from_gram
from unihpr.ops.gram import lambda1_forward, lambda1_grad


def gram(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    G = torch.eye(3, dtype=torch.float64).repeat(*a.shape, 1, 1)
    G[..., 0, 1] = G[..., 1, 0] = a.double()
    G[..., 0, 2] = G[..., 2, 0] = b.double()
    G[..., 1, 2] = G[..., 2, 1] = c.double()
    return G


# LAPACK's bound on a computed eigenvalue of a symmetric matrix is p(n) * eps * ||G||_2,
# p(n) a modest function of n; for these 3 x 3 matrices (||G||_2 <= 3) we allow p = 64.
EIGVALSH_ERROR = 64 * torch.finfo(torch.float64).eps * 3  # 4.3e-14


def reference(a, b, c) -> torch.Tensor:
    """float64 eigvalsh of the explicit Gram matrix."""
    return torch.linalg.eigvalsh(gram(a, b, c))[..., -1]


def cosines_of_unit_vectors(n: int, dim: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, 3, dim, generator=g, dtype=torch.float64), dim=-1)
    a = (x[:, 0] * x[:, 1]).sum(-1)
    b = (x[:, 0] * x[:, 2]).sum(-1)
    c = (x[:, 1] * x[:, 2]).sum(-1)
    return a.to(dtype), b.to(dtype), c.to(dtype)


# Adversarial values: equal, zero, ±1, and near-degenerate spectra.
special = st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5, 1 - 1e-7, -1 + 1e-7, 1e-8, -1e-8, 1 / 3])
cosine = st.one_of(special, st.floats(-1.0, 1.0, allow_nan=False))


@st.composite
def valid_triplet(draw):
    """(a, b, c) that are cosines of three real unit vectors (G is PSD)."""
    kind = draw(st.sampled_from(["random", "equal", "pair_equal", "perturbed_equal"]))
    if kind == "equal":
        s = draw(st.one_of(special, st.floats(-0.5, 1.0)))
        s = max(s, -0.5)  # a = b = c >= -1/2 for PSD
        return s, s, s
    if kind == "pair_equal":
        s = draw(st.floats(-1.0, 1.0))
        return s, s, 1.0  # x2 = x3: G is PSD for any |s| <= 1
    dim = draw(st.integers(2, 64))
    seed = draw(st.integers(0, 2**31 - 1))
    a, b, c = cosines_of_unit_vectors(1, dim, seed)
    if kind == "perturbed_equal":
        s = draw(st.floats(-0.4, 0.99))
        eps = draw(st.floats(-1e-6, 1e-6))
        return s + eps, s, s - eps
    return float(a), float(b), float(c)


@given(valid_triplet())
def test_matches_eigvalsh_float64(abc):
    a, b, c = (torch.tensor(v, dtype=torch.float64) for v in abc)
    if torch.linalg.eigvalsh(gram(a, b, c))[0] < -1e-9:
        return  # not a Gram matrix of real vectors (pair_equal can hit this)
    assert abs(float(lambda1_from_cosines(a, b, c) - reference(a, b, c))) <= 1e-10


@given(cosine, cosine, cosine)
def test_matches_eigvalsh_any_symmetric_float64(a, b, c):
    # The formula holds for any symmetric unit-diagonal matrix, PSD or not.
    a, b, c = (torch.tensor(v, dtype=torch.float64) for v in (a, b, c))
    assert abs(float(lambda1_from_cosines(a, b, c) - reference(a, b, c))) <= 1e-10


@given(valid_triplet())
def test_matches_eigvalsh_float32(abc):
    a, b, c = (torch.tensor(v, dtype=torch.float32) for v in abc)
    got = lambda1_from_cosines(a, b, c)
    assert got.dtype == torch.float32
    assert abs(float(got.double() - reference(a, b, c))) <= 1e-5


@pytest.mark.parametrize("dim", [2, 3, 16, 512])
def test_bulk_accuracy_random_unit_vectors(dim):
    a, b, c = cosines_of_unit_vectors(20000, dim, seed=dim)
    ref = reference(a, b, c)
    # The reference is the looser side: eigvalsh is off by up to ~3e-15 here (the closed
    # form by ~6e-16, see test_accuracy_against_high_precision_roots).
    assert (lambda1_from_cosines(a, b, c) - ref).abs().max() <= EIGVALSH_ERROR
    got32 = lambda1_from_cosines(a.float(), b.float(), c.float())
    assert (got32.double() - ref).abs().max() <= 1.3e-6


def test_range_and_extremes():
    a, b, c = cosines_of_unit_vectors(5000, 8, seed=1)
    lam = lambda1_from_cosines(a, b, c)
    assert lam.min() >= 1.0 - 1e-12 and lam.max() <= 3.0 + 1e-12
    one = torch.ones((), dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    assert float(lambda1_from_cosines(one, one, one)) == pytest.approx(3.0, abs=1e-12)
    assert float(lambda1_from_cosines(zero, zero, zero)) == pytest.approx(1.0, abs=1e-12)


def test_sign_blind():
    """Flipping one embedding negates two cosines and leaves λ1 unchanged."""
    g = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(100, 3, 7, generator=g, dtype=torch.float64), dim=-1)

    def lam(v):
        return lambda1_from_cosines(
            (v[:, 0] * v[:, 1]).sum(-1), (v[:, 0] * v[:, 2]).sum(-1), (v[:, 1] * v[:, 2]).sum(-1)
        )

    for k in range(3):
        flipped = x.clone()
        flipped[:, k] = -flipped[:, k]
        torch.testing.assert_close(lam(flipped), lam(x), rtol=0, atol=1e-12)
    # x, -x, x is perfectly aligned up to sign: λ1 = 3.
    v = x[:, 0]
    aligned = torch.stack([v, -v, v], dim=1)
    torch.testing.assert_close(lam(aligned), torch.full((100,), 3.0, dtype=torch.float64))


def test_gradcheck_random():
    g = torch.Generator().manual_seed(0)
    a, b, c = cosines_of_unit_vectors(64, 5, seed=4)
    inputs = tuple(t.clone().requires_grad_() for t in (a, b, c))
    assert torch.autograd.gradcheck(lambda1_from_cosines, inputs, eps=1e-6, atol=1e-7)
    # non-PSD symmetric inputs too
    raw = tuple(
        (torch.rand(64, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
        for _ in range(3)
    )
    assert torch.autograd.gradcheck(lambda1_from_cosines, raw, eps=1e-6, atol=1e-7)


@given(st.floats(1e-3, 1.0))
def test_gradient_at_equal_cosines_is_two_thirds(s):
    """At a = b = c = s > 0 each partial is 2/3; autograd through acos gives NaN."""
    a, b, c = (torch.tensor(s, dtype=torch.float64, requires_grad=True) for _ in range(3))
    lambda1_from_cosines(a, b, c).backward()
    for t in (a, b, c):
        assert float(t.grad) == pytest.approx(2 / 3, abs=1e-9)


def test_naive_autograd_fails_where_custom_backward_does_not():
    """Documents the trap: plain autograd of the formula is NaN at a = b = c."""
    s = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    p, q = 3 * s * s, 2 * s**3
    r = torch.sqrt(p / 3)
    lam = 1 + 2 * r * torch.cos(torch.acos((q / (2 * r**3)).clamp(-1, 1)) / 3)
    lam.backward()
    assert not math.isfinite(float(s.grad))
    t = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    lambda1_from_cosines(t, t, t).backward()
    assert float(t.grad) == pytest.approx(2.0, abs=1e-9)  # d/ds (1 + 2s)


def test_gradient_matches_eigenvector_formula():
    """∂λ1/∂(a, b, c) = 2 (v1 v2, v1 v3, v2 v3) for the unit top eigenvector v."""
    a, b, c = cosines_of_unit_vectors(500, 6, seed=5)
    inputs = [t.clone().requires_grad_() for t in (a, b, c)]
    lambda1_from_cosines(*inputs).sum().backward()
    _, vecs = torch.linalg.eigh(gram(a, b, c))
    v = vecs[..., -1]
    expected = (2 * v[:, 0] * v[:, 1], 2 * v[:, 0] * v[:, 2], 2 * v[:, 1] * v[:, 2])
    for t, e in zip(inputs, expected):
        torch.testing.assert_close(t.grad, e, rtol=0, atol=1e-9)


@pytest.mark.parametrize("s", [0.0, -0.1, -0.3, -0.5])
def test_repeated_top_eigenvalue_gives_finite_subgradient(s):
    """a = b = c <= 0: the top eigenvalue is repeated; the gradient is finite
    and equals the symmetric subgradient P/m (-1/3 per partial for s < 0)."""
    inputs = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    lambda1_from_cosines(*inputs).backward()
    expected = 0.0 if s == 0.0 else -1 / 3
    for t in inputs:
        assert math.isfinite(float(t.grad))
        assert float(t.grad) == pytest.approx(expected, abs=1e-9)


@given(valid_triplet(), st.sampled_from([torch.float32, torch.float64]))
def test_gradient_is_finite_and_bounded(abc, dtype):
    inputs = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in abc]
    lambda1_from_cosines(*inputs).backward()
    for t in inputs:
        assert math.isfinite(float(t.grad)) and abs(float(t.grad)) <= 1.0


def test_subgradient_inequality_at_repeated_eigenvalue():
    """λ1 is convex in (a, b, c): λ1(y) >= λ1(x) + g·(y - x) for the returned g."""
    x = [torch.tensor(-0.3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    lam_x = lambda1_from_cosines(*x)
    lam_x.backward()
    lam_x = lam_x.detach()
    gvec = torch.stack([t.grad for t in x])
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        y = torch.tensor(-0.3, dtype=torch.float64) + 0.2 * torch.randn(
            3, generator=g, dtype=torch.float64
        )
        lam_y = lambda1_from_cosines(y[0], y[1], y[2])
        assert float(lam_y) >= float(lam_x) + float(gvec @ (y + 0.3)) - 1e-12


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    a, b, c = cosines_of_unit_vectors(1000, 16, seed=6)
    got = lambda1_from_cosines(a.to(dtype), b.to(dtype), c.to(dtype))
    assert got.dtype == dtype
    ref = reference(a.to(dtype), b.to(dtype), c.to(dtype))  # same rounded inputs
    tol = 2e-3 if dtype == torch.float16 else 2e-2  # one output rounding
    assert (got.double() - ref).abs().max() <= tol


def test_broadcasting_and_gradient_shapes():
    a = torch.rand(4, 1, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 5, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    lam = lambda1_from_cosines(a, b, c)
    assert lam.shape == (4, 5)
    lam.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape and c.grad.shape == c.shape


def test_bad_input():
    x = torch.rand(3)
    with pytest.raises(TypeError, match=r"a must be a torch\.Tensor"):
        lambda1_from_cosines([0.1], x, x)
    with pytest.raises(TypeError, match="b must be a floating-point tensor"):
        lambda1_from_cosines(x, torch.ones(3, dtype=torch.long), x)
    with pytest.raises(ValueError, match=r"broadcast.*\(3,\), \(4,\)"):
        lambda1_from_cosines(x, torch.rand(4), x)


def test_internal_forward_accepts_broadcastable_shapes():
    """The exact mode calls the kernels with (A, R, 1)-shaped slices."""
    a = torch.rand(4, 5, 1, dtype=torch.float64)
    b = torch.rand(4, 1, 6, dtype=torch.float64)
    c = torch.rand(1, 5, 6, dtype=torch.float64)
    parts = lambda1_forward(a, b, c)
    assert parts.lam.shape == (4, 5, 6)
    torch.testing.assert_close(parts.lam, reference(*torch.broadcast_tensors(a, b, c)))
    grads = lambda1_grad(a, b, c, parts.mu1, parts.r, parts.phi)
    assert all(g.shape == (4, 5, 6) for g in grads)


def _exact_lambda1(a: float, b: float, c: float) -> Decimal:
    """λ1 of the exact float inputs to ~40 digits: Newton on the cubic in Decimal."""
    getcontext().prec = 50
    a, b, c = Decimal(a), Decimal(b), Decimal(c)
    p, q = a * a + b * b + c * c, 2 * a * b * c
    mu = Decimal(2) * (p / 3).sqrt() + Decimal(1)  # above the largest root
    for _ in range(200):
        d = 3 * mu * mu - p
        if d == 0:
            break
        step = (mu**3 - p * mu - q) / d
        mu -= step
        if abs(step) < Decimal(10) ** -45:
            break
    return 1 + mu


def _near_repeated(n: int, seed: int, dtype=torch.float64):
    """Cosines within 1e-3 .. 1e-14 of a = ±b = ±c: repeated top or bottom eigenvalue."""
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 1.5 - 0.5
    size = 10.0 ** -torch.randint(3, 15, (n, 1), generator=g).double()
    e = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * size
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    return (
        (s + e[:, 0]).to(dtype),
        (sign * (s + e[:, 1])).to(dtype),
        (sign * (s + e[:, 2])).to(dtype),
    )


@pytest.mark.parametrize("kind", ["random", "near_repeated"])
def test_accuracy_against_high_precision_roots(kind):
    """Within ~2 ulp of the exact λ1 in float64 (eigvalsh itself is off by ~3e-15)."""
    if kind == "random":
        a, b, c = cosines_of_unit_vectors(300, 3, seed=11)
    else:
        a, b, c = _near_repeated(300, seed=12)
    got = lambda1_from_cosines(a, b, c)
    for i in range(300):
        exact = _exact_lambda1(float(a[i]), float(b[i]), float(c[i]))
        assert abs(float(Decimal(float(got[i])) - exact)) <= 1e-15, (i, float(got[i]))
    # float32 against the exact λ1 of the rounded inputs
    a32, b32, c32 = a.float(), b.float(), c.float()
    got32 = lambda1_from_cosines(a32, b32, c32)
    for i in range(0, 300, 3):
        exact = _exact_lambda1(float(a32[i]), float(b32[i]), float(c32[i]))
        assert abs(float(Decimal(float(got32[i])) - exact)) <= 1.3e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bulk_accuracy_near_repeated_eigenvalues(dtype):
    a, b, c = _near_repeated(50_000, seed=13, dtype=dtype)
    ref = reference(a, b, c)
    tol = 1.3e-6 if dtype == torch.float32 else EIGVALSH_ERROR
    assert (lambda1_from_cosines(a, b, c).double() - ref).abs().max() <= tol


# Squares of float64 cosines below ~1e-154 underflow: keep clear of that.
scalable = st.floats(-1.0, 1.0).filter(lambda v: v == 0.0 or abs(v) > 1e-100)


@given(scalable, scalable, scalable, st.sampled_from([1e-30, 1e-9, 1e3]))
def test_mu1_and_gradient_scale_with_the_cosines(a, b, c, scale):
    """μ1 is homogeneous of degree 1 and its gradient of degree 0: tiny cosines
    (three near-orthogonal embeddings) keep full relative precision."""
    base = [torch.tensor(v, dtype=torch.float64) for v in (a, b, c)]
    scaled = [t * scale for t in base]
    p0, p1 = lambda1_forward(*base), lambda1_forward(*scaled)
    assert float(p1.mu1) == pytest.approx(scale * float(p0.mu1), rel=1e-12, abs=1e-300)
    g0 = lambda1_grad(*base, p0.mu1, p0.r, p0.phi)
    g1 = lambda1_grad(*scaled, p1.mu1, p1.r, p1.phi)
    for x, y in zip(g0, g1):
        assert float(y) == pytest.approx(float(x), abs=1e-9)


def test_forward_and_backward_never_read_values_on_the_host():
    """Branchless: no bool()/float()/item() of a tensor, so no GPU sync."""
    a, b, c = (t.requires_grad_() for t in cosines_of_unit_vectors(64, 4, seed=2))
    with record_host_syncs() as calls:
        lam = lambda1_from_cosines(a, b, c)
        lam.sum().backward()
        lambda1_from_gram(torch.eye(3, dtype=torch.float64).expand(5, 3, 3), validate=False)
    assert calls == []


def test_lambda1_from_gram_bad_input():
    with pytest.raises(TypeError, match="gram must be a floating-point tensor"):
        lambda1_from_gram(torch.eye(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(\.\.\., K, K\) with K >= 2, got \(3, 2\)"):
        lambda1_from_gram(torch.zeros(3, 2))
    for k in (3, 4):  # eigvalsh (K > 3) would fail on NaN with a raw LinAlgError
        with pytest.raises(ValueError, match=f"gram has {2 * k * k} NaN or infinite value"):
            lambda1_from_gram(torch.full((2, k, k), float("nan")))


@pytest.mark.parametrize(
    ("eps", "exc", "match"),
    [
        (-1.0, ValueError, r"eps must be a finite number >= 0 and <= 1, got -1\.0"),
        (float("nan"), ValueError, "eps must be a finite number"),
        (2.0, ValueError, r"eps must be .* <= 1, got 2\.0"),
        ("1e-6", TypeError, "eps must be a real number"),
    ],
)
def test_gram_volume_rejects_a_bad_eps(eps, exc, match):
    with pytest.raises(exc, match="gram_volume: " + match):
        gram_volume(torch.eye(3), eps=eps)


def test_gram_volume_checks_the_matrices_and_floors_at_eps():
    with pytest.raises(TypeError, match="gram_volume: gram must be a floating-point tensor"):
        gram_volume(torch.eye(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"gram_volume: gram must have shape \(\.\.\., K, K\)"):
        gram_volume(torch.zeros(3, 2))
    parallel = torch.ones(3, 3, dtype=torch.float64)  # det 0: the floor is sqrt(eps)
    assert float(gram_volume(parallel, eps=1e-6)) == pytest.approx(1e-3, rel=1e-12)
    assert float(gram_volume(parallel, eps=0.0)) == 0.0
    assert float(gram_volume(torch.eye(4, dtype=torch.float64))) == pytest.approx(1.0, rel=1e-12)
