"""Tests of the stage/run configuration dataclasses."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unihpr.train.config import (
    LossConfig,
    StageConfig,
    TrainConfig,
    paper_stage1,
    paper_stage2,
    paper_stage3,
)


def test_paper_defaults():
    cfg = TrainConfig()
    s1, s2, s3 = cfg.stages
    assert [s.name for s in cfg.stages] == ["align2d3d", "align_image", "finetune"]
    assert (s1.batch_size, s2.batch_size, s3.batch_size) == (2048, 180, 180)
    l1, l2, l3 = (s.loss for s in cfg.stages)
    assert math.isclose(l1.tau_init, 1 / 14) and math.isclose(l1.tau_min, 1 / 100)
    assert math.isclose(l2.tau_init, 1 / 5) and math.isclose(l2.tau_min, 1 / 10)
    assert math.isclose(l3.tau_init, 1 / 5) and math.isclose(l3.tau_min, 1 / 5)
    assert all(s.loss.tau_max == 1e4 and s.lr == 1e-4 and s.loss.alpha == 1.0 for s in cfg.stages)
    assert not l1.use_triplet and l2.use_triplet and l3.use_triplet
    assert all(s.loss.negatives == "sampled" and s.loss.backend == "auto" for s in cfg.stages)
    assert s3.loss_balance == "normalized"  # unit-free balance (docs/reproducing.md)
    assert cfg.stage("align_image") == paper_stage2()
    assert paper_stage1() == s1 and paper_stage3() == s3
    with pytest.raises(KeyError, match="nope"):
        cfg.stage("nope")


def test_json_roundtrip(tmp_path):
    loss = LossConfig(negatives="all", chunk_size=64, backend="torch", sampler="swap-one")
    cfg = TrainConfig(model="unihpr-tiny", model_overrides={"embed_dim": 64}, seed=3,
                      stages=[StageConfig(steps=5, batch_size=4, grad_clip=1.0, loss=loss)])  # fmt: skip
    path = tmp_path / "c.json"
    cfg.save_json(path)
    assert json.loads(path.read_text())["stages"][0]["steps"] == 5
    assert json.loads(path.read_text())["stages"][0]["loss"]["negatives"] == "all"
    assert TrainConfig.load_json(path) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@given(
    steps=st.integers(1, 10**6),
    bs=st.integers(1, 4096),
    lr=st.floats(1e-8, 1.0),
    tau_min=st.floats(1e-3, 0.5),
    triplet=st.booleans(),
    negatives=st.sampled_from(["sampled", "all"]),
    sampler=st.sampled_from(["uniform", "swap-one", "shuffle"]),
    num_negatives=st.one_of(st.none(), st.integers(1, 10_000)),
    chunk_size=st.one_of(st.none(), st.integers(1, 10_000)),
    backend=st.sampled_from(["auto", "torch", "triton", "compile"]),
)
def test_stage_roundtrip_property(
    steps, bs, lr, tau_min, triplet, negatives, sampler, num_negatives, chunk_size, backend
):
    loss = LossConfig(tau_min=tau_min, tau_init=tau_min, use_triplet=triplet,
                      negatives=negatives, sampler=sampler, num_negatives=num_negatives,
                      chunk_size=chunk_size, backend=backend)  # fmt: skip
    s = StageConfig(name="finetune", steps=steps, batch_size=bs, lr=lr, loss=loss)
    back = StageConfig.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and isinstance(back.loss, LossConfig)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"negatives": "some"}, ValueError, "LossConfig.negatives must be one of"),
        ({"sampler": "hard"}, ValueError, "LossConfig.sampler must be one of"),
        ({"backend": "cuda"}, ValueError, "LossConfig.backend must be one of"),
        ({"num_negatives": 0}, ValueError, "LossConfig.num_negatives"),
        ({"chunk_size": 2.5}, TypeError, "LossConfig.chunk_size"),
        ({"alpha": -1.0}, ValueError, "LossConfig.alpha"),
        ({"alpha": float("nan")}, ValueError, "LossConfig.alpha"),
        ({"alpha": float("inf")}, ValueError, "LossConfig.alpha"),
        ({"alpha": "1"}, TypeError, "LossConfig.alpha"),
        ({"use_triplet": "yes"}, TypeError, "LossConfig.use_triplet"),
        ({"tau_min": 0.0}, ValueError, "LossConfig.tau_min"),
        ({"tau_max": float("inf")}, ValueError, "LossConfig.tau_max"),
        ({"tau_init": 1.0, "tau_max": 0.5}, ValueError, "tau_min <= tau_init <= tau_max"),
    ],
)
def test_loss_config_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        LossConfig(**kwargs)
    with pytest.raises(error, match=match):
        StageConfig.from_dict({"loss": kwargs})
    with pytest.raises(ValueError, match=r"LossConfig has unknown field.*'temperature'"):
        LossConfig.from_dict({"temperature": 0.1})


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
        ({"betas": (0.9, 1.5)}, ValueError, "betas"),
        ({"betas": (0.9,)}, ValueError, "betas"),
        ({"betas": 0.9}, ValueError, "betas"),
        ({"betas": (0.9, _NAN)}, ValueError, r"betas\[1\]"),
        ({"betas": ("0.9", 0.99)}, TypeError, r"betas\[0\]"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip"),
        ({"grad_clip": _INF}, ValueError, "grad_clip"),
        ({"lr_schedule": "step"}, ValueError, "lr_schedule"),
        ({"loss_balance": "auto"}, ValueError, "loss_balance"),
    ],
)
def test_stage_validation(kwargs, error, match):
    with pytest.raises(error, match=f"StageConfig.*{match}"):
        StageConfig(**kwargs)
    data = {**StageConfig().to_dict(), **kwargs}  # the same check when read from JSON
    with pytest.raises(error, match=f"StageConfig.*{match}"):
        StageConfig.from_dict(data)


def test_stage_loss_field_is_a_loss_config():
    assert StageConfig(loss=LossConfig(tau_init=0.1)).loss.tau_init == 0.1
    assert StageConfig(loss={"tau_init": 0.1}).loss == LossConfig(tau_init=0.1)  # from JSON
    with pytest.raises(TypeError, match=r"StageConfig\.loss must be a LossConfig"):
        StageConfig(loss=3)


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
        ({"output_dir": " "}, ValueError, "output_dir must name a folder"),
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
    with pytest.raises(ValueError, match=r"StageConfig has unknown field.*'batchsize'"):
        StageConfig.from_dict({"batchsize": 3})
    with pytest.raises(ValueError, match=r"TrainConfig has unknown field.*'epochs'"):
        TrainConfig.from_dict({"epochs": 3})
    # the flat loss fields of an early draft are unknown keys, not aliases
    with pytest.raises(ValueError, match=r"StageConfig has unknown field.*'tau_init'"):
        StageConfig.from_dict({"name": "finetune", "tau_init": 0.2})
    with pytest.raises(TypeError, match=r"unexpected keyword argument .alpha."):
        StageConfig(alpha=0.5)
    with pytest.raises(TypeError, match="TrainConfig must be a dict"):
        TrainConfig.from_dict([1])
    with pytest.raises(FileNotFoundError, match=r"missing.json"):
        TrainConfig.load_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json.*not valid JSON"):
        TrainConfig.load_json(bad)
