"""The paper's full contrastive objective L_cl = L_pair + α L_triplet (eq. 4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from unihpr.losses._preamble import prepare, similarities
from unihpr.losses.distributed import check_distributed
from unihpr.losses.pair import pair_info_nce
from unihpr.losses.queue import EmbeddingQueue, check_queue
from unihpr.losses.samplers import TripletSampler
from unihpr.losses.temperature import LearnableTemperature, as_temperature
from unihpr.losses.triplet import TripletInfoNCE, deprecated_compile
from unihpr.modalities import MODALITIES
from unihpr.ops._checks import check_generator


class ContrastiveLoss(nn.Module):
    """L_cl = Σ_pairs L_pair + α · L_triplet over image, 2D and 3D embeddings.

    The three cosine matrices S12, S13, S23 are computed once and shared by the
    three pairwise InfoNCE terms and the triplet term, whose logits are read
    out of them; the triplet term's forward and backward are fused, so it adds
    only elementwise work to the pairwise losses.

    With only two modalities given (the paper's step 1 aligns 2D and 3D),
    the loss is that pair's InfoNCE alone.

    Embeddings are L2-normalised inside, invariantly to their scale: each row
    is first divided by its largest absolute entry, so rows of any finite,
    non-zero norm (1e-30 as well as 1e30) give the same loss; exactly zero
    rows are rejected (with ``validate``).

    Args:
        alpha: Weight α of the triplet term (paper: 1).
        pair_temperature: τ of the pairwise terms (float or
            [`LearnableTemperature`][]), shared by the three pairs.
        triplet_temperature: τ of the triplet term.
        sampler: Negative-triplet sampler (default uniform).
        num_negatives: Negatives per anchor for the triplet term (default B−1).
        use_triplet: False gives the "L_pair only" ablation.
        negatives: Triplet negatives, ``"sampled"``, ``"all"`` (exact) or
            ``"planes"`` (Symile's per-anchor-modality exact negatives); see
            [`TripletInfoNCE`][].
        chunk_size: Block size of the exact triplet mode.
        gather: With torch.distributed initialised and world size > 1, every
            term uses the global batch for negatives and this rank's samples
            as anchors; False keeps everything local.
        distributed: ``"local"`` (default; after DDP the gradients equal one
            process on the concatenated batch) or ``"global"`` (open_clip's
            default; network gradients 1/W of that), see [`unihpr.losses.distributed`][].
        backend: Implementation of the triplet term: ``"auto"``,
            ``"torch"``, ``"triton"`` (exact mode) or ``"compile"`` (sampled
            mode); see [`unihpr.ops.backend`][].
        validate: Check the inputs' values (zero/non-finite rows, index
            ranges), which synchronises a GPU with the host on every call.
            The training loop validates its first step and then sets the
            attribute to False. Types, shapes, dtypes and devices are always
            checked.
        compile: Deprecated; ``compile=True`` is ``backend="compile"``.
        anchor_modalities: ``"any"`` or ``"each"`` (Symile's average of one
            cross-entropy per anchor modality) for the sampled triplet term;
            see [`TripletInfoNCE`][].
        queue: An [`EmbeddingQueue`][unihpr.losses.EmbeddingQueue] of past
            embeddings, extra negatives of every term (gradients only through
            the current batch; pushed after each call in training mode).

    Examples:
        >>> loss_fn = ContrastiveLoss(alpha=1.0)
        >>> img, p2d, p3d = (torch.randn(32, 128) for _ in range(3))
        >>> loss, info = loss_fn(img, p2d, p3d, return_diagnostics=True)
    """

    def __init__(
        self,
        alpha: float = 1.0,
        pair_temperature: float | LearnableTemperature = 0.07,
        triplet_temperature: float | LearnableTemperature = 0.2,
        sampler: TripletSampler | None = None,
        num_negatives: int | None = None,
        use_triplet: bool = True,
        negatives: str = "sampled",
        chunk_size: int | None = None,
        gather: bool = True,
        backend: str = "auto",
        validate: bool = True,
        compile: bool | None = None,
        distributed: str = "local",
        queue: EmbeddingQueue | None = None,
        anchor_modalities: str = "any",
    ) -> None:
        super().__init__()
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not math.isfinite(alpha)
            or alpha < 0
        ):
            raise ValueError(f"ContrastiveLoss: alpha must be a finite float >= 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.use_triplet = bool(use_triplet)
        owner = "ContrastiveLoss"
        self.pair_temperature = as_temperature(
            pair_temperature, owner=owner, name="pair_temperature"
        )
        triplet_temperature = as_temperature(
            triplet_temperature, owner=owner, name="triplet_temperature"
        )
        self.triplet = TripletInfoNCE(
            triplet_temperature,
            sampler=sampler,
            num_negatives=num_negatives,
            negatives=negatives,
            chunk_size=chunk_size,
            gather=gather,
            distributed=distributed,
            anchor_modalities=anchor_modalities,
            backend=deprecated_compile("ContrastiveLoss", compile, backend),
            validate=validate,
        )
        self.gather = bool(gather)
        self.distributed = check_distributed("ContrastiveLoss", distributed)
        self.queue = check_queue(owner, queue)
        self.validate = bool(validate)

    def forward(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        pose3d: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        return_diagnostics: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, float]]:
        """Loss for two or three ``(B, D)`` embedding sets.

        Args:
            image: ``(B, D)`` image embeddings, or None.
            pose2d: ``(B, D)`` 2D-pose embeddings, or None.
            pose3d: ``(B, D)`` 3D-pose embeddings, or None.
            generator: Randomness of the negative sampler.
            labels: ``(B,)`` integer labels: samples sharing a label are
                positives of each other in every term, never negatives (see
                [`PairInfoNCE`][] and [`TripletInfoNCE`][]). Right when the
                target is the same for them (e.g. one frame seen by several
                cameras with a view-invariant target); wrong for camera-frame
                3D, where another view of a frame is a different target.
            return_diagnostics: Also return a dict of floats for logging:
                ``cos/<m1>-<m2>`` mean positive cosine per pair (the curves of
                the paper's Fig. 4), ``acc/<m1>-<m2>`` in-batch top-1
                retrieval accuracy (both directions averaged; with labels a
                retrieved sample of the query's label counts as correct),
                ``lambda/pos`` and ``lambda/neg`` mean triplet scores,
                ``loss/pair``, ``loss/triplet``, ``tau/pair``, ``tau/triplet``.

        Returns:
            The scalar loss, or ``(loss, diagnostics)``.
        """
        owner = "ContrastiveLoss"
        check_generator(owner, generator)
        given = {name: x for name, x in zip(MODALITIES, (image, pose2d, pose3d)) if x is not None}
        if len(given) < 2:
            raise ValueError(
                f"{owner}: needs at least two of image, pose2d, pose3d; got {sorted(given) or 'none'}"
            )
        prep = prepare(
            owner,
            given,
            gather=self.gather,
            distributed=self.distributed,
            validate=self.validate,
            labels=labels,
        )
        batch_size = prep.embeddings[0].shape[0]
        if self.queue is not None:
            batch = prep
            prep = self.queue.extend(owner, batch)
            if self.training:
                self.queue.push(batch)
        names = list(given)
        sims = {(names[m], names[n]): s for (m, n), s in similarities(prep.embeddings).items()}
        tau = self.pair_temperature()
        pair_terms = [
            pair_info_nce(s, tau, anchors=prep.anchors, labels=prep.labels, validate=False)
            for s in sims.values()
        ]
        loss_pair = torch.stack(pair_terms).sum()
        loss = loss_pair
        lam = None
        loss_triplet = None
        if self.use_triplet and len(given) == 3 and self.alpha > 0:
            loss_triplet, lam = self.triplet.from_similarities(
                sims[("image", "pose2d")],
                sims[("image", "pose3d")],
                sims[("pose2d", "pose3d")],
                generator=generator,
                anchors=prep.anchors,
                labels=prep.labels,
                validate=self.validate,
            )
            loss = loss + self.alpha * loss_triplet
        if not return_diagnostics:
            return loss
        # Diagnostics of the current batch (not of the queue).
        sims = {key: s[:batch_size, :batch_size] for key, s in sims.items()}
        labels = None if prep.labels is None else prep.labels[:batch_size]
        return loss, self._diagnostics(sims, loss_pair, loss_triplet, lam, tau, labels)

    @torch.no_grad()
    def _diagnostics(self, sims, loss_pair, loss_triplet, lam, tau, labels) -> dict[str, float]:
        # Stacked and read in one transfer: one host synchronisation, not a dozen.
        info: dict[str, Tensor] = {"loss/pair": loss_pair, "tau/pair": tau}
        for (m1, m2), s in sims.items():
            target = torch.arange(s.shape[0], device=s.device)
            if labels is None:
                hit_row, hit_col = s.argmax(dim=1) == target, s.argmax(dim=0) == target
            else:
                hit_row = labels[s.argmax(dim=1)] == labels
                hit_col = labels[s.argmax(dim=0)] == labels
            info[f"cos/{m1}-{m2}"] = s.diagonal().mean()
            info[f"acc/{m1}-{m2}"] = 0.5 * (hit_row.float().mean() + hit_col.float().mean())
        if lam is not None:
            info["loss/triplet"] = loss_triplet
            info["tau/triplet"] = self.triplet.temperature()
            info["lambda/pos"] = lam[:, 0].mean()
            info["lambda/neg"] = lam[:, 1:].mean()
        dtype = loss_pair.dtype
        for v in info.values():
            dtype = torch.promote_types(dtype, v.dtype)
        values = torch.stack([v.detach().reshape(()).to(dtype) for v in info.values()])
        return dict(zip(info, values.tolist()))
        return dict(zip(info, values))
