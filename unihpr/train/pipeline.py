"""The whole UniHPR training run: the configured stages in order, resumable.

Each stage trains in ``<output_dir>/<stage name>/`` with its own checkpoints;
``metrics.jsonl`` at the top collects every stage's rows and ``config.json``
holds the run's [`TrainConfig`][unihpr.train.TrainConfig]. Re-running the
same command after a crash resumes the unfinished stage (finished stages are
restored from their final checkpoint and skipped); a run with another
configuration is refused instead of being mixed into it (see
`unihpr.train.runs`). Under ``torchrun`` the process group is started from
the environment (see `unihpr.train.distributed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from unihpr.modalities import MODALITIES
from unihpr.train.config import TrainConfig
from unihpr.train.distributed import DistInfo, barrier, init_distributed
from unihpr.train.logger import MetricsLogger
from unihpr.train.loop import StepCallback, Trainer, TrainResult, seed_everything
from unihpr.train.runs import check_run_config, lock_run_folder
from unihpr.train.stages import make_stage


@dataclass
class PipelineResult:
    """What [`train_pipeline`][] returns.

    Attributes:
        model: The trained model (unwrapped, on the training device).
        stages: ``{stage name: TrainResult}`` of the stages that ran.
        skipped: Stages skipped because their modalities are absent.
        model_dir: Folder written by ``save_pretrained`` (rank 0), if any.
    """

    model: nn.Module
    stages: dict[str, TrainResult] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    model_dir: Path | None = None


def train_pipeline(
    config: TrainConfig,
    datasets: Dataset | Mapping[str, Dataset],
    *,
    model: nn.Module | None = None,
    modalities: Sequence[str] = MODALITIES,
    dist_info: DistInfo | None = None,
    resume: bool = True,
    save_model: bool = True,
    callbacks: Mapping[str, Sequence[StepCallback]] | None = None,
    stage_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> PipelineResult:
    """Run ``config.stages`` in order on ``datasets``.

    Args:
        config: The run configuration.
        datasets: One dataset for every stage, or ``{stage name: dataset}``.
        model: The model to train; ``unihpr.models.create_model(config.model,
            **config.model_overrides)`` (seeded with ``config.seed``) when omitted.
        modalities: Modalities in the data. Without ``"image"`` the image
            alignment stage is skipped and fine-tuning trains the lifting branch.
        dist_info: Process placement; read from the torchrun environment when omitted.
        resume: Resume from the checkpoints in ``config.output_dir``, which must
            have been written with the same configuration (``output_dir``,
            ``progress`` and ``tensorboard`` may differ); ``False`` starts over,
            deleting the stages' checkpoints.
        save_model: Write ``<output_dir>/model`` with ``save_pretrained`` at the end.
        callbacks: ``{stage name: [callback(step, metrics)]}``.
        stage_kwargs: Extra keyword arguments per stage class (e.g. fine-tuning's
            ``decode_from``).

    Returns:
        A [`PipelineResult`][].

    Raises:
        ValueError: ``resume`` and ``config.output_dir`` holds a run with another
            configuration (the differing fields are named).
        BlockingIOError: Another process trains in ``config.output_dir``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    info = dist_info or init_distributed(config.device)
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir = Path(config.output_dir)
    with contextlib.ExitStack() as stack:
        if info.is_main:
            stack.enter_context(lock_run_folder(out_dir))
        if resume:
            check_run_config(
                out_dir / "config.json", config.to_dict(), ignore=_MAY_DIFFER,
                hint="start over with train_pipeline(..., resume=False)",
            )  # fmt: skip
        if info.is_main:
            config.save_json(out_dir / "config.json")
        if model is None:
            from unihpr.models import create_model

            seed_everything(config.seed)
            model = create_model(config.model, **config.model_overrides)
        model.to(info.device)
        logger = MetricsLogger(out_dir, enabled=info.is_main, tensorboard=config.tensorboard)
        stack.callback(logger.close)
        result = PipelineResult(model=model)
        for stage_cfg in config.stages:
            name = stage_cfg.name
            if name == "align_image" and "image" not in modalities:
                result.skipped.append(name)
                continue
            dataset = datasets.get(name) if isinstance(datasets, Mapping) else datasets
            if dataset is None:
                raise ValueError(f"no dataset for stage {name!r} (have {sorted(datasets)})")
            kwargs = dict((stage_kwargs or {}).get(name, {}))
            if name == "finetune":
                kwargs.setdefault("modalities", tuple(modalities))
            trainer = Trainer(
                make_stage(model, stage_cfg, **kwargs), dataset, stage_cfg,
                output_dir=out_dir / name, seed=config.seed, amp=config.amp,
                num_workers=config.num_workers, dist_info=info, logger=logger,
                progress=config.progress, callbacks=(callbacks or {}).get(name, ()),
            )  # fmt: skip
            result.stages[name] = trainer.fit(resume=resume)
        if save_model and info.is_main:
            result.model_dir = model.save_pretrained(out_dir / "model")
        barrier()
    return result


# TrainConfig fields that do not change what is trained
_MAY_DIFFER = ("output_dir", "progress", "tensorboard")
