"""Diffusion pose decoder: the denoiser and its score-matching training loss.

The condition of the denoiser is ``proj(embedding + representation token) +
time embedding`` (paper §III-A). Training minimises the denoising
score-matching loss ``|eps - eps_theta(x_t, t, c)|²`` (Ho et al. 2020, the
epsilon form of Song & Ermon's objective).

As in diffusers, the network knows nothing of sampling: the DDIM sampler is
[`DDIMScheduler`][DDIMScheduler] beside the noise
schedule, the loop that draws hypotheses from it is
[`sample_poses`][], and the hypotheses are combined
into one estimate by [`UniHPR.decode`][UniHPR.decode].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from unihpr._validate import check_real
from unihpr.models.decoders import PoseDecoder, masked_pose_mse
from unihpr.models.pose_encoder import transformer
from unihpr.models.schedules import CosineSchedule, NoiseSchedule

__all__ = ["DiffusionDecoder", "sinusoidal_embedding"]


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


class DiffusionDecoder(PoseDecoder):
    """Conditional denoiser over joint tokens, epsilon prediction.

    Each joint token is ``Linear(x_t[j]) + pos[j] + c`` with the condition
    ``c = proj(embedding + rep_token) + MLP(sinusoid(t))``; ``c`` is also
    prepended as its own token. Pre-norm Transformer layers, per-joint linear
    output = predicted noise.

    Unlike the regression decoders, ``forward`` is one denoiser evaluation,
    not a pose estimate; poses come from
    [`UniHPR.decode`][UniHPR.decode] (or
    [`sample_poses`][sample_poses]).

    Args:
        num_joints: J.
        dims: 2 or 3.
        embed_dim: D.
        width, depth, num_heads, mlp_ratio, dropout: Transformer size.
        schedule: Noise schedule of the training loss; default ``CosineSchedule(1000)``.
        target_scale: Poses are divided by it before diffusion (keeps x_0 ~ unit scale).
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
        target_scale: float = 1.0,
        use_representation_token: bool = True,
    ) -> None:
        super().__init__(num_joints, dims, embed_dim, use_representation_token)
        check_real("target_scale", target_scale, low=0.0, low_open=True)
        if schedule is not None and not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.schedule = schedule if schedule is not None else CosineSchedule(1000)
        self.target_scale = float(target_scale)
        self.width = width
        self.cond_proj = nn.Linear(embed_dim, width)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.in_proj = nn.Linear(dims, width)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = transformer(width, depth, num_heads, mlp_ratio, dropout)
        self.out = nn.Linear(width, dims)

    def encode_condition(self, embedding: Tensor, source: str) -> Tensor:
        """Projected condition (B, width) of embeddings (B, D) from ``source``.

        Computed once per input and reused at every denoising step.
        """
        return self.cond_proj(self.condition(embedding, source))

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predict the noise.

        Args:
            x_t: Noisy scaled poses (N, J, dims).
            t: Steps (N,) long.
            cond: Projected condition (N, width) from [`encode_condition`][DiffusionDecoder.encode_condition].

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
        cond = self.encode_condition(embedding, source)
        if mask is not None:
            target = torch.where(mask[..., None], target, torch.zeros_like(target))
        x0 = target / self.target_scale
        b = x0.shape[0]
        t = torch.randint(
            0, self.schedule.num_train_steps, (b,), device=x0.device, generator=generator
        )
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        x_t = self.schedule.add_noise(x0, noise, t)
        return masked_pose_mse(self(x_t, t, cond), noise, mask)
