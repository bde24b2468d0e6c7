"""Noise schedules and the DDIM scheduler against float64 closed forms."""

import math

import pytest
import torch

from unihpr.models.schedules import (
    CosineSchedule,
    DDIMScheduler,
    LinearSchedule,
    ddim_timesteps,
    make_schedule,
)


def test_cosine_matches_closed_form():
    sched = CosineSchedule(100, s=0.008)
    t = torch.arange(1, 101, dtype=torch.float64)
    f = lambda x: torch.cos((x / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ref = f(t) / f(torch.zeros(1, dtype=torch.float64))
    # identical except where beta hit the max_beta clip (the last step)
    torch.testing.assert_close(sched.alphas_cumprod[:-1], ref[:-1], rtol=1e-10, atol=1e-12)
    assert sched.betas.max() <= 0.999


def test_linear_matches_product():
    sched = LinearSchedule(50, 1e-3, 0.05)
    betas = [1e-3 + (0.05 - 1e-3) * i / 49 for i in range(50)]
    ref = torch.tensor(
        [math.prod(1 - b for b in betas[: i + 1]) for i in range(50)], dtype=torch.float64
    )
    torch.testing.assert_close(sched.alphas_cumprod, ref.double(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sched", [CosineSchedule(300), LinearSchedule(300)])
def test_monotone_and_add_noise(sched):
    ab = sched.alphas_cumprod
    assert (ab[1:] < ab[:-1]).all() and ab[-1] > 0 and ab[0] < 1
    x0, noise = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    t = torch.tensor([0, 10, 100, 299])
    ref = (
        ab[t].sqrt().view(4, 1, 1) * x0.double() + (1 - ab[t]).sqrt().view(4, 1, 1) * noise.double()
    )
    torch.testing.assert_close(sched.add_noise(x0, noise, t).double(), ref, rtol=1e-5, atol=1e-6)


def test_make_schedule_and_errors():
    assert make_schedule("linear", 10).num_train_steps == 10
    assert isinstance(make_schedule("cosine", 10), CosineSchedule)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="beta_start"):
        LinearSchedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="num_train_steps"):
        CosineSchedule(0)


def test_schedules_stay_on_the_cpu_under_a_meta_device_context():
    with torch.device("meta"):
        sched = CosineSchedule(20)
    assert sched.alphas_cumprod.device.type == "cpu" and sched.num_train_steps == 20


def test_ddim_timesteps():
    assert ddim_timesteps(100, 5).tolist() == [99, 74, 50, 25, 0]
    assert ddim_timesteps(3, 10).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(100, 0)
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="num_steps"):
            ddim_timesteps(100, bad)


def test_scheduler_step_matches_the_ddim_formula_float64():
    sched = LinearSchedule(10)
    scheduler = DDIMScheduler(sched)
    assert scheduler.set_timesteps(2).tolist() == [9, 0]
    g = torch.Generator().manual_seed(0)
    x9 = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    a9, a0 = sched.alphas_cumprod[9], sched.alphas_cumprod[0]
    out = scheduler.step(eps, 9, x9)
    x0_hat = (x9 - (1 - a9).sqrt() * eps) / a9.sqrt()
    torch.testing.assert_close(out.pred_original_sample, x0_hat)
    torch.testing.assert_close(out.prev_sample, a0.sqrt() * x0_hat + (1 - a0).sqrt() * eps)
    # the last step lands on x_0 itself (alpha_bar_prev = 1)
    last = scheduler.step(eps, torch.tensor(0), out.prev_sample)
    torch.testing.assert_close(last.prev_sample, last.pred_original_sample)
    torch.testing.assert_close(
        last.prev_sample, (out.prev_sample - (1 - a0).sqrt() * eps) / a0.sqrt()
    )


def test_scheduler_clip_and_add_noise_and_errors():
    sched = CosineSchedule(50)
    scheduler = DDIMScheduler(sched, clip_sample=0.5)
    scheduler.set_timesteps(3)
    x = torch.randn(4, 5, 3) * 10
    out = scheduler.step(torch.zeros_like(x), int(scheduler.timesteps[0]), x)
    assert out.pred_original_sample.abs().max() <= 0.5
    t = torch.tensor([0, 7, 20, 49])
    torch.testing.assert_close(scheduler.add_noise(x, x, t), sched.add_noise(x, x, t))
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(x, 13, x)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        DDIMScheduler("cosine")
    with pytest.raises(ValueError, match="clip_sample"):
        DDIMScheduler(sched, clip_sample=-1.0)
