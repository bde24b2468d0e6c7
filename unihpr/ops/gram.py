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
import torch.nn.functional as F
from torch import Tensor

from unihpr.ops import native

# 3μ1² − p < 0.05 p with μ1 = 2r cos(θ/3) and p = 3r²  <=>  θ > 3 acos(sqrt(1.05 / 4))
_NEAR_THETA = 3.0 * math.acos(math.sqrt(1.05 / 4.0))

__all__ = [
    "gram_determinant",
    "gram_largest_eigenvalue",
    "gram_volume",
    "largest_gram_eigenvalue",
]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half precision has too few bits for the cubic's cancellations.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def gram_eig_forward(
    a: Tensor, b: Tensor, c: Tensor, *, branchless: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Largest eigenvalue and the intermediates the backward needs.

    Args:
        a, b, c: Off-diagonal entries, broadcast to a common shape ``(...)``.
        branchless: Refine every element with ``torch.where`` instead of
            indexing the few near-degenerate ones: no data-dependent control
            flow, for ``torch.compile``, where the extra arithmetic is fused.

    Returns:
        ``(lam, mu1, r, theta)``: λ1 = 1 + μ1, the largest root μ1 of the
        cubic, r = sqrt(p/3) and θ = arccos(q / 2r³), all of shape ``(...)``.
    """
    # In-place chains: these run on (B, B)-sized tensors in the loss, where
    # every fresh allocation costs as much as the arithmetic. They need the
    # full shape up front (broadcast views cost nothing).
    a, b, c = torch.broadcast_tensors(a, b, c)
    p = a * a
    p.addcmul_(b, b).addcmul_(c, c)
    r = p.div(3.0).sqrt_()
    tiny = torch.finfo(r.dtype).tiny
    # q / (2 r³) = abc / r³; |abc| <= r³ always, and where r³ underflows
    # (G ≈ I) any θ gives μ ≈ 0.
    theta = a * b
    theta.mul_(c).div_(r.pow(3).clamp_min_(tiny)).clamp_(-1.0, 1.0).acos_()
    mu1 = theta.div(3.0).cos_().mul_(r).mul_(2.0)
    # Near a repeated top eigenvalue (θ → π) the roots of the cubic are
    # ill-conditioned in (p, q): the error grows to ~sqrt(eps). Recompute μ1
    # there by deflation, which is accurate to ~eps. θ > _NEAR_THETA is
    # (μ1 − μ2)(μ1 − μ3) < 0.05 p, tested on θ in one pass.
    if branchless:
        near = theta > _NEAR_THETA
        flat = [x.reshape(-1) for x in (a, b, c, r, theta)]
        mu1 = torch.where(near, _top_pair_by_deflation(*flat).view_as(mu1), mu1)
    elif theta.numel() and float(theta.max()) > _NEAR_THETA:
        # Rare: work on those elements only, found by one nonzero pass.
        idx = (theta > _NEAR_THETA).reshape(-1).nonzero().squeeze(1)
        a_, b_, c_, r_, t_ = (_take(x, idx) for x in (a, b, c, r, theta))
        mu1 = _put(mu1, idx, _top_pair_by_deflation(a_, b_, c_, r_, t_))
    return 1.0 + mu1, mu1, r, theta


def _put(x: Tensor, idx: Tensor, values: Tensor) -> Tensor:
    """``x`` with its flattened elements ``idx`` replaced by ``values``."""
    x = x.contiguous()
    x.view(-1).index_copy_(0, idx, values)
    return x


def _take(x: Tensor, idx: Tensor) -> Tensor:
    """Elements ``idx`` of ``x`` flattened (a copy only for broadcast views)."""
    return x.reshape(-1).index_select(0, idx)


def _top_pair_by_deflation(a: Tensor, b: Tensor, c: Tensor, r: Tensor, theta: Tensor) -> Tensor:
    """μ1 where μ1 ≈ μ2, from the well-separated smallest eigenpair; 1-D inputs.

    μ3 and its eigenvector v3 are well conditioned when μ1 ≈ μ2. The top
    eigenvalue is then the larger eigenvalue of H restricted to v3's
    orthogonal complement, a symmetric 2×2 problem whose closed form
    ``mean + sqrt(half_diff² + off²)`` has no cancellation.
    """
    # The spectrum of H scales with H: work on H / r so that products of
    # entries neither underflow nor overflow.
    scale = r.clamp_min(torch.finfo(a.dtype).tiny)
    a, b, c = a / scale, b / scale, c / scale
    zero = torch.zeros_like(a)
    H = torch.stack([zero, a, b, a, zero, c, b, c, zero], dim=-1).view(-1, 3, 3)
    mu3 = 2.0 * torch.cos((theta + 2.0 * math.pi) / 3.0)
    rows = H - mu3[:, None, None] * torch.eye(3, dtype=a.dtype, device=a.device)
    # v3 spans the null space of the rank-2 matrix H − μ3 I: the largest
    # cross product of two of its rows.
    crosses = torch.linalg.cross(rows, rows[:, [1, 2, 2]], dim=-1)[:, [0, 0, 1]]
    crosses[:, 1] = torch.linalg.cross(rows[:, 0], rows[:, 2], dim=-1)
    best = crosses.square().sum(-1).argmax(-1)
    v = F.normalize(crosses[torch.arange(len(best), device=a.device), best], dim=-1)
    # An orthonormal basis (u, w) of v3's complement: u = v3 × e_k for the
    # axis k least aligned with v3.
    e = F.one_hot(v.abs().argmin(-1), 3).to(a.dtype)
    u = F.normalize(torch.linalg.cross(v, e, dim=-1), dim=-1)
    w = torch.linalg.cross(v, u, dim=-1)
    uw = torch.stack([u, w], dim=-1)  # (n, 3, 2)
    small = uw.transpose(1, 2) @ H @ uw  # (n, 2, 2)
    d1, d2, off = small[:, 0, 0], small[:, 1, 1], small[:, 0, 1]
    return (0.5 * (d1 + d2) + torch.sqrt((0.5 * (d1 - d2)) ** 2 + off * off)) * scale


def gram_eig_grad_coeffs(
    a: Tensor,
    b: Tensor,
    c: Tensor,
    mu1: Tensor,
    r: Tensor,
    theta: Tensor,
    *,
    branchless: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Partial derivatives (∂λ1/∂a, ∂λ1/∂b, ∂λ1/∂c), each of shape ``(...)``.

    Exact where the top eigenvalue is simple; the symmetric subgradient where
    it is repeated (see the module docstring). Each partial equals 2 v_i v_j
    for a unit vector v, so it lies in [-1, 1]; the result is clamped there to
    absorb rounding close to a repeated eigenvalue. ``branchless`` evaluates
    the repeated-eigenvalue case everywhere (for ``torch.compile``).
    """
    a, b, c = torch.broadcast_tensors(a, b, c)
    p = a * a
    p.addcmul_(b, b).addcmul_(c, c)
    den1 = mu1.square().mul_(3.0).sub_(p)  # (μ1 - μ2)(μ1 - μ3) >= 0
    eps = torch.finfo(a.dtype).eps
    # The relative error of the formula is about eps * p / den1.
    thresh = p.clamp_min(torch.finfo(a.dtype).tiny).mul_(64.0 * eps)
    simple = den1 > thresh
    inv = torch.where(simple, den1, 1.0).reciprocal_().mul_(2.0)
    ga = torch.addcmul(b * c, a, mu1).mul_(inv)
    gb = torch.addcmul(a * c, b, mu1).mul_(inv)
    gc = torch.addcmul(a * b, c, mu1).mul_(inv)
    if branchless:
        fa, fb, fc = _repeated_top_subgradient(a, b, c, p, r, theta, thresh)
        ga, gb, gc = (torch.where(simple, g, f) for g, f in ((ga, fa), (gb, fb), (gc, fc)))
    elif not bool(simple.all()):
        # Rare: evaluate the fallback on those elements only.
        idx = (~simple).reshape(-1).nonzero().squeeze(1)
        parts = (_take(x, idx) for x in (a, b, c, p, r, theta, thresh))
        fa, fb, fc = _repeated_top_subgradient(*parts)
        ga, gb, gc = _put(ga, idx, fa), _put(gb, idx, fb), _put(gc, idx, fc)
    return ga.clamp_(-1.0, 1.0), gb.clamp_(-1.0, 1.0), gc.clamp_(-1.0, 1.0)


def _repeated_top_subgradient(
    a: Tensor, b: Tensor, c: Tensor, p: Tensor, r: Tensor, theta: Tensor, thresh: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The symmetric subgradient P_top / 2 where μ1 = μ2 (zero where G = I).

    P_top = I − P3 with P3 the projector of the then simple smallest
    eigenvalue μ3, whose off-diagonal entries follow from the cubic as for μ1.
    """
    mu3 = 2.0 * r * torch.cos((theta + 2.0 * math.pi) / 3.0)
    den3 = 3.0 * mu3 * mu3 - p
    triple = den3 <= thresh
    scale = torch.where(triple, torch.zeros_like(den3), -1.0 / torch.where(triple, 1.0, den3))
    return (b * c + a * mu3) * scale, (a * c + b * mu3) * scale, (a * b + c * mu3) * scale


class _NativeLargestGramEigenvalue(torch.autograd.Function):
    """float32 on the CPU: one vectorised C loop each way, computed in double."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, c: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b, c)
        return native.lambda1(a, b, c)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        a, b, c = ctx.saved_tensors
        return native.lambda1_grad(a, b, c, grad.contiguous())


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
    polynomial (no eigendecomposition; on the CPU in float32 by a native
    kernel that evaluates it in double, see [`unihpr.ops.native`][]), with a
    custom backward that is exact
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
    a, b, c = a.to(work), b.to(work), c.to(work)
    if work == torch.float32 and a.device.type == "cpu" and native.available():
        a, b, c = a.contiguous(), b.contiguous(), c.contiguous()
        return _NativeLargestGramEigenvalue.apply(a, b, c).to(out_dtype)
    return _LargestGramEigenvalue.apply(a, b, c).to(out_dtype)


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

    K = 2: 1 + |a|; K = 3: the closed form [`largest_gram_eigenvalue`][]
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
