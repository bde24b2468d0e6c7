"""Tests of the SimpleBaseline MLP lifter."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _standins import PoseImageSet

from unihpr.demo.baselines import LifterStage, SimpleBaselineLifter
from unihpr.train import LossConfig, StageConfig, Trainer


def test_shapes_gradients_and_errors():
    m = SimpleBaselineLifter(5, width=32)
    x = torch.rand(4, 5, 2) * 100
    y = m(x)
    assert y.shape == (4, 5, 3)
    y.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    with pytest.raises(ValueError, match=r"pose2d must be \(B, 5, 2\)"):
        m(torch.zeros(4, 6, 2))
    with pytest.raises(ValueError, match="SimpleBaselineLifter: dropout"):
        SimpleBaselineLifter(5, dropout=1.0)
    with pytest.raises(TypeError, match="SimpleBaselineLifter: num_joints"):
        SimpleBaselineLifter(5.0)


def test_lifter_trains(tmp_path):
    torch.manual_seed(0)
    cfg = StageConfig(name="finetune", steps=40, batch_size=16, lr=1e-3,
                      loss=LossConfig(tau_init=0.2, tau_min=0.2), log_every=1,
                      checkpoint_every=40)  # fmt: skip
    stage = LifterStage(SimpleBaselineLifter(5, width=64, dropout=0.0), cfg)
    hist = Trainer(stage, PoseImageSet(32, images=False), cfg, output_dir=tmp_path,
                   progress=False).fit().history  # fmt: skip
    assert sum(r["loss"] for r in hist[-5:]) < sum(r["loss"] for r in hist[:5])
