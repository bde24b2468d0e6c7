"""The three training stages of UniHPR (the paper's Fig. 2) as step modules.

Each stage wraps a ``UniHPR`` model and its contrastive criterion in one
``nn.Module`` whose ``forward(batch, generator=...)`` returns
``(loss, metrics)``; [`Trainer`][unihpr.train.loop.Trainer] optimises its
``trainable_parameters()``. A stage decides which sub-modules are frozen
(``requires_grad=False`` *and* kept in eval mode, so frozen BatchNorm
statistics and dropout do not move) and which losses are summed:

* [`AlignPoseStage`][] (step 1): 2D and 3D pose encoders trained with the
  pairwise InfoNCE between their embeddings; everything else frozen.
* [`AlignImageStage`][] (step 2): the image encoder trained against the
  frozen pose encoders with L_pair (three pairs) + alpha L_triplet.
* [`FinetuneStage`][] (task fine-tuning): every encoder and decoder trained
  with w_cl L_cl + w_3D L_3D + w_2D L_2D, the decoder losses averaged over the
  modalities the embeddings come from (with ``loss_balance="normalized"``
  each term is first divided by a running mean of itself). Without images
  (lifting only) the image encoder stays frozen and only 2D/3D embeddings
  are used.

Batches are dicts as produced by ``unihpr.data`` (``"pose2d"`` (B, J, 2)
pixels, ``"pose3d"`` (B, J, 3) metres, ``"image"`` (B, 3, H, W), optional
``"mask"`` (B, J)). A batch's ``"bbox"`` is not used: 2D poses are always
expressed in their own keypoints' box, in training as at inference (where a
user has keypoints but no person box), so nothing depends on a silhouette or
detector box or on the pixel frame of the 2D input.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from unihpr.modalities import MODALITIES, check_modalities
from unihpr.train.config import StageConfig


def build_criterion(config: StageConfig, num_modalities: int = 3) -> nn.Module:
    """The stage's ``unihpr.losses.ContrastiveLoss``, built from ``config.loss``.

    Every field of the [`LossConfig`][unihpr.train.LossConfig] reaches the
    loss: alpha, use_triplet, negatives (sampled or exact), the sampler by
    name, the number of negatives, the chunk size and the backend. The
    pairwise and the triplet term get their own ``LearnableTemperature``
    initialised at ``loss.tau_init`` and clamped to ``[tau_min, tau_max]``.
    The triplet temperature is a fixed float when the triplet term cannot be
    used (two modalities, ``use_triplet=False`` or ``alpha=0``): a learnable
    parameter that never receives a gradient would break DDP. Under
    ``torch.distributed`` the loss gathers negatives across ranks itself.
    """
    from unihpr.losses import (
        ContrastiveLoss,
        LearnableTemperature,
        PairInfoNCE,
        TripletInfoNCE,
        make_sampler,
    )

    cfg = config.loss

    def temp() -> nn.Module:
        return LearnableTemperature(init=cfg.tau_init, min=cfg.tau_min, max=cfg.tau_max)

    triplet_used = cfg.use_triplet and num_modalities == 3 and cfg.alpha > 0
    triplet = TripletInfoNCE(
        temp() if triplet_used else cfg.tau_init,
        sampler=make_sampler(cfg.sampler),
        num_negatives=cfg.num_negatives,
        negatives=cfg.negatives,
        chunk_size=cfg.chunk_size,
        backend=cfg.backend,
    )
    return ContrastiveLoss(PairInfoNCE(temp()), triplet, cfg.alpha, use_triplet=cfg.use_triplet)


def _default_target2d(pose2d: Tensor, bbox: Tensor | None, mask: Tensor | None) -> Tensor:
    from unihpr.geometry import normalize_pose2d

    return normalize_pose2d(pose2d, bbox, mask)[0]


def _decoder_loss(
    decoder: nn.Module,
    embedding: Tensor,
    source: str,
    target: Tensor,
    mask: Tensor | None,
    generator: torch.Generator | None,
) -> Tensor:
    # Diffusion decoders draw noise levels; route them through the stage's
    # generator (checkpointed) when the decoder accepts one.
    if "generator" in inspect.signature(decoder.loss).parameters:
        return decoder.loss(embedding, source, target, mask=mask, generator=generator)
    return decoder.loss(embedding, source, target, mask=mask)


def _check_batch(stage: str, batch: Any, keys: Iterable[str]) -> None:
    if not isinstance(batch, dict):
        raise TypeError(f"{stage}: a batch must be a dict of tensors, got {type(batch).__name__}")
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"{stage}: batch lacks {missing} (has {sorted(batch)})")


class Stage(nn.Module):
    """Base class: a model, a criterion, a set of frozen sub-modules.

    Args:
        model: A ``UniHPR`` (or anything with its ``embed(batch, modalities)`` method
            and ``image_encoder``, ``pose2d_encoder``, ``pose3d_encoder``,
            ``decoder3d``, ``decoder2d`` sub-modules).
        config: The stage's hyper-parameters.
        criterion: Contrastive loss; [`build_criterion`][] when omitted.
        num_modalities: Modalities the criterion sees (default: the class's).
    """

    #: The ``StageConfig.name`` of the stage.
    name = "stage"
    #: Sub-modules of the model that the stage freezes.
    frozen: tuple[str, ...] = ()
    #: Modalities the criterion sees (the triplet term needs three).
    num_modalities = 3

    def __init__(
        self,
        model: nn.Module,
        config: StageConfig,
        criterion: nn.Module | None = None,
        num_modalities: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, StageConfig):
            raise TypeError(f"config must be a StageConfig, got {type(config).__name__}")
        if config.name != self.name:
            raise ValueError(
                f"{type(self).__name__} needs a StageConfig named {self.name!r}, got {config.name!r}"
            )
        self.model = model
        self.config = config
        if criterion is None:
            criterion = build_criterion(config, num_modalities or self.num_modalities)
        self.criterion = criterion
        self._frozen: list[nn.Module] = []
        model.requires_grad_(True)
        self.freeze(*(getattr(model, name) for name in self.frozen))

    def freeze(self, *modules: nn.Module) -> None:
        """Stop gradients into ``modules`` and keep them in eval mode."""
        for m in modules:
            m.requires_grad_(False)
            m.eval()
            self._frozen.append(m)

    def train(self, mode: bool = True) -> Stage:
        """Set train/eval mode; frozen sub-modules always stay in eval mode."""
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (model and criterion temperatures)."""
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def after_step(self) -> None:
        """Clamp learnable temperatures back into range after an optimiser step."""
        for m in self.criterion.modules():
            if m is not self.criterion and hasattr(m, "project_"):
                m.project_()

    def embed(self, batch: dict[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
        """L2-normalised embeddings (B, D): ``model.embed(batch, modalities)``, errors naming the stage.

        The batch's ``"bbox"`` is dropped: 2D poses are expressed in their own
        keypoints' box (see the module docstring).
        """
        _check_batch(self.name, batch, modalities)
        return self.model.embed({k: v for k, v in batch.items() if k != "bbox"}, modalities)

    def configure_step(self, *, diagnostics: bool = True, validate: bool = True) -> None:
        """Choose what the next steps pay for (called by the training loop).

        Args:
            diagnostics: Compute the criterion's diagnostics (cosines,
                accuracies, λ1 means: read on the host, a GPU sync); the loop
                asks for them on logging steps only.
            validate: Let the criterion and the model's encoders check their
                inputs' values (zero or non-finite rows, index ranges: also
                host reads); the loop validates the first step of a run,
                switches it off, and back on when the run ends.
        """
        self.diagnostics = bool(diagnostics)
        for module in self.modules():  # the criterion and e.g. PoseEncoder
            if module is not self and isinstance(getattr(module, "validate", None), bool):
                module.validate = bool(validate)

    def contrastive(
        self, emb: dict[str, Tensor], generator: torch.Generator | None
    ) -> tuple[Tensor, dict[str, float]]:
        """L_cl of the given embeddings and, if enabled, the criterion's diagnostics."""
        if not getattr(self, "diagnostics", True):
            return self.criterion(**emb, generator=generator), {}
        loss, diag = self.criterion(**emb, generator=generator, return_diagnostics=True)
        return loss, dict(diag)


class AlignPoseStage(Stage):
    """Step 1: align the 2D and 3D pose encoders with the pairwise InfoNCE."""

    name = "align2d3d"
    frozen = ("image_encoder", "decoder3d", "decoder2d")
    num_modalities = 2

    def forward(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Returns ``(L_pair(pose2d, pose3d), diagnostics)``."""
        emb = self.embed(batch, ("pose2d", "pose3d"))
        return self.contrastive(emb, generator)


class AlignImageStage(Stage):
    """Step 2: align the image encoder to the frozen 2D/3D pose encoders."""

    name = "align_image"
    frozen = ("pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d")

    def forward(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Returns ``(L_pair (3 pairs) + alpha L_triplet, diagnostics)``."""
        emb = self.embed(batch, ("image",))
        with torch.no_grad():  # frozen: no activations kept for backward
            emb.update(self.embed(batch, ("pose2d", "pose3d")))
        return self.contrastive(emb, generator)


class FinetuneStage(Stage):
    """Task fine-tuning: encoders and decoders with L_cl + L_3D + L_2D.

    Args:
        model: The UniHPR model.
        config: Stage hyper-parameters (loss weights included).
        criterion: Contrastive loss; built from ``config`` when omitted.
        modalities: Modalities present in the batches; ``("pose2d", "pose3d")``
            trains the lifting branch alone (image encoder frozen).
        decode_from: Modalities whose embeddings the decoders are trained on
            (default: all of ``modalities``).
        target2d: ``(pose2d (B, J, 2) px, bbox (B, 4) | None, mask | None) ->
            (B, J, 2)`` target of ``decoder2d``; by default the model's
            bounding-box normalisation.

    A batch may carry extra 2D–3D pairs under ``"poses"`` (a dict with
    ``"pose2d"``, ``"pose3d"`` and optional ``"mask"``, e.g. fresh virtual views
    attached by [`WithPoses`][unihpr.data.virtual_cameras.WithPoses]): they add
    their pairwise InfoNCE to L_cl (averaged with the batch's) and their 2D and
    3D decoder losses to L_2D and L_3D, so the pose branch keeps learning from
    many views while the images are a fixed rendered set.
    """

    name = "finetune"

    def __init__(
        self,
        model: nn.Module,
        config: StageConfig,
        criterion: nn.Module | None = None,
        *,
        modalities: Sequence[str] = MODALITIES,
        decode_from: Sequence[str] | None = None,
        target2d: Callable[[Tensor, Tensor | None, Tensor | None], Tensor] | None = None,
    ) -> None:
        modalities = check_modalities(modalities, min_count=2)
        super().__init__(model, config, criterion, num_modalities=len(modalities))
        decode_from = tuple(decode_from) if decode_from is not None else modalities
        if not decode_from or any(m not in modalities for m in decode_from):
            raise ValueError(
                f"decode_from must be a non-empty subset of modalities {modalities}, got {decode_from}"
            )
        self.modalities = modalities
        self.decode_from = decode_from
        self.target2d = target2d or _default_target2d
        if "image" not in modalities:
            self.freeze(model.image_encoder)
        # Running means of (L_cl, L_3D, L_2D) for loss_balance="normalized"; buffers,
        # so that they are checkpointed with the stage and a resume is exact.
        self.register_buffer("loss_means", torch.ones(3, dtype=torch.float64))
        self.register_buffer("loss_mean_steps", torch.zeros((), dtype=torch.long))

    #: Decay of the running means of the normalised loss balance (~100-step memory).
    mean_decay = 0.99

    def balance(self, terms: Tensor) -> Tensor:
        """Weights of (L_cl, L_3D, L_2D) under ``config.loss_balance``: (3,) -> (3,).

        ``"fixed"``: the configured weights. ``"normalized"``: the weights
        divided by bias-corrected running means of the detached terms (updated
        with ``terms`` in training mode), so ``weight * term / mean`` is about
        ``weight`` whatever the units of the term.
        """
        cfg = self.config
        w = torch.tensor(
            [cfg.contrastive_weight, cfg.loss_3d_weight, cfg.loss_2d_weight],
            dtype=terms.dtype, device=terms.device,
        )  # fmt: skip
        if cfg.loss_balance == "fixed":
            return w
        if self.training:
            with torch.no_grad():
                value = terms.detach().to(self.loss_means.dtype)
                if dist.is_available() and dist.is_initialized():
                    dist.all_reduce(value)
                    value /= dist.get_world_size()
                d = self.mean_decay
                # EMA started at 0, bias-corrected (Adam-style) so step 1 gives the value
                # itself; the step count stays on the device (no host sync per step).
                n = (self.loss_mean_steps + 1).to(value.dtype)
                raw = self.loss_means * (1 - d ** (n - 1))  # undo the last correction
                raw = d * raw + (1 - d) * value
                self.loss_means.copy_(raw / (1 - d**n))
                self.loss_mean_steps.add_(1)
        return w / self.loss_means.to(terms.dtype).clamp_min(1e-12)

    def _decoder_terms(
        self,
        batch: dict[str, Tensor],
        emb: dict[str, Tensor],
        sources: Sequence[str],
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """(L_3D, L_2D) of ``batch``, averaged over the ``sources`` embeddings."""
        mask = batch.get("mask")
        target2d = self.target2d(batch["pose2d"], None, mask)
        d3, d2 = self.model.decoder3d, self.model.decoder2d
        l3d = torch.stack(
            [_decoder_loss(d3, emb[s], s, batch["pose3d"], mask, generator) for s in sources]
        ).mean()
        l2d = torch.stack(
            [_decoder_loss(d2, emb[s], s, target2d, mask, generator) for s in sources]
        ).mean()
        return l3d, l2d

    def forward(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Returns ``(w_cl L_cl + w_3D L_3D + w_2D L_2D, metrics)`` (see [`balance`][])."""
        emb = self.embed(batch, self.modalities)
        l_cl, metrics = self.contrastive(emb, generator)
        l3d, l2d = self._decoder_terms(batch, emb, self.decode_from, generator)
        extra = batch.get("poses")
        if extra is not None:
            pose_modalities = ("pose2d", "pose3d")
            pemb = self.embed(extra, pose_modalities)
            p_cl, _ = self.contrastive(pemb, generator)
            sources = tuple(s for s in self.decode_from if s in pose_modalities) or ("pose2d",)
            p3d, p2d = self._decoder_terms(extra, pemb, sources, generator)
            l_cl, l3d, l2d = (l_cl + p_cl) / 2, (l3d + p3d) / 2, (l2d + p2d) / 2
        terms = torch.stack([l_cl, l3d, l2d])
        loss = (self.balance(terms.detach()) * terms).sum()
        metrics.update({"loss/cl": l_cl.detach(), "loss/3d": l3d.detach(), "loss/2d": l2d.detach()})
        return loss, metrics


STAGES: dict[str, type[Stage]] = {
    AlignPoseStage.name: AlignPoseStage,
    AlignImageStage.name: AlignImageStage,
    FinetuneStage.name: FinetuneStage,
}


def make_stage(
    model: nn.Module, config: StageConfig, criterion: nn.Module | None = None, **kwargs: Any
) -> Stage:
    """Build the stage module named by ``config.name`` (extra kwargs go to fine-tuning)."""
    cls = STAGES[config.name]
    return cls(model, config, criterion, **kwargs)
