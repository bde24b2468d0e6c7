"""Diffusion noise schedules and the DDIM sampler, kept apart from the denoiser.

As in diffusers, the network knows nothing of sampling:

* a [`NoiseSchedule`][NoiseSchedule] defines the
  cumulative signal level ``alpha_bar[t]``, t = 0 … T-1, of the forward process
  ``x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps`` (``add_noise``, used by the training
  loss);
* a [`DDIMScheduler`][DDIMScheduler] walks it backwards:
  ``set_timesteps(n)`` picks n steps, ``step(eps, t, x_t)`` returns x at the
  next step and the current estimate of x_0;
* the loop that calls the denoiser between steps is
  ``unihpr.models.sampling.ddim_sample``.

Values are computed in float64 on the CPU (also when a model is built under
``torch.device("meta")``) and cast when gathered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from unihpr._validate import check_int, check_real

__all__ = [
    "CosineSchedule",
    "DDIMScheduler",
    "LinearSchedule",
    "NoiseSchedule",
    "SchedulerOutput",
    "ddim_timesteps",
    "make_schedule",
]


class NoiseSchedule:
    """A schedule of ``betas`` (T,) in (0, 1), with ``alphas_cumprod`` (T,); float64 on the CPU."""

    def __init__(self, betas: Tensor) -> None:
        betas = betas.to(device="cpu", dtype=torch.float64)
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

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """Forward process: x_t (B, ...) from x_0 (B, ...), noise (B, ...) and steps t (B,)."""
        ab = self.alphas_cumprod.to(device=x0.device)[t].to(x0.dtype)
        ab = ab.view(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


class LinearSchedule(NoiseSchedule):
    """Betas linear from ``beta_start`` to ``beta_end`` (Ho et al., 2020)."""

    def __init__(
        self, num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> None:
        check_int("num_train_steps", num_train_steps, low=1)
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        super().__init__(
            torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64, device="cpu")
        )


class CosineSchedule(NoiseSchedule):
    """``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos²((t/T + s) / (1 + s) · π/2)`` (Nichol & Dhariwal).

    Betas are clipped at ``max_beta`` so that the last steps stay invertible.
    """

    def __init__(self, num_train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        check_int("num_train_steps", num_train_steps, low=1)
        if s < 0 or not 0 < max_beta < 1:
            raise ValueError(f"need s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        steps = (
            torch.arange(num_train_steps + 1, dtype=torch.float64, device="cpu") / num_train_steps
        )
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(min=1e-12, max=max_beta)
        super().__init__(betas)


_SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def make_schedule(name: str, num_train_steps: int = 1000) -> NoiseSchedule:
    """Build a schedule by name (``"linear"`` or ``"cosine"``)."""
    if name not in _SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; expected one of {sorted(_SCHEDULES)}")
    return _SCHEDULES[name](num_train_steps=num_train_steps)


def ddim_timesteps(num_train_steps: int, num_steps: int) -> Tensor:
    """Evenly spaced, strictly decreasing steps from T-1 to 0 (at most ``num_train_steps``).

    Args:
        num_train_steps: T of the schedule.
        num_steps: Number of sampling steps wanted.

    Returns:
        (n,) long tensor on the CPU, n = ``min(num_steps, num_train_steps)`` (fewer if
        rounding merges steps).

    Examples:
        >>> ddim_timesteps(100, 5).tolist()
        [99, 74, 50, 25, 0]
    """
    check_int("num_steps", num_steps, low=1)
    ts = torch.linspace(num_train_steps - 1, 0, min(num_steps, num_train_steps), device="cpu")
    return torch.unique(ts.round().long(), sorted=True).flip(0)


@dataclass
class SchedulerOutput:
    """Result of [`DDIMScheduler.step`][DDIMScheduler.step].

    Attributes:
        prev_sample: x at the next (lower) step, or the final sample after step 0.
        pred_original_sample: The estimate of x_0 made at this step.
    """

    prev_sample: Tensor
    pred_original_sample: Tensor


class DDIMScheduler:
    """Deterministic DDIM (eta = 0) over a noise schedule, in diffusers' shape.

    Args:
        schedule: The noise schedule the denoiser was trained with.
        clip_sample: Clamp of the x_0 estimates to ``[-clip_sample, clip_sample]``
            (``None``: no clamp). The noise estimate is then recomputed from the
            clamped x_0, so the next step stays on the DDIM path.

    Examples:
        >>> import torch
        >>> scheduler = DDIMScheduler(CosineSchedule(100))
        >>> scheduler.set_timesteps(4).tolist()
        [99, 66, 33, 0]
        >>> x = torch.randn(2, 5, 3)
        >>> for t in scheduler.timesteps:
        ...     eps = torch.zeros_like(x)  # a denoiser's prediction
        ...     x = scheduler.step(eps, t, x).prev_sample
    """

    def __init__(self, schedule: NoiseSchedule, clip_sample: float | None = None) -> None:
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if clip_sample is not None:
            check_real("clip_sample", clip_sample, low=0.0, low_open=True)
        self.schedule = schedule
        self.clip_sample = clip_sample
        self.timesteps = torch.zeros(0, dtype=torch.long)
        self._next: dict[int, int | None] = {}
        self._alpha_bars: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def set_timesteps(self, num_steps: int) -> Tensor:
        """Choose the steps of the reverse process (stored in ``timesteps``).

        Args:
            num_steps: Number of denoiser evaluations (capped at T).

        Returns:
            ``timesteps``: (n,) long, decreasing from T-1 to 0, on the CPU (the loop
            runs on the host; nothing is read back from the device).
        """
        self.timesteps = ddim_timesteps(self.schedule.num_train_steps, num_steps)
        ts = self.timesteps.tolist()
        self._next = {t: (ts[i + 1] if i + 1 < len(ts) else None) for i, t in enumerate(ts)}
        return self.timesteps

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """Forward process x_t (B, ...) from x_0 (B, ...), noise (B, ...) and steps (B,)."""
        return self.schedule.add_noise(original_samples, noise, timesteps)

    def _alpha_bar_table(self, like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        if key not in self._alpha_bars:  # one host-to-device copy per device and dtype
            self._alpha_bars[key] = self.schedule.alphas_cumprod.to(
                device=like.device, dtype=like.dtype
            )
        return self._alpha_bars[key]

    def step(self, model_output: Tensor, timestep: int | Tensor, sample: Tensor) -> SchedulerOutput:
        """One DDIM step from ``timestep`` to the next one of ``timesteps``.

        Args:
            model_output: Predicted noise eps, same shape as ``sample``.
            timestep: The current step, an element of ``timesteps``.
            sample: x_t (N, ...).

        Returns:
            x at the next step (x_0 after the last step) and this step's x_0 estimate.
        """
        t = int(timestep)
        if t not in self._next:
            raise ValueError(
                f"timestep {t} is not one of the scheduler's timesteps "
                f"{self.timesteps.tolist()}; call set_timesteps() first"
            )
        table = self._alpha_bar_table(sample)
        ab = table[t]
        prev = self._next[t]
        ab_prev = table[prev] if prev is not None else torch.ones_like(ab)
        eps = model_output
        x0 = (sample - (1 - ab).sqrt() * eps) / ab.sqrt()
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
            eps = (sample - ab.sqrt() * x0) / (1 - ab).sqrt()
        prev_sample = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)
