"""Training pipeline of UniHPR: the paper's three stages, resumable, distributed-ready.

* `config`: ``StageConfig`` / ``TrainConfig`` / ``LossConfig`` (paper defaults).
* `stages`: the stage modules (which parts train, which losses).
* `loop`: ``Trainer``, the generic loop with exact resume.
* `pipeline`: ``train_pipeline``, all stages in order.
* `runs`: one process and one configuration per run folder.
* `checkpoint`, `logger`, `distributed`: atomic checkpoints, JSONL/TensorBoard
  logging, torchrun set-up.

Evaluation is [`unihpr.evaluation`][]; the demo and its baselines are the
application package [`unihpr.demo`][].
"""

from unihpr.train.checkpoint import CorruptCheckpointError, load_checkpoint, save_checkpoint
from unihpr.train.config import (
    LossConfig,
    StageConfig,
    TrainConfig,
    paper_stage1,
    paper_stage2,
    paper_stage3,
)
from unihpr.train.distributed import DistInfo, cleanup_distributed, init_distributed
from unihpr.train.logger import read_metrics
from unihpr.train.loop import Trainer, TrainResult, seed_everything
from unihpr.train.pipeline import PipelineResult, train_pipeline
from unihpr.train.stages import (
    AlignImageStage,
    AlignPoseStage,
    FinetuneStage,
    Stage,
    build_criterion,
    make_stage,
)

__all__ = [
    "AlignImageStage",
    "AlignPoseStage",
    "CorruptCheckpointError",
    "DistInfo",
    "FinetuneStage",
    "LossConfig",
    "PipelineResult",
    "Stage",
    "StageConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_criterion",
    "cleanup_distributed",
    "init_distributed",
    "load_checkpoint",
    "make_stage",
    "paper_stage1",
    "paper_stage2",
    "paper_stage3",
    "read_metrics",
    "save_checkpoint",
    "seed_everything",
    "train_pipeline",
]
