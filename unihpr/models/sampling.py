"""Pose estimates from a diffusion decoder: the DDIM loop, hypotheses, aggregation.

This is the pipeline of diffusers' split: the denoiser
([`DiffusionDecoder`][DiffusionDecoder]) predicts noise, the
scheduler ([`DDIMScheduler`][DDIMScheduler]) steps,
and `ddim_sample` runs one between the
other. [`sample_poses`][sample_poses] draws ``H``
hypotheses per input from seeded noise (reproducible estimates), and
[`aggregate_hypotheses`][aggregate_hypotheses] combines
them per joint by their mean or geometric median — the ground truth is never
consulted. [`UniHPR.decode`][UniHPR.decode] is where the two
are put together.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from unihpr._validate import check_choice, check_generator, check_int
from unihpr.models.config import AGGREGATIONS, LIMITS
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.schedules import DDIMScheduler

__all__ = [
    "AGGREGATIONS",
    "CLIP_SAMPLE",
    "DEFAULT_SEED",
    "aggregate_hypotheses",
    "ddim_sample",
    "geometric_median",
    "sample_poses",
]

# Clamp of the x_0 estimates during sampling, in the decoder's scaled units
# (poses / target_scale, about unit scale): 4 leaves every plausible pose alone
# and stops a diverging early step from throwing the sample far off.
CLIP_SAMPLE = 4.0
"""Default clamp of the x_0 estimates, in the decoder's scaled units."""
# Seed of the starting noise when no generator is given: a model's estimate is
# then a deterministic function of its input.
DEFAULT_SEED = 0
"""Seed of the starting noise when no generator is given."""


def geometric_median(points: Tensor, dim: int = 1, iters: int = 64, eps: float = 1e-9) -> Tensor:
    """Weiszfeld's algorithm for the geometric median along ``dim``.

    Args:
        points: (..., H, ..., C): H candidate points of dimension C (last axis).
        dim: Axis holding the H candidates.
        iters: Fixed number of iterations (keeps the op graph-capturable).
        eps: Distance floor; avoids division by zero when the iterate hits a point.

    Returns:
        ``points`` with axis ``dim`` removed.
    """
    y = points.mean(dim=dim, keepdim=True)
    for _ in range(iters):
        d = (points - y).norm(dim=-1, keepdim=True).clamp_min(eps)
        w = 1.0 / d
        y = (w * points).sum(dim=dim, keepdim=True) / w.sum(dim=dim, keepdim=True)
    return y.squeeze(dim)


def aggregate_hypotheses(hyps: Tensor, method: str = "mean") -> Tensor:
    """Combine hypotheses (B, H, J, C) into one pose (B, J, C) without ground truth.

    Args:
        hyps: (B, H, J, C).
        method: "mean" (coordinate-wise) or "median" (joint-wise geometric median).
    """
    check_choice("aggregation", method, AGGREGATIONS)
    return hyps.mean(dim=1) if method == "mean" else geometric_median(hyps, dim=1)


def ddim_sample(
    denoise: Callable[[Tensor, Tensor], Tensor],
    x_T: Tensor,
    scheduler: DDIMScheduler,
    num_steps: int,
) -> Tensor:
    """Run the reverse process from ``x_T`` to an estimate of ``x_0``.

    Args:
        denoise: ``eps = denoise(x_t, t)`` with ``t`` (N,) long steps on ``x_T``'s device.
        x_T: Starting noise (N, ...).
        scheduler: The sampler (its ``timesteps`` are set here).
        num_steps: Number of denoiser evaluations.

    Returns:
        x_0 estimate, same shape as ``x_T``.
    """
    x = x_T
    n = x.shape[0]
    for t in scheduler.set_timesteps(num_steps).tolist():
        # Built from a host int: no read-back from the device inside the loop.
        t_batch = torch.full((n,), t, dtype=torch.long, device=x.device)
        x = scheduler.step(denoise(x, t_batch), t, x).prev_sample
    return x


def sample_poses(
    decoder: DiffusionDecoder,
    embedding: Tensor,
    source: str,
    *,
    num_steps: int,
    num_hypotheses: int = 1,
    generator: torch.Generator | None = None,
    clip_sample: float | None = CLIP_SAMPLE,
) -> Tensor:
    """Draw ``num_hypotheses`` poses per embedding with deterministic DDIM.

    Args:
        decoder: The denoiser.
        embedding: (B, D) embeddings.
        source: "image", "pose2d" or "pose3d".
        num_steps: DDIM steps (at most ``LIMITS["diffusion_sampling_steps"]``).
        num_hypotheses: H samples per input (at most ``LIMITS["num_hypotheses"]``).
        generator: RNG of the starting noise; one seeded with ``DEFAULT_SEED``
            when ``None``, which makes the output a deterministic function of the input.
        clip_sample: See [`DDIMScheduler`][DDIMScheduler].

    Returns:
        Hypotheses (B, H, J, dims) in the decoder's output units.
    """
    if not isinstance(decoder, DiffusionDecoder):
        raise TypeError(f"decoder must be a DiffusionDecoder, got {type(decoder).__name__}")
    steps = check_int("num_steps", num_steps, low=1, high=LIMITS["diffusion_sampling_steps"])
    h = check_int("num_hypotheses", num_hypotheses, low=1, high=LIMITS["num_hypotheses"])
    check_generator(generator)
    cond = decoder.encode_condition(embedding, source)
    b = cond.shape[0]
    if generator is None:
        generator = torch.Generator(device=cond.device).manual_seed(DEFAULT_SEED)
    shape = (b * h, decoder.num_joints, decoder.dims)
    x_T = torch.randn(shape, device=cond.device, dtype=cond.dtype, generator=generator)
    cond_rep = cond.repeat_interleave(h, dim=0)
    scheduler = DDIMScheduler(decoder.schedule, clip_sample=clip_sample)
    x0 = ddim_sample(lambda x, t: decoder(x, t, cond_rep), x_T, scheduler, steps)
    return (x0 * decoder.target_scale).view(b, h, decoder.num_joints, decoder.dims)
