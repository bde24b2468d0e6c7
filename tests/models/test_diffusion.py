"""Diffusion decoder: time embedding, DDIM sampler, hypotheses and the training loss."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unihpr.models.diffusion import (
    DiffusionDecoder,
    aggregate_hypotheses,
    ddim_sample,
    ddim_timesteps,
    geometric_median,
    sinusoidal_embedding,
)
from unihpr.models.schedules import CosineSchedule, LinearSchedule

J, D = 5, 16


def _dec(**kw):
    kw.setdefault("schedule", CosineSchedule(100))
    return DiffusionDecoder(J, 3, D, width=32, depth=1, num_heads=4, **kw)


def test_sinusoidal_embedding_float64_reference():
    t = torch.tensor([0.0, 1.0, 17.0, 999.0], dtype=torch.float64)
    out = sinusoidal_embedding(t, 8)
    ref = torch.empty(4, 8, dtype=torch.float64)
    for i, ti in enumerate(t.tolist()):
        for k in range(4):
            f = 10000 ** (-k / 4)
            ref[i, k], ref[i, 4 + k] = math.cos(ti * f), math.sin(ti * f)
    torch.testing.assert_close(out, ref)
    assert sinusoidal_embedding(torch.tensor([3, 5]), 6).dtype == torch.float32
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_ddim_timesteps():
    assert ddim_timesteps(100, 5).tolist() == [99, 74, 50, 25, 0]
    assert ddim_timesteps(3, 10).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(100, 0)


@pytest.mark.parametrize("sched", [CosineSchedule(200), LinearSchedule(200)])
@pytest.mark.parametrize("steps", [1, 4, 25])
def test_ddim_with_oracle_denoiser_recovers_x0_float64(sched, steps):
    # An exact epsilon predictor for a single known x0 must lead DDIM back to it.
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, J, 3, generator=g, dtype=torch.float64)
    ab = sched.alphas_cumprod

    def oracle(x, t):
        a = ab[t].view(-1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    x_T = torch.randn(3, J, 3, generator=g, dtype=torch.float64)
    out = ddim_sample(oracle, x_T, sched, steps)
    torch.testing.assert_close(out, x0, rtol=1e-9, atol=1e-9)


def test_ddim_single_step_matches_formula():
    sched = LinearSchedule(10)
    x_T = torch.randn(2, J, 3, dtype=torch.float64)
    eps = torch.randn(2, J, 3, dtype=torch.float64)
    out = ddim_sample(lambda x, t: eps, x_T, sched, 2)  # steps 9 -> 0 -> x0
    a9, a0 = sched.alphas_cumprod[9], sched.alphas_cumprod[0]
    x0_hat = (x_T - (1 - a9).sqrt() * eps) / a9.sqrt()
    x_0 = a0.sqrt() * x0_hat + (1 - a0).sqrt() * eps
    ref = (x_0 - (1 - a0).sqrt() * eps) / a0.sqrt()
    torch.testing.assert_close(out, ref)


@settings(max_examples=30)
@given(st.lists(st.floats(-10, 10), min_size=3, max_size=9))
def test_geometric_median_1d_is_the_median(values):
    pts = torch.tensor(values, dtype=torch.float64).view(1, -1, 1)
    med = geometric_median(pts, dim=1, iters=500)
    obj = lambda y: (pts - y).abs().sum()  # noqa: E731
    sorted_v = sorted(values)
    n = len(values)
    ref = sorted_v[n // 2] if n % 2 else 0.5 * (sorted_v[n // 2 - 1] + sorted_v[n // 2])
    # any point between the two middle values is optimal for even n: compare objectives
    assert obj(med) <= obj(torch.tensor(ref, dtype=torch.float64)) + 1e-6


def test_geometric_median_is_optimal_and_robust():
    g = torch.Generator().manual_seed(3)
    pts = torch.randn(2, 7, 4, 3, generator=g, dtype=torch.float64)
    med = geometric_median(pts, dim=1, iters=300)
    assert med.shape == (2, 4, 3)
    obj = lambda y: (pts - y[:, None]).norm(dim=-1).sum(1)  # noqa: E731
    for _ in range(20):
        assert (obj(med) <= obj(med + 1e-3 * torch.randn(med.shape, generator=g, dtype=torch.float64)) + 1e-12).all()  # fmt: skip
    outlier = pts.clone()
    outlier[:, 0] += 1000.0  # one wild hypothesis moves the mean a lot, the median little
    shift_med = (geometric_median(outlier, 1, 300) - med).norm(dim=-1).max()
    shift_mean = (outlier.mean(1) - pts.mean(1)).norm(dim=-1).min()
    assert shift_med < 2.0 < shift_mean
    torch.testing.assert_close(aggregate_hypotheses(pts, "mean"), pts.mean(1))
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_hypotheses(pts, "oracle")


def test_sampling_is_deterministic_and_hypotheses_shapes():
    dec = _dec(num_sampling_steps=3).eval()
    emb = torch.randn(2, D)
    with torch.no_grad():
        a, b = dec(emb, "image"), dec(emb, "image")
        torch.testing.assert_close(a, b)
        assert a.shape == (2, J, 3)
        pose, hyps = dec(emb, "image", num_hypotheses=4, return_hypotheses=True)
        assert hyps.shape == (2, 4, J, 3) and pose.shape == (2, J, 3)
        torch.testing.assert_close(pose, hyps.mean(1))
        med = dec(emb, "image", num_hypotheses=4, aggregation="median")
        torch.testing.assert_close(med, geometric_median(hyps, dim=1))
        assert not torch.allclose(hyps[:, 0], hyps[:, 1])
        other = dec(emb, "image", generator=torch.Generator().manual_seed(5))
        assert not torch.allclose(a, other)
        assert not torch.allclose(a, dec(emb, "pose2d"))


def test_clip_bounds_samples():
    dec = _dec(num_sampling_steps=2, clip_sample=0.1, target_scale=2.0).eval()
    with torch.no_grad():
        out = dec(torch.randn(4, D) * 100, "image")
    assert out.abs().max() <= 0.2 + 1e-6


def test_loss_gradients_masking_and_learning():
    torch.manual_seed(0)
    dec = _dec()
    emb = torch.randn(6, D, requires_grad=True)
    target = torch.randn(6, J, 3) * 0.3
    mask = torch.ones(6, J, dtype=torch.bool)
    mask[0, 2] = False
    target_nan = target.clone()
    target_nan[0, 2] = float("nan")
    g = torch.Generator().manual_seed(1)
    loss = dec.loss(emb, "pose3d", target_nan, mask, generator=g)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in dec.named_parameters():
        if name == "representation_tokens.weight":
            assert p.grad[2].abs().sum() > 0
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert emb.grad.abs().sum() > 0
    # the masked joint's (NaN) coordinates do not change the loss
    l1 = dec.loss(emb, "pose3d", target_nan, mask, generator=torch.Generator().manual_seed(2))
    t2 = target.clone()
    t2[0, 2] = 7.0
    l2 = dec.loss(emb, "pose3d", t2, mask, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(l1, l2)


def test_validation():
    with pytest.raises(ValueError, match="aggregation"):
        _dec(aggregation="best")
    with pytest.raises(ValueError, match="num_sampling_steps"):
        _dec(num_sampling_steps=0)
    dec = _dec()
    with pytest.raises(ValueError, match="num_hypotheses"):
        dec(torch.randn(1, D), "image", num_hypotheses=0)
    with pytest.raises(ValueError, match="source"):
        dec(torch.randn(1, D), "text")
    with pytest.raises(ValueError, match="target"):
        dec.loss(torch.randn(2, D), "image", torch.randn(2, J + 1, 3))
