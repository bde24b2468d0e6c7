"""HRNet: state-dict compatibility with timm, parameter counts, forward shapes.

The manifest ``data/hrnet_timm_manifest.json.gz`` was produced with
``tests/models/data/make_hrnet_manifest.py --stub-torchvision`` run against
timm 1.0.31 (``pip download timm --no-deps``, wheel unzipped into /tmp and put
on PYTHONPATH; torchvision stubbed by an import hook because its CUDA build
cannot be imported next to the CPU torch). For ``hrnet_w18/w32/w48`` it records
every key and shape of ``timm.create_model(name, pretrained=False).state_dict()``
(in order), the parameter names and ``sum(p.numel() for p in model.parameters())``.
"""

import gzip
import json
from pathlib import Path

import pytest
import torch

from unihpr.models.hrnet import HEAD_PREFIXES, HRNet, hrnet_spec, load_timm_state_dict

with gzip.open(Path(__file__).parent / "data" / "hrnet_timm_manifest.json.gz", "rt") as _fh:
    MANIFEST = json.load(_fh)
NAMES = ["hrnet_w18", "hrnet_w32", "hrnet_w48"]


def _shapes(module):
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]


@pytest.mark.parametrize("name", NAMES)
def test_full_key_set_and_param_count_match_timm(name):
    ref = MANIFEST["models"][name]
    net = HRNet(hrnet_spec(name), include_head=True)
    assert _shapes(net) == list(ref["state_dict"].items())
    assert [k for k, _ in net.named_parameters()] == ref["parameters"]
    assert sum(p.numel() for p in net.parameters()) == ref["num_params"]


def test_backbone_without_head_is_timm_minus_head():
    ref = MANIFEST["models"]["hrnet_w32"]
    net = HRNet(hrnet_spec("hrnet_w32"), include_head=False)
    expected = [(k, s) for k, s in ref["state_dict"].items() if not k.startswith(HEAD_PREFIXES)]
    assert _shapes(net) == expected
    head_params = sum(
        torch.Size(ref["state_dict"][k]).numel()
        for k in ref["parameters"]
        if k.startswith(HEAD_PREFIXES)
    )
    assert sum(p.numel() for p in net.parameters()) == ref["num_params"] - head_params


def _fake_timm_state_dict(name):
    g = torch.Generator().manual_seed(0)
    return {
        k: (torch.randn(s, generator=g) if s else torch.tensor(3))
        for k, s in MANIFEST["models"][name]["state_dict"].items()
    }


def test_timm_checkpoint_loads_strict_with_and_without_head():
    sd = _fake_timm_state_dict("hrnet_w18")
    full = HRNet(hrnet_spec("hrnet_w18"), include_head=True)
    full.load_state_dict(sd, strict=True)
    assert torch.equal(full.classifier.weight, sd["classifier.weight"])
    backbone = HRNet(hrnet_spec("hrnet_w18"))
    load_timm_state_dict(backbone, sd)
    assert torch.equal(backbone.stage4[2].fuse_layers[3][0][2][0].weight,
                       sd["stage4.2.fuse_layers.3.0.2.0.weight"])  # fmt: skip
    del sd["conv1.weight"]
    with pytest.raises(RuntimeError, match=r"conv1\.weight"):
        load_timm_state_dict(HRNet(hrnet_spec("hrnet_w18")), sd)


def test_w18_forward_shapes():
    net = HRNet(hrnet_spec("hrnet_w18")).eval()
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, 18, 16, 24), (1, 36, 8, 12), (1, 72, 4, 6), (1, 144, 2, 3)
    ]  # fmt: skip


def test_tiny_handles_sizes_not_multiple_of_32_and_gradients_reach_all_params():
    net = HRNet(hrnet_spec("hrnet_tiny"))
    feats = net(torch.rand(2, 3, 50, 70))
    assert feats[0].shape[-2:] == (13, 18)
    sum(f.square().mean() for f in feats).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unknown_spec():
    with pytest.raises(ValueError, match="hrnet_w99"):
        hrnet_spec("hrnet_w99")
