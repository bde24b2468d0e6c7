"""Plain dataclass configurations of the three UniHPR training stages.

The defaults are the paper's Human3.6M settings (Sec. IV-A): step 1 aligns the
2D and 3D pose encoders (batch 2048, tau0 = 1/14, tau in [1/100, 1e4]); step 2
aligns the image encoder to the frozen pose encoders (batch 180, tau0 = 1/5,
tau in [1/10, 1e4]); the task fine-tuning trains every encoder and decoder
(batch 180, tau0 = 1/5, tau in [1/5, 1e4]); alpha = 1; Adam with lr 1e-4. The
paper gives no step counts; ours are placeholders to be set per run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unihpr._validate import check_bool, check_choice, check_int, check_keys, check_real
from unihpr.losses.samplers import SAMPLERS
from unihpr.losses.triplet import NEGATIVE_MODES
from unihpr.ops.backend import BACKENDS

STAGE_NAMES = ("align2d3d", "align_image", "finetune")
AMP_MODES = ("auto", "off", "bf16", "fp16")
LOSS_BALANCES = ("fixed", "normalized")
LR_SCHEDULES = ("constant", "cosine")

#: Seeds are combined with ranks and epochs into generator seeds; this bound keeps those in range.
MAX_SEED = 2**32 - 1


class _JSONConfig:
    """``to_dict`` / ``from_dict`` of the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of every field (nested configs as dicts)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples become lists

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Build a config from ``to_dict`` output; unknown keys raise ``ValueError``."""
        check_keys(cls.__name__, data, [f.name for f in dataclasses.fields(cls)])
        return cls(**data)


@dataclass
class LossConfig(_JSONConfig):
    """The contrastive loss of a stage: what [`build_criterion`][unihpr.train.build_criterion] builds.

    Attributes:
        alpha: Weight of L_triplet in L_cl = L_pair + alpha * L_triplet.
        use_triplet: Whether L_triplet is used at all (the paper uses it in
            step 2 and fine-tuning; step 1 has only two modalities).
        tau_init: Initial value of the learnable temperatures (one for the
            pairwise terms, one for the triplet term).
        tau_min: Lower clamp of the temperatures.
        tau_max: Upper clamp of the temperatures.
        negatives: Triplet negatives: ``"sampled"`` (the paper) or ``"all"``
            (the exact log-sum-exp over all 3B² − 3B + 1 candidates; see
            [`TripletInfoNCE`][unihpr.losses.TripletInfoNCE]).
        sampler: Name of the negative sampler in
            [`SAMPLERS`][unihpr.losses.samplers.SAMPLERS] (sampled mode).
        num_negatives: Sampled negatives per anchor; ``None`` is B − 1 (the paper).
        chunk_size: Rows per block of the exact mode; ``None`` picks one.
        backend: Kernel implementation, one of
            [`BACKENDS`][unihpr.ops.backend.BACKENDS] (see [`unihpr.ops.backend`][]).
    """

    alpha: float = 1.0
    use_triplet: bool = False
    tau_init: float = 1 / 14
    tau_min: float = 1 / 100
    tau_max: float = 1e4
    negatives: str = "sampled"
    sampler: str = "uniform"
    num_negatives: int | None = None
    chunk_size: int | None = None
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_real("LossConfig.alpha", self.alpha, low=0.0)
        check_bool("LossConfig.use_triplet", self.use_triplet)
        for key in ("tau_init", "tau_min", "tau_max"):
            check_real(f"LossConfig.{key}", getattr(self, key), low=0.0, low_open=True)
        if not self.tau_min <= self.tau_init <= self.tau_max:
            raise ValueError(
                "LossConfig needs tau_min <= tau_init <= tau_max, got "
                f"tau_min={self.tau_min}, tau_init={self.tau_init}, tau_max={self.tau_max}"
            )
        check_choice("LossConfig.negatives", self.negatives, NEGATIVE_MODES)
        check_choice("LossConfig.sampler", self.sampler, tuple(SAMPLERS))
        check_choice("LossConfig.backend", self.backend, BACKENDS)
        for key in ("num_negatives", "chunk_size"):
            if getattr(self, key) is not None:  # None: B − 1 / picked per device
                check_int(f"LossConfig.{key}", getattr(self, key), low=1)


@dataclass
class StageConfig(_JSONConfig):
    """Hyper-parameters of one training stage.

    Attributes:
        name: One of ``"align2d3d"`` (step 1), ``"align_image"`` (step 2) or
            ``"finetune"`` (task fine-tuning); selects the stage's step function.
        steps: Number of optimiser steps.
        batch_size: Samples per step *per process* (the global batch is
            ``batch_size * world_size``).
        lr: Adam learning rate (the peak rate under a schedule).
        lr_schedule: ``"constant"`` (the paper's) or ``"cosine"``: the rate decays
            from ``lr`` to 0 along half a cosine over ``steps`` (see [`lr_at`][]).
        weight_decay: Adam (L2) weight decay.
        betas: Adam betas.
        loss: The contrastive loss ([`LossConfig`][unihpr.train.LossConfig]:
            alpha, use_triplet, temperatures, negatives, sampler, backend).
        contrastive_weight: Weight of L_cl in the fine-tuning loss (1 in the paper;
            0 turns fine-tuning into plain supervised training).
        loss_3d_weight: Weight of L_3D (fine-tuning only).
        loss_2d_weight: Weight of L_2D (fine-tuning only).
        loss_balance: How fine-tuning combines its terms. ``"fixed"``: the weighted
            sum ``w_cl L_cl + w_3D L_3D + w_2D L_2D`` (the paper's; its balance
            depends on the units of the poses: L_3D is in m²). ``"normalized"``:
            each term is divided by a running mean of its own value before
            weighting, so every term contributes on a comparable, unit-free
            scale (a term's gradient is relative to its current size).
        grad_clip: Max global gradient norm, or ``None`` for no clipping.
        checkpoint_every: Write a checkpoint every this many steps (and at the end).
        keep_checkpoints: Number of step checkpoints kept on disk.
        log_every: Log metrics every this many steps.
    """

    name: str = "align2d3d"
    steps: int = 10_000
    batch_size: int = 2048
    lr: float = 1e-4
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    loss: LossConfig = field(default_factory=LossConfig)
    contrastive_weight: float = 1.0
    loss_3d_weight: float = 1.0
    loss_2d_weight: float = 1.0
    loss_balance: str = "fixed"
    grad_clip: float | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10

    def __post_init__(self) -> None:
        check_choice("StageConfig.name", self.name, STAGE_NAMES)
        for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            check_int(f"StageConfig.{key}", getattr(self, key), low=1)
        check_real("StageConfig.lr", self.lr, low=0.0, low_open=True)
        for key in ("weight_decay", "contrastive_weight", "loss_3d_weight", "loss_2d_weight"):
            check_real(f"StageConfig.{key}", getattr(self, key), low=0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"StageConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(  # JSON gives lists
            check_real(f"StageConfig.betas[{i}]", b, low=0.0, high=1.0, high_open=True)
            for i, b in enumerate(self.betas)
        )
        if isinstance(self.loss, dict):  # from JSON
            self.loss = LossConfig.from_dict(self.loss)
        if not isinstance(self.loss, LossConfig):
            raise TypeError(
                f"StageConfig.loss must be a LossConfig, got {type(self.loss).__name__}"
            )
        self.loss.__post_init__()  # re-validate (fields may have been assigned)
        if self.grad_clip is not None:
            check_real("StageConfig.grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_choice("StageConfig.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("StageConfig.loss_balance", self.loss_balance, LOSS_BALANCES)

    def lr_at(self, step: int) -> float:
        """Learning rate of the optimiser step that follows ``step`` completed steps.

        A pure function of the step, so a resumed run follows the same schedule.
        """
        if self.lr_schedule == "constant":
            return self.lr
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))


def paper_stage1() -> StageConfig:
    """Step 1 of the paper: 2D-3D pose alignment with L_pair."""
    return StageConfig(
        name="align2d3d",
        batch_size=2048,
        loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100, use_triplet=False),
    )


def paper_stage2() -> StageConfig:
    """Step 2 of the paper: image encoder aligned to frozen pose encoders, L_pair + L_triplet."""
    return StageConfig(
        name="align_image",
        batch_size=180,
        loss=LossConfig(tau_init=1 / 5, tau_min=1 / 10, use_triplet=True),
    )


def paper_stage3() -> StageConfig:
    """Task fine-tuning of the paper: L_cl + L_2D + L_3D, every encoder and decoder trained.

    The terms are balanced by their running means (``loss_balance="normalized"``)
    instead of the paper's plain sum, whose balance depends on the units of the
    poses (L_3D in m² is ~1/60 of L_cl and the contrastive gradient then drowns
    the 3D loss; measured in docs/benchmarks.md). ``loss_balance="fixed"``
    restores the paper's sum.
    """
    return StageConfig(
        name="finetune",
        batch_size=180,
        loss=LossConfig(tau_init=1 / 5, tau_min=1 / 5, use_triplet=True),
        loss_balance="normalized",
    )


@dataclass
class TrainConfig(_JSONConfig):
    """A whole training run: model, run options and the ordered list of stages.

    Attributes:
        model: Registered model name passed to ``unihpr.models.create_model``.
        model_overrides: Keyword overrides of the model config.
        stages: Stages run in order; by default the paper's three stages.
        output_dir: Checkpoints, ``metrics.jsonl`` and the config copy go here.
        seed: Seed of every random number generator (each rank adds its rank to
            the seed of its data-augmentation streams; model init is broadcast).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: ``"auto"`` (bf16 autocast on CUDA when supported, else fp16 with a
            GradScaler; off on CPU), ``"off"``, ``"bf16"`` or ``"fp16"``.
        num_workers: DataLoader worker processes.
        tensorboard: Also write TensorBoard scalars (needs ``unihpr[tensorboard]``).
        progress: Show tqdm progress bars (only on rank 0 and on a TTY).
        deterministic: Ask PyTorch for deterministic kernels.
    """

    model: str = "unihpr-w32"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    stages: list[StageConfig] = field(
        default_factory=lambda: [paper_stage1(), paper_stage2(), paper_stage3()]
    )
    output_dir: str = "runs/unihpr"
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    num_workers: int = 0
    tensorboard: bool = False
    progress: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.stages, (list, tuple)):
            raise TypeError(
                f"TrainConfig.stages must be a list of StageConfig, got {type(self.stages).__name__}"
            )
        self.stages = [StageConfig.from_dict(s) if isinstance(s, dict) else s for s in self.stages]
        bad = [type(s).__name__ for s in self.stages if not isinstance(s, StageConfig)]
        if bad:
            raise TypeError(
                f"TrainConfig.stages must hold StageConfigs or dicts of their fields, got {bad}"
            )
        if not self.stages:
            raise ValueError("TrainConfig.stages must contain at least one StageConfig")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"TrainConfig.stages has a stage name twice: {names}")
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"TrainConfig.model must be a model name (str), got {self.model!r}")
        if not isinstance(self.model_overrides, dict) or not all(
            isinstance(k, str) for k in self.model_overrides
        ):
            raise TypeError(
                "TrainConfig.model_overrides must be a dict with str keys, got "
                f"{self.model_overrides!r}"
            )
        if isinstance(self.output_dir, os.PathLike):
            self.output_dir = os.fspath(self.output_dir)
        if not isinstance(self.output_dir, str):
            raise TypeError(f"TrainConfig.output_dir must be a path, got {self.output_dir!r}")
        if not self.output_dir.strip():
            raise ValueError(f"TrainConfig.output_dir must name a folder, got {self.output_dir!r}")
        check_int("TrainConfig.seed", self.seed, low=0, high=MAX_SEED)
        check_choice("TrainConfig.amp", self.amp, AMP_MODES)
        if not isinstance(self.device, str):
            raise TypeError(f"TrainConfig.device must be a str, got {self.device!r}")
        index = self.device[len("cuda:") :] if self.device.startswith("cuda:") else None
        if not (self.device in ("auto", "cpu", "cuda") or (index and index.isdigit())):
            raise ValueError(
                f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        check_int("TrainConfig.num_workers", self.num_workers, low=0)
        for key in ("tensorboard", "progress", "deterministic"):
            check_bool(f"TrainConfig.{key}", getattr(self, key))

    def stage(self, name: str) -> StageConfig:
        """Return the stage called ``name``; ``KeyError`` if absent."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"no stage {name!r} in this config (have {[s.name for s in self.stages]})")

    def save_json(self, path: str | os.PathLike) -> None:
        """Write the config as indented JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config written by [`save_json`][].

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file is not valid JSON or has unknown fields.
        """
        return cls.from_dict(read_json(path, "training config file"))


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON content of the file ``path``; ``what`` names the file in errors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not valid UTF-8 JSON (or nests too deeply).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {err}") from err
