"""Tests of atomic checkpoint writing and RNG state capture."""

import random

import numpy as np
import pytest
import torch

from unihpr.train import checkpoint as ck


def test_roundtrip_and_listing(tmp_path):
    for step in (3, 10, 7):
        ck.save_checkpoint(ck.checkpoint_path(tmp_path, step), {"step": step, "w": torch.ones(2)})
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [3, 7, 10]
    assert ck.latest_checkpoint(tmp_path).name == "ckpt-00000010.pt"
    state = ck.load_checkpoint(ck.latest_checkpoint(tmp_path))
    assert state["step"] == 10 and torch.equal(state["w"], torch.ones(2))
    ck.prune_checkpoints(tmp_path, keep=1)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [10]
    assert ck.latest_checkpoint(tmp_path / "nothing") is None
    with pytest.raises(ValueError, match="keep"):
        ck.prune_checkpoints(tmp_path, keep=0)


def test_failed_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(path, {"step": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_corrupt_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.pt"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=r"bad.pt.*corrupt"):
        ck.load_checkpoint(bad)
    full = tmp_path / "full.pt"
    ck.save_checkpoint(full, {"step": 1, "x": torch.arange(1000)})
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(full.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"trunc.pt"):
        ck.load_checkpoint(trunc)
    other = tmp_path / "other.pt"
    ck.save_checkpoint(other, {"weights": 1})
    with pytest.raises(ValueError, match=r"other.pt.*no 'step'"):
        ck.load_checkpoint(other)


def test_rng_state_roundtrip():
    state = ck.capture_rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    ck.restore_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError, match="numpy"):
        ck.restore_rng_state({"torch": state["torch"], "python": state["python"]})
