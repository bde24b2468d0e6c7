"""Tests of the stage/run configuration dataclasses."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unihpr.train.config import StageConfig, TrainConfig, paper_stage1, paper_stage2, paper_stage3


def test_paper_defaults():
    cfg = TrainConfig()
    s1, s2, s3 = cfg.stages
    assert [s.name for s in cfg.stages] == ["align2d3d", "align_image", "finetune"]
    assert (s1.batch_size, s2.batch_size, s3.batch_size) == (2048, 180, 180)
    assert math.isclose(s1.tau_init, 1 / 14) and math.isclose(s1.tau_min, 1 / 100)
    assert math.isclose(s2.tau_init, 1 / 5) and math.isclose(s2.tau_min, 1 / 10)
    assert math.isclose(s3.tau_init, 1 / 5) and math.isclose(s3.tau_min, 1 / 5)
    assert all(s.tau_max == 1e4 and s.lr == 1e-4 and s.alpha == 1.0 for s in cfg.stages)
    assert not s1.use_triplet and s2.use_triplet and s3.use_triplet
    assert s3.loss_balance == "normalized"  # unit-free balance (docs/reproducing.md)
    assert cfg.stage("align_image") == paper_stage2()
    assert paper_stage1() == s1 and paper_stage3() == s3
    with pytest.raises(KeyError, match="nope"):
        cfg.stage("nope")


def test_json_roundtrip(tmp_path):
    cfg = TrainConfig(model="unihpr-tiny", model_overrides={"embed_dim": 64}, seed=3,
                      stages=[StageConfig(steps=5, batch_size=4, grad_clip=1.0)])  # fmt: skip
    path = tmp_path / "c.json"
    cfg.save_json(path)
    assert json.loads(path.read_text())["stages"][0]["steps"] == 5
    assert TrainConfig.load_json(path) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@given(
    steps=st.integers(1, 10**6),
    bs=st.integers(1, 4096),
    lr=st.floats(1e-8, 1.0),
    tau_min=st.floats(1e-3, 0.5),
    triplet=st.booleans(),
)
def test_stage_roundtrip_property(steps, bs, lr, tau_min, triplet):
    s = StageConfig(name="finetune", steps=steps, batch_size=bs, lr=lr, tau_min=tau_min,
                    tau_init=tau_min, use_triplet=triplet)  # fmt: skip
    assert StageConfig.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "step4"}, "name"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"tau_init": 1.0, "tau_max": 0.5}, "tau_min <= tau_init <= tau_max"),
        ({"tau_min": 0.0}, "tau_min"),
        ({"alpha": -1.0}, "alpha"),
        ({"betas": (0.9, 1.5)}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"log_every": 0}, "log_every"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"loss_balance": "auto"}, "loss_balance"),
    ],
)
def test_stage_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StageConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amp": "fp8"}, "amp"),
        ({"device": "tpu"}, "device"),
        ({"num_workers": -1}, "num_workers"),
        ({"stages": []}, "at least one"),
        ({"seed": "0"}, "seed"),
    ],
)
def test_train_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_unknown_fields_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"unknown StageConfig field.*'batchsize'"):
        StageConfig.from_dict({"batchsize": 3})
    with pytest.raises(ValueError, match=r"unknown TrainConfig field.*'epochs'"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(TypeError, match="dict"):
        TrainConfig.from_dict([1])
    with pytest.raises(FileNotFoundError, match=r"missing.json"):
        TrainConfig.load_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json.*not valid JSON"):
        TrainConfig.load_json(bad)
