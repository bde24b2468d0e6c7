"""Pose decoders sharing one interface: ``decoder(embedding, source) -> pose``.

``source`` names the representation the embedding came from ("image",
"pose2d", "pose3d"); a learned representation token for it is added to the
embedding (paper §III-A and Table V). ``use_representation_token=False``
turns it off for ablations.

Outputs: root-relative 3D poses (B, J, 3) in metres for ``dims=3``; 2D poses
(B, J, 2) in the bounding-box frame of
[`unihpr.geometry.normalize_pose2d`][] for ``dims=2``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihpr._validate import check_choice, check_mask, check_shape, check_tensor
from unihpr.modalities import MODALITIES
from unihpr.models.pose_encoder import transformer

__all__ = ["MLPDecoder", "PoseDecoder", "TransformerDecoder", "masked_pose_mse"]


def masked_pose_mse(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over visible joints of the squared Euclidean joint error.

    Args:
        pred: (B, J, C).
        target: (B, J, C); coordinates of invisible joints are ignored (may be NaN).
        mask: (B, J) bool, True = visible; ``None`` = all.

    Returns:
        Scalar; 0 (with a gradient path) when no joint is visible.
    """
    if mask is None:
        return ((pred - target) ** 2).sum(dim=-1).mean()
    target = torch.where(mask[..., None], target, pred.detach())
    sq = ((pred - target) ** 2).sum(dim=-1) * mask.to(pred.dtype)
    return sq.sum() / mask.sum().clamp_min(1).to(pred.dtype)


class PoseDecoder(nn.Module):
    """Base class: representation token, argument checks and the loss signature."""

    def __init__(
        self, num_joints: int, dims: int, embed_dim: int, use_representation_token: bool = True
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.num_joints, self.dims, self.embed_dim = num_joints, dims, embed_dim
        self.representation_tokens = (
            nn.Embedding(len(MODALITIES), embed_dim) if use_representation_token else None
        )
        if self.representation_tokens is not None:
            nn.init.normal_(self.representation_tokens.weight, std=0.02)

    def condition(self, embedding: Tensor, source: str) -> Tensor:
        """Embedding plus the representation token of ``source``: (B, D) -> (B, D)."""
        check_tensor("embedding", embedding, floating=True)
        check_shape("embedding", embedding, (None, self.embed_dim), f"(B, D={self.embed_dim})")
        check_choice("source", source, MODALITIES)
        if self.representation_tokens is None:
            return embedding
        token = self.representation_tokens.weight[MODALITIES.index(source)]
        return embedding + token.to(embedding.dtype)

    def _check_target(self, embedding: Tensor, target: Tensor, mask: Tensor | None):
        check_tensor("embedding", embedding, floating=True)
        b, j, dims = embedding.shape[0], self.num_joints, self.dims
        check_tensor("target", target, floating=True)
        check_shape(
            "target", target, (b, j, dims), f"(B={b} as the embedding batch, J={j}, {dims})"
        )
        return target, check_mask("mask", mask, (b, j), f"(B={b}, J={j})")

    def loss(
        self, embedding: Tensor, source: str, target: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """L2 training loss: `masked_pose_mse` of the prediction.

        Args:
            embedding: (B, D).
            source: "image", "pose2d" or "pose3d".
            target: (B, J, dims) in the output convention of the decoder.
            mask: (B, J) bool visible joints.

        Returns:
            Scalar loss.
        """
        target, mask = self._check_target(embedding, target, mask)
        return masked_pose_mse(self(embedding, source), target, mask)


class MLPDecoder(PoseDecoder):
    """Residual MLP: (B, D) -> (B, J, dims).

    Args:
        num_joints: J.
        dims: 2 or 3.
        embed_dim: D.
        width: Hidden width.
        depth: Number of residual blocks.
        dropout: Dropout in the blocks.
        use_representation_token: Add the learned source token to the embedding.
    """

    def __init__(
        self,
        num_joints: int,
        dims: int,
        embed_dim: int,
        width: int = 1024,
        depth: int = 2,
        dropout: float = 0.0,
        use_representation_token: bool = True,
    ) -> None:
        super().__init__(num_joints, dims, embed_dim, use_representation_token)
        self.inp = nn.Linear(embed_dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, width),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(width, width),
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, num_joints * dims))

    def forward(self, embedding: Tensor, source: str) -> Tensor:
        """Decode (B, D) embeddings from ``source`` into poses (B, J, dims)."""
        x = self.inp(self.condition(embedding, source))
        for block in self.blocks:
            x = x + block(x)
        return self.out(x).view(-1, self.num_joints, self.dims)


class TransformerDecoder(PoseDecoder):
    """J learned joint queries attend to a condition token built from the embedding.

    Sequence: ``[cond, q_1 + cond, ..., q_J + cond]`` through pre-norm
    Transformer layers; each joint output is projected to ``dims`` coordinates.
    """

    def __init__(
        self,
        num_joints: int,
        dims: int,
        embed_dim: int,
        width: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        use_representation_token: bool = True,
    ) -> None:
        super().__init__(num_joints, dims, embed_dim, use_representation_token)
        self.cond_proj = nn.Linear(embed_dim, width)
        self.queries = nn.Parameter(torch.zeros(1, num_joints, width))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.blocks = transformer(width, depth, num_heads, mlp_ratio, dropout)
        self.out = nn.Linear(width, dims)

    def forward(self, embedding: Tensor, source: str) -> Tensor:
        """Decode (B, D) embeddings from ``source`` into poses (B, J, dims)."""
        cond = self.cond_proj(self.condition(embedding, source))[:, None]
        x = torch.cat([cond, self.queries + cond], dim=1)
        return self.out(self.blocks(x)[:, 1:])
