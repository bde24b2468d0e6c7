"""Tests of the multi-stage pipeline (stand-in model, real losses)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _standins import FakeUniHPR, PoseImageSet, target2d

from unihpr.train import (
    LossConfig,
    StageConfig,
    TrainConfig,
    load_checkpoint,
    read_metrics,
    train_pipeline,
)
from unihpr.train.distributed import DistInfo


def _config(tmp_path, steps=(3, 2, 2)):
    stages = [
        StageConfig(name="align2d3d", steps=steps[0], batch_size=8,
                    loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100), log_every=1,
                    checkpoint_every=1),
        StageConfig(name="align_image", steps=steps[1], batch_size=8,
                    loss=LossConfig(tau_init=0.2, tau_min=0.1, use_triplet=True), log_every=1,
                    checkpoint_every=1),
        StageConfig(name="finetune", steps=steps[2], batch_size=8,
                    loss=LossConfig(tau_init=0.2, tau_min=0.2, use_triplet=True), log_every=1,
                    checkpoint_every=1),
    ]  # fmt: skip
    return TrainConfig(model="stand-in", stages=stages, output_dir=str(tmp_path), device="cpu",
                       progress=False)  # fmt: skip


def _run(cfg, images=True, **kw):
    torch.manual_seed(0)
    mods = ("image", "pose2d", "pose3d") if images else ("pose2d", "pose3d")
    return train_pipeline(
        cfg, PoseImageSet(32, images=images), model=FakeUniHPR(), modalities=mods,
        dist_info=DistInfo(), save_model=False,
        stage_kwargs={"finetune": {"target2d": target2d}}, **kw,
    )  # fmt: skip


def test_three_stages_run_in_order(tmp_path):
    res = _run(_config(tmp_path))
    assert list(res.stages) == ["align2d3d", "align_image", "finetune"]
    assert [r.step for r in res.stages.values()] == [3, 2, 2]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["stage"], r["step"]) for r in rows] == [
        ("align2d3d", 1), ("align2d3d", 2), ("align2d3d", 3),
        ("align_image", 1), ("align_image", 2), ("finetune", 1), ("finetune", 2),
    ]  # fmt: skip
    assert TrainConfig.load_json(tmp_path / "config.json") == _config(tmp_path)
    for name in ("align2d3d", "align_image", "finetune"):
        assert (tmp_path / name).is_dir()


def test_lifting_only_skips_image_stage(tmp_path):
    res = _run(_config(tmp_path), images=False)
    assert res.skipped == ["align_image"] and list(res.stages) == ["align2d3d", "finetune"]


def test_pipeline_resume_is_exact(tmp_path):
    straight = _run(_config(tmp_path / "a"))

    # crash in the middle of step 2 (align_image), after its step-1 checkpoint
    class Crash(RuntimeError):
        pass

    def boom(step, metrics):
        if step == 2:
            raise Crash

    with pytest.raises(Crash):
        _run(_config(tmp_path / "b"), callbacks={"align_image": [boom]})
    resumed = _run(_config(tmp_path / "b"))
    assert resumed.stages["align2d3d"].history == []  # restored, not retrained
    a = read_metrics(tmp_path / "a" / "metrics.jsonl")
    b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [(r["stage"], r["step"], r["loss"]) for r in a] == [
        (r["stage"], r["step"], r["loss"]) for r in b
    ]
    for (ka, va), (kb, vb) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        assert ka == kb and torch.equal(va, vb), ka


def test_pipeline_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="TrainConfig"):
        train_pipeline({"stages": []}, PoseImageSet(8), model=FakeUniHPR(), dist_info=DistInfo())
    with pytest.raises(ValueError, match="no dataset for stage 'align2d3d'"):
        train_pipeline(_config(tmp_path), {"finetune": PoseImageSet(8)}, model=FakeUniHPR(),
                       dist_info=DistInfo(), save_model=False)  # fmt: skip


def test_exact_negatives_train_stages_2_and_3_on_bundled_mocap(tmp_path, monkeypatch):
    """LossConfig(negatives="all") reaches the exact triplet loss through train_pipeline."""
    pytest.importorskip("pybullet", reason="needs the demo extra for the bundled mocap")
    import unihpr.losses.triplet as triplet_module
    from unihpr.data import HumanoidMocap
    from unihpr.models import create_model

    calls = []
    exact = triplet_module.exact_triplet_info_nce

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return exact(*args, **kwargs)

    monkeypatch.setattr(triplet_module, "exact_triplet_info_nce", counting)
    data = HumanoidMocap("train", tmp_path / "cache", stride=30, cameras_per_frame=1,
                         image_size=64, progress=False)  # fmt: skip
    loss = LossConfig(tau_init=0.2, tau_min=0.1, use_triplet=True, negatives="all", chunk_size=8)
    stages = [
        StageConfig(name=name, steps=2, batch_size=8, loss=loss, log_every=1, checkpoint_every=2)
        for name in ("align_image", "finetune")
    ]
    cfg = TrainConfig(model="unihpr-tiny", stages=stages, output_dir=str(tmp_path / "run"),
                      device="cpu", amp="off", progress=False)  # fmt: skip
    torch.manual_seed(0)
    res = train_pipeline(cfg, data, model=create_model("unihpr-tiny"), dist_info=DistInfo(),
                         save_model=False)  # fmt: skip
    assert [r.step for r in res.stages.values()] == [2, 2]
    assert len(calls) == 4 and all(shape == (8, 8) for shape in calls)  # 2 stages × 2 steps
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [(r["stage"], r["step"]) for r in rows] == [
        ("align_image", 1), ("align_image", 2), ("finetune", 1), ("finetune", 2)
    ]  # fmt: skip
    for r in rows:
        assert all(r[k] == r[k] and abs(r[k]) < 1e6 for k in ("loss", "loss/triplet"))
        assert 1.0 <= r["lambda/neg"] <= 3.0 and 1.0 <= r["lambda/pos"] <= 3.0
    # the loss options are part of the saved run configuration
    saved = TrainConfig.load_json(tmp_path / "run" / "config.json")
    assert saved == cfg and saved.stages[0].loss.negatives == "all"


def test_pipeline_refuses_to_mix_two_configurations(tmp_path):
    _run(_config(tmp_path, steps=(2, 1, 1)))
    other = _config(tmp_path, steps=(2, 1, 1))
    other.seed = 7
    other.stages[2].loss.alpha = 0.5
    with pytest.raises(
        ValueError,
        match=r"seed \(0 there, 7 here\), stages\[2\]\.loss\.alpha \(1\.0 there, 0\.5 here\)",
    ):
        _run(other)
    assert TrainConfig.load_json(tmp_path / "config.json").seed == 0  # left as it was
    # what does not change the training may differ: the finished run is simply restored
    same = _config(tmp_path, steps=(2, 1, 1))
    same.progress = True
    assert all(r.history == [] for r in _run(same).stages.values())
    # resume=False starts over with the new configuration
    res = _run(other, resume=False)
    assert [r.step for r in res.stages.values()] == [2, 1, 1]
    assert TrainConfig.load_json(tmp_path / "config.json") == other
    for name in ("align2d3d", "align_image", "finetune"):
        states = [load_checkpoint(p) for p in (tmp_path / name).glob("ckpt-*.pt")]
        assert states and all(s["seed"] == 7 for s in states), name
