"""ImageEncoder: pooled HRNet stage-4 features projected to D."""

import pytest
import torch

from unihpr.models.image_encoder import ImageEncoder


def test_shape_norm_and_feature_width():
    enc = ImageEncoder("hrnet_tiny", embed_dim=24, image_size=(64, 64))
    assert enc.proj.in_features == 8 + 16 + 32 + 64
    out = enc(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 24)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_w32_projection_width_without_forward():
    assert ImageEncoder("hrnet_w32", embed_dim=8).proj.in_features == 32 * 15


def test_gradients_reach_every_parameter():
    enc = ImageEncoder("hrnet_tiny", embed_dim=24, image_size=(64, 48))
    (enc(torch.rand(2, 3, 64, 48)) * torch.randn(2, 24)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("images", "err", "match"),
    [
        (torch.rand(2, 3, 48, 64), ValueError, r"H=64, W=48.*\(2, 3, 48, 64\)"),
        (torch.rand(2, 64, 48, 3), ValueError, "images"),
        (torch.rand(3, 64, 48), ValueError, "images"),
        (torch.zeros(2, 3, 64, 48, dtype=torch.uint8), TypeError, "floating"),
    ],
)
def test_validation(images, err, match):
    enc = ImageEncoder("hrnet_tiny", embed_dim=8, image_size=(64, 48))
    with pytest.raises(err, match=match):
        enc(images)
