"""Diffusion noise schedules, kept separate from the denoiser (as in diffusers).

A schedule only defines the cumulative signal level ``alpha_bar[t]``,
t = 0 … T-1, for the forward process ``x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps``.
Values are computed in float64 and cast when gathered.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["CosineSchedule", "LinearSchedule", "NoiseSchedule", "make_schedule"]


class NoiseSchedule(ABC):
    """Base class: holds ``betas`` and ``alphas_cumprod`` (T,) in float64."""

    name = "base"

    def __init__(self, betas: Tensor) -> None:
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(
                f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}"
            )
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must lie in (0, 1)")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    @property
    def num_train_steps(self) -> int:
        """T, the number of discrete diffusion steps."""
        return self.betas.numel()

    def alpha_bar(self, t: Tensor, like: Tensor) -> Tensor:
        """Gather ``alpha_bar[t]`` (same shape as ``t``) with the dtype/device of ``like``."""
        return self.alphas_cumprod.to(device=like.device)[t].to(like.dtype)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Forward process: x_t (B, ...) from x_0 (B, ...), noise (B, ...) and steps t (B,)."""
        ab = self.alpha_bar(t, x0).view(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise

    @abstractmethod
    def to_dict(self) -> dict:
        """Constructor arguments, JSON-serialisable."""


class LinearSchedule(NoiseSchedule):
    """Betas linear from ``beta_start`` to ``beta_end`` (Ho et al., 2020)."""

    name = "linear"

    def __init__(
        self, num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> None:
        if num_train_steps < 1:
            raise ValueError(f"num_train_steps must be >= 1, got {num_train_steps}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        self.beta_start, self.beta_end = beta_start, beta_end
        super().__init__(torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "num_train_steps": self.num_train_steps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
        }


class CosineSchedule(NoiseSchedule):
    """``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos²((t/T + s) / (1 + s) · π/2)`` (Nichol & Dhariwal).

    Betas are clipped at ``max_beta`` so that the last steps stay invertible.
    """

    name = "cosine"

    def __init__(self, num_train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        if num_train_steps < 1:
            raise ValueError(f"num_train_steps must be >= 1, got {num_train_steps}")
        if s < 0 or not 0 < max_beta < 1:
            raise ValueError(f"need s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        self.s, self.max_beta = s, max_beta
        steps = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(min=1e-12, max=max_beta)
        super().__init__(betas)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "num_train_steps": self.num_train_steps,
            "s": self.s,
            "max_beta": self.max_beta,
        }


_SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def make_schedule(name: str, num_train_steps: int = 1000) -> NoiseSchedule:
    """Build a schedule by name (``"linear"`` or ``"cosine"``)."""
    if name not in _SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; expected one of {sorted(_SCHEDULES)}")
    return _SCHEDULES[name](num_train_steps=num_train_steps)
