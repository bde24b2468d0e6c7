"""Singular-value Triplet-InfoNCE (paper eq. 3).

The score of a triplet (i, j, k) is λ1, the largest eigenvalue of the Gram
matrix of the normalised embeddings (x_img_i, x_2d_j, x_3d_k). For unit rows it
depends only on S12[i, j], S13[i, k] and S23[j, k], entries of the three B×B
similarity matrices that the pairwise losses compute anyway, so the triplet
term reads its logits out of those matrices (the ops
[`sampled_triplet_info_nce`][unihpr.ops.sampled_triplet_info_nce] and
[`exact_triplet_info_nce`][unihpr.ops.exact_triplet_info_nce]) and never
builds a per-triplet Gram matrix or SVD.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from unihpr._validate import (
    check_choice,
    check_generator,
    check_index,
    check_int,
    check_labels,
    check_range,
    check_rows,
    check_square,
)
from unihpr.losses._preamble import EmbeddingLoss, similarities
from unihpr.losses.queue import EmbeddingQueue
from unihpr.losses.samplers import (
    MAX_NEGATIVES,
    TripletIndices,
    TripletSampler,
    UniformTripletSampler,
)
from unihpr.losses.temperature import LearnableTemperature
from unihpr.ops.backend import resolve_backend
from unihpr.ops.exact_triplet import KERNELS as EXACT_KERNELS
from unihpr.ops.exact_triplet import MAX_BLOCK_ELEMENTS, exact_triplet_info_nce
from unihpr.ops.gram import lambda1_from_cosines
from unihpr.ops.plane_triplet import plane_triplet_info_nce
from unihpr.ops.sampled_triplet import KERNELS as SAMPLED_KERNELS
from unihpr.ops.sampled_triplet import sampled_triplet_info_nce

NEGATIVE_MODES = ("sampled", "all", "planes")
ANCHOR_MODALITIES = ("any", "each")


def triplet_info_nce(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    triplets: TripletIndices | Sequence[Tensor],
    tau: Tensor | float,
    *,
    anchors: Tensor | None = None,
    labels: Tensor | None = None,
    backend: str = "auto",
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Triplet-InfoNCE from similarity matrices and candidate triplets.

    Args:
        s12: ``(B1, B2)`` image·2D cosines.
        s13: ``(B1, B3)`` image·3D cosines.
        s23: ``(B2, B3)`` 2D·3D cosines.
        triplets: ``(A, 1 + N)`` indices per modality, column 0 each anchor's
            positive; or, with ``anchors``, the ``(A, N)`` negatives alone
            (what a [`TripletSampler`][unihpr.losses.TripletSampler] returns).
        tau: Temperature, a float or a 0-dim tensor (finite, > 0).
        anchors: ``(A,)`` anchor rows: the positive of row r is then
            ``(anchors[r],) * 3``.
        labels: ``(B,)`` integer labels: candidates whose three samples
            share the anchor's label are positives too (see
            [`sampled_triplet_info_nce`][unihpr.ops.sampled_triplet_info_nce]).
        backend: ``"auto"``, ``"torch"`` or ``"compile"`` (see
            [`unihpr.ops.backend`][]).
        validate: Check index ranges and a tensor τ's value (reads them on
            the host, a GPU synchronisation).

    Returns:
        ``(loss, lam)``: the mean over anchors of −log softmax of the positive,
        and the ``(A, 1 + N)`` λ1 scores (detached; for logging).

    Raises:
        TypeError, ValueError: See
            [`sampled_triplet_info_nce`][unihpr.ops.sampled_triplet_info_nce].
    """
    owner = "triplet_info_nce"
    if isinstance(triplets, Tensor) or len(triplets) != 3:
        raise TypeError(
            f"{owner}: triplets must be a TripletIndices (three (A, N) index tensors), "
            f"got {type(triplets).__name__}"
        )
    # Checked here under the names the caller knows, before the op's i, j, k.
    names = ("triplets.image", "triplets.pose2d", "triplets.pose3d")
    for name, t, s, dim in zip(names, triplets, (s12, s12, s13), (0, 1, 1)):
        check_index(name, t, dim=2, owner=owner)
        if validate and isinstance(s, Tensor) and s.dim() == 2:
            check_range(name, t, s.shape[dim], owner=owner)
    return sampled_triplet_info_nce(
        s12, s13, s23, *triplets, tau, anchors, labels=labels, backend=backend, validate=validate
    )


class TripletInfoNCE(EmbeddingLoss):
    """The paper's singular-value Triplet-InfoNCE over three ``(B, D)`` sets.

    For each anchor a (a sample of the batch) the positive is the triplet
    (a, a, a) of its image, 2D-pose and 3D-pose embeddings; the negatives are
    drawn by ``sampler`` among the triplets that share an embedding with it.
    The logit of a triplet is λ1 / τ, with λ1 ∈ [1, 3] the largest eigenvalue
    of the 3×3 Gram matrix of its normalised embeddings.

    λ1 is sign-blind (negating one embedding leaves it unchanged), so use it
    together with the pairwise InfoNCE ([`ContrastiveLoss`][]), as the
    paper does.

    ``labels`` ``(B,)`` (a call argument): samples that share a label are the
    same thing. A candidate triplet made only of samples with the anchor's
    label is then a positive, never a negative: the samplers redraw such
    candidates (see [`unihpr.losses.samplers`][]) and the anchor's loss is the
    mean over its positives of −log softmax (SupCon's L_out over the
    candidate set; in exact mode every same-label triplet sharing an
    embedding with the anchor is a positive).

    Args:
        temperature: Fixed float τ or a [`LearnableTemperature`][].
        sampler: Negative sampler; default [`UniformTripletSampler`][]. Any
            [`TripletSampler`][]: the loss only reads the indices it returns.
        num_negatives: Negatives per anchor; default B − 1 (the paper). At
            most [`MAX_NEGATIVES`][unihpr.losses.samplers.MAX_NEGATIVES]
            (2²⁰; past that, use ``negatives="all"``), and B × N at most
            [`MAX_CANDIDATES`][unihpr.losses.samplers.MAX_CANDIDATES] (2²⁸)
            per call, checked before anything is allocated.
        negatives: ``"sampled"`` (the paper: ``num_negatives`` drawn by
            ``sampler``) or ``"all"``: the exact log-sum-exp over all
            3B² − 3B + 1 triplets sharing an embedding with the anchor,
            streamed in chunks (O(B² + chunk_size·B) memory, O(B³) work; a
            fused Triton kernel on CUDA when triton is installed), see
            [`unihpr.ops.exact_triplet_info_nce`][]. ``"planes"``: Symile's
            O(B²) negatives, one softmax per anchor modality m over the B²
            triplets that keep the anchor's embedding in modality m, the
            three cross-entropies averaged (see
            [`unihpr.ops.plane_triplet_info_nce`][]; PyTorch ops,
            checkpointed blocks).
        anchor_modalities: Sampled mode only. ``"any"`` (default): one
            softmax per anchor over candidates that share any of its
            embeddings, as drawn by ``sampler``. ``"each"`` (Symile's
            average): one cross-entropy per anchor modality m, its
            negatives drawn by ``sampler.for_anchor_modality(m)`` (fresh
            draws per m; [`UniformTripletSampler`][] and
            [`ShuffleTripletSampler`][unihpr.losses.ShuffleTripletSampler]),
            averaged over the three.
        chunk_size: Rows of length B per block of the exact mode (default:
            about 2¹⁶ triplets per block); blocks of more than
            [`MAX_BLOCK_ELEMENTS`][unihpr.ops.exact_triplet.MAX_BLOCK_ELEMENTS]
            (2²⁸) triplets are refused.
        gather: With torch.distributed initialised and world size > 1, take
            negatives from the global batch (each rank's loss covers its own
            anchors); False keeps them local.
        distributed: ``"local"`` (default) or ``"global"``; see [`unihpr.losses.distributed`][].
        backend: ``"auto"``, ``"torch"``, ``"triton"`` (exact mode) or
            ``"compile"`` (sampled mode); see [`unihpr.ops.backend`][].
        validate: Check the inputs' values (zero/non-finite rows, index
            ranges, a diverged temperature), which synchronises a GPU with
            the host on every call; the attribute can be switched off once
            the inputs are known good. Types, shapes, dtypes and devices are
            always checked.
        queue: An [`EmbeddingQueue`][unihpr.losses.EmbeddingQueue]: the
            candidates of each anchor range over the current and the queued
            samples (gradients only through the current batch).

    Examples:
        >>> loss_fn = TripletInfoNCE(temperature=0.2)
        >>> x = [torch.randn(16, 64) for _ in range(3)]
        >>> loss = loss_fn(*x, generator=torch.Generator().manual_seed(0))
        >>> views = torch.arange(16) // 4  # four cameras per frame
        >>> loss = loss_fn(*x, generator=torch.Generator().manual_seed(0), labels=views)
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.2,
        sampler: TripletSampler | None = None,
        num_negatives: int | None = None,
        negatives: str = "sampled",
        chunk_size: int | None = None,
        gather: bool = True,
        backend: str = "auto",
        validate: bool = True,
        distributed: str = "local",
        queue: EmbeddingQueue | None = None,
        anchor_modalities: str = "any",
    ) -> None:
        super().__init__(
            temperature, gather=gather, distributed=distributed, validate=validate, queue=queue
        )
        owner = "TripletInfoNCE"
        self.negatives = check_choice("negatives", negatives, NEGATIVE_MODES, owner=owner)
        self.anchor_modalities = check_choice(
            "anchor_modalities", anchor_modalities, ANCHOR_MODALITIES, owner=owner
        )
        if anchor_modalities == "each" and negatives != "sampled":
            raise ValueError(
                f"{owner}: anchor_modalities='each' is for negatives='sampled'; "
                "negatives='planes' already averages over the anchor modalities"
            )
        for name, value, high in (
            ("chunk_size", chunk_size, MAX_BLOCK_ELEMENTS),
            ("num_negatives", num_negatives, MAX_NEGATIVES),
        ):
            if value is not None:
                check_int(name, value, low=1, high=high, owner=owner)
        if sampler is not None and not isinstance(sampler, TripletSampler):
            raise TypeError(
                f"{owner}: sampler must be a TripletSampler, got {type(sampler).__name__}"
            )
        kernels = {"all": EXACT_KERNELS, "planes": ("torch",)}.get(negatives, SAMPLED_KERNELS)
        resolve_backend(backend, owner=f"{owner}(negatives={negatives!r})", kernels=kernels)
        self.chunk_size = chunk_size
        self.backend = backend
        self.sampler = sampler if sampler is not None else UniformTripletSampler()
        self.num_negatives = num_negatives
        if anchor_modalities == "each":
            self.sampler.for_anchor_modality(0)  # raises for samplers without the form

    def forward(
        self,
        x_img: Tensor,
        x_2d: Tensor,
        x_3d: Tensor,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Loss for three ``(B, D)`` embedding sets; returns the mean over anchors.

        ``labels``: optional ``(B,)`` integer labels (see the class notes).
        """
        check_generator(generator, owner="TripletInfoNCE")
        prep = self.prepare({"x_img": x_img, "x_2d": x_2d, "x_3d": x_3d}, labels)
        sims = similarities(prep.embeddings)
        loss, _ = self.from_similarities(
            sims[0, 1],
            sims[0, 2],
            sims[1, 2],
            generator=generator,
            anchors=prep.anchors,
            labels=prep.labels,
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
        labels: Tensor | None = None,
        validate: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Loss from precomputed ``(B, B)`` cosine matrices.

        Args:
            s12, s13, s23: ``(B, B)`` cosine matrices.
            generator: Randomness of the sampler (sampled mode).
            anchors: ``(A,)`` rows whose loss is averaged (default all; the
                distributed path passes this rank's global rows). In sampled
                mode negatives are drawn for all B rows and the anchors' rows
                kept, so a generator seeded alike on every rank reproduces
                the single-process draw.
            labels: ``(B,)`` integer labels of the rows (see the class notes).
            validate: Check index ranges and τ (default: the ``validate``
                attribute).

        Returns:
            ``(loss, lam)`` with ``lam`` the detached scores, positives in
            column 0: ``(A, 1 + N)`` sampled (``(A, 1 + 3N)`` with
            ``anchor_modalities="each"``), or ``(A, 2)`` in the exact modes
            (column 1 = each anchor's mean λ1 over its 3B² − 3B negatives for
            ``"all"``; the mean λ1 over all plane candidates for ``"planes"``).
        """
        owner = "TripletInfoNCE"
        validate = self.validate if validate is None else validate
        check_generator(generator, owner=owner)
        tau = self.tau(check_square("s12", s12, owner=owner))
        opts = {"anchors": anchors, "labels": labels, "validate": validate}
        if self.negatives == "all":
            loss, lam_pos, lam_neg = exact_triplet_info_nce(
                s12, s13, s23, tau, chunk_size=self.chunk_size, backend=self.backend, **opts
            )
            return loss, torch.stack([lam_pos, lam_neg], dim=1)
        if self.negatives == "planes":
            loss, lam_mean = plane_triplet_info_nce(
                s12, s13, s23, tau, chunk_size=self.chunk_size, **opts
            )
            rows = check_rows("anchors", anchors, s12.shape[0], device=s12.device, validate=False)
            with torch.no_grad():
                lam_pos = lambda1_from_cosines(s12[rows, rows], s13[rows, rows], s23[rows, rows])
            return loss, torch.stack([lam_pos, lam_mean.expand_as(lam_pos)], dim=1)
        B = s12.shape[0]
        rows = check_rows("anchors", anchors, B, device=s12.device, validate=validate, owner=owner)
        if labels is not None:
            labels = check_labels(labels, B, s12.device, owner=owner)
        # int32 indices are faster to draw and to gather with, while they fit.
        dtype = torch.int32 if 3 * B * B < 2**31 else torch.int64
        if self.anchor_modalities == "each":
            # Symile's average: one cross-entropy per anchor modality, fresh draws each.
            samplers = [self.sampler.for_anchor_modality(m) for m in range(3)]
        else:
            samplers = [self.sampler]
        draw = {"generator": generator, "device": s12.device, "dtype": dtype, "labels": labels}
        opts = {"anchors": rows.to(dtype), "labels": labels, "backend": self.backend}
        losses, lams = [], []
        for sampler in samplers:
            negatives = sampler(B, self.num_negatives, **draw)
            if anchors is not None:
                negatives = TripletIndices(*(n[rows] for n in negatives))
            loss, lam = triplet_info_nce(s12, s13, s23, negatives, tau, validate=validate, **opts)
            losses.append(loss)
            lams.append(lam[:, 1:] if lams else lam)
        if len(losses) == 1:
            return losses[0], lams[0]
        return torch.stack(losses).mean(), torch.cat(lams, dim=1)
