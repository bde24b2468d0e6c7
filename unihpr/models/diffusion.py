"""Diffusion pose decoder: epsilon-prediction score matching, DDIM sampling.

The condition of the denoiser is ``proj(embedding + representation token) +
time embedding`` (paper §III-A). Training minimises the denoising
score-matching loss ``|eps - eps_theta(x_t, t, c)|²`` (Ho et al. 2020, the
epsilon form of Song & Ermon's objective). Sampling is deterministic DDIM
(eta = 0) on an evenly spaced subset of the training steps, starting from noise
drawn from a seeded generator, so estimates are reproducible. With
``num_hypotheses > 1`` several samples are drawn and aggregated per joint by
their mean or geometric median; the ground truth is never consulted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from unihpr.models.decoders import PoseDecoder, _encoder, masked_pose_mse
from unihpr.models.schedules import CosineSchedule, NoiseSchedule

__all__ = [
    "DiffusionDecoder",
    "aggregate_hypotheses",
    "ddim_sample",
    "geometric_median",
    "sinusoidal_embedding",
]

AGGREGATIONS = ("mean", "median")


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style embedding of (possibly fractional) steps.

    Args:
        t: Steps (B,).
        dim: Output width (even).
        max_period: Longest wavelength.

    Returns:
        (B, dim): ``[cos(t f_k), sin(t f_k)]`` with ``f_k = max_period^(-k / (dim/2))``.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.float32
    k = torch.arange(half, device=t.device, dtype=dtype)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t.to(dtype)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


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
    if method == "mean":
        return hyps.mean(dim=1)
    if method == "median":
        return geometric_median(hyps, dim=1)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")


def ddim_timesteps(num_train_steps: int, num_steps: int) -> Tensor:
    """Evenly spaced, strictly decreasing steps from T-1 to 0 (at most ``num_train_steps``)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ts = torch.linspace(num_train_steps - 1, 0, min(num_steps, num_train_steps))
    return torch.unique(ts.round().long(), sorted=True).flip(0)


def ddim_sample(
    denoise: Callable[[Tensor, Tensor], Tensor],
    x_T: Tensor,
    schedule: NoiseSchedule,
    num_steps: int,
    clip: float | None = None,
) -> Tensor:
    """Deterministic DDIM (eta = 0) from ``x_T`` to an estimate of ``x_0``.

    Args:
        denoise: ``eps = denoise(x_t, t)`` with ``t`` (N,) long steps.
        x_T: Starting noise (N, ...).
        schedule: Noise schedule used in training.
        num_steps: Number of denoiser evaluations.
        clip: Clamp the intermediate x_0 estimates to [-clip, clip] (``None``: no clamp).

    Returns:
        x_0 estimate, same shape as ``x_T``.
    """
    ts = ddim_timesteps(schedule.num_train_steps, num_steps).to(x_T.device)
    x = x_T
    ab_all = schedule.alphas_cumprod.to(device=x.device, dtype=x.dtype)
    for i, t in enumerate(ts):
        ab = ab_all[t]
        ab_prev = ab_all[ts[i + 1]] if i + 1 < len(ts) else torch.ones_like(ab)
        eps = denoise(x, t.expand(x.shape[0]))
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            # Keep eps consistent with the clamped x0 so the next step stays on the DDIM path.
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


class DiffusionDecoder(PoseDecoder):
    """Conditional denoiser over joint tokens.

    Each joint token is ``Linear(x_t[j]) + pos[j] + c`` with the condition
    ``c = proj(embedding + rep_token) + MLP(sinusoid(t))``; ``c`` is also
    prepended as its own token. Pre-norm Transformer layers, per-joint linear
    output = predicted noise.

    Args:
        num_joints: J.
        dims: 2 or 3.
        embed_dim: D.
        width, depth, num_heads, mlp_ratio, dropout: Transformer size.
        schedule: Noise schedule; default ``CosineSchedule(1000)``.
        num_sampling_steps: DDIM steps at inference.
        num_hypotheses: Samples per input at inference.
        aggregation: "mean" or "median" (joint-wise geometric median).
        target_scale: Poses are divided by it before diffusion (keeps x_0 ~ unit scale).
        clip_sample: Clamp of the x_0 estimates during sampling, in scaled units.
        seed: Seed of the starting noise when no generator is passed.
        use_representation_token: Add the learned source token to the embedding.
    """

    def __init__(
        self,
        num_joints: int,
        dims: int,
        embed_dim: int,
        width: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        schedule: NoiseSchedule | None = None,
        num_sampling_steps: int = 10,
        num_hypotheses: int = 1,
        aggregation: str = "mean",
        target_scale: float = 1.0,
        clip_sample: float | None = 4.0,
        seed: int = 0,
        use_representation_token: bool = True,
    ) -> None:
        super().__init__(num_joints, dims, embed_dim, use_representation_token)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if num_sampling_steps < 1 or num_hypotheses < 1:
            raise ValueError(
                "num_sampling_steps and num_hypotheses must be >= 1, got "
                f"{num_sampling_steps} and {num_hypotheses}"
            )
        if target_scale <= 0:
            raise ValueError(f"target_scale must be positive, got {target_scale}")
        self.schedule = schedule if schedule is not None else CosineSchedule(1000)
        self.num_sampling_steps = num_sampling_steps
        self.num_hypotheses = num_hypotheses
        self.aggregation = aggregation
        self.target_scale = float(target_scale)
        self.clip_sample = clip_sample
        self.seed = seed
        self.width = width
        self.cond_proj = nn.Linear(embed_dim, width)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.in_proj = nn.Linear(dims, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = _encoder(width, depth, num_heads, mlp_ratio, dropout)
        self.out = nn.Linear(width, dims)

    def _cond(self, embedding: Tensor, source: str) -> Tensor:
        return self.cond_proj(self.condition(embedding, source))

    def denoise(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict the noise.

        Args:
            x_t: Noisy scaled poses (N, J, dims).
            t: Steps (N,) long.
            cond: Projected condition (N, width) from the embedding and source.

        Returns:
            Predicted noise (N, J, dims).
        """
        c = cond + self.time_mlp(sinusoidal_embedding(t, self.width).to(cond.dtype))
        c = c[:, None]
        tokens = self.in_proj(x_t) + self.pos_embed + c
        h = self.blocks(torch.cat([c, tokens], dim=1))
        return self.out(h[:, 1:])

    def loss(
        self,
        embedding: Tensor,
        source: str,
        target: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Denoising score-matching loss (epsilon prediction) at a random step per sample.

        Args:
            embedding: (B, D).
            source: "image", "pose2d" or "pose3d".
            target: (B, J, dims) clean poses in the decoder's output convention.
            mask: (B, J) bool visible joints; others are excluded from the loss.
            generator: Optional RNG for the steps and the noise.

        Returns:
            Scalar loss.
        """
        target, mask = self._check_target(embedding, target, mask)
        cond = self._cond(embedding, source)
        if mask is not None:
            target = torch.where(mask[..., None], target, torch.zeros_like(target))
        x0 = target / self.target_scale
        b = x0.shape[0]
        t = torch.randint(
            0, self.schedule.num_train_steps, (b,), device=x0.device, generator=generator
        )
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        x_t = self.schedule.add_noise(x0, noise, t)
        return masked_pose_mse(self.denoise(x_t, t, cond), noise, mask)

    def forward(
        self,
        embedding: Tensor,
        source: str,
        *,
        num_steps: int | None = None,
        num_hypotheses: int | None = None,
        aggregation: str | None = None,
        generator: torch.Generator | None = None,
        return_hypotheses: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Sample poses for (B, D) embeddings from ``source``.

        Args:
            embedding: (B, D).
            source: "image", "pose2d" or "pose3d".
            num_steps: DDIM steps (default ``num_sampling_steps``).
            num_hypotheses: H samples per input (default ``num_hypotheses``).
            aggregation: "mean" or "median" (default ``aggregation``).
            generator: RNG for the starting noise; a generator seeded with ``seed`` when
                ``None``, which makes the output a deterministic function of the input.
            return_hypotheses: Also return all samples.

        Returns:
            Poses (B, J, dims); with ``return_hypotheses`` also (B, H, J, dims).
        """
        steps = self.num_sampling_steps if num_steps is None else num_steps
        hyps_n = self.num_hypotheses if num_hypotheses is None else num_hypotheses
        method = self.aggregation if aggregation is None else aggregation
        if steps < 1 or hyps_n < 1:
            raise ValueError(f"num_steps and num_hypotheses must be >= 1, got {steps}, {hyps_n}")
        if method not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
        cond = self._cond(embedding, source)
        b = cond.shape[0]
        if generator is None:
            generator = torch.Generator(device=cond.device).manual_seed(self.seed)
        shape = (b * hyps_n, self.num_joints, self.dims)
        x_T = torch.randn(shape, device=cond.device, dtype=cond.dtype, generator=generator)
        cond_rep = cond.repeat_interleave(hyps_n, dim=0)
        x0 = ddim_sample(
            lambda x, t: self.denoise(x, t, cond_rep), x_T, self.schedule, steps, self.clip_sample
        )
        hyps = (x0 * self.target_scale).view(b, hyps_n, self.num_joints, self.dims)
        pose = aggregate_hypotheses(hyps, method)
        return (pose, hyps) if return_hypotheses else pose
