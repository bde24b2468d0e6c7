"""The paper's full contrastive objective L_cl = L_pair + α L_triplet (eq. 4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihpr._validate import check_bool, check_generator, check_real
from unihpr.losses._preamble import similarities
from unihpr.losses.pair import PairInfoNCE, rows_info_nce
from unihpr.losses.triplet import TripletInfoNCE
from unihpr.modalities import MODALITIES

MAX_ALPHA = 1e4
"""The largest α accepted: the paper uses 1, and a larger weight would only
bury the pairwise terms (and, far enough, overflow the loss)."""


class ContrastiveLoss(nn.Module):
    """L_cl = Σ_pairs L_pair + α · L_triplet over image, 2D and 3D embeddings.

    Composed of a [`PairInfoNCE`][] (the three pairwise terms) and a
    [`TripletInfoNCE`][] (the triplet term): configure each one itself. The
    three cosine matrices S12, S13, S23 are computed once and shared by the
    pairwise terms and the triplet term, whose logits are read out of them;
    the triplet term's forward and backward are fused, so it adds only
    elementwise work to the pairwise losses.

    The shared preamble (``gather``, ``distributed``, ``validate`` of the
    inputs, the ``queue``) is the pair loss's; the triplet loss must agree
    on ``gather`` and ``distributed`` and have no queue of its own (or the
    same one). With only two modalities given (the paper's step 1 aligns 2D
    and 3D), the loss is that pair's InfoNCE alone.

    Embeddings are L2-normalised inside, invariantly to their scale: each row
    is first divided by its largest absolute entry, so rows of any finite,
    non-zero norm (1e-30 as well as 1e30) give the same loss; exactly zero
    rows are rejected (with ``validate``).

    Args:
        pair: The pairwise loss, shared by the three pairs; default
            ``PairInfoNCE(0.07)``.
        triplet: The triplet loss; default ``TripletInfoNCE(0.2)`` (sampled
            negatives, uniform sampler, B − 1 per anchor).
        alpha: Weight α of the triplet term, in [0, [`MAX_ALPHA`][unihpr.losses.contrastive.MAX_ALPHA]]
            (paper: 1).
        use_triplet: False gives the "L_pair only" ablation (as ``alpha=0``).

    Attributes:
        validate: Check the inputs' values (zero/non-finite rows, index
            ranges, a diverged temperature), a host synchronisation per call;
            reads ``pair.validate``, and setting it sets both losses'. The
            training loop validates its first step and then sets it to False.

    Examples:
        >>> loss_fn = ContrastiveLoss(
        ...     pair=PairInfoNCE(LearnableTemperature(init=1 / 5, min=1 / 10)),
        ...     triplet=TripletInfoNCE(LearnableTemperature(init=1 / 5, min=1 / 10)),
        ...     alpha=1.0,
        ... )
        >>> img, p2d, p3d = (torch.randn(32, 128) for _ in range(3))
        >>> loss, info = loss_fn(img, p2d, p3d, return_diagnostics=True)
    """

    def __init__(
        self,
        pair: PairInfoNCE | None = None,
        triplet: TripletInfoNCE | None = None,
        alpha: float = 1.0,
        *,
        use_triplet: bool = True,
    ) -> None:
        super().__init__()
        owner = "ContrastiveLoss"
        for name, module, cls in (
            ("pair", pair, PairInfoNCE),
            ("triplet", triplet, TripletInfoNCE),
        ):
            if module is not None and not isinstance(module, cls):
                raise TypeError(
                    f"{owner}: {name} must be a {cls.__name__} or None, got {type(module).__name__}"
                )
        self.pair = PairInfoNCE() if pair is None else pair
        self.triplet = TripletInfoNCE() if triplet is None else triplet
        for attr in ("gather", "distributed"):
            if getattr(self.triplet, attr) != getattr(self.pair, attr):
                raise ValueError(
                    f"{owner}: pair.{attr}={getattr(self.pair, attr)!r} but triplet.{attr}="
                    f"{getattr(self.triplet, attr)!r}; the terms share one gathered batch"
                )
        if self.triplet.queue is not None and self.triplet.queue is not self.pair.queue:
            raise ValueError(
                f"{owner}: the triplet loss has a queue of its own; give the queue to the pair "
                "loss, whose preamble both terms share"
            )
        self.alpha = check_real("alpha", alpha, low=0.0, high=MAX_ALPHA, owner=owner)
        self.use_triplet = check_bool("use_triplet", use_triplet, owner=owner)

    @property
    def validate(self) -> bool:
        return self.pair.validate

    @validate.setter
    def validate(self, value: bool) -> None:
        self.pair.validate = self.triplet.validate = check_bool(
            "validate", value, owner="ContrastiveLoss"
        )

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
        check_generator(generator, owner=owner)
        given = {name: x for name, x in zip(MODALITIES, (image, pose2d, pose3d)) if x is not None}
        if len(given) < 2:
            raise ValueError(
                f"{owner}: needs at least two of image, pose2d, pose3d; got {sorted(given) or 'none'}"
            )
        queued = 0 if self.pair.queue is None else len(self.pair.queue)  # appended by prepare
        prep = self.pair.prepare(given, labels)
        names = list(given)
        sims = {(names[m], names[n]): s for (m, n), s in similarities(prep.embeddings).items()}
        tau = self.pair.tau(prep.embeddings[0])
        opts = {"labels": prep.labels, "label_smoothing": self.pair.label_smoothing}
        loss_pair = torch.stack(
            [rows_info_nce(s, prep.anchors, tau, **opts) for s in sims.values()]
        )
        loss = loss_pair = loss_pair.sum()
        loss_triplet = lam = None
        if self.use_triplet and len(given) == 3 and self.alpha > 0:
            loss_triplet, lam = self.triplet.from_similarities(
                *sims.values(), generator=generator, anchors=prep.anchors, labels=prep.labels
            )
            loss = loss + self.alpha * loss_triplet
        if not return_diagnostics:
            return loss
        # Diagnostics of the (gathered) batch, not of the queue.
        B = prep.embeddings[0].shape[0] - queued
        sims = {key: s[:B, :B] for key, s in sims.items()}
        labels = None if prep.labels is None else prep.labels[:B]
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
