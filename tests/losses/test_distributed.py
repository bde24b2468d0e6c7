"""Global negatives across ranks: two gloo processes under DDP == one process."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unihpr.losses.distributed import distributed_world, gather_embeddings, local_pair_info_nce
from unihpr.losses.pair import pair_info_nce

WORKER = Path(__file__).with_name("_distributed_worker.py")
CASES = [
    "pair",
    "triplet-sampled",
    "triplet-all",
    "contrastive-sampled",
    "contrastive-all",
    "multimodal-volume",
    "multimodal-lambda",
    "siglip",
    "gram",
    "pair-labels",
    "contrastive-labels",
    "triplet-all-labels",
    "pair-queue",
    "contrastive-queue",
    "triplet-planes",
    "triplet-each",
]
LABELS = torch.tensor([0, 1, 0, 2, 1, 3, 3, 0])  # duplicates within and across the two ranks


def _load_worker():
    spec = importlib.util.spec_from_file_location("_distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    worker = _load_worker()
    out = tmp_path_factory.mktemp("dist")
    torch.manual_seed(123)
    state = worker.Heads(torch.nn.Identity(), 3).state_dict()
    g = torch.Generator().manual_seed(5)
    inputs = [torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    setup = {"state": state, "inputs": inputs, "cases": CASES, "seed": 11, "labels": LABELS}
    torch.save(setup, out / "setup.pt")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(out), str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(out / f"rank{r}.pt") for r in range(2)]
    return worker, state, inputs, ranks


@pytest.mark.distributed
@pytest.mark.parametrize("name", CASES)
def test_two_ranks_equal_one_process_on_concatenated_batch(two_rank_run, name):
    worker, state, inputs, ranks = two_rank_run
    ref_loss, ref_grads = worker.run_case(name, state, inputs, seed=11, labels=LABELS)
    for res in ranks:
        got = res[(name, "local")]
        torch.testing.assert_close(got["loss"], ref_loss, rtol=1e-10, atol=1e-12)
        assert set(got["grads"]) == set(ref_grads)
        for key, ref in ref_grads.items():
            # log τ is a float32 parameter: DDP's average rounds it to float32.
            rtol = 1e-8 if ref.dtype == torch.float64 else 1e-5
            torch.testing.assert_close(got["grads"][key], ref, rtol=rtol, atol=1e-12, msg=key)
    # The temperature receives gradient, and DDP averaged it too.
    assert any("log_tau" in key for key in ref_grads)


@pytest.mark.distributed
@pytest.mark.parametrize("name", CASES)
def test_global_mode_is_open_clip_default_scaling(two_rank_run, name):
    """distributed="global": every rank logs the global loss; network gradients are 1/W."""
    worker, state, inputs, ranks = two_rank_run
    ref_loss, ref_grads = worker.run_case(name, state, inputs, seed=11, labels=LABELS)
    for res in ranks:
        got = res[(name, "global")]
        # each rank's own loss is the whole single-process loss
        torch.testing.assert_close(got["own"], ref_loss, rtol=1e-10, atol=1e-12)
        assert set(got["grads"]) == set(ref_grads)
        for key, ref in ref_grads.items():
            # The loss's own parameters (τ, the SigLIP bias) enter every rank's loss
            # whole, so DDP's average keeps their full gradient; the heads' is 1/W.
            own = key.startswith("loss.")
            expected = ref if own else ref / worker.WORLD
            rtol = 1e-8 if ref.dtype == torch.float64 else 1e-5
            torch.testing.assert_close(got["grads"][key], expected, rtol=rtol, atol=1e-12, msg=key)


def test_distributed_mode_is_checked():
    from unihpr.losses import ContrastiveLoss, GRAMLoss, PairInfoNCE, SigLIPLoss, TripletInfoNCE

    for cls in (PairInfoNCE, TripletInfoNCE, SigLIPLoss, GRAMLoss):
        with pytest.raises(ValueError, match=r"distributed must be one of \('local', 'global'\)"):
            cls(distributed="both")
    with pytest.raises(ValueError, match=r"pair\.distributed='local' but triplet\.distributed="):
        ContrastiveLoss(triplet=TripletInfoNCE(distributed="global"))
    with pytest.raises(ValueError, match=r"pair\.gather=True but triplet\.gather=False"):
        ContrastiveLoss(triplet=TripletInfoNCE(gather=False))


@pytest.mark.distributed
@pytest.mark.parametrize(
    "name",
    [
        "pair",
        "triplet-all",
        "contrastive-all",
        "multimodal-volume",
        "siglip",
        "gram",
        "pair-queue",
        "contrastive-queue",
    ],
)
def test_gather_false_keeps_negatives_local(two_rank_run, name):
    worker, state, inputs, ranks = two_rank_run
    halves = [[x[:4] for x in inputs], [x[4:] for x in inputs]]
    local = [
        worker.run_case(name, state, h, seed=11, labels=lab)
        for h, lab in zip(halves, (LABELS[:4], LABELS[4:]))
    ]
    expected = 0.5 * (local[0][0] + local[1][0])
    got = ranks[0][(name, "off")]
    torch.testing.assert_close(got["loss"], expected, rtol=1e-10, atol=1e-12)
    for key in got["grads"]:
        avg = 0.5 * (local[0][1][key] + local[1][1][key])
        rtol = 1e-8 if avg.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(got["grads"][key], avg, rtol=rtol, atol=1e-12)
    # ... and differs from the global-negatives loss.
    assert not torch.allclose(got["loss"], ranks[0][(name, "local")]["loss"])


def test_not_distributed_is_a_no_op():
    x = torch.randn(4, 3)
    batch = gather_embeddings([x, x], gather=True)
    assert not batch.distributed and batch.tensors[0] is x
    assert torch.equal(batch.rows, torch.arange(4))
    assert distributed_world(True) is None and distributed_world(False) is None


def test_local_pair_info_nce_with_all_rows_is_pair_info_nce():
    s = torch.randn(6, 6, dtype=torch.float64)
    rows = torch.arange(6)
    torch.testing.assert_close(local_pair_info_nce(s, s.T, rows, 0.1), pair_info_nce(s, 0.1))
    # Two halves average to the whole.
    halves = [torch.arange(3), torch.arange(3, 6)]
    parts = [local_pair_info_nce(s[r], s[:, r].T, r, 0.1) for r in halves]
    torch.testing.assert_close(0.5 * (parts[0] + parts[1]), pair_info_nce(s, 0.1))
