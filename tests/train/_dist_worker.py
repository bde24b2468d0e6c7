"""Worker of the two-process gloo test (imported by name in the spawned processes)."""

from __future__ import annotations

import os

import torch

from unihpr.train.config import LossConfig, StageConfig
from unihpr.train.distributed import cleanup_distributed, init_distributed
from unihpr.train.loop import Trainer
from unihpr.train.stages import AlignPoseStage


def run(rank: int, world_size: int, port: int, out_dir: str, use_real_loss: bool) -> None:
    from _standins import FakeUniHPR, PairCriterion, PoseImageSet

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    info = init_distributed(device="cpu")
    try:
        assert info.rank == rank and info.world_size == world_size and info.distributed
        torch.manual_seed(100 + rank)  # different inits: DDP must broadcast rank 0's
        model = FakeUniHPR()
        cfg = StageConfig(name="align2d3d", steps=4, batch_size=4, lr=1e-2,
                          loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100),
                          checkpoint_every=2, log_every=1)  # fmt: skip
        criterion = None if use_real_loss else PairCriterion()
        stage = AlignPoseStage(model, cfg, criterion)
        trainer = Trainer(stage, PoseImageSet(32, images=False), cfg,
                          output_dir=os.path.join(out_dir, "run"), dist_info=info,
                          progress=False)  # fmt: skip
        res = trainer.fit()
        torch.save(
            {"params": {k: v.detach().clone() for k, v in stage.state_dict().items()},
             "history": res.history, "steps": res.step},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )  # fmt: skip
    finally:
        cleanup_distributed()
