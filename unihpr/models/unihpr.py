"""The UniHPR model: three encoders into one embedding space, 2D and 3D decoders."""

from __future__ import annotations

import importlib.resources
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr._validate import check_bool, check_choice, check_int, check_same, check_tensor
from unihpr.modalities import MODALITIES, check_modalities
from unihpr.models import hub
from unihpr.models.config import AGGREGATIONS, INFERENCE_FIELDS, UniHPRConfig
from unihpr.models.decoders import MLPDecoder, PoseDecoder, TransformerDecoder
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.image_encoder import ImageEncoder
from unihpr.models.pose_encoder import PoseEncoder
from unihpr.models.registry import find_entry, locate_weights
from unihpr.models.sampling import aggregate_hypotheses, sample_poses
from unihpr.models.schedules import make_schedule

__all__ = ["UniHPR", "build_decoder", "count_parameters", "slerp"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_decoder(config: UniHPRConfig, dims: int) -> PoseDecoder:
    """Decoder of type ``config.decoder`` for ``dims``-D poses."""
    c = config
    common = {"num_joints": c.num_joints, "dims": dims, "embed_dim": c.embed_dim,
              "width": c.decoder_width, "depth": c.decoder_depth, "dropout": c.dropout,
              "use_representation_token": c.use_representation_token}  # fmt: skip
    if c.decoder == "mlp":
        return MLPDecoder(**common)
    if c.decoder == "transformer":
        return TransformerDecoder(**common, num_heads=c.decoder_heads)
    schedule = make_schedule(c.diffusion_schedule, c.diffusion_train_steps)
    scale = c.target_scale_3d if dims == 3 else 1.0
    return DiffusionDecoder(
        **common, num_heads=c.decoder_heads, schedule=schedule, target_scale=scale
    )


def _check_matches_entry(config: UniHPRConfig, expected: UniHPRConfig, path: Path) -> None:
    got, want = config.to_dict(), expected.to_dict()
    diff = sorted(k for k in want if k not in INFERENCE_FIELDS and got.get(k) != want[k])
    if diff:
        detail = ", ".join(f"{k}: file {got.get(k)!r} vs registry {want[k]!r}" for k in diff[:5])
        raise hub.CheckpointError(
            f"{path} does not match the registered configuration {expected.name!r}: {detail}"
        )


def slerp(a: Tensor, b: Tensor, weights: Tensor) -> Tensor:
    """Spherical linear interpolation between unit vectors.

    Args:
        a: (B, D) unit vectors.
        b: (B, D) unit vectors.
        weights: (S,) interpolation weights in [0, 1].

    Returns:
        (S, B, D) unit vectors; falls back to normalised linear interpolation where
        ``a`` and ``b`` are (nearly) parallel, where the slerp formula is 0/0.
    """
    dot = (a * b).sum(-1).clamp(-1.0, 1.0)  # (B,)
    omega = torch.arccos(dot)
    sin_omega = torch.sin(omega)
    w = weights.to(a.dtype)[:, None, None]  # (S, 1, 1)
    near = (sin_omega.abs() < 1e-6)[None, :, None]
    safe = torch.where(sin_omega.abs() < 1e-6, torch.ones_like(sin_omega), sin_omega)
    coef_a = torch.sin((1 - w) * omega[None, :, None]) / safe[None, :, None]
    coef_b = torch.sin(w * omega[None, :, None]) / safe[None, :, None]
    sph = coef_a * a[None] + coef_b * b[None]
    lin = F.normalize((1 - w) * a[None] + w * b[None], dim=-1)
    return torch.where(near, lin, sph)


class UniHPR(nn.Module):
    """Image, 2D-pose and 3D-pose encoders sharing one embedding space, plus decoders.

    Args:
        config: Architecture.

    Attributes:
        image_encoder, pose2d_encoder, pose3d_encoder: Encoders -> (B, D).
        decoder3d: Embedding -> root-relative 3D pose (B, J, 3), metres.
        decoder2d: Embedding -> box-normalised 2D pose (B, J, 2).
    """

    def __init__(self, config: UniHPRConfig) -> None:
        super().__init__()
        if not isinstance(config, UniHPRConfig):
            raise TypeError(f"config must be a UniHPRConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.image_encoder = ImageEncoder(c.image_backbone, c.embed_dim, c.image_size)
        pose_kwargs: dict[str, Any] = {
            "num_joints": c.num_joints,
            "embed_dim": c.embed_dim,
            "width": c.pose_width,
            "depth": c.pose_depth,
            "num_heads": c.pose_heads,
            "mlp_ratio": c.pose_mlp_ratio,
            "dropout": c.dropout,
            "bbox_reference": c.bbox_reference,
            "root_joint": c.root_joint,
            "attend_to_masked": c.pose_attend_to_masked,
            "readout": c.pose_readout,
            "bbox_features": c.bbox_features,
        }
        self.pose2d_encoder = PoseEncoder(dims=2, **pose_kwargs)
        self.pose3d_encoder = PoseEncoder(dims=3, **pose_kwargs)
        self.decoder3d = build_decoder(c, 3)
        self.decoder2d = build_decoder(c, 2)

    # ---------------------------------------------------------------- encoders
    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Images (B, 3, H, W) float in [0, 1] -> embeddings (B, D)."""
        return self.image_encoder(images, normalize=normalize)

    def encode_pose2d(
        self,
        pose2d: Tensor,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        normalize: bool = True,
    ) -> Tensor:
        """2D poses (B, J, 2) pixels, boxes (B, 4) x0, y0, x1, y1, mask (B, J) -> (B, D)."""
        return self.pose2d_encoder(pose2d, bbox=bbox, mask=mask, normalize=normalize)

    def encode_pose3d(
        self, pose3d: Tensor, mask: Tensor | None = None, normalize: bool = True
    ) -> Tensor:
        """Root-relative 3D poses (B, J, 3) metres, mask (B, J) -> (B, D)."""
        return self.pose3d_encoder(pose3d, mask=mask, normalize=normalize)

    def embed(
        self,
        batch: Mapping[str, Tensor],
        modalities: Sequence[str] | None = None,
        *,
        normalize: bool = True,
    ) -> dict[str, Tensor]:
        """Embeddings of the requested modalities of a batch.

        The one place where a modality name chooses its encoder: the model's
        ``forward``, the training stages and the evaluation all call it.

        Args:
            batch: Dict as produced by ``unihpr.data``: ``"image"`` (B, 3, H, W) in
                [0, 1], ``"pose2d"`` (B, J, 2) pixels with optional ``"bbox"`` (B, 4),
                ``"pose3d"`` (B, J, 3) metres, optional ``"mask"`` (B, J) bool.
            modalities: Names among `MODALITIES`; default:
                every one present in ``batch``.
            normalize: L2-normalise the embeddings.

        Returns:
            ``{modality: (B, D)}`` in the order of ``modalities``.

        Examples:
            >>> import torch
            >>> from unihpr.models import create_model
            >>> model = create_model("unihpr-tiny")
            >>> batch = {"pose3d": torch.randn(4, 15, 3) * 0.3}
            >>> model.embed(batch)["pose3d"].shape
            torch.Size([4, 128])
        """
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
        if modalities is None:
            modalities = tuple(m for m in MODALITIES if batch.get(m) is not None)
        modalities = check_modalities(modalities)
        missing = [m for m in modalities if batch.get(m) is None]
        if missing:
            raise ValueError(f"batch lacks {missing} (has {sorted(batch)})")
        mask = batch.get("mask")
        out: dict[str, Tensor] = {}
        for m in modalities:
            if m == "image":
                out[m] = self.encode_image(batch["image"], normalize=normalize)
            elif m == "pose2d":
                out[m] = self.encode_pose2d(
                    batch["pose2d"], bbox=batch.get("bbox"), mask=mask, normalize=normalize
                )
            else:
                out[m] = self.encode_pose3d(batch["pose3d"], mask=mask, normalize=normalize)
        return out

    def forward(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        pose3d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Embed whichever modalities are given (see [`embed`][UniHPR.embed]).

        Returns:
            Dict with keys among "image", "pose2d", "pose3d", each (B, D) L2-normalised.
        """
        batch = {"image": image, "pose2d": pose2d, "pose3d": pose3d, "bbox": bbox, "mask": mask}
        given = [m for m in MODALITIES if batch[m] is not None]
        if not given:
            raise ValueError("pass at least one of image=, pose2d=, pose3d=")
        return self.embed(batch, given)

    # ---------------------------------------------------------------- estimation
    def _embed_one(
        self,
        image: Tensor | None,
        pose2d: Tensor | None,
        pose3d: Tensor | None,
        bbox: Tensor | None,
        mask: Tensor | None,
    ) -> tuple[Tensor, str]:
        given = [m for m, x in zip(MODALITIES, (image, pose2d, pose3d)) if x is not None]
        if len(given) != 1:
            raise ValueError(f"pass exactly one of image=, pose2d=, pose3d=; got {given or 'none'}")
        return self(image, pose2d, pose3d, bbox, mask)[given[0]], given[0]

    def decode(
        self,
        embedding: Tensor,
        source: str,
        *,
        dims: int = 3,
        num_steps: int | None = None,
        num_hypotheses: int | None = None,
        aggregation: str | None = None,
        generator: torch.Generator | None = None,
        return_hypotheses: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Pose estimate from embeddings: where hypotheses are drawn and aggregated.

        A regression decoder (MLP, Transformer) gives one pose per input. A
        diffusion decoder draws ``num_hypotheses`` samples with DDIM from seeded
        noise ([`sample_poses`][sample_poses]) and combines
        them per joint ([`aggregate_hypotheses`][aggregate_hypotheses]);
        the ground truth is never consulted.

        Args:
            embedding: (B, D) embeddings.
            source: The modality they came from ("image", "pose2d", "pose3d").
            dims: 3 (``decoder3d``: root-relative metres) or 2 (``decoder2d``:
                box-normalised).
            num_steps: DDIM steps (default ``config.diffusion_sampling_steps``).
            num_hypotheses: Samples per input (default ``config.num_hypotheses``); a
                regression decoder accepts only 1.
            aggregation: "mean" or "median" (default ``config.hypothesis_aggregation``).
            generator: RNG of the starting noise (default: a fixed seed, so the
                estimate is a deterministic function of the input).
            return_hypotheses: Also return the samples (B, H, J, dims).

        Returns:
            Poses (B, J, dims), and with ``return_hypotheses`` also (B, H, J, dims).
        """
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        decoder = self.decoder3d if dims == 3 else self.decoder2d
        c = self.config
        method = c.hypothesis_aggregation if aggregation is None else aggregation
        if isinstance(decoder, DiffusionDecoder):
            hyps = sample_poses(
                decoder,
                embedding,
                source,
                num_steps=c.diffusion_sampling_steps if num_steps is None else num_steps,
                num_hypotheses=c.num_hypotheses if num_hypotheses is None else num_hypotheses,
                generator=generator,
            )
            pose = aggregate_hypotheses(hyps, method)
        else:
            if num_hypotheses not in (None, 1):
                raise ValueError(
                    f"num_hypotheses={num_hypotheses!r}: a {c.decoder} decoder gives one pose "
                    "per input; only diffusion decoders draw several"
                )
            check_choice("aggregation", method, AGGREGATIONS)
            pose = decoder(embedding, source)
            hyps = pose[:, None]
        return (pose, hyps) if return_hypotheses else pose

    @torch.no_grad()
    def estimate_3d(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        pose3d: Tensor | None = None,
        **decode_kwargs: Any,
    ) -> Tensor:
        """Root-relative 3D pose (B, J, 3) in metres from images or 2D poses.

        Args:
            image: (B, 3, H, W) in [0, 1], or
            pose2d: (B, J, 2) pixels (with optional ``bbox`` (B, 4) and ``mask`` (B, J)), or
            pose3d: (B, J, 3) (reconstruction through the embedding).
            **decode_kwargs: Passed to [`decode`][UniHPR.decode]
                (``num_steps``, ``num_hypotheses``, ``aggregation``, ``generator``).
        """
        emb, source = self._embed_one(image, pose2d, pose3d, bbox, mask)
        return self.decode(emb, source, dims=3, **decode_kwargs)

    @torch.no_grad()
    def estimate_2d(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        pose3d: Tensor | None = None,
        **decode_kwargs: Any,
    ) -> Tensor:
        """Box-normalised 2D pose (B, J, 2) (see ``denormalize_pose2d`` for pixels).

        Same inputs as [`estimate_3d`][UniHPR.estimate_3d].
        """
        emb, source = self._embed_one(image, pose2d, pose3d, bbox, mask)
        return self.decode(emb, source, dims=2, **decode_kwargs)

    # ---------------------------------------------------------------- retrieval
    @staticmethod
    def retrieve(queries: Tensor, gallery: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        """Cosine top-k retrieval (via ``unihpr.metrics.retrieve_nearest``).

        Args:
            queries: (Q, D).
            gallery: (G, D).
            k: Number of neighbours, 1 <= k <= G.

        Returns:
            ``(indices (Q, k) long, scores (Q, k))``, best first; scores in the queries' dtype.
        """
        from unihpr.metrics import retrieve_nearest

        check_tensor("queries", queries, floating=True)
        check_tensor("gallery", gallery, floating=True)
        idx, scores = retrieve_nearest(queries, gallery, k=k, return_scores=True)
        return idx, scores.to(queries.dtype)

    # ---------------------------------------------------------------- interpolation
    @torch.no_grad()
    def interpolate(
        self, pose3d_a: Tensor, pose3d_b: Tensor, steps: int = 8, **decoder_kwargs: Any
    ) -> Tensor:
        """Decode poses along the great circle between two 3D-pose embeddings (paper Fig. 5).

        Args:
            pose3d_a: (B, J, 3) or (J, 3).
            pose3d_b: Same shape as ``pose3d_a``.
            steps: Number of poses, endpoints included (>= 2).

        Returns:
            (steps, B, J, 3), or (steps, J, 3) for unbatched inputs.
        """
        check_tensor("pose3d_a", pose3d_a, floating=True)
        check_tensor("pose3d_b", pose3d_b, floating=True)
        check_same("shape", {"pose3d_a": pose3d_a, "pose3d_b": pose3d_b})
        check_int("steps", steps, low=2)
        unbatched = pose3d_a.ndim == 2
        if unbatched:
            pose3d_a, pose3d_b = pose3d_a[None], pose3d_b[None]
        ea, eb = self.encode_pose3d(pose3d_a), self.encode_pose3d(pose3d_b)
        w = torch.linspace(0, 1, steps, device=ea.device)
        path = slerp(ea, eb, w)  # (S, B, D)
        s, b, d = path.shape
        poses = self.decode(path.reshape(s * b, d), "pose3d", dims=3, **decoder_kwargs)
        poses = poses.view(s, b, *poses.shape[1:])
        return poses[:, 0] if unbatched else poses

    # ---------------------------------------------------------------- persistence
    config_class = UniHPRConfig

    def save_pretrained(self, directory: str | os.PathLike, **kwargs: Any) -> Path | str:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` to ``directory``.

        As ``huggingface_hub.PyTorchModelHubMixin.save_pretrained``: keywords
        ``model_card_kwargs``, ``push_to_hub`` (then upload the files to ``repo_id``,
        default the folder's name, and return the commit URL) and the upload
        keywords; see [`hub.save_pretrained`][hub.save_pretrained].
        """
        return hub.save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        map_location: Any = "cpu",
        **overrides: Any,
    ) -> UniHPR:
        """Load a model from a local folder, a registered name or a Hub repo id.

        Resolution order: an existing folder; a registered name (weights shipped in
        a package first, then its Hub id); a ``"org/name"`` Hub repo id (see
        `locate_weights`). Hub files are fetched with ``hf_hub_download``, which
        takes the keywords of ``PyTorchModelHubMixin.from_pretrained``; they come
        from the local cache when ``HF_HUB_OFFLINE=1``, with
        ``local_files_only=True``, or when the Hub cannot be reached (one request
        without retries decides). Before any module is allocated, ``config.json``
        is validated and the weights' shapes are compared with it.

        Args:
            name_or_path: Folder, registered name (e.g. ``"unihpr-w48"``) or repo id.
            revision: Hub revision (branch, tag or commit).
            token: Hub token (default: the logged-in user's, see ``hf auth login``).
            cache_dir: Hub cache folder (default: ``HF_HUB_CACHE``).
            local_files_only: Use only the local Hub cache.
            force_download: Download even if the files are cached.
            map_location: Device for the loaded model.
            **overrides: Inference settings to change (``num_hypotheses``,
                ``diffusion_sampling_steps``, ``hypothesis_aggregation``, ``name``).

        Returns:
            The model in eval mode.

        Raises:
            PretrainedNotFoundError: Nothing found (one line saying where it looked).
            CheckpointError: Files found but invalid (naming the file), weights of
                another configuration, or non-finite weights.
            ValueError: An override of an architecture field.
        """
        UniHPRConfig.check_inference_overrides(overrides)
        location = locate_weights(name_or_path)
        check_bool("local_files_only", local_files_only)
        check_bool("force_download", force_download)
        hub_kwargs = {"revision": revision, "token": token, "cache_dir": cache_dir}
        config_path, weights_path = hub.fetch_files(
            location, local_files_only=local_files_only, force_download=force_download, **hub_kwargs
        )
        entry = find_entry(name_or_path)

        def configure(config: UniHPRConfig) -> UniHPRConfig:
            if entry is not None:  # weights of a registered name must fit its entry
                _check_matches_entry(config, entry.config, config_path)
            return config.for_inference(**overrides)

        return hub.load_model(
            cls, config_path, weights_path, configure=configure, map_location=map_location
        )

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face Hub; see `push_to_hub`."""
        return hub.push_to_hub(self, repo_id, **kwargs)

    def num_parameters(self) -> int:
        """Total number of parameters."""
        return count_parameters(self)

    def model_card(self, *, license: str = "unknown", datasets: Sequence[str] = ()) -> str:
        """A Markdown model card describing the configuration and size (``README.md``).

        Args:
            license: License id of the weights for the card's metadata (Hub ids such
                as ``"apache-2.0"``); ``"unknown"`` until you say.
            datasets: Ids of the training data for the card's metadata.
        """
        if not isinstance(license, str) or not all(isinstance(d, str) for d in datasets):
            raise TypeError(
                f"license must be a str and datasets strs, got {license!r}, {datasets!r}"
            )
        config = self.config.to_dict()
        parts = ("image_encoder", "pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d")
        template = importlib.resources.files("unihpr.models").joinpath("model_card.md")
        return template.read_text(encoding="utf-8").format(
            **config,
            license=json.dumps(license),
            datasets=json.dumps(list(datasets)),
            parameters=self.num_parameters(),
            rows="\n".join(f"| {k} | {count_parameters(getattr(self, k)):,} |" for k in parts),
            config_json=json.dumps(config, indent=2),
        )
