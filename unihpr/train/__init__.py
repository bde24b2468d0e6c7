"""Training pipeline of UniHPR: the paper's three stages, resumable, distributed-ready.

* `config`: ``StageConfig`` / ``TrainConfig`` / ``LossConfig`` (paper defaults).
* `stages`: the stage modules (which parts train, which losses).
* `loop`: ``Trainer``, the generic loop with exact resume.
* `pipeline`: ``train_pipeline``, all stages in order.
* `checkpoint`, `logger`,
  `distributed`: atomic checkpoints, JSONL/TensorBoard
  logging, torchrun set-up.

Evaluation moved to [`unihpr.evaluation`][]; ``unihpr.train.evaluate``,
``collect``, ``compute_metrics``, ``mean_cosine`` and ``Collected`` (and the
module path ``unihpr.train.evaluate``) still work for one release and emit a
``DeprecationWarning``.
"""

import sys
import types
import warnings
from typing import Any

from unihpr.train.checkpoint import (
    CorruptCheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_latest_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from unihpr.train.config import (
    LossConfig,
    StageConfig,
    TrainConfig,
    paper_stage1,
    paper_stage2,
    paper_stage3,
)
from unihpr.train.distributed import DistInfo, cleanup_distributed, init_distributed
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
    "CorruptCheckpointError",
    "DistInfo",
    "FinetuneStage",
    "LossConfig",
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
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "make_stage",
    "paper_stage1",
    "paper_stage2",
    "paper_stage3",
    "read_metrics",
    "remove_stale_temporaries",
    "save_checkpoint",
    "seed_everything",
    "train_pipeline",
]

# Deprecated aliases of unihpr.evaluation (moved out of unihpr.train); removed in 0.3.
_MOVED_TO_EVALUATION = ("Collected", "collect", "compute_metrics", "evaluate", "mean_cosine")


def _moved(name: str, where: str) -> Any:
    import unihpr.evaluation

    warnings.warn(
        f"{where}.{name} moved to unihpr.evaluation.{name}; the old name will be removed "
        "in unihpr 0.3",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(unihpr.evaluation, name)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_EVALUATION:
        return _moved(name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _EvaluateModule(types.ModuleType):
    """``unihpr.train.evaluate`` as a module path, forwarding to unihpr.evaluation."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _moved(name, self.__name__)


# Registered without importing unihpr.evaluation, so `import unihpr.train` stays cheap
# and `from unihpr.train.evaluate import collect` keeps working (with a warning).
sys.modules.setdefault(f"{__name__}.evaluate", _EvaluateModule(f"{__name__}.evaluate"))
