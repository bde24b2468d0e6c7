"""Tests of atomic checkpoint writing and RNG state capture."""

import random

import numpy as np
import pytest
import torch
from payloads import CreatesFile, assert_payload_is_live

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


def test_checkpoint_reads_with_plain_weights_only_torch_load(tmp_path):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(path, {"step": 2, "rng": ck.capture_rng_state(), "w": torch.ones(3)})
    state = torch.load(path, weights_only=True)  # no unihpr code needed to read it
    assert state["step"] == 2 and torch.equal(state["w"], torch.ones(3))
    ck.restore_rng_state(state["rng"])


def test_crafted_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    assert_payload_is_live(marker)
    path = tmp_path / "ckpt-00000001.pt"
    # a valid checksum: the file is refused for its content, not for damage
    ck.save_checkpoint(path, {"step": 1, "model": {"w": CreatesFile(marker)}})
    with pytest.raises(ValueError, match=r"ckpt-00000001\.pt.*refusing to unpickle") as info:
        ck.load_checkpoint(path)
    assert "open" in str(info.value) and not isinstance(info.value, ck.CorruptCheckpointError)
    assert not marker.exists()


def test_every_single_byte_flip_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(path, {"step": 7, "w": torch.arange(16, dtype=torch.float32)})
    blob = path.read_bytes()
    # sensitivity: a flip in the tensor data loads silently without the checksum
    data_at = blob.index(torch.arange(16, dtype=torch.float32).numpy().tobytes()) + 8
    flipped = bytearray(blob)
    flipped[data_at] ^= 0x01
    (tmp_path / "raw.pt").write_bytes(bytes(flipped))
    silently = torch.load(tmp_path / "raw.pt", weights_only=True)["w"]
    assert not torch.equal(silently, torch.arange(16, dtype=torch.float32))
    bad = tmp_path / "bad.pt"
    for i in range(len(blob)):
        flipped = bytearray(blob)
        flipped[i] ^= 0x01
        bad.write_bytes(bytes(flipped))
        with pytest.raises(ck.CorruptCheckpointError, match=r"bad\.pt"):
            ck.load_checkpoint(bad)


@pytest.mark.parametrize("damage", ["empty", "truncated", "appended", "unsigned"])
def test_damaged_files_are_corrupt_checkpoint_errors(tmp_path, damage):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(path, {"step": 1, "w": torch.zeros(100)})
    blob = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "appended":
        path.write_bytes(blob + b"\0")
    else:
        torch.save({"step": 1}, path)  # a torch file without the checksum
    with pytest.raises(ck.CorruptCheckpointError, match=r"c\.pt"):
        ck.load_checkpoint(path)


def test_map_location_checked_before_reading(tmp_path):
    path = tmp_path / "c.pt"
    ck.save_checkpoint(path, {"step": 1})
    with pytest.raises(ValueError, match=r"map_location='gpu' names no device"):
        ck.load_checkpoint(path, map_location="gpu")
    with pytest.raises(TypeError, match=r"map_location must be a torch.device"):
        ck.load_checkpoint(path, map_location=1.5)
    if not torch.cuda.is_available():
        with pytest.raises(
            ValueError, match=r"map_location='cuda:0', but this machine has no CUDA"
        ):
            ck.load_checkpoint(path, map_location="cuda:0")
        with pytest.raises(ValueError, match=r"map_location=device\(type='cuda'\)"):
            ck.load_checkpoint(path, map_location=torch.device("cuda"))
    assert ck.load_checkpoint(path, map_location=torch.device("cpu"))["step"] == 1


def test_load_latest_falls_back_and_quarantines(tmp_path):
    for step in (1, 2, 3):
        ck.save_checkpoint(ck.checkpoint_path(tmp_path, step), {"step": step})
    ck.checkpoint_path(tmp_path, 3).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"damaged checkpoint.*ckpt-00000003\.pt.*\.corrupt"):
        state, path = ck.load_latest_checkpoint(tmp_path)
    assert state["step"] == 2 and path.name == "ckpt-00000002.pt"
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1, 2]
    assert (tmp_path / "ckpt-00000003.pt.corrupt").is_file()
    for step in (1, 2):
        ck.checkpoint_path(tmp_path, step).write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(ck.CorruptCheckpointError, match="every"):
        ck.load_latest_checkpoint(tmp_path, quarantine=False)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1, 2]
    assert ck.load_latest_checkpoint(tmp_path / "empty") is None


def test_remove_stale_temporaries_only_touches_save_temporaries(tmp_path):
    keep = ["ckpt-00000001.pt", ".ckpt-1.pt.x.tmp", "notes.tmp", ".other.pt.abc.tmp", "ckpt.tmp"]
    stale = [".ckpt-00000002.pt.k3j_x1.tmp", ".ckpt-00000010.pt.abcdef.tmp"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    removed = ck.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert ck.remove_stale_temporaries(tmp_path / "missing") == []
