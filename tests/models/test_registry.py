"""Named configurations and create_model."""

import gzip
import json
from pathlib import Path

import pytest
import torch

from unihpr.models import UniHPR, create_model, get_config, list_models
from unihpr.models.hrnet import HEAD_PREFIXES

with gzip.open(Path(__file__).parent / "data" / "hrnet_timm_manifest.json.gz", "rt") as _fh:
    MANIFEST = json.load(_fh)


def test_names_and_paper_settings():
    assert list_models() == ["unihpr-tiny", "unihpr-w32", "unihpr-w48"]
    tiny = get_config("unihpr-tiny")
    assert (tiny.num_joints, tiny.image_size) == (15, (64, 64))
    for name, backbone in (("unihpr-w32", "hrnet_w32"), ("unihpr-w48", "hrnet_w48")):
        cfg = get_config(name)
        assert (cfg.num_joints, cfg.image_size, cfg.image_backbone) == (17, (256, 192), backbone)


def test_create_with_overrides_and_errors():
    m = create_model("unihpr-tiny", decoder="diffusion", embed_dim=64)
    assert isinstance(m, UniHPR) and m.config.embed_dim == 64
    assert type(m.decoder3d).__name__ == "DiffusionDecoder"
    assert get_config("unihpr-tiny").embed_dim == 128  # registry entry untouched
    with pytest.raises(ValueError, match="available"):
        create_model("unihpr-w64")
    with pytest.raises(ValueError, match="embed_dimm"):
        create_model("unihpr-tiny", embed_dimm=3)
    with pytest.raises(ValueError, match="architecture"):
        create_model("unihpr-tiny", pretrained=True, embed_dim=64)


def test_w32_backbone_parameter_count_matches_timm_backbone():
    m = create_model("unihpr-w32")
    ref = MANIFEST["models"]["hrnet_w32"]
    backbone = sum(
        torch.Size(ref["state_dict"][k]).numel()
        for k in ref["parameters"]
        if not k.startswith(HEAD_PREFIXES)
    )
    assert sum(p.numel() for p in m.image_encoder.backbone.parameters()) == backbone
    assert m.image_encoder.proj.in_features == 32 + 64 + 128 + 256


def test_tiny_trains_a_step_fast():
    m = create_model("unihpr-tiny")
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    img = torch.rand(8, 3, 64, 64)
    p3 = torch.randn(8, 15, 3) * 0.3
    before = m.decoder3d.loss(m.encode_image(img), "image", p3)
    for _ in range(5):
        opt.zero_grad()
        loss = m.decoder3d.loss(m.encode_image(img), "image", p3)
        loss.backward()
        opt.step()
    assert loss.item() < before.item()
