"""Noise schedules against float64 closed forms."""

import math

import pytest
import torch

from unihpr.models.schedules import CosineSchedule, LinearSchedule, make_schedule


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


def test_to_dict_and_errors():
    assert make_schedule("linear", 10).to_dict()["num_train_steps"] == 10
    assert CosineSchedule(10).to_dict()["name"] == "cosine"
    with pytest.raises(ValueError, match="unknown noise schedule"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="beta_start"):
        LinearSchedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="num_train_steps"):
        CosineSchedule(0)
