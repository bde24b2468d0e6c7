"""Singular-value Triplet-InfoNCE (paper eq. 3).

The score of a triplet (i, j, k) is λ1, the largest eigenvalue of the Gram
matrix of the normalised embeddings (x_img_i, x_2d_j, x_3d_k). For unit rows it
depends only on S12[i, j], S13[i, k] and S23[j, k], entries of the three B×B
similarity matrices that the pairwise losses compute anyway, so the triplet
term reads its logits out of those matrices and never builds a per-triplet
Gram matrix or SVD.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihpr.losses._checks import check_same_shape, normalize_embeddings
from unihpr.losses.distributed import gather_embeddings
from unihpr.losses.samplers import TripletIndices, TripletSampler, UniformTripletSampler
from unihpr.losses.temperature import LearnableTemperature, as_temperature
from unihpr.ops import native
from unihpr.ops.exact_triplet import exact_triplet_info_nce
from unihpr.ops.gram import gram_eig_forward, gram_eig_grad_coeffs

NEGATIVE_MODES = ("sampled", "all")


def with_positives(anchors: Tensor, negatives: TripletIndices) -> TripletIndices:
    """Prepend the positive (a, a, a) as column 0 of each anchor's row."""
    pos = anchors[:, None].to(negatives.image.dtype)
    return TripletIndices(*(torch.cat([pos, n], dim=1) for n in negatives))


def _sampled_triplet_body(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    i: Tensor,
    j: Tensor,
    k: Tensor,
    tau: Tensor,
    need_grad: bool,
    branchless: bool,
) -> tuple[Tensor, ...]:
    """Loss, scores and (optionally) the loss's gradient, in one pass.

    Gathers (a, b, c) for every (anchor, candidate) from the similarity
    matrices, evaluates λ1 in closed form and the row-wise log-sum-exp, and
    scatters the analytic gradient straight into ``(B, B)`` matrices. Nothing
    of size (A, N) outlives the call: only the three gradient matrices are
    kept for backward.
    """
    f12 = i * s12.shape[1] + j
    f13 = i * s13.shape[1] + k
    f23 = j * s23.shape[1] + k
    a = s12.reshape(-1).index_select(0, f12.reshape(-1)).view(f12.shape)
    b = s13.reshape(-1).index_select(0, f13.reshape(-1)).view(f13.shape)
    c = s23.reshape(-1).index_select(0, f23.reshape(-1)).view(f23.shape)
    lam, mu1, r, theta = gram_eig_forward(a, b, c, branchless=branchless)
    logits = lam / tau
    lse = torch.logsumexp(logits, dim=1)
    loss = (lse - logits[:, 0]).mean()
    if not need_grad:
        return loss, lam
    ga, gb, gc = gram_eig_grad_coeffs(a, b, c, mu1, r, theta, branchless=branchless)
    # d loss / d logits = (softmax - onehot(0)) / A
    g = torch.exp(logits - lse[:, None])
    g[:, 0] -= 1.0
    g = g / g.shape[0]
    grad_tau = -(g * lam).sum() / (tau * tau)
    g = g / tau  # d loss / d λ
    grads = []
    for flat, coef, s in ((f12, ga, s12), (f13, gb, s13), (f23, gc, s23)):
        out = torch.zeros(s.numel(), dtype=g.dtype, device=g.device)
        # scatter_add_ is the fastest accumulating scatter on the CPU.
        out.scatter_add_(0, flat.reshape(-1).long(), (coef * g).reshape(-1))
        grads.append(out.view(s.shape))
    return loss, lam, *grads, grad_tau


_compiled_body = None


def _use_native(sims: tuple[Tensor, ...], indices: tuple[Tensor, ...]) -> bool:
    return (
        sims[0].dtype == torch.float32
        and indices[0].dtype in (torch.int32, torch.int64)
        and all(t.dtype == indices[0].dtype for t in indices)
        and all(s.numel() < native.MAX_CELLS for s in sims)
        and native.usable(*sims, *indices)
    )


def _compiled():
    global _compiled_body
    if _compiled_body is None:
        _compiled_body = torch.compile(_sampled_triplet_body, dynamic=True)
    return _compiled_body


class _SampledTripletNCE(torch.autograd.Function):
    """Sampled Triplet-InfoNCE whose forward also computes its gradient.

    The gradient of a scalar loss is the upstream scalar times the gradient
    computed in forward, so backward is three scalings. Fusing avoids the
    dozen (A, N+1) intermediates that autograd would keep for the elementwise
    formula. On the CPU with float32 the body is one native kernel
    ([`unihpr.ops.native`][]); elsewhere it is PyTorch ops, or with
    ``compiled=True`` those ops through ``torch.compile``.
    """

    @staticmethod
    def forward(ctx, s12, s13, s23, anchors, i, j, k, tau, compiled, uniform_b):  # type: ignore[override]
        need_grad = any(ctx.needs_input_grad)
        sims = (s12, s13, s23)
        index = [t for t in (anchors, i, j, k) if t is not None]
        if not compiled and _use_native(sims, index):
            if uniform_b:
                out = native.triplet_sampled_uniform(
                    *sims, i, anchors, uniform_b, float(tau), need_grad
                )
            else:
                out = native.triplet_sampled(*sims, i, j, k, float(tau), need_grad, anchors=anchors)
        else:
            if uniform_b:
                i, j, k = UniformTripletSampler.decode(i, anchors, uniform_b)
            if anchors is not None:
                i, j, k = with_positives(anchors, TripletIndices(i, j, k))
            body = _compiled() if compiled else _sampled_triplet_body
            out = body(*sims, i, j, k, tau, need_grad, compiled)
        loss, lam = out[0], out[1]
        if need_grad:
            ctx.save_for_backward(*out[2:])
        ctx.mark_non_differentiable(lam)
        return loss, lam

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_lam):  # type: ignore[override]
        g12, g13, g23, g_tau = ctx.saved_tensors
        need = ctx.needs_input_grad
        # The usual upstream gradient is exactly 1 (α = 1): skip three (B, B)
        # multiplications. Autograd never accumulates in place into a tensor
        # that ctx still references, so handing out the saved one is safe.
        unit = grad_loss.device.type == "cpu" and bool(grad_loss == 1)
        grads = [
            (g if unit else grad_loss * g) if n else None for g, n in zip((g12, g13, g23), need[:3])
        ]
        grad_tau = grad_loss * g_tau if need[7] else None
        return (*grads, None, None, None, None, grad_tau, None, None)


def triplet_info_nce(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    triplets: TripletIndices,
    tau: Tensor,
    *,
    anchors: Tensor | None = None,
    compiled: bool = False,
) -> tuple[Tensor, Tensor]:
    """Triplet-InfoNCE from similarity matrices and candidate triplets.

    Args:
        s12: ``(B1, B2)`` image·2D cosines.
        s13: ``(B1, B3)`` image·3D cosines.
        s23: ``(B2, B3)`` 2D·3D cosines.
        triplets: ``(A, 1 + N)`` indices per modality, column 0 each anchor's
            positive (see [`with_positives`][]); or, with ``anchors``, the
            ``(A, N)`` negatives alone.
        tau: Scalar temperature tensor.
        anchors: ``(A,)`` anchor rows, of the indices' dtype: the positive of
            row r is then ``(anchors[r],) * 3``. Saves materialising
            [`with_positives`][].
        compiled: Run the fused body through ``torch.compile`` (needs a C++
            compiler on the CPU; the first call of a new shape compiles).

    Returns:
        ``(loss, lam)``: the mean over anchors of −log softmax of the positive,
        and the ``(A, 1 + N)`` λ1 scores (detached; for logging).
    """
    work = torch.promote_types(s12.dtype, torch.float32)
    tau = tau.to(work)
    s12, s13, s23 = s12.to(work), s13.to(work), s23.to(work)
    if anchors is not None:
        anchors = anchors.to(triplets.image.dtype)
    return _SampledTripletNCE.apply(s12, s13, s23, anchors, *triplets, tau, bool(compiled), 0)


class TripletInfoNCE(nn.Module):
    """The paper's singular-value Triplet-InfoNCE over three ``(B, D)`` sets.

    For each anchor a (a sample of the batch) the positive is the triplet
    (a, a, a) of its image, 2D-pose and 3D-pose embeddings; the negatives are
    drawn by ``sampler`` among the triplets that share an embedding with it.
    The logit of a triplet is λ1 / τ, with λ1 ∈ [1, 3] the largest eigenvalue
    of the 3×3 Gram matrix of its normalised embeddings.

    λ1 is sign-blind (negating one embedding leaves it unchanged), so use it
    together with the pairwise InfoNCE ([`ContrastiveLoss`][]), as the
    paper does.

    Args:
        temperature: Fixed float τ or a [`LearnableTemperature`][].
        sampler: Negative sampler; default [`UniformTripletSampler`][].
        num_negatives: Negatives per anchor; default B − 1 (the paper).
        negatives: ``"sampled"`` (the paper: ``num_negatives`` drawn by
            ``sampler``) or ``"all"``: the exact log-sum-exp over all
            3B² − 3B + 1 triplets sharing an embedding with the anchor,
            streamed in chunks (O(B² + chunk_size·B) memory, O(B³) work; a
            fused Triton kernel on CUDA when triton is installed), see
            [`unihpr.ops.exact_triplet_info_nce`][].
        chunk_size: Rows of length B per block of the exact mode (default:
            about 2¹⁶ triplets per block).
        gather: With torch.distributed initialised and world size > 1, take
            negatives from the global batch (each rank's loss covers its own
            anchors); False keeps them local.
        compile: Run the sampled mode's PyTorch-op body through
            ``torch.compile`` instead of the default: on the CPU in float32 a
            native kernel ([`unihpr.ops.native`][], faster than the compiled
            body), elsewhere eager PyTorch ops. Meant for accelerators; the
            first call of each shape compiles (tens of seconds).

    Examples:
        >>> loss_fn = TripletInfoNCE(temperature=0.2)
        >>> x = [torch.randn(16, 64) for _ in range(3)]
        >>> loss = loss_fn(*x, generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.2,
        sampler: TripletSampler | None = None,
        num_negatives: int | None = None,
        negatives: str = "sampled",
        chunk_size: int | None = None,
        gather: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if negatives not in NEGATIVE_MODES:
            raise ValueError(
                f"TripletInfoNCE: negatives must be one of {NEGATIVE_MODES}, got {negatives!r}"
            )
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"TripletInfoNCE: chunk_size must be an int >= 1, got {chunk_size!r}")
        self.negatives = negatives
        self.chunk_size = chunk_size
        self.gather = bool(gather)
        self.compile = bool(compile)
        self.temperature = as_temperature(temperature, owner="TripletInfoNCE")
        if sampler is not None and not isinstance(sampler, TripletSampler):
            raise TypeError(
                f"TripletInfoNCE: sampler must be a TripletSampler, got {type(sampler).__name__}"
            )
        self.sampler = sampler if sampler is not None else UniformTripletSampler()
        if num_negatives is not None and (
            isinstance(num_negatives, bool)
            or not isinstance(num_negatives, int)
            or num_negatives < 1
        ):
            raise ValueError(
                f"TripletInfoNCE: num_negatives must be an int >= 1, got {num_negatives!r}"
            )
        self.num_negatives = num_negatives

    def forward(
        self,
        x_img: Tensor,
        x_2d: Tensor,
        x_3d: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Loss for three ``(B, D)`` embedding sets; returns the mean over anchors."""
        owner = "TripletInfoNCE"
        x1 = normalize_embeddings("x_img", x_img, owner=owner)
        x2 = normalize_embeddings("x_2d", x_2d, owner=owner)
        x3 = normalize_embeddings("x_3d", x_3d, owner=owner)
        check_same_shape(owner, x_img=x1, x_2d=x2, x_3d=x3)
        batch = gather_embeddings([x1, x2, x3], self.gather)
        g1, g2, g3 = batch.tensors
        anchors = batch.rows if batch.distributed else None
        loss, _ = self.from_similarities(
            g1 @ g2.T, g1 @ g3.T, g2 @ g3.T, generator=generator, anchors=anchors
        )
        return loss

    def from_similarities(
        self,
        s12: Tensor,
        s13: Tensor,
        s23: Tensor,
        generator: torch.Generator | None = None,
        *,
        anchors: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Loss from precomputed ``(B, B)`` cosine matrices.

        Args:
            s12, s13, s23: ``(B, B)`` cosine matrices.
            generator: Randomness of the sampler (sampled mode).
            anchors: ``(A,)`` int64 rows whose loss is averaged (default all;
                the distributed path passes this rank's global rows). In
                sampled mode negatives are drawn for all B rows and the
                anchors' rows kept, so a generator seeded alike on every
                rank reproduces the single-process draw.

        Returns:
            ``(loss, lam)`` with ``lam`` the detached scores, positives in
            column 0: ``(A, 1 + N)`` sampled, or ``(A, 2)`` in exact mode
            (column 1 = each anchor's mean λ1 over its 3B² − 3B negatives).
        """
        B = s12.shape[0]
        if self.negatives == "all":
            loss, lam_pos, lam_neg = exact_triplet_info_nce(
                s12, s13, s23, self.temperature(), anchors=anchors, chunk_size=self.chunk_size
            )
            return loss, torch.stack([lam_pos, lam_neg], dim=1)
        all_rows = torch.arange(B, device=s12.device)
        tau = self.temperature()
        if type(self.sampler) is UniformTripletSampler and not self.compile:
            # Same draws as self.sampler(...), decoded inside the fused kernel.
            draws, rows = self.sampler.draw(
                B,
                self.num_negatives,
                anchors=all_rows,
                generator=generator,
                device=s12.device,
                dtype=torch.int32,
            )
            if anchors is not None:
                draws, rows = draws[anchors], rows[anchors]
            work = torch.promote_types(s12.dtype, torch.float32)
            s12, s13, s23 = s12.to(work), s13.to(work), s23.to(work)
            return _SampledTripletNCE.apply(
                s12, s13, s23, rows, draws, None, None, tau.to(work), False, B
            )
        negatives = self.sampler(
            B,
            self.num_negatives,
            anchors=all_rows,
            generator=generator,
            device=s12.device,
            dtype=torch.int32,
        )
        if anchors is None:
            anchors = all_rows
        else:
            negatives = TripletIndices(*(n[anchors] for n in negatives))
        return triplet_info_nce(
            s12, s13, s23, negatives, tau, anchors=anchors, compiled=self.compile
        )
