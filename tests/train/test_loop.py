"""Tests of the generic resumable training loop, with small stand-in modules."""

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from unihpr.train.checkpoint import (
    CorruptCheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from unihpr.train.config import LossConfig, StageConfig
from unihpr.train.logger import read_metrics
from unihpr.train.loop import ResumableSampler, Trainer, amp_settings, move_to_device


class NoisyPoses(Dataset):
    """Random (J, 3) poses whose 2D view gets fresh noise at every access.

    The noise comes from the global torch RNG, so exact resume needs the RNG
    state in the checkpoint.
    """

    def __init__(self, n: int = 40, joints: int = 5) -> None:
        g = torch.Generator().manual_seed(123)
        self.pose3d = torch.randn(n, joints, 3, generator=g)

    def __len__(self) -> int:
        return len(self.pose3d)

    def __getitem__(self, i: int) -> dict:
        p = self.pose3d[i]
        return {"pose3d": p, "pose2d": p[:, :2] + 0.05 * torch.randn(p.shape[0], 2), "index": i}


class StandInStage(nn.Module):
    """A two-branch contrastive model with dropout and generator-driven negatives."""

    def __init__(self, joints: int = 5, dim: int = 8) -> None:
        super().__init__()
        self.enc2d = nn.Sequential(nn.Flatten(), nn.Linear(joints * 2, 16), nn.Dropout(0.2))
        self.enc3d = nn.Sequential(nn.Flatten(), nn.Linear(joints * 3, 16), nn.Dropout(0.2))
        self.head = nn.Linear(16, dim)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.1)))

    def trainable_parameters(self):
        return list(self.parameters())

    def forward(self, batch, generator=None):
        a = nn.functional.normalize(self.head(self.enc2d(batch["pose2d"])), dim=-1)
        b = nn.functional.normalize(self.head(self.enc3d(batch["pose3d"])), dim=-1)
        # the generator drives a random re-ordering of the negatives, like a triplet sampler
        perm = torch.randperm(len(b), generator=generator)
        logits = a @ b.T / self.log_tau.exp()
        loss = (
            nn.functional.cross_entropy(logits, torch.arange(len(a)))
            + 0.1 * (a * b[perm]).sum(-1).mean()
        )
        return loss, {"cos": (a * b).sum(-1).mean().detach()}


LOSS = LossConfig(tau_init=0.1, tau_min=0.01)


def _trainer(tmp_path, steps=6, every=3, seed=0, schedule="constant", **kw):
    torch.manual_seed(seed)
    cfg = StageConfig(
        name="align2d3d", steps=steps, batch_size=8, checkpoint_every=every, log_every=1,
        lr=1e-2, loss=LossConfig(tau_init=0.1, tau_min=0.01), lr_schedule=schedule,
    )  # fmt: skip
    return Trainer(
        StandInStage(), NoisyPoses(), cfg, output_dir=tmp_path, seed=seed, progress=False, **kw
    )


class Crash(RuntimeError):
    pass


def _crash_at(step):
    def cb(s, metrics):
        if s == step:
            raise Crash(f"simulated crash after step {s}")

    return cb


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    # 40 samples / batch 8 = 5 steps per epoch: the 6-step run crosses an epoch.
    straight = _trainer(tmp_path / "a")
    res_a = straight.fit()
    losses_a = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl")]
    assert len(losses_a) == 6 and res_a.step == 6

    crashing = _trainer(tmp_path / "b", callbacks=[_crash_at(4)])
    with pytest.raises(Crash):
        crashing.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [3]
    # a fresh process: different global RNG state, new model, new optimiser
    torch.manual_seed(999)
    resumed = _trainer(tmp_path / "b", seed=0)
    res_b = resumed.fit()
    assert res_b.resumed_from is not None and res_b.resumed_from.name == "ckpt-00000003.pt"
    rows_b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]  # the crashed step 4 was replaced
    losses_b = [r["loss"] for r in rows_b]
    assert losses_b == losses_a  # bit-for-bit
    for (na, pa), (nb, pb) in zip(
        straight.stage.state_dict().items(), resumed.stage.state_dict().items()
    ):
        assert na == nb and torch.equal(pa, pb), na


def test_cosine_schedule_is_followed_and_resumes_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", schedule="cosine")
    straight.fit()
    rows = read_metrics(tmp_path / "a" / "metrics.jsonl")
    cfg = straight.config
    # the logged rate is the one the step used: lr_at(steps completed before it)
    assert [r["lr"] for r in rows] == [cfg.lr_at(r["step"] - 1) for r in rows]
    assert rows[0]["lr"] == pytest.approx(1e-2) and rows[-1]["lr"] < 1e-3
    assert cfg.lr_at(cfg.steps) == 0.0
    crashing = _trainer(tmp_path / "b", schedule="cosine", callbacks=[_crash_at(4)])
    with pytest.raises(Crash):
        crashing.fit()
    _trainer(tmp_path / "b", schedule="cosine").fit()
    rows_b = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["loss"] for r in rows_b] == [r["loss"] for r in rows]


def test_resume_without_randomness_state_would_differ(tmp_path):
    # Guard that the exact-resume test is sensitive: a different seed changes the curve.
    a = _trainer(tmp_path / "a", steps=3).fit().history
    b = _trainer(tmp_path / "b", steps=3, seed=1).fit().history
    assert [r["loss"] for r in a] != [r["loss"] for r in b]


def test_fit_from_finished_checkpoint_does_nothing(tmp_path):
    _trainer(tmp_path).fit()
    again = _trainer(tmp_path).fit()
    assert again.step == 6 and again.history == []
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 6


def test_resume_false_starts_over_and_keeps_nothing_of_the_old_run(tmp_path):
    _trainer(tmp_path, steps=6, every=1).fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 6]
    res = _trainer(tmp_path, steps=2, every=1, seed=7).fit(resume=False)
    assert res.resumed_from is None and len(res.history) == 2
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]
    # the old run's later checkpoints are gone: a resume can only find the new run
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 2]
    assert load_checkpoint(latest_checkpoint(tmp_path))["seed"] == 7


def test_resume_refuses_a_run_with_another_seed(tmp_path):
    """A resume with another seed would train the rest of the run with a second seed."""
    with pytest.raises(Crash):
        _trainer(tmp_path, steps=4, every=2, callbacks=[_crash_at(3)]).fit()
    with pytest.raises(ValueError, match=r"seed \(0 there, 7 here\).*fit\(resume=False\)"):
        _trainer(tmp_path, steps=4, every=2, seed=7).fit()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    assert _trainer(tmp_path, steps=4, every=2).fit().resumed_from.name == "ckpt-00000002.pt"


def test_checkpoint_contents_and_pruning(tmp_path):
    t = _trainer(tmp_path, steps=6, every=1)
    t.fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 6]  # keep_checkpoints=2
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 6 and state["stage"] == "align2d3d"
    assert set(state) >= {"model", "optimizer", "scaler", "ranks", "config", "seed"}
    assert set(state["ranks"][0]["rng"]) >= {"torch", "numpy", "python"}
    assert "log_tau" in state["model"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_resume_rejects_mismatched_batch_size(tmp_path):
    _trainer(tmp_path, steps=2, every=1).fit()
    cfg = StageConfig(name="align2d3d", steps=4, batch_size=4, loss=LOSS)
    t = Trainer(StandInStage(), NoisyPoses(), cfg, output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"config\.batch_size \(8 there, 4 here\)"):
        t.fit()


def test_resume_rejects_other_stage(tmp_path):
    _trainer(tmp_path, steps=2, every=1).fit()
    cfg = StageConfig(
        name="finetune", steps=4, batch_size=8, loss=LossConfig(tau_init=0.2, tau_min=0.2)
    )
    t = Trainer(StandInStage(), NoisyPoses(), cfg, output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"stage \('align2d3d' there, 'finetune' here\)"):
        t.fit()


def _straight_losses(tmp_path, **kw):
    _trainer(tmp_path, **kw).fit()
    return [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")]


def test_resume_survives_a_torn_metrics_line(tmp_path):
    reference = _straight_losses(tmp_path / "a")
    with pytest.raises(Crash):
        _trainer(tmp_path / "b", callbacks=[_crash_at(4)]).fit()
    log = tmp_path / "b" / "metrics.jsonl"
    with log.open("a") as f:  # power loss in the middle of a write
        f.write('{"stage": "align2d3d", "step": 5, "lo')
    with pytest.warns(UserWarning, match="damaged last line 5"):
        res = _trainer(tmp_path / "b").fit(resume=True)
    assert res.resumed_from.name == "ckpt-00000003.pt"
    rows = read_metrics(log)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == reference


def _damage(path, how):
    blob = path.read_bytes()
    if how == "truncated":
        path.write_bytes(blob[: len(blob) // 3])
    elif how == "zero_bytes":
        path.write_bytes(b"")
    else:  # one flipped bit in the middle: loads silently without a checksum
        flipped = bytearray(blob)
        flipped[len(blob) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))


@pytest.mark.parametrize("how", ["truncated", "zero_bytes", "bit_flip"])
def test_resume_falls_back_past_a_damaged_newest_checkpoint(tmp_path, how):
    reference = _straight_losses(tmp_path / "a", every=2)
    with pytest.raises(Crash):
        _trainer(tmp_path / "b", every=2, callbacks=[_crash_at(5)]).fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [2, 4]
    _damage(tmp_path / "b" / "ckpt-00000004.pt", how)
    with pytest.warns(UserWarning, match=r"damaged checkpoint.*ckpt-00000004\.pt"):
        res = _trainer(tmp_path / "b", every=2).fit(resume=True)
    assert res.resumed_from.name == "ckpt-00000002.pt" and res.step == 6
    assert (tmp_path / "b" / "ckpt-00000004.pt.corrupt").is_file()  # kept for inspection
    rows = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == reference  # still bit-for-bit
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [4, 6]
    assert load_checkpoint(tmp_path / "b" / "ckpt-00000004.pt")["step"] == 4


def test_resume_with_every_checkpoint_damaged_raises(tmp_path):
    _trainer(tmp_path, steps=4, every=2).fit()
    for _, path in list_checkpoints(tmp_path):
        _damage(path, "bit_flip")
    with pytest.warns(UserWarning), pytest.raises(CorruptCheckpointError, match="every checkpoint"):
        _trainer(tmp_path, steps=4, every=2).fit(resume=True)


def test_interrupted_save_leaves_a_temporary_that_the_next_start_removes(tmp_path, monkeypatch):
    import unihpr.train.checkpoint as ck

    def killed(*args):  # the process dies between writing and renaming: nothing cleans up
        monkeypatch.setattr(ck.os, "unlink", lambda *a: None)
        raise Crash("killed during save")

    monkeypatch.setattr(ck.os, "replace", killed)
    with pytest.raises(Crash):
        _trainer(tmp_path, steps=4, every=2).fit()
    monkeypatch.undo()
    stale = list(tmp_path.glob(".ckpt-00000002.pt.*.tmp"))
    assert len(stale) == 1 and list_checkpoints(tmp_path) == []
    with pytest.warns(UserWarning, match="interrupted checkpoint save"):
        res = _trainer(tmp_path, steps=4, every=2).fit(resume=True)
    assert res.resumed_from is None and res.step == 4
    assert not stale[0].exists() and not list(tmp_path.glob(".*.tmp"))


def test_resume_argument_type_is_checked(tmp_path):
    with pytest.raises(TypeError, match="resume"):
        _trainer(tmp_path, steps=1).fit(resume=1)


def test_training_reduces_loss(tmp_path):
    t = _trainer(tmp_path, steps=40, every=40)
    hist = t.fit().history
    first = sum(r["loss"] for r in hist[:5]) / 5
    last = sum(r["loss"] for r in hist[-5:]) / 5
    assert last < first


def test_metrics_jsonl_rows(tmp_path):
    _trainer(tmp_path, steps=2).fit()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    assert row["stage"] == "align2d3d" and row["step"] == 1
    assert {"loss", "cos", "lr", "samples_per_s"} <= set(row)


def test_dataset_too_small_raises(tmp_path):
    cfg = StageConfig(name="align2d3d", steps=1, batch_size=64, loss=LOSS)
    with pytest.raises(ValueError, match="too small for batch_size=64"):
        Trainer(StandInStage(), NoisyPoses(40), cfg, output_dir=tmp_path)


def test_trainer_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="StageConfig"):
        Trainer(StandInStage(), NoisyPoses(), {"steps": 1}, output_dir=tmp_path)
    cfg = StageConfig(steps=1, batch_size=4)
    with pytest.raises(TypeError, match="trainable_parameters"):
        Trainer(nn.Linear(2, 2), NoisyPoses(), cfg, output_dir=tmp_path)


def test_nonfinite_loss_raises(tmp_path):
    class Bad(StandInStage):
        def forward(self, batch, generator=None):
            loss, m = super().forward(batch, generator)
            return loss * float("nan"), m

    cfg = StageConfig(steps=2, batch_size=8, loss=LOSS)
    t = Trainer(Bad(), NoisyPoses(), cfg, output_dir=tmp_path, progress=False)
    with pytest.raises(FloatingPointError, match="step 1"):
        t.fit()


def test_resumable_sampler_offsets():
    ds = NoisyPoses(10)
    s = ResumableSampler(ds, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_start(4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(3)
    s.set_start(0)
    assert sorted(s) == list(range(10)) and list(s) != full
    with pytest.raises(ValueError, match="start"):
        s.set_start(11)


def test_resumable_sampler_shards_across_ranks():
    ds = NoisyPoses(10)
    parts = []
    for rank in range(2):
        s = ResumableSampler(ds, num_replicas=2, rank=rank, seed=0)
        s.set_epoch(0)
        parts.append(list(s))
    assert not set(parts[0]) & set(parts[1]) and len(parts[0]) == len(parts[1]) == 5


def test_amp_settings():
    cpu = torch.device("cpu")
    assert amp_settings("auto", cpu) == (None, False)
    assert amp_settings("off", cpu) == (None, False)
    assert amp_settings("bf16", cpu) == (torch.bfloat16, False)
    with pytest.raises(ValueError, match="fp16"):
        amp_settings("fp16", cpu)
    with pytest.raises(ValueError, match="amp"):
        amp_settings("int8", cpu)


def test_bf16_autocast_on_cpu_trains(tmp_path):
    t = _trainer(tmp_path, steps=2, amp="bf16")
    res = t.fit()
    assert res.step == 2 and all(math.isfinite(r["loss"]) for r in res.history)


def test_move_to_device_nested():
    b = {"a": torch.zeros(2), "b": [torch.ones(1), "x"], "c": 3}
    out = move_to_device(b, torch.device("cpu"))
    assert torch.equal(out["a"], b["a"]) and out["b"][1] == "x" and out["c"] == 3


def test_progress_lines_off_a_terminal(tmp_path, capsys):
    # pytest's stderr is not a TTY: the loop prints labelled lines, each with
    # the loss logged at that very step (same value as metrics.jsonl).
    torch.manual_seed(0)
    cfg = StageConfig(
        name="align_image", steps=40, batch_size=8, checkpoint_every=40, log_every=5,
        lr=1e-2, loss=LOSS,
    )  # fmt: skip
    Trainer(
        StandInStage(), NoisyPoses(), cfg, output_dir=tmp_path, progress_label="align_image (B)"
    ).fit()
    lines = capsys.readouterr().err.splitlines()
    rows = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")}
    # about 20 lines, at multiples of log_every: every 5 steps here
    assert len(lines) == 8
    for n, line in zip(range(5, 41, 5), lines):
        assert line.startswith(f"align_image (B): step {n}/40 ")
        assert f"loss {rows[n]:.4f}" in line  # the loss logged at that very step
    quiet = _trainer(tmp_path / "q", steps=3)  # progress=False
    quiet.fit()
    assert capsys.readouterr().err == ""
