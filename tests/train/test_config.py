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


def test_legacy_flat_loss_fields_still_work():
    """alpha/use_triplet/tau_* moved into StageConfig.loss; the old names are aliases."""
    with pytest.warns(DeprecationWarning, match=r"\['tau_init', 'use_triplet'\] moved into"):
        s = StageConfig(name="align_image", tau_init=0.3, use_triplet=True)
    assert s.loss == LossConfig(tau_init=0.3, use_triplet=True)
    with pytest.warns(DeprecationWarning, match="tau_init"):
        assert s.tau_init == 0.3
    with pytest.warns(DeprecationWarning, match="alpha"):
        s.alpha = 0.5
    assert s.loss.alpha == 0.5
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="alpha"):
        s.alpha = -1.0  # assignments are validated
    # A config file written before LossConfig existed loads, flat keys moved into loss.
    old = {"name": "finetune", "steps": 3, "batch_size": 4, "tau_init": 0.2, "tau_min": 0.2,
           "tau_max": 1e4, "alpha": 0.7, "use_triplet": True}  # fmt: skip
    s = StageConfig.from_dict(old)
    assert s.loss == LossConfig(alpha=0.7, use_triplet=True, tau_init=0.2, tau_min=0.2)
    assert "tau_init" not in s.to_dict() and s.to_dict()["loss"]["alpha"] == 0.7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"negatives": "some"}, "LossConfig.negatives must be one of"),
        ({"sampler": "hard"}, "LossConfig.sampler must be one of"),
        ({"backend": "cuda"}, "LossConfig.backend must be one of"),
        ({"num_negatives": 0}, "LossConfig.num_negatives must be None or an integer >= 1"),
        ({"chunk_size": 2.5}, "LossConfig.chunk_size"),
        ({"alpha": float("nan")}, "LossConfig.alpha"),
        ({"alpha": float("inf")}, "LossConfig.alpha"),
        ({"use_triplet": "yes"}, "LossConfig.use_triplet"),
        ({"tau_init": 1.0, "tau_max": 0.5}, "tau_min <= tau_init <= tau_max"),
    ],
)
def test_loss_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossConfig(**kwargs)
    with pytest.raises(ValueError, match=match):
        StageConfig.from_dict({"loss": kwargs})
    with pytest.raises(ValueError, match=r"unknown LossConfig field.*'temperature'"):
        LossConfig.from_dict({"temperature": 0.1})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "step4"}, "name"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"loss": LossConfig(tau_init=0.1)}, None),  # valid: checks the loop below
        ({"betas": (0.9, 1.5)}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"log_every": 0}, "log_every"),
    ],
)
def test_stage_validation(kwargs, match):
    if match is None:
        StageConfig(**kwargs)
        return
    with pytest.raises(ValueError, match=match):
        StageConfig(**kwargs)
    with pytest.raises(TypeError, match=r"StageConfig\.loss must be a LossConfig"):
        StageConfig(loss=3)


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
