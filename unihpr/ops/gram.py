"""Closed-form spectrum of the 3×3 Gram matrix of three unit vectors.

For unit vectors x1, x2, x3 the Gram matrix is

    G = [[1, a, b], [a, 1, c], [b, c, 1]],   a = x1·x2, b = x1·x3, c = x2·x3,

so its eigenvalues are 1 + μ for the roots μ of the depressed cubic
μ³ − p μ − q = 0 with p = a² + b² + c² and q = 2abc (the characteristic
polynomial of the zero-diagonal matrix H = G − I). Because H is symmetric the
three roots are real:

    μ1 = 2 r cos((π − φ) / 3),  μ2 = 2 r cos((π + φ) / 3),  μ3 = −2 r cos(φ / 3),

with r = sqrt(p / 3) and φ ∈ [0, π] the angle

    φ = atan2( sqrt(Δ/4), −3√3 abc ),   Δ/4 = p³ − 27 a²b²c² ≥ 0,

(Δ the discriminant of the cubic). This is the textbook trigonometric
formula θ = arccos(q / 2r³) written with φ = π − θ, and evaluated so that it
stays accurate where the textbook one is not: near a repeated top eigenvalue
(φ → 0), arccos amplifies the rounding of its argument to ~sqrt(eps), while
here Δ/4 is computed as a sum of non-negative terms,

    Δ/4 = ½ p Σ (x − y)² + 3 Σ x (y − z)²,   x, y, z = a², b², c²,

that vanish accurately with φ, and atan2 returns a small φ to full relative
precision. The squares are scaled by 1/p first, so tiny cosines (three
near-orthogonal vectors) keep full relative precision down to where p itself
underflows (|cos| ~ 1e-19 in float32, 1e-154 in float64).

Differentiating the formula by autograd fails at a = b = c, where Δ = 0 and
the square root in φ has an infinite derivative (NaN gradients), exactly
where the positives of a trained model live.
The derivative itself is well defined there: by implicit differentiation of
the cubic (equivalently, ∂λ/∂G = v vᵀ for the unit top eigenvector v),

    ∂λ1/∂a = 2 (bc + aμ1) / (3μ1² − p),

and cyclically for b and c. The denominator equals (μ1 − μ2)(μ1 − μ3) =
12 r² sin(φ/3) sin((2π − φ)/3), so it only vanishes where the top eigenvalue
is repeated, where λ1 is not differentiable. There the backward returns the
symmetric subgradient ∂λ1/∂G = P / m (P the projector onto the top
eigenspace, m its dimension), a convex combination of the v vᵀ and so a valid
(Clarke) subgradient of the convex function λ1(G).

Every function here is branchless (``torch.where``, no data-dependent Python
control flow): it never reads a tensor value on the host, so it does not
synchronise a GPU and traces under ``torch.compile``. This module is the one
implementation of λ1 and its gradient in PyTorch; the Triton kernels
([`unihpr.ops.triton_triplet`][]) carry their own copy of the same arithmetic
and are tested against it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from unihpr._validate import check_finite, check_real, check_tensor

__all__ = [
    "gram_determinant",
    "gram_volume",
    "lambda1_from_cosines",
    "lambda1_from_gram",
]

_SQRT27 = 3.0 * math.sqrt(3.0)
_TWO_PI_3 = 2.0 * math.pi / 3.0
_PI_3 = math.pi / 3.0


class Lambda1(NamedTuple):
    """λ1 and the intermediates its gradient needs, all of one shape ``(...)``.

    Attributes:
        lam: λ1 = 1 + μ1.
        mu1: μ1, the largest root of the cubic.
        r: sqrt(p / 3), p = a² + b² + c².
        phi: φ ∈ [0, π]; 0 where the top eigenvalue is repeated.
    """

    lam: Tensor
    mu1: Tensor
    r: Tensor
    phi: Tensor


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half precision has too few bits for the cubic's cancellations.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def lambda1_forward(a: Tensor, b: Tensor, c: Tensor) -> Lambda1:
    """λ1 of ``[[1, a, b], [a, 1, c], [b, c, 1]]`` and its intermediates.

    The internal kernel behind [`lambda1_from_cosines`][] and the losses: no
    input checks, no autograd (call it on tensors that do not need a graph, or
    inside a custom ``autograd.Function``).

    Args:
        a, b, c: Off-diagonal entries of one floating dtype, broadcastable to a
            common shape ``(...)``.

    Returns:
        A [`Lambda1`][unihpr.ops.gram.Lambda1] of ``(...)`` tensors.
    """
    # In-place chains: on the CPU every fresh (B, B) allocation costs about as
    # much as the arithmetic on it. They need the full shape up front
    # (broadcast views cost nothing).
    a, b, c = torch.broadcast_tensors(a, b, c)
    x, y, z = a * a, b * b, c * c
    s = x + y
    s += z  # p
    inv = s.clamp_min(torch.finfo(s.dtype).tiny).reciprocal_()
    x *= inv
    y *= inv
    z *= inv  # x + y + z = 1 (or 0 where p underflows)
    dxy, dyz, dzx = x - y, y - z, z - x
    dxy.square_()
    dyz.square_()
    dzx.square_()
    # 2Δ/(4p³) = 6 Σ_cyc z (x − y)² + Σ (x − y)² for the scaled squares.
    two_disc = torch.mul(z, dxy, out=z).addcmul_(x, dyz).addcmul_(y, dzx).mul_(6.0)
    sin_part = two_disc.add_(dxy).add_(dyz).add_(dzx).sqrt_()
    # −3√3 abc / p^{3/2}, times √2 to match the factor 2 under the root above.
    cos_part = torch.mul(a, b, out=x).mul_(c)
    inv.sqrt_()
    cos_part.mul_(inv).mul_(inv).mul_(inv).mul_(-_SQRT27 * math.sqrt(2.0))
    phi = torch.atan2(sin_part, cos_part, out=y)
    r = s.div_(3.0).sqrt_()
    mu1 = phi.mul(-1.0 / 3.0).add_(_PI_3).cos_().mul_(r).mul_(2.0)
    return Lambda1(1.0 + mu1, mu1, r, phi)


def lambda1_grad(
    a: Tensor, b: Tensor, c: Tensor, mu1: Tensor, r: Tensor, phi: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Partial derivatives (∂λ1/∂a, ∂λ1/∂b, ∂λ1/∂c), each of shape ``(...)``.

    Exact where the top eigenvalue is simple; the symmetric subgradient where
    it is repeated (see the module docstring). Each partial equals 2 v_i v_j
    for a unit vector v, so it lies in [-1, 1]; the result is clamped there to
    absorb rounding close to a repeated eigenvalue. Branchless: both cases are
    evaluated and selected elementwise.

    Args:
        a, b, c: The inputs of [`lambda1_forward`][].
        mu1, r, phi: The matching fields of its output.

    Returns:
        Three ``(...)`` tensors.
    """
    a, b, c = torch.broadcast_tensors(a, b, c)
    eps, tiny = torch.finfo(a.dtype).eps, torch.finfo(a.dtype).tiny
    third = phi / 3.0
    # (μ1 − μ2)(μ1 − μ3) / p = 4 sin(φ/3) sin((2π − φ)/3): no cancellation.
    gap = torch.sub(_TWO_PI_3, third).sin_().mul_(third.sin()).mul_(4.0)
    # The simple-eigenvalue formula's relative error is about eps / gap (its
    # numerator cancels as the top eigenvalue becomes repeated).
    simple = gap > 64.0 * eps
    p = r.square().mul_(3.0)
    p_safe = p.clamp_min(tiny)  # where p underflows, bc + aμ ≈ 0 as well
    # Repeated top eigenvalue (μ1 = μ2): the subgradient P_top / 2 = (I − P3) / 2
    # with P3 the projector of the then simple smallest eigenvalue
    # μ3 = −2r cos(φ/3), whose off-diagonal entries follow from the cubic as
    # for μ1; zero where G = I (all three eigenvalues equal). Both cases are
    # (bc + aμ) · coef with their own root μ and coefficient.
    mu3 = third.cos_().mul_(r).mul_(-2.0)
    den3 = mu3.square().mul_(3.0).sub_(p)
    triple = den3 <= p_safe * (64.0 * eps)
    coef3 = torch.where(triple, 1.0, den3).reciprocal_().neg_().masked_fill_(triple, 0.0)
    coef1 = gap.mul_(p_safe).reciprocal_().mul_(2.0)
    coef = torch.where(simple, coef1, coef3)
    mu = torch.where(simple, mu1, mu3)
    ga = torch.addcmul(b * c, a, mu).mul_(coef).clamp_(-1.0, 1.0)
    gb = torch.addcmul(a * c, b, mu).mul_(coef).clamp_(-1.0, 1.0)
    gc = torch.addcmul(a * b, c, mu).mul_(coef).clamp_(-1.0, 1.0)
    return ga, gb, gc


class _Lambda1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, c: Tensor) -> Tensor:  # type: ignore[override]
        parts = lambda1_forward(a, b, c)
        ctx.save_for_backward(a, b, c, parts.mu1, parts.r, parts.phi)
        return parts.lam

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        a, b, c, mu1, r, phi = ctx.saved_tensors
        ga, gb, gc = lambda1_grad(a, b, c, mu1, r, phi)
        return grad * ga, grad * gb, grad * gc


def lambda1_from_cosines(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """λ1 of the Gram matrix ``[[1, a, b], [a, 1, c], [b, c, 1]]``, elementwise.

    For three L2-normalised embeddings x1, x2, x3 with a = x1·x2, b = x1·x3 and
    c = x2·x3 this is σ1², the squared largest singular value of the 3×D matrix
    stacking them: the score of the paper's Triplet-InfoNCE. It lies in [1, 3]
    for such cosines, equals 3 when the three vectors are (anti)parallel, and is
    *sign-blind*: flipping one embedding (negating two of a, b, c) leaves it
    unchanged, so it should be paired with a pairwise loss that fixes signs.

    Computed by the trigonometric closed form of the 3×3 characteristic
    polynomial (no eigendecomposition, no host synchronisation), accurate to a
    few ulps also near repeated eigenvalues, with a custom backward that is
    exact wherever λ1 is differentiable, including a = b = c where autograd
    through the formula would give NaN, and a finite subgradient where the top
    eigenvalue is repeated (e.g. a = b = c ≤ 0).

    Args:
        a: Cosine(s) between the first and second vectors, shape broadcastable
            with ``b`` and ``c``.
        b: Cosine(s) between the first and third vectors.
        c: Cosine(s) between the second and third vectors.

    Returns:
        λ1 with the broadcast shape of the inputs. float16/bfloat16 inputs are
        computed in float32 and returned in their own dtype.

    Raises:
        TypeError: If an input is not a floating-point tensor.
        ValueError: If the shapes do not broadcast.

    Examples:
        >>> one = torch.tensor(1.0)
        >>> float(lambda1_from_cosines(one, one, one))  # three parallel vectors
        3.0
    """
    owner = "lambda1_from_cosines"
    for name, t in (("a", a), ("b", b), ("c", c)):
        check_tensor(name, t, floating=True, owner=owner)
    try:
        a, b, c = torch.broadcast_tensors(a, b, c)
    except RuntimeError as err:
        raise ValueError(
            f"{owner}: a, b, c must broadcast, got shapes "
            f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}"
        ) from err
    out_dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), c.dtype)
    work = _compute_dtype(out_dtype)
    return _Lambda1.apply(a.to(work), b.to(work), c.to(work)).to(out_dtype)


def gram_determinant(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """det of ``[[1, a, b], [a, 1, c], [b, c, 1]]`` = 1 − a² − b² − c² + 2abc, elementwise.

    For unit vectors this is the squared volume of the parallelotope they span
    (GRAM, ICLR 2025): 0 for (anti)parallel or coplanar triplets, 1 for
    orthogonal ones.

    Args:
        a, b, c: Cosines, shapes broadcastable to a common ``(...)``.

    Returns:
        The determinant, shape ``(...)``.
    """
    return 1.0 - a * a - b * b - c * c + 2.0 * a * b * c


def gram_volume(gram: Tensor, eps: float = 1e-6) -> Tensor:
    """Gram volume sqrt(det G) of ``(..., K, K)`` Gram matrices of unit vectors.

    Closed forms for K = 2 (sqrt(1 − a²)) and K = 3 ([`gram_determinant`][]),
    ``torch.linalg.det`` beyond. det G ≥ 0 in exact arithmetic; it is clamped
    at ``eps`` before the square root, whose derivative is infinite at 0, so
    the gradient vanishes (instead of exploding) for (near-)degenerate tuples.

    Args:
        gram: ``(..., K, K)`` symmetric matrices with unit diagonal.
        eps: Floor of the determinant, in [0, 1] (0: no floor, and an
            infinite gradient at degenerate tuples).

    Returns:
        ``(...)`` volumes in [sqrt(eps), 1].

    Raises:
        TypeError: ``gram`` is not a floating-point tensor, ``eps`` not a number.
        ValueError: ``gram`` is not a stack of square matrices, ``eps`` is
            NaN or outside [0, 1].
    """
    _check_gram("gram_volume", gram, smallest=1)
    eps = check_real("eps", eps, low=0.0, high=1.0, owner="gram_volume")
    K = gram.shape[-1]
    if K == 2:
        det = 1.0 - gram[..., 0, 1] ** 2
    elif K == 3:
        det = gram_determinant(gram[..., 0, 1], gram[..., 0, 2], gram[..., 1, 2])
    else:
        det = torch.linalg.det(gram)
    return torch.sqrt(det.clamp_min(eps))


def stack_gram(num: int, entry: Callable[[int, int], Tensor]) -> Tensor:
    """``(..., K, K)`` Gram matrices of unit vectors from their off-diagonal entries.

    Args:
        num: K ≥ 2.
        entry: ``entry(m, n)``, m < n: the ``(...)`` cosines of vectors m and n.

    Returns:
        The symmetric matrices, ones on the diagonal.
    """
    upper = {(m, n): entry(m, n) for m in range(num) for n in range(m + 1, num)}
    ones = torch.ones_like(upper[0, 1])
    rows = [
        torch.stack([ones if m == n else upper[min(m, n), max(m, n)] for n in range(num)], -1)
        for m in range(num)
    ]
    return torch.stack(rows, dim=-2)


def _check_gram(owner: str, gram: Tensor, *, smallest: int) -> None:
    check_tensor("gram", gram, floating=True, owner=owner)
    if gram.dim() < 2 or gram.shape[-1] != gram.shape[-2] or gram.shape[-1] < smallest:
        raise ValueError(
            f"{owner}: gram must have shape (..., K, K) with K >= {smallest}, "
            f"got {tuple(gram.shape)}"
        )


def lambda1_from_gram(gram: Tensor, *, validate: bool = True) -> Tensor:
    """λ1 of ``(..., K, K)`` Gram matrices of unit vectors (unit diagonal).

    K = 2: 1 + |a|; K = 3: the closed form [`lambda1_from_cosines`][]
    (stable custom backward); K > 3: batched ``torch.linalg.eigvalsh``.

    Args:
        gram: ``(..., K, K)`` symmetric matrices with unit diagonal, K ≥ 2.
        validate: Reject NaN or infinite entries (reads the values on the
            host, a GPU synchronisation; ``eigvalsh`` would fail on them).

    Returns:
        ``(...)`` largest eigenvalues in [1, K].

    Raises:
        TypeError: If ``gram`` is not a floating-point tensor.
        ValueError: If it is not a stack of square matrices with K ≥ 2, or
            (``validate``) has a NaN or infinite entry.
    """
    _check_gram("lambda1_from_gram", gram, smallest=2)
    if validate:
        check_finite("gram", gram, owner="lambda1_from_gram")
    K = gram.shape[-1]
    if K == 2:
        return 1.0 + gram[..., 0, 1].abs()
    if K == 3:
        return lambda1_from_cosines(gram[..., 0, 1], gram[..., 0, 2], gram[..., 1, 2])
    return torch.linalg.eigvalsh(gram)[..., -1]
