"""The UniHPR model: three encoders into one embedding space, 2D and 3D decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr.models._validation import check_float, check_shape
from unihpr.models.config import UniHPRConfig
from unihpr.models.decoders import MLPDecoder, PoseDecoder, TransformerDecoder
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.image_encoder import ImageEncoder
from unihpr.models.pose_encoder import PoseEncoder
from unihpr.models.schedules import make_schedule

__all__ = ["UniHPR", "build_decoder", "slerp"]


def build_decoder(config: UniHPRConfig, dims: int) -> PoseDecoder:
    """Decoder of type ``config.decoder`` for ``dims``-D poses."""
    common = {
        "num_joints": config.num_joints,
        "dims": dims,
        "embed_dim": config.embed_dim,
        "use_representation_token": config.use_representation_token,
    }
    if config.decoder == "mlp":
        return MLPDecoder(
            **common, hidden=config.decoder_width, depth=config.decoder_depth,
            dropout=config.dropout,
        )  # fmt: skip
    if config.decoder == "transformer":
        return TransformerDecoder(
            **common, width=config.decoder_width, depth=config.decoder_depth,
            num_heads=config.decoder_heads, dropout=config.dropout,
        )  # fmt: skip
    return DiffusionDecoder(
        **common,
        width=config.decoder_width,
        depth=config.decoder_depth,
        num_heads=config.decoder_heads,
        dropout=config.dropout,
        schedule=make_schedule(config.diffusion_schedule, config.diffusion_train_steps),
        num_sampling_steps=config.diffusion_sampling_steps,
        num_hypotheses=config.num_hypotheses,
        aggregation=config.hypothesis_aggregation,
        target_scale=config.target_scale_3d if dims == 3 else 1.0,
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

    def forward(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        pose3d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Embed whichever modalities are given.

        Returns:
            Dict with keys among "image", "pose2d", "pose3d", each (B, D) L2-normalised.
        """
        out: dict[str, Tensor] = {}
        if image is not None:
            out["image"] = self.encode_image(image)
        if pose2d is not None:
            out["pose2d"] = self.encode_pose2d(pose2d, bbox=bbox, mask=mask)
        if pose3d is not None:
            out["pose3d"] = self.encode_pose3d(pose3d, mask=mask)
        if not out:
            raise ValueError("pass at least one of image=, pose2d=, pose3d=")
        return out

    # ---------------------------------------------------------------- estimation
    def _embed_one(
        self,
        image: Tensor | None,
        pose2d: Tensor | None,
        pose3d: Tensor | None,
        bbox: Tensor | None,
        mask: Tensor | None,
    ) -> tuple[Tensor, str]:
        given = [
            n
            for n, v in (("image", image), ("pose2d", pose2d), ("pose3d", pose3d))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(f"pass exactly one of image=, pose2d=, pose3d=; got {given or 'none'}")
        if image is not None:
            return self.encode_image(image), "image"
        if pose2d is not None:
            return self.encode_pose2d(pose2d, bbox=bbox, mask=mask), "pose2d"
        return self.encode_pose3d(pose3d, mask=mask), "pose3d"

    @torch.no_grad()
    def estimate_3d(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        pose3d: Tensor | None = None,
        **decoder_kwargs: Any,
    ) -> Tensor:
        """Root-relative 3D pose (B, J, 3) in metres from images or 2D poses.

        Args:
            image: (B, 3, H, W) in [0, 1], or
            pose2d: (B, J, 2) pixels (with optional ``bbox`` (B, 4) and ``mask`` (B, J)), or
            pose3d: (B, J, 3) (reconstruction through the embedding).
            **decoder_kwargs: Passed to a diffusion decoder (``num_steps``, ``num_hypotheses``,
                ``aggregation``, ``generator``).
        """
        emb, source = self._embed_one(image, pose2d, pose3d, bbox, mask)
        return self.decoder3d(emb, source, **decoder_kwargs)

    @torch.no_grad()
    def estimate_2d(
        self,
        image: Tensor | None = None,
        pose2d: Tensor | None = None,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        pose3d: Tensor | None = None,
        **decoder_kwargs: Any,
    ) -> Tensor:
        """Box-normalised 2D pose (B, J, 2) (see ``denormalize_pose2d`` for pixels).

        Same inputs as [`estimate_3d`][].
        """
        emb, source = self._embed_one(image, pose2d, pose3d, bbox, mask)
        return self.decoder2d(emb, source, **decoder_kwargs)

    # ---------------------------------------------------------------- retrieval
    @staticmethod
    def retrieve(queries: Tensor, gallery: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
        """Cosine top-k retrieval.

        Args:
            queries: (Q, D).
            gallery: (G, D).
            k: Number of neighbours, 1 <= k <= G.

        Returns:
            ``(indices (Q, k) long, scores (Q, k))``, best first.
        """
        queries = check_float("queries", queries)
        gallery = check_float("gallery", gallery)
        check_shape("queries", queries, (None, None), "(Q, D)")
        check_shape("gallery", gallery, (None, queries.shape[1]), f"(G, D={queries.shape[1]})")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= gallery.shape[0]:
            raise ValueError(f"k must be an int in [1, G={gallery.shape[0]}], got {k!r}")
        scores = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
        top = scores.topk(k, dim=-1)
        return top.indices, top.values

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
        pose3d_a = check_float("pose3d_a", pose3d_a)
        pose3d_b = check_float("pose3d_b", pose3d_b)
        if pose3d_a.shape != pose3d_b.shape:
            raise ValueError(
                f"pose3d_a and pose3d_b must have the same shape, got "
                f"{tuple(pose3d_a.shape)} and {tuple(pose3d_b.shape)}"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps must be an int >= 2, got {steps!r}")
        unbatched = pose3d_a.ndim == 2
        if unbatched:
            pose3d_a, pose3d_b = pose3d_a[None], pose3d_b[None]
        ea, eb = self.encode_pose3d(pose3d_a), self.encode_pose3d(pose3d_b)
        w = torch.linspace(0, 1, steps, device=ea.device)
        path = slerp(ea, eb, w)  # (S, B, D)
        s, b, d = path.shape
        poses = self.decoder3d(path.reshape(s * b, d), "pose3d", **decoder_kwargs)
        poses = poses.view(s, b, *poses.shape[1:])
        return poses[:, 0] if unbatched else poses

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` to ``directory``."""
        from unihpr.models.hub import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> UniHPR:
        """Load from a local folder or the Hub; see `unihpr.models.hub.from_pretrained`."""
        from unihpr.models.hub import from_pretrained

        return from_pretrained(name_or_path, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hugging Face Hub; see `unihpr.models.hub.push_to_hub`."""
        from unihpr.models.hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    def num_parameters(self) -> int:
        """Total number of parameters."""
        return sum(p.numel() for p in self.parameters())
