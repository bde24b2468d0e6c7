"""A generic, resumable optimisation loop for one training stage.

The loop knows nothing about UniHPR: it trains any ``nn.Module`` ``stage``
whose ``forward(batch, generator=...)`` returns ``(loss, metrics)`` and which
has a ``trainable_parameters()`` method (see `unihpr.train.stages`).

Exact resume: a checkpoint holds the stage's state dict (model and learnable
temperatures), the optimiser and GradScaler states, the global torch / CUDA /
NumPy / Python RNG states of every rank, the state of the generator handed to
the loss (negative sampling), and the step. The data order is a pure function
of ``(seed, epoch)`` (a `DistributedSampler`), and a
resumed epoch starts at the first sample not yet consumed, so the resumed loss
curve is the uninterrupted one, bit for bit on the CPU with
``num_workers=0``. (With worker processes, randomness drawn *inside* the
workers is reseeded per epoch, not per batch, so a run resumed mid-epoch
draws different augmentations.)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from unihpr._validate import check_choice, check_int
from unihpr.train.checkpoint import (
    capture_rng_state,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    prune_checkpoints,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from unihpr.train.config import AMP_MODES, MAX_SEED, StageConfig
from unihpr.train.distributed import DistInfo, all_reduce_mean, get_dist_info
from unihpr.train.logger import MetricsLogger, progress_bar
from unihpr.train.runs import config_differences, lock_run_folder

StepCallback = Callable[[int, dict[str, Any]], None]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def amp_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Resolve an AMP mode to ``(autocast dtype or None, use GradScaler)``.

    ``"auto"`` is bf16 autocast on CUDA devices that support it, fp16 with a
    GradScaler on older ones, and off on the CPU. ``"bf16"`` is also allowed on
    the CPU; ``"fp16"`` needs CUDA.
    """
    check_choice("amp", amp, AMP_MODES)
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError(f"amp='fp16' needs a CUDA device, got {device}")
        return torch.float16, True
    return torch.bfloat16, False


class ResumableSampler(Sampler[int]):
    """A `DistributedSampler` that can start an epoch part-way through.

    The order of an epoch depends only on ``(seed, epoch)``; [`set_start`][]
    skips the samples a resumed run has already consumed in that epoch.

    Args:
        dataset: Any sized dataset.
        num_replicas: World size.
        rank: This process's rank.
        shuffle: Shuffle every epoch.
        seed: Shuffling seed (identical on all ranks).
    """

    def __init__(
        self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
        seed: int = 0,
    ) -> None:  # fmt: skip
        self.base = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=True,
        )  # fmt: skip
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch`` (call at the start of every epoch)."""
        self.base.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of the current epoch."""
        if not 0 <= start <= len(self.base):
            raise ValueError(f"start must be in [0, {len(self.base)}], got {start}")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.start, None)

    def __len__(self) -> int:
        return len(self.base) - self.start


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``; other values are kept."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def _gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


@dataclass
class TrainResult:
    """What [`Trainer.fit`][] returns.

    Attributes:
        step: The last completed step (``config.steps`` when the stage finished).
        history: The logged metric rows of this run (rank 0 and others alike).
        resumed_from: The checkpoint the run resumed from, if any.
        seconds: Wall time of the loop.
    """

    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: Path | None = None
    seconds: float = 0.0


class Trainer:
    """Train one stage with Adam, optional AMP/DDP, checkpoints and exact resume.

    Args:
        stage: Module whose ``forward(batch, generator=g)`` returns ``(loss, metrics)``
            (a scalar tensor and a dict of scalar tensors/floats) and which provides
            ``trainable_parameters()``.
        dataset: Training dataset of dict samples.
        config: The stage's hyper-parameters.
        output_dir: Checkpoints go to ``output_dir`` and metrics to
            ``output_dir/metrics.jsonl`` (rank 0 only).
        seed: Seed of the data order, the loss generator and the global RNGs.
        device: Device to train on; by default that of ``dist_info`` or CPU.
        amp: AMP mode, see `amp_settings`.
        num_workers: DataLoader workers.
        collate_fn: DataLoader collate function.
        dist_info: Process placement; read from ``torch.distributed`` when omitted.
        logger: A shared ``unihpr.train.logger.MetricsLogger``; one writing to ``output_dir`` is
            made when omitted.
        progress: Show progress on rank 0: a tqdm bar on a terminal, else one
            log line every few steps (see `unihpr.train.logger.progress_bar`).
        progress_label: What the progress display calls this run (default: the
            stage name); tells apart two runs of one stage.
        callbacks: Called on every rank after every step with ``(step, metrics)``;
            the stage computes its diagnostics only on logging steps (every
            ``log_every`` steps and the last), so ``metrics`` may be empty
            in between.
        find_unused_parameters: Passed to DDP.
    """

    def __init__(
        self,
        stage: nn.Module,
        dataset: Dataset,
        config: StageConfig,
        *,
        output_dir: str | os.PathLike,
        seed: int = 0,
        device: torch.device | str | None = None,
        amp: str = "auto",
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        dist_info: DistInfo | None = None,
        logger: MetricsLogger | None = None,
        progress: bool = True,
        progress_label: str | None = None,
        callbacks: Sequence[StepCallback] = (),
        find_unused_parameters: bool = False,
    ) -> None:
        if not isinstance(config, StageConfig):
            raise TypeError(f"config must be a StageConfig, got {type(config).__name__}")
        if not hasattr(stage, "trainable_parameters"):
            raise TypeError(
                f"stage {type(stage).__name__} must define trainable_parameters() "
                "(see unihpr.train.stages.Stage)"
            )
        self.info = dist_info or get_dist_info()
        self.device = torch.device(device) if device is not None else self.info.device
        self.stage = stage.to(self.device)
        self.config = config
        self.output_dir = Path(output_dir)
        self.seed = check_int("seed", seed, low=0, high=MAX_SEED)
        self.amp_dtype, use_scaler = amp_settings(amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.logger = logger or MetricsLogger(self.output_dir, enabled=self.info.is_main)
        self.progress = progress and self.info.is_main
        self.progress_label = progress_label or config.name
        self.callbacks = list(callbacks)

        params = [p for p in stage.trainable_parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"stage {config.name!r} has no trainable parameters")
        self.optimizer = torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.loss_generator = torch.Generator(device="cpu")
        self.sampler = ResumableSampler(
            dataset, num_replicas=self.info.world_size, rank=self.info.rank, seed=self.seed
        )
        self.loader_generator = torch.Generator(device="cpu")
        self.loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=num_workers,
            collate_fn=collate_fn,
            generator=self.loader_generator,
            pin_memory=self.device.type == "cuda",
        )
        self.steps_per_epoch = len(self.sampler.base) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"dataset of {len(dataset)} samples is too small for batch_size="
                f"{config.batch_size} x world_size={self.info.world_size}"
            )
        self.model: nn.Module = self.stage
        if self.info.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                self.stage,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        self.step = 0
        # Step number of the first non-finite loss (0: none), kept on the device.
        self._nonfinite_step = torch.zeros((), dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (gathers per-rank RNG states: call on every rank)."""
        rank_state = {"rng": capture_rng_state(), "loss_generator": self.loss_generator.get_state()}
        return {
            "step": self.step,
            "stage": self.config.name,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "world_size": self.info.world_size,
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ranks": _gather_objects(rank_state, self.info),
        }

    def load_state_dict(self, state: dict[str, Any], *, source: str = "checkpoint") -> None:
        """Restore a [`state_dict`][] written by a run of the same stage configuration and seed.

        Raises:
            ValueError: The state was written with another stage, stage
                configuration, seed or world size (the differing fields are named).
        """
        here = {"stage": self.config.name, "config": self.config.to_dict(), "seed": self.seed,
                "world_size": self.info.world_size}  # fmt: skip
        diff = config_differences({k: state.get(k) for k in here}, here)
        if diff:
            raise ValueError(
                f"{source} was written by a run with another configuration: {', '.join(diff)}; "
                "resume with the same configuration, or start over with fit(resume=False)"
            )
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        mine = state["ranks"][self.info.rank]
        restore_rng_state(mine["rng"])
        self.loss_generator.set_state(mine["loss_generator"])
        self.step = int(state["step"])

    def save(self) -> Path | None:
        """Write the checkpoint of the current step (rank 0 writes; all ranks must call)."""
        state = self.state_dict()
        path = None
        if self.info.is_main:
            path = save_checkpoint(checkpoint_path(self.output_dir, self.step), state)
            prune_checkpoints(self.output_dir, self.config.keep_checkpoints)
        return path

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Copy rank 0's buffers (e.g. BatchNorm statistics) to every rank.

        DDP broadcasts buffers at the *start* of each forward, so after the last
        step each rank holds the statistics of its own last batch.
        """
        if self.info.distributed:
            for buf in _unwrap(self.model).buffers():
                dist.broadcast(buf, src=0)

    # ------------------------------------------------------------------- loop
    def train_step(
        self, batch: Any, *, diagnostics: bool = True, validate: bool = True
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimiser step on ``batch``; returns the (detached) loss and metrics.

        Args:
            batch: A batch from the loader.
            diagnostics: Ask the stage for its logging metrics (see
                ``Stage.configure_step``). Without diagnostics and validation
                the step reads no tensor value on the host, so it does not
                synchronise a GPU; a non-finite loss is then recorded on the
                device and raised at the next logging or checkpoint step.
            validate: Let the stage's loss check its inputs' values.
        """
        self.model.train()
        configure = getattr(_unwrap(self.model), "configure_step", None)
        if configure is not None:
            configure(diagnostics=diagnostics, validate=validate)
        batch = move_to_device(batch, self.device)
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, metrics = self.model(batch, generator=self.loss_generator)
        if not self.scaler.is_enabled():
            first, bad = self._nonfinite_step, ~torch.isfinite(loss.detach())
            self._nonfinite_step = torch.where(bad & (first == 0), self.step + 1, first)
            if diagnostics or validate:
                self.raise_if_nonfinite()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.config.grad_clip,
            )
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(self.step)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        after_step = getattr(_unwrap(self.model), "after_step", None)
        if after_step is not None:  # e.g. clamp learnable temperatures back into range
            after_step()
        self.step += 1
        return loss.detach(), metrics

    def raise_if_nonfinite(self) -> None:
        """Raise ``FloatingPointError`` if a step so far had a non-finite loss (reads one value)."""
        if int(self._nonfinite_step):
            raise FloatingPointError(
                f"stage {self.config.name!r}: non-finite loss at step {int(self._nonfinite_step)}"
            )

    def fit(self, resume: bool | str | os.PathLike = True) -> TrainResult:
        """Run the stage to ``config.steps``.

        Args:
            resume: ``True`` resumes from the newest intact checkpoint in
                ``output_dir`` if there is one (a damaged newer one is reported,
                renamed to ``*.corrupt`` and skipped); a path resumes from that
                file; ``False`` starts over from step 0, deleting the folder's
                checkpoints. Temporary files left by an interrupted save are
                removed first. Only a run of the same stage configuration and
                seed is resumed (see [`load_state_dict`][]).

        Returns:
            A [`TrainResult`][].

        Raises:
            BlockingIOError: Another process trains in ``output_dir`` (see
                [`lock_run_folder`][unihpr.train.runs.lock_run_folder]).
        """
        if not isinstance(resume, (bool, str, os.PathLike)):
            raise TypeError(f"resume must be a bool or a checkpoint path, got {resume!r}")
        with lock_run_folder(self.output_dir) if self.info.is_main else contextlib.nullcontext():
            return self._fit(resume)

    def _fit(self, resume: bool | str | os.PathLike) -> TrainResult:
        cfg = self.config
        seed_everything(self.seed + self.info.rank)
        self.loss_generator.manual_seed(self.seed * 7919 + self.info.rank)
        resumed_from = None
        if self.info.is_main:
            for stale in remove_stale_temporaries(self.output_dir):
                warnings.warn(
                    f"removed {str(stale)!r}, left by an interrupted checkpoint save", stacklevel=3
                )
            if resume is False:  # start over: no checkpoint of the old run may survive
                for _, old in list_checkpoints(self.output_dir):
                    old.unlink()
        if resume:
            if resume is True:
                found = load_latest_checkpoint(self.output_dir, quarantine=self.info.is_main)
            else:
                found = load_checkpoint(resume), Path(resume)
            if found is not None:
                state, resumed_from = found
                self.load_state_dict(state, source=f"checkpoint {str(resumed_from)!r}")
        self.logger.truncate_after(cfg.name, self.step)
        history: list[dict[str, Any]] = []
        bar = progress_bar(
            cfg.steps, initial=self.step, desc=self.progress_label, enabled=self.progress,
            align=cfg.log_every,
        )  # fmt: skip
        t0 = time.perf_counter()
        t_log, step_log = t0, self.step
        start_step = self.step
        try:
            while self.step < cfg.steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch)
                self.sampler.set_start(offset * cfg.batch_size)
                # Worker seeds come from this generator, not the global RNG, so
                # creating the iterator never perturbs the training randomness.
                self.loader_generator.manual_seed(self.seed * 1_000_003 + epoch)
                for batch in self.loader:
                    # Diagnostics on logging steps only, input checks on the
                    # run's first step only: the other steps never wait for
                    # the GPU.
                    log_now = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps
                    loss, metrics = self.train_step(
                        batch, diagnostics=log_now, validate=self.step == start_step
                    )
                    if log_now:
                        now = time.perf_counter()
                        row = {"loss": float(loss)}
                        row.update({k: float(v) for k, v in metrics.items()})
                        row = all_reduce_mean(row, self.device)
                        row["lr"] = self.optimizer.param_groups[0]["lr"]
                        row["samples_per_s"] = (
                            (self.step - step_log) * cfg.batch_size * self.info.world_size
                            / max(now - t_log, 1e-9)
                        )  # fmt: skip
                        t_log, step_log = now, self.step
                        self.logger.log(cfg.name, self.step, row)
                        history.append({"stage": cfg.name, "step": self.step, **row})
                        bar.set_postfix(loss=f"{row['loss']:.4f}")
                    bar.update(1)  # after set_postfix: a log line shows this step's loss
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.raise_if_nonfinite()  # never checkpoint a diverged model
                        self.save()
                    for cb in self.callbacks:
                        cb(self.step, metrics)
                    if self.step >= cfg.steps:
                        break
        finally:
            bar.close()
            configure = getattr(_unwrap(self.model), "configure_step", None)
            if configure is not None:  # the trained model checks its inputs again
                configure(diagnostics=True, validate=True)
        self.sync_buffers()
        return TrainResult(self.step, history, resumed_from, time.perf_counter() - t0)
