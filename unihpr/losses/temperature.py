"""Learnable, clamped softmax temperature."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from unihpr._validate import check_bool, check_real

SMALLEST_TAU = torch.finfo(torch.float32).tiny
"""The smallest temperature accepted: the smallest normal float32 (about 1.2e-38)."""
LARGEST_TAU = torch.finfo(torch.float32).max
"""The largest temperature accepted: the largest float32 (about 3.4e38)."""


class _ClampRestoring(torch.autograd.Function):
    """``clamp`` whose gradient still flows when it points back into range.

    Plain ``clamp`` has zero gradient outside [lo, hi], so a parameter that an
    optimiser's momentum pushed past a bound can never return, even when the
    loss would pull it back. Here the gradient passes inside the range, and
    outside it only when a descent step moves the value towards the range.
    """

    @staticmethod
    def forward(ctx, x: Tensor, lo: float, hi: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x >= ctx.lo) & (x <= ctx.hi)
        back_up = (x < ctx.lo) & (grad < 0)  # descent increases x
        back_down = (x > ctx.hi) & (grad > 0)  # descent decreases x
        keep = inside | back_up | back_down
        return torch.where(keep, grad, torch.zeros_like(grad)), None, None


class LearnableTemperature(nn.Module):
    """Softmax temperature τ, learnable in log space and clamped to a range.

    The parameter is ``log τ``, which keeps τ positive and makes optimiser
    steps scale-free. The paper's settings: step 1 ``init=1/14, min=1/100``;
    step 2 ``init=1/5, min=1/10``; fine-tuning ``init=1/5, min=1/5``; all with
    ``max=1e4``.

    Args:
        init: Initial temperature τ0 (> 0, inside [min, max]).
        min: Smallest temperature returned.
        max: Largest temperature returned.
        learnable: If False, τ is a buffer and receives no gradient.

    Examples:
        >>> tau = LearnableTemperature(init=1 / 14, min=1 / 100, max=1e4)
        >>> float(tau())  # doctest: +ELLIPSIS
        0.0714...
    """

    def __init__(
        self,
        init: float = 0.07,
        min: float = 1e-2,
        max: float = 1e4,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        owner = "LearnableTemperature"
        init, min, max = (
            check_real(name, v, low=SMALLEST_TAU, high=LARGEST_TAU, owner=owner)
            for name, v in (("init", init), ("min", min), ("max", max))
        )
        learnable = check_bool("learnable", learnable, owner=owner)
        if not min <= init <= max:
            raise ValueError(
                f"LearnableTemperature: need min <= init <= max, got min={min}, init={init}, max={max}"
            )
        self.min, self.max = min, max
        # A fixed τ is kept in float64 so that float64 losses see it exactly.
        dtype = torch.float32 if learnable else torch.float64
        log_tau = torch.tensor(math.log(init), dtype=dtype)
        if learnable:
            self.log_tau = nn.Parameter(log_tau)
        else:
            self.register_buffer("log_tau", log_tau)

    @property
    def learnable(self) -> bool:
        return isinstance(self.log_tau, nn.Parameter)

    def forward(self) -> Tensor:
        """Return τ as a 0-dim tensor in [min, max]."""
        log_tau = _ClampRestoring.apply(self.log_tau, math.log(self.min), math.log(self.max))
        return log_tau.exp()

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the stored parameter into range (call after an optimiser step)."""
        self.log_tau.clamp_(math.log(self.min), math.log(self.max))

    def extra_repr(self) -> str:
        tau = math.exp(float(self.log_tau.detach()))
        return f"tau={tau:.4g}, min={self.min:g}, max={self.max:g}, learnable={self.learnable}"


def as_temperature(
    temperature: float | LearnableTemperature, *, owner: str, name: str = "temperature"
) -> LearnableTemperature:
    """Turn a float into a fixed temperature module; pass modules through.

    Args:
        temperature: A float τ, from ``SMALLEST_TAU`` to ``LARGEST_TAU``, or a
            [`LearnableTemperature`][].
        owner: Name of the loss, for error messages.
        name: Name of the argument, for error messages.
    """
    if isinstance(temperature, LearnableTemperature):
        return temperature
    t = check_real(name, temperature, low=SMALLEST_TAU, high=LARGEST_TAU, owner=owner)
    return LearnableTemperature(init=t, min=t, max=t, learnable=False)
