"""Tests of the three stage modules: frozen parts, losses, gradient flow."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _standins import FakeUniHPR, PairCriterion, PoseImageSet, target2d

from unihpr.train.config import LossConfig, StageConfig
from unihpr.train.loop import Trainer
from unihpr.train.stages import (
    AlignImageStage,
    AlignPoseStage,
    FinetuneStage,
    make_stage,
)

CFG = {
    "align2d3d": dict(name="align2d3d", loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100)),
    "align_image": dict(
        name="align_image", loss=LossConfig(tau_init=0.2, tau_min=0.1, use_triplet=True)
    ),
    "finetune": dict(name="finetune", loss=LossConfig(tau_init=0.2, tau_min=0.2, use_triplet=True)),
}


def _cfg(name, **kw):
    return StageConfig(**{**CFG[name], "steps": 3, "batch_size": 8, "lr": 1e-2, **kw})


def _batch(n=8, images=True):
    ds = PoseImageSet(n, images=images)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    after = module.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _train(stage, tmp_path, steps=3, images=True):
    t = Trainer(stage, PoseImageSet(32, images=images), stage.config, output_dir=tmp_path,
                progress=False)  # fmt: skip
    return t.fit()


def test_stage1_trains_only_pose_encoders(tmp_path):
    model = FakeUniHPR()
    stage = AlignPoseStage(model, _cfg("align2d3d"), PairCriterion())
    before = {n: _snapshot(getattr(model, n)) for n in
              ("image_encoder", "pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d")}  # fmt: skip
    res = _train(stage, tmp_path)
    assert res.step == 3 and "cos/pose2d-pose3d" in res.history[-1]
    for n in ("image_encoder", "decoder3d", "decoder2d"):
        assert not _changed(before[n], getattr(model, n)), n
    for n in ("pose2d_encoder", "pose3d_encoder"):
        assert _changed(before[n], getattr(model, n)), n
    trainable = {id(p) for p in stage.trainable_parameters()}
    assert all(id(p) not in trainable for p in model.image_encoder.parameters())
    assert id(stage.criterion.tau.log_tau) in trainable


def test_stage2_freezes_pose_encoders_in_eval_mode(tmp_path):
    model = FakeUniHPR()
    stage = AlignImageStage(model, _cfg("align_image"), PairCriterion())
    stage.train()
    assert not model.pose2d_encoder.training and not model.pose3d_encoder.training
    assert model.image_encoder.training
    assert all(not p.requires_grad for p in model.pose3d_encoder.parameters())
    before_pose = _snapshot(model.pose2d_encoder)  # includes BatchNorm running stats
    before_img = _snapshot(model.image_encoder)
    res = _train(stage, tmp_path)
    assert not _changed(before_pose, model.pose2d_encoder)
    assert _changed(before_img, model.image_encoder)
    assert {"cos/image-pose2d", "cos/image-pose3d", "cos/pose2d-pose3d"} <= set(res.history[-1])


def test_stage3_trains_everything(tmp_path):
    model = FakeUniHPR()
    stage = FinetuneStage(model, _cfg("finetune"), PairCriterion(0.2, 0.2), target2d=target2d)
    before = _snapshot(model)
    res = _train(stage, tmp_path)
    changed = _changed(before, model)
    for prefix in ("image_encoder", "pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d"):
        assert any(k.startswith(prefix) for k in changed), prefix
    assert {"loss/cl", "loss/3d", "loss/2d"} <= set(res.history[-1])


def test_stage3_lifting_only_freezes_image_encoder(tmp_path):
    model = FakeUniHPR()
    stage = FinetuneStage(
        model, _cfg("finetune"), PairCriterion(0.2, 0.2), modalities=("pose2d", "pose3d"),
        target2d=target2d,
    )  # fmt: skip
    before = _snapshot(model.image_encoder)
    _train(stage, tmp_path, images=False)
    assert not _changed(before, model.image_encoder)


def test_stage3_loss_is_weighted_sum_and_gradients_flow():
    model = FakeUniHPR()
    batch = _batch()
    crit = PairCriterion(0.2, 0.2)
    full = FinetuneStage(model, _cfg("finetune"), crit, target2d=target2d)
    torch.manual_seed(0)
    loss, m = full(batch)
    expected = float(m["loss/cl"] + m["loss/3d"] + m["loss/2d"])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    weighted = FinetuneStage(
        model, _cfg("finetune", contrastive_weight=0.0, loss_2d_weight=0.5), crit,
        target2d=target2d,
    )  # fmt: skip
    loss_w, m_w = weighted(batch)
    assert loss_w.item() == pytest.approx(float(m_w["loss/3d"] + 0.5 * m_w["loss/2d"]), rel=1e-5)
    full.zero_grad()
    loss.backward()
    for name, p in full.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_stage3_loss_float64_matches_manual():
    model = FakeUniHPR().double().eval()
    batch = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
             for k, v in _batch().items()}  # fmt: skip
    crit = PairCriterion(0.2, 0.2).double()
    stage = FinetuneStage(model, _cfg("finetune"), crit, decode_from=("pose2d",),
                          target2d=target2d).eval()  # fmt: skip
    loss, _ = stage(batch)
    e2 = model.encode_pose2d(batch["pose2d"])  # the batch's bbox is not used
    e3 = model.encode_pose3d(batch["pose3d"])
    ei = model.encode_image(batch["image"])
    manual = (
        crit(image=ei, pose2d=e2, pose3d=e3)
        + ((model.decoder3d(e2, "pose2d") - batch["pose3d"]) ** 2).sum(-1).mean()
        + ((model.decoder2d(e2, "pose2d") - target2d(batch["pose2d"], None, None)) ** 2)
        .sum(-1)
        .mean()
    )
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, manual, rtol=1e-12, atol=1e-12)


def test_normalized_balance_is_unit_free_and_tracks_a_running_mean():
    model = FakeUniHPR()
    cfg = _cfg("finetune", loss_balance="normalized", loss_2d_weight=0.5)
    a = FinetuneStage(model, cfg, PairCriterion(0.2, 0.2), target2d=target2d)
    b = FinetuneStage(model, cfg, PairCriterion(0.2, 0.2), target2d=target2d)
    g = torch.Generator().manual_seed(0)
    ref, d = torch.zeros(3, dtype=torch.float64), a.mean_decay
    units = torch.tensor([1.0, 1e6, 1.0], dtype=torch.float64)  # L_3D in mm² instead of m²
    for n in range(1, 30):
        terms = torch.rand(3, generator=g, dtype=torch.float64) + 0.1
        wa, wb = a.balance(terms), b.balance(terms * units)
        torch.testing.assert_close(wa * terms, wb * terms * units)  # the units cancel
        ref = d * ref + (1 - d) * terms
        torch.testing.assert_close(wa, torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
                                   / (ref / (1 - d**n)))  # fmt: skip
    assert int(a.loss_mean_steps) == 29 and "loss_means" in a.state_dict()
    a.eval()
    before = a.loss_means.clone()
    a.balance(torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(a.loss_means, before)  # evaluation does not move the means
    # the first training step weighs every term by 1 / itself
    c = FinetuneStage(model, cfg, PairCriterion(0.2, 0.2), target2d=target2d)
    loss, _ = c(_batch())
    assert loss.item() == pytest.approx(2.5, rel=1e-5)


def test_after_step_projects_temperature():
    model = FakeUniHPR()
    crit = PairCriterion(0.1, 0.05, 1.0)
    stage = AlignPoseStage(model, _cfg("align2d3d"), crit)
    with torch.no_grad():
        crit.tau.log_tau.fill_(5.0)
    stage.after_step()
    assert crit.tau.log_tau.item() == pytest.approx(0.0)


def test_stage_errors():
    model = FakeUniHPR()
    with pytest.raises(ValueError, match="'align2d3d'"):
        AlignPoseStage(model, _cfg("finetune"), PairCriterion())
    with pytest.raises(TypeError, match="StageConfig"):
        AlignPoseStage(model, {"name": "align2d3d"}, PairCriterion())
    stage = AlignPoseStage(model, _cfg("align2d3d"), PairCriterion())
    with pytest.raises(ValueError, match=r"lacks \['pose3d'\]"):
        stage({"pose2d": torch.zeros(4, 5, 2)})
    with pytest.raises(TypeError, match="dict"):
        stage(torch.zeros(4))
    with pytest.raises(ValueError, match="modalities"):
        FinetuneStage(model, _cfg("finetune"), PairCriterion(), modalities=("pose2d",))
    with pytest.raises(ValueError, match="modalities"):
        FinetuneStage(model, _cfg("finetune"), PairCriterion(), modalities=("pose2d", "depth"))
    with pytest.raises(ValueError, match="decode_from"):
        FinetuneStage(model, _cfg("finetune"), PairCriterion(), modalities=("pose2d", "pose3d"),
                      decode_from=("image",))  # fmt: skip


def test_make_stage_and_unfreezing_between_stages():
    model = FakeUniHPR()
    s1 = make_stage(model, _cfg("align2d3d"), PairCriterion())
    assert isinstance(s1, AlignPoseStage)
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    s2 = make_stage(model, _cfg("align_image"), PairCriterion())
    assert isinstance(s2, AlignImageStage)
    assert all(p.requires_grad for p in model.image_encoder.parameters())
    assert not any(p.requires_grad for p in model.pose2d_encoder.parameters())
    s3 = make_stage(model, _cfg("finetune"), PairCriterion(), target2d=target2d)
    assert isinstance(s3, FinetuneStage)
    assert all(p.requires_grad for p in model.parameters())


def test_build_criterion_uses_paper_temperatures():
    from unihpr.losses import ContrastiveLoss, LearnableTemperature
    from unihpr.train.stages import build_criterion

    s1 = build_criterion(_cfg("align2d3d"), num_modalities=2)
    assert isinstance(s1, ContrastiveLoss)
    assert isinstance(s1.pair.temperature, LearnableTemperature)
    assert s1.pair.temperature.learnable
    assert s1.pair.temperature.min == pytest.approx(1 / 100)
    assert float(s1.pair.temperature().detach()) == pytest.approx(1 / 14, rel=1e-6)
    # two modalities: the triplet temperature must not be a parameter (DDP would complain)
    assert not any(p.requires_grad for p in s1.triplet.parameters())
    s2 = build_criterion(_cfg("align_image"), num_modalities=3)
    assert s2.use_triplet and s2.triplet.temperature.learnable
    assert float(s2.triplet.temperature().detach()) == pytest.approx(0.2, rel=1e-6)


@pytest.mark.parametrize("name", ["align2d3d", "align_image", "finetune"])
def test_stages_train_with_real_contrastive_loss(tmp_path, name):
    model = FakeUniHPR()
    kw = {"target2d": target2d} if name == "finetune" else {}
    stage = make_stage(model, _cfg(name), **kw)
    res = _train(stage, tmp_path)
    assert res.step == 3
    row = res.history[-1]
    assert "tau/pair" in row and "cos/pose2d-pose3d" in row
    if name != "align2d3d":
        assert "loss/triplet" in row and "lambda/pos" in row
    # every trainable parameter got a gradient on the last step
    for n, p in stage.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, n


def test_stages_use_the_keypoints_box_not_the_batch_box():
    """Training sees the box a user at inference has: the keypoints' own."""
    model = FakeUniHPR().eval()
    batch = _batch()
    other = dict(batch, bbox=batch["bbox"] * 3 + 100)
    for stage in (
        AlignPoseStage(model, _cfg("align2d3d"), PairCriterion(0.1, 0.1)),
        FinetuneStage(model, _cfg("finetune"), PairCriterion(0.2, 0.2), target2d=target2d),
    ):
        stage.eval()
        torch.manual_seed(0)
        a, _ = stage(batch)
        torch.manual_seed(0)
        b, _ = stage(other)
        torch.testing.assert_close(a, b)


def test_build_criterion_reaches_every_loss_field():
    from unihpr.losses import SwapOneTripletSampler
    from unihpr.train.stages import build_criterion

    loss = LossConfig(alpha=0.5, use_triplet=True, tau_init=0.3, tau_min=0.2, tau_max=2.0,
                      negatives="all", sampler="swap-one", num_negatives=7, chunk_size=16,
                      backend="torch")  # fmt: skip
    crit = build_criterion(_cfg("align_image", loss=loss))
    assert crit.alpha == 0.5 and crit.use_triplet
    trip = crit.triplet
    assert (trip.negatives, trip.num_negatives, trip.chunk_size, trip.backend) == (
        "all",
        7,
        16,
        "torch",
    )
    assert isinstance(trip.sampler, SwapOneTripletSampler)
    for t in (crit.pair.temperature, trip.temperature):
        assert t.learnable and (t.min, t.max) == (0.2, 2.0)
        assert float(t().detach()) == pytest.approx(0.3, rel=1e-6)


def test_configure_step_switches_diagnostics_and_validation():
    model = FakeUniHPR()
    stage = make_stage(model, _cfg("align_image"))
    batch = _batch()
    _, metrics = stage(batch)
    assert "lambda/pos" in metrics and stage.criterion.validate
    stage.configure_step(diagnostics=False, validate=False)
    loss2, metrics2 = stage(batch, generator=torch.Generator().manual_seed(0))
    assert metrics2 == {} and not stage.criterion.validate and torch.isfinite(loss2)
    # a criterion without the switch (the stand-in) is left alone
    other = make_stage(FakeUniHPR(), _cfg("align_image"), PairCriterion())
    other.configure_step(diagnostics=False, validate=False)
    assert other(batch)[1] == {}


@pytest.mark.parametrize("name", ["align_image", "finetune"])
@pytest.mark.parametrize("negatives", ["sampled", "all"])
def test_a_quiet_training_step_makes_no_host_sync(tmp_path, name, negatives):
    """No bool()/float()/item() of a tensor by unihpr code on a non-logging step.

    On a GPU each would wait for the queued kernels; benchmarks/gpu_check.py
    checks the same with torch.cuda.set_sync_debug_mode("error").
    """
    from host_syncs import record_host_syncs

    loss = LossConfig(tau_init=0.2, tau_min=0.1, use_triplet=True, negatives=negatives)
    kw = {"target2d": target2d} if name == "finetune" else {}
    stage = make_stage(FakeUniHPR(), _cfg(name, loss=loss), **kw)
    trainer = Trainer(stage, PoseImageSet(32), stage.config, output_dir=tmp_path, progress=False)
    batch = _batch()
    with record_host_syncs() as first:
        trainer.train_step(batch, diagnostics=True, validate=True)
    assert first, "the first (validated, logged) step reads values on the host"
    with record_host_syncs() as calls:
        trainer.train_step(batch, diagnostics=False, validate=False)
    assert calls == []


def test_stage_embeddings_come_from_model_embed():
    model = FakeUniHPR()
    calls = []
    real = model.embed

    def spy(batch, modalities):
        calls.append(tuple(modalities))
        return real(batch, modalities)

    model.embed = spy
    stage = make_stage(model, StageConfig(name="finetune", steps=1, batch_size=4),
                       criterion=PairCriterion())  # fmt: skip
    batch = torch.utils.data.default_collate([PoseImageSet(4)[i] for i in range(4)])
    stage(batch)
    assert calls == [("image", "pose2d", "pose3d")]
    with pytest.raises(ValueError, match=r"finetune: batch lacks \['image'\]"):
        stage.embed({"pose2d": batch["pose2d"]}, ("image",))


def test_stage3_extra_pose_pairs_join_every_term_float64():
    model = FakeUniHPR().double().eval()

    def dbl(b):
        return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in b.items()}  # fmt: skip

    batch, poses = dbl(_batch(8)), dbl(_batch(6, images=False))
    batch["poses"] = {"pose2d": poses["pose2d"], "pose3d": poses["pose3d"]}
    crit = PairCriterion(0.2, 0.2).double()
    stage = FinetuneStage(model, _cfg("finetune"), crit, decode_from=("image", "pose2d"),
                          target2d=target2d).eval()  # fmt: skip
    loss, _ = stage(batch)
    e = {"image": model.encode_image(batch["image"]),
         "pose2d": model.encode_pose2d(batch["pose2d"]),
         "pose3d": model.encode_pose3d(batch["pose3d"])}  # fmt: skip
    p = {"pose2d": model.encode_pose2d(poses["pose2d"]),
         "pose3d": model.encode_pose3d(poses["pose3d"])}  # fmt: skip

    def dec(emb, b, sources):
        t2 = target2d(b["pose2d"], None, None)
        l3 = sum(((model.decoder3d(emb[s], s) - b["pose3d"]) ** 2).sum(-1).mean()
                 for s in sources) / len(sources)  # fmt: skip
        l2 = sum(((model.decoder2d(emb[s], s) - t2) ** 2).sum(-1).mean()
                 for s in sources) / len(sources)  # fmt: skip
        return l3, l2

    m3, m2 = dec(e, batch, ("image", "pose2d"))
    x3, x2 = dec(p, poses, ("pose2d",))  # the pose pairs decode from their 2D only here
    manual = (crit(**e) + crit(**p)) / 2 + (m3 + x3) / 2 + (m2 + x2) / 2
    torch.testing.assert_close(loss, manual, rtol=1e-12, atol=1e-12)
    # the extra pairs change the loss, and gradients reach the pose encoders through them
    without = stage({k: v for k, v in batch.items() if k != "poses"})[0]
    assert not torch.allclose(loss, without)


@pytest.mark.parametrize("name", ["align2d3d", "finetune"])
def test_a_quiet_step_of_the_real_model_makes_no_host_sync(tmp_path, name):
    """The same with unihpr-tiny's encoders and decoders: their input checks are off too."""
    from host_syncs import record_host_syncs

    from unihpr.models import create_model

    torch.manual_seed(0)
    model = create_model("unihpr-tiny")
    j = model.config.num_joints

    def pairs(n):
        return {"pose2d": torch.rand(n, j, 2) * 200 + 50, "pose3d": torch.randn(n, j, 3) * 0.3}

    batch = pairs(8)
    kw = {}
    if name == "finetune":  # lifting fine-tuning with the normalised balance and extra pairs
        batch["poses"] = pairs(8)
        kw = {"modalities": ("pose2d", "pose3d"), "loss_balance": "normalized"}
    cfg = _cfg(name, **{k: v for k, v in kw.items() if k == "loss_balance"})
    stage = make_stage(model, cfg, **{k: v for k, v in kw.items() if k == "modalities"})
    trainer = Trainer(stage, PoseImageSet(32), cfg, output_dir=tmp_path, progress=False)
    with record_host_syncs() as first:
        trainer.train_step(batch, diagnostics=True, validate=True)
    assert first
    encoder = model.pose2d_encoder
    with record_host_syncs() as calls:
        trainer.train_step(batch, diagnostics=False, validate=False)
    assert calls == [] and not encoder.validate
    bad = dict(batch, pose2d=batch["pose2d"].clone())
    bad["pose2d"][0, 0, 0] = float("nan")
    stage.configure_step(validate=True)  # what the loop does when a run ends
    with pytest.raises(ValueError, match="pose2d has NaN"):
        model.embed(bad, ("pose2d",))
