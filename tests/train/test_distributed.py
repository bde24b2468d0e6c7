"""Two gloo processes train stage 1 and must end with identical parameters."""

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # spawned children inherit sys.path and import the worker by name
import _dist_worker  # noqa: E402

from unihpr.train.distributed import (  # noqa: E402
    DistInfo,
    all_reduce_mean,
    broadcast_object,
    find_free_port,
    init_distributed,
    resolve_device,
)
from unihpr.train.logger import read_metrics  # noqa: E402


def _spawn(tmp_path, use_real_loss):
    port = find_free_port()
    mp.spawn(_dist_worker.run, args=(2, port, str(tmp_path), use_real_loss), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.distributed
def test_two_gloo_ranks_end_identical(tmp_path):
    r0, r1 = _spawn(tmp_path, use_real_loss=True)
    assert r0["steps"] == r1["steps"] == 4
    assert r0["params"].keys() == r1["params"].keys()
    # DDP's contract: every rank gets the same all-reduced gradient and applies the same
    # update with the same kernels (one machine), so the replicas stay bit-identical
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    # the ranks saw different data: their local losses differ, the logged mean is shared
    assert [h["loss"] for h in r0["history"]] == [h["loss"] for h in r1["history"]]
    # only rank 0 wrote the log and the checkpoints
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    ckpt = torch.load(tmp_path / "run" / "ckpt-00000004.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2


def test_single_process_defaults(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed(device="cpu")
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert info.is_main and not info.distributed
    assert all_reduce_mean({"a": 1.5}, info.device) == {"a": 1.5}
    assert broadcast_object({"x": 1}) == {"x": 1}


def test_init_distributed_rejects_bad_env(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5"):
        init_distributed(device="cpu")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK"):
        init_distributed(device="cpu")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        init_distributed(device="cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda:0")
