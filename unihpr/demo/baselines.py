"""Reference rows for every UniHPR result: an MLP lifter and the mean pose.

* [`SimpleBaselineLifter`][]: the SimpleBaseline MLP (Martinez et al., ICCV
  2017): box-normalised 2D joints (B, J, 2) -> linear(1024) -> 2 residual
  blocks of [linear-1024, BatchNorm, ReLU, dropout] x 2 -> linear ->
  root-relative 3D joints (B, J, 3) in metres. The box is the keypoints' own
  unless one is given, as for UniHPR's 2D encoder.
* [`MeanPose`][]: predicts the average training pose whatever the input; a
  model that does not beat it by a wide margin has learnt nothing that
  transfers.
* [`fit_lifter`][]: trains a lifter on any 2D/3D dataset with the project's
  [`Trainer`][unihpr.train.Trainer] (resumable, seeded).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from unihpr._validate import check_int, check_real
from unihpr.geometry import normalize_pose2d
from unihpr.train.config import StageConfig
from unihpr.train.distributed import DistInfo
from unihpr.train.loop import Trainer, seed_everything


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
        who = "SimpleBaselineLifter"
        self.num_joints = check_int("num_joints", num_joints, low=1, owner=who)
        check_int("width", width, low=1, owner=who)
        check_int("num_blocks", num_blocks, low=0, owner=who)
        check_real("dropout", dropout, low=0.0, high=1.0, high_open=True, owner=who)
        self.inp = nn.Linear(num_joints * 2, width)
        self.blocks = nn.Sequential(*[_Block(width, dropout) for _ in range(num_blocks)])
        self.out = nn.Linear(width, num_joints * 3)

    def forward(self, pose2d: Tensor, bbox: Tensor | None = None) -> Tensor:
        """(B, J, 2) pixels (+ bbox (B, 4)) -> (B, J, 3) root-relative metres."""
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
        pred = self.lifter(batch["pose2d"])  # the keypoints' own box, as UniHPR
        loss = ((pred - batch["pose3d"]) ** 2).sum(-1).mean()
        return loss, {}


def fit_lifter(
    dataset: Dataset,
    config: StageConfig,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    dropout: float = 0.5,
    progress: bool = False,
) -> SimpleBaselineLifter:
    """Train a [`SimpleBaselineLifter`][] on ``dataset`` (resumes from ``output_dir``).

    Args:
        dataset: Samples with ``pose2d`` (J, 2) and ``pose3d`` (J, 3).
        config: Steps, batch size, learning rate and schedule (``name="finetune"``).
        output_dir: Checkpoints and ``metrics.jsonl``.
        seed: Seed of the initialisation, data order and dropout.
        dropout: Dropout of the lifter.
        progress: tqdm bar.

    Returns:
        The trained lifter in eval mode.
    """
    seed_everything(seed)
    lifter = SimpleBaselineLifter(int(dataset[0]["pose3d"].shape[0]), dropout=dropout)
    trainer = Trainer(LifterStage(lifter, config), dataset, config, output_dir=output_dir,
                      seed=seed, amp="off", device="cpu", dist_info=DistInfo(),
                      progress=progress)  # fmt: skip
    trainer.fit()
    return lifter.eval()


class MeanPose(nn.Module):
    """The average root-relative 3D pose of a training set, predicted for every input.

    Args:
        poses: Training poses, an iterable of (J, 3) tensors or one (N, J, 3) tensor.
    """

    def __init__(self, poses: Tensor | Iterable[Tensor]) -> None:
        super().__init__()
        stacked = poses if isinstance(poses, Tensor) else torch.stack(list(poses))
        if stacked.ndim != 3 or stacked.shape[-1] != 3 or stacked.shape[0] == 0:
            raise ValueError(f"poses must be (N, J, 3) with N >= 1, got {tuple(stacked.shape)}")
        self.register_buffer("pose", stacked.double().mean(0).float())

    def forward(self, batch_size: int) -> Tensor:
        """The mean pose repeated: (batch_size, J, 3) metres."""
        return self.pose.expand(batch_size, -1, -1).clone()
