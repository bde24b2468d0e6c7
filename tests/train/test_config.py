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


_NAN, _INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "step4"}, ValueError, "name"),
        ({"name": None}, TypeError, "name"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": True}, TypeError, "steps"),
        ({"steps": 5.0}, TypeError, "steps"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"batch_size": "8"}, TypeError, "batch_size"),
        ({"checkpoint_every": -3}, ValueError, "checkpoint_every"),
        ({"keep_checkpoints": 0}, ValueError, "keep_checkpoints"),
        ({"log_every": 0}, ValueError, "log_every"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": 0}, ValueError, "lr"),
        ({"lr": _NAN}, ValueError, "lr"),
        ({"lr": _INF}, ValueError, "lr"),
        ({"lr": "1e-4"}, TypeError, "lr"),
        ({"lr": True}, TypeError, "lr"),
        ({"weight_decay": -1e-3}, ValueError, "weight_decay"),
        ({"weight_decay": _NAN}, ValueError, "weight_decay"),
        ({"tau_init": 1.0, "tau_max": 0.5}, ValueError, "tau_min <= tau_init <= tau_max"),
        ({"tau_min": 0.0}, ValueError, "tau_min"),
        ({"tau_max": _INF}, ValueError, "tau_max"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"alpha": _NAN}, ValueError, "alpha"),
        ({"alpha": "1"}, TypeError, "alpha"),
        ({"betas": (0.9, 1.5)}, ValueError, "betas"),
        ({"betas": (0.9,)}, ValueError, "betas"),
        ({"betas": 0.9}, ValueError, "betas"),
        ({"betas": (0.9, _NAN)}, ValueError, r"betas\[1\]"),
        ({"betas": ("0.9", 0.99)}, TypeError, r"betas\[0\]"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"grad_clip": _INF}, ValueError, "grad_clip"),
    ],
)
def test_stage_validation(kwargs, error, match):
    with pytest.raises(error, match=f"StageConfig.*{match}"):
        StageConfig(**kwargs)
    data = {**StageConfig().to_dict(), **kwargs}  # the same check when read from JSON
    with pytest.raises(error, match=f"StageConfig.*{match}"):
        StageConfig.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"amp": "fp8"}, ValueError, "amp"),
        ({"amp": None}, TypeError, "amp"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"device": "cuda:"}, ValueError, "device"),
        ({"device": "cuda:x"}, ValueError, "device"),
        ({"device": 0}, TypeError, "device"),
        ({"num_workers": -1}, ValueError, "num_workers"),
        ({"num_workers": 1.0}, TypeError, "num_workers"),
        ({"stages": []}, ValueError, "at least one"),
        ({"stages": "align2d3d"}, TypeError, "stages"),
        ({"stages": [{"name": "finetune"}, {"name": "finetune"}]}, ValueError, "twice"),
        ({"seed": "0"}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**40}, ValueError, "seed"),
        ({"model": 3}, TypeError, "model"),
        ({"model_overrides": [("embed_dim", 8)]}, TypeError, "model_overrides"),
        ({"output_dir": None}, TypeError, "output_dir"),
        ({"tensorboard": "no"}, TypeError, "tensorboard"),
        ({"progress": 1}, TypeError, "progress"),
        ({"deterministic": None}, TypeError, "deterministic"),
    ],
)
def test_train_validation(kwargs, error, match):
    with pytest.raises(error, match=f"TrainConfig.{match}|{match}"):
        TrainConfig(**kwargs)
    with pytest.raises(error, match=match):
        TrainConfig.from_dict({**TrainConfig().to_dict(), **kwargs})


def test_bad_json_files_name_the_file(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json"):
        TrainConfig.load_json(deep)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"model": "\xff"}')
    with pytest.raises(ValueError, match=r"latin\.json"):
        TrainConfig.load_json(latin)
    stages = tmp_path / "stages.json"
    stages.write_text(json.dumps({"stages": 5}))
    with pytest.raises(TypeError, match="stages"):
        TrainConfig.load_json(stages)


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
