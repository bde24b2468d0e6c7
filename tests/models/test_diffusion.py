"""Diffusion decoder: time embedding, the denoiser and the training loss."""

import math

import pytest
import torch

from unihpr.models.diffusion import DiffusionDecoder, sinusoidal_embedding
from unihpr.models.schedules import CosineSchedule

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


def test_denoiser_shapes_and_validation():
    dec = _dec().eval()
    cond = dec.encode_condition(torch.randn(3, D), "pose3d")
    assert cond.shape == (3, 32)
    eps = dec(torch.randn(3, J, 3), torch.tensor([0, 5, 99]), cond)
    assert eps.shape == (3, J, 3) and torch.isfinite(eps).all()
    with pytest.raises(ValueError, match="source"):
        dec.encode_condition(torch.randn(1, D), "text")
    with pytest.raises(ValueError, match="target"):
        dec.loss(torch.randn(2, D), "image", torch.randn(2, J + 1, 3))
    with pytest.raises(ValueError, match="target_scale"):
        _dec(target_scale=0.0)
    with pytest.raises(TypeError, match="NoiseSchedule"):
        _dec(schedule="cosine")
    assert not hasattr(dec, "num_hypotheses")  # sampling settings live with the estimate
