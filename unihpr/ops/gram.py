"""Closed-form spectrum of the 3×3 Gram matrix of three unit vectors.

For unit vectors x1, x2, x3 the Gram matrix is

    G = [[1, a, b], [a, 1, c], [b, c, 1]],   a = x1·x2, b = x1·x3, c = x2·x3,

so its eigenvalues are 1 + μ for the roots μ of the depressed cubic
μ³ − p μ − q = 0 with p = a² + b² + c² and q = 2abc (the characteristic
polynomial of the zero-diagonal matrix H = G − I). Because H is symmetric the
three roots are real and given by the trigonometric formula

    μ_k = 2 r cos((θ − 2πk) / 3),  r = sqrt(p / 3),  θ = arccos(q / (2 r³)),

with k = 0 the largest and k = 2 the smallest root.

Differentiating through ``arccos`` fails where q / (2 r³) = ±1, which is the
case a = b = c, i.e. exactly where the positives of a trained model live. The
derivative itself is well defined there: by implicit differentiation of the
cubic (equivalently, ∂λ/∂G = v vᵀ for the unit top eigenvector v),

    ∂λ1/∂a = (2bc + 2aμ1) / (3μ1² − p),

and cyclically for b and c. The denominator equals (μ1 − μ2)(μ1 − μ3), so it
only vanishes where the top eigenvalue is repeated, where λ1 is not
differentiable. There the backward returns the symmetric subgradient
∂λ1/∂G = P / m (P the projector onto the top eigenspace, m its dimension),
which is a convex combination of the v vᵀ and so a valid (Clarke)
subgradient of the convex function λ1(G).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "gram_determinant",
    "gram_largest_eigenvalue",
    "gram_volume",
    "largest_gram_eigenvalue",
]

_TWO_PI_OVER_3 = 2.0 * math.pi / 3.0


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half precision has too few bits for the cubic's cancellations.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def gram_eig_forward(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Largest eigenvalue and the intermediates the backward needs.

    Args:
        a, b, c: Off-diagonal entries, broadcast to a common shape ``(...)``.

    Returns:
        ``(lam, mu1, r, theta)``: λ1 = 1 + μ1, the largest root μ1 of the
        cubic, r = sqrt(p/3) and θ = arccos(q / 2r³), all of shape ``(...)``.
    """
    p = a * a + b * b + c * c
    q = 2.0 * a * b * c
    r = torch.sqrt(p / 3.0)
    denom = 2.0 * r * r * r
    tiny = torch.finfo(r.dtype).tiny
    # p = 0 means G = I; any θ gives μ = 0 there because r = 0.
    x = torch.where(denom > tiny, q / denom.clamp_min(tiny), torch.zeros_like(q))
    theta = torch.acos(x.clamp(-1.0, 1.0))
    mu1 = 2.0 * r * torch.cos(theta / 3.0)
    return 1.0 + mu1, mu1, r, theta


def gram_eig_grad_coeffs(
    a: Tensor, b: Tensor, c: Tensor, mu1: Tensor, r: Tensor, theta: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Partial derivatives (∂λ1/∂a, ∂λ1/∂b, ∂λ1/∂c), each of shape ``(...)``.

    Exact where the top eigenvalue is simple; the symmetric subgradient where
    it is repeated (see the module docstring). Each partial equals 2 v_i v_j
    for a unit vector v, so it lies in [-1, 1]; the result is clamped there to
    absorb rounding close to a repeated eigenvalue.
    """
    p = a * a + b * b + c * c
    den1 = 3.0 * mu1 * mu1 - p  # (μ1 - μ2)(μ1 - μ3) >= 0
    eps = torch.finfo(a.dtype).eps
    # Relative error of the formula is about eps * p / den1.
    simple = den1 > 64.0 * eps * p.clamp_min(torch.finfo(a.dtype).tiny)
    safe1 = torch.where(simple, den1, torch.ones_like(den1))
    ga = (2.0 * (b * c + a * mu1)) / safe1
    gb = (2.0 * (a * c + b * mu1)) / safe1
    gc = (2.0 * (a * b + c * mu1)) / safe1
    if not bool(simple.all()):
        # Repeated top eigenvalue: P_top = I − P3 with P3 the projector of the
        # (then simple, unless G = I) smallest eigenvalue μ3; m = 2.
        mu3 = 2.0 * r * torch.cos((theta + 2.0 * math.pi) / 3.0)
        den3 = 3.0 * mu3 * mu3 - p
        triple = den3 <= 64.0 * eps * p.clamp_min(torch.finfo(a.dtype).tiny)
        safe3 = torch.where(triple, torch.ones_like(den3), den3)
        scale = torch.where(triple, torch.zeros_like(den3), -1.0 / safe3)
        ga = torch.where(simple, ga, (b * c + a * mu3) * scale)
        gb = torch.where(simple, gb, (a * c + b * mu3) * scale)
        gc = torch.where(simple, gc, (a * b + c * mu3) * scale)
    return ga.clamp(-1.0, 1.0), gb.clamp(-1.0, 1.0), gc.clamp(-1.0, 1.0)


class _LargestGramEigenvalue(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, c: Tensor) -> Tensor:  # type: ignore[override]
        lam, mu1, r, theta = gram_eig_forward(a, b, c)
        ctx.save_for_backward(a, b, c, mu1, r, theta)
        return lam

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        a, b, c, mu1, r, theta = ctx.saved_tensors
        ga, gb, gc = gram_eig_grad_coeffs(a, b, c, mu1, r, theta)
        return grad * ga, grad * gb, grad * gc


def largest_gram_eigenvalue(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Largest eigenvalue λ1 of ``[[1, a, b], [a, 1, c], [b, c, 1]]``, elementwise.

    For three L2-normalised embeddings x1, x2, x3 with a = x1·x2, b = x1·x3 and
    c = x2·x3 this is σ1², the squared largest singular value of the 3×D matrix
    stacking them: the score of the paper's Triplet-InfoNCE. It lies in [1, 3]
    for such cosines, equals 3 when the three vectors are (anti)parallel, and is
    *sign-blind*: flipping one embedding (negating two of a, b, c) leaves it
    unchanged, so it should be paired with a pairwise loss that fixes signs.

    Computed by the trigonometric closed form of the 3×3 characteristic
    polynomial (no eigendecomposition), with a custom backward that is exact
    wherever λ1 is differentiable, including a = b = c where autograd through
    the formula would give NaN, and a finite subgradient where the top
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
    """
    for name, t in (("a", a), ("b", b), ("c", c)):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"largest_gram_eigenvalue: {name} must be a torch.Tensor, got {type(t)}"
            )
        if not t.is_floating_point():
            raise TypeError(
                f"largest_gram_eigenvalue: {name} must be floating point, got {t.dtype}"
            )
    try:
        a, b, c = torch.broadcast_tensors(a, b, c)
    except RuntimeError as err:
        raise ValueError(
            "largest_gram_eigenvalue: a, b, c must broadcast, got shapes "
            f"{tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}"
        ) from err
    out_dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), c.dtype)
    work = _compute_dtype(out_dtype)
    lam = _LargestGramEigenvalue.apply(a.to(work), b.to(work), c.to(work))
    return lam.to(out_dtype)


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

    Closed forms for K = 2 (sqrt(1 − a²)) and K = 3 (:func:`gram_determinant`),
    ``torch.linalg.det`` beyond. det G ≥ 0 in exact arithmetic; it is clamped
    at ``eps`` before the square root, whose derivative is infinite at 0, so
    the gradient vanishes (instead of exploding) for (near-)degenerate tuples.

    Args:
        gram: ``(..., K, K)`` symmetric matrices with unit diagonal.
        eps: Floor of the determinant.

    Returns:
        ``(...)`` volumes in [sqrt(eps), 1].
    """
    K = gram.shape[-1]
    if K == 2:
        det = 1.0 - gram[..., 0, 1] ** 2
    elif K == 3:
        det = gram_determinant(gram[..., 0, 1], gram[..., 0, 2], gram[..., 1, 2])
    else:
        det = torch.linalg.det(gram)
    return torch.sqrt(det.clamp_min(eps))


def gram_largest_eigenvalue(gram: Tensor) -> Tensor:
    """λ1 of ``(..., K, K)`` Gram matrices of unit vectors (unit diagonal).

    K = 2: 1 + |a|; K = 3: the closed form :func:`largest_gram_eigenvalue`
    (stable custom backward); K > 3: batched ``torch.linalg.eigvalsh``.

    Args:
        gram: ``(..., K, K)`` symmetric matrices with unit diagonal, K ≥ 2.

    Returns:
        ``(...)`` largest eigenvalues in [1, K].
    """
    K = gram.shape[-1]
    if K == 2:
        return 1.0 + gram[..., 0, 1].abs()
    if K == 3:
        return largest_gram_eigenvalue(gram[..., 0, 1], gram[..., 0, 2], gram[..., 1, 2])
    return torch.linalg.eigvalsh(gram)[..., -1]
