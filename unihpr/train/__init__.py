"""Training pipeline of UniHPR: the paper's three stages, resumable, distributed-ready.

* `config`: ``StageConfig`` / ``TrainConfig`` (paper defaults).
* `stages`: the stage modules (which parts train, which losses).
* `loop`: ``Trainer``, the generic loop with exact resume.
* `pipeline`: ``train_pipeline``, all stages in order.
* `evaluate`: the paper's evaluation protocols.
* `checkpoint`, `logger`,
  `distributed`: atomic checkpoints, JSONL/TensorBoard
  logging, torchrun set-up.
"""

from unihpr.train.checkpoint import (
    CorruptCheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_latest_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from unihpr.train.config import (
    StageConfig,
    TrainConfig,
    paper_stage1,
    paper_stage2,
    paper_stage3,
)
from unihpr.train.distributed import DistInfo, cleanup_distributed, init_distributed
from unihpr.train.evaluate import Collected, collect, compute_metrics, evaluate, mean_cosine
from unihpr.train.logger import MetricsLogger, read_metrics
from unihpr.train.loop import ResumableSampler, Trainer, TrainResult, seed_everything
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
    "Collected",
    "CorruptCheckpointError",
    "DistInfo",
    "FinetuneStage",
    "MetricsLogger",
    "PipelineResult",
    "ResumableSampler",
    "Stage",
    "StageConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_criterion",
    "cleanup_distributed",
    "collect",
    "compute_metrics",
    "evaluate",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "make_stage",
    "mean_cosine",
    "paper_stage1",
    "paper_stage2",
    "paper_stage3",
    "read_metrics",
    "remove_stale_temporaries",
    "save_checkpoint",
    "seed_everything",
    "train_pipeline",
]
