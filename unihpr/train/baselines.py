"""SimpleBaseline-style MLP lifter (Martinez et al., ICCV 2017), the ablation's reference.

Box-normalised 2D joints (B, J, 2) -> linear(1024) -> 2 residual blocks of
[linear-1024, BatchNorm, ReLU, dropout] x 2 -> linear -> root-relative 3D
joints (B, J, 3) in metres.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihpr.train.config import StageConfig


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class SimpleBaselineLifter(nn.Module):
    """MLP lifting network.

    Args:
        num_joints: J.
        width: Hidden width (paper: 1024).
        num_blocks: Residual blocks (paper: 2).
        dropout: Dropout probability (paper: 0.5).
    """

    def __init__(self, num_joints: int, width: int = 1024, num_blocks: int = 2,
                 dropout: float = 0.5) -> None:  # fmt: skip
        super().__init__()
        if num_joints < 1 or width < 1 or num_blocks < 0 or not 0 <= dropout < 1:
            raise ValueError(
                f"invalid SimpleBaselineLifter sizes: num_joints={num_joints}, width={width}, "
                f"num_blocks={num_blocks}, dropout={dropout}"
            )
        self.num_joints = num_joints
        self.inp = nn.Linear(num_joints * 2, width)
        self.blocks = nn.Sequential(*[_Block(width, dropout) for _ in range(num_blocks)])
        self.out = nn.Linear(width, num_joints * 3)

    def forward(self, pose2d: Tensor, bbox: Tensor | None = None) -> Tensor:
        """(B, J, 2) pixels (+ bbox (B, 4)) -> (B, J, 3) root-relative metres."""
        from unihpr.models import normalize_pose2d

        if pose2d.ndim != 3 or pose2d.shape[1:] != (self.num_joints, 2):
            raise ValueError(f"pose2d must be (B, {self.num_joints}, 2), got {tuple(pose2d.shape)}")
        x = normalize_pose2d(pose2d, bbox)[0].flatten(1)
        return self.out(self.blocks(self.inp(x))).view(-1, self.num_joints, 3)


class LifterStage(nn.Module):
    """Trainer stage of the lifter: L2 (mean joint squared distance) on the 3D pose."""

    def __init__(self, lifter: SimpleBaselineLifter, config: StageConfig) -> None:
        super().__init__()
        self.lifter = lifter
        self.config = config

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.lifter.parameters())

    def forward(self, batch: dict[str, Tensor], generator: torch.Generator | None = None):
        pred = self.lifter(batch["pose2d"], batch.get("bbox"))
        loss = ((pred - batch["pose3d"]) ** 2).sum(-1).mean()
        return loss, {}
