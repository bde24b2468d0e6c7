"""Two-rank gloo run of the losses under DDP, for tests/losses/test_distributed.py.

Usage: python _distributed_worker.py OUT_DIR PORT

Loads ``OUT_DIR/setup.pt`` (model state, global inputs, cases), spawns two
ranks with torch.multiprocessing, and writes ``OUT_DIR/rank{r}.pt`` with, per
case, the all-reduced mean loss and the parameter gradients after DDP.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD = 2


class Heads(nn.Module):
    """Three linear heads (image, 2D, 3D) and the loss, all under DDP."""

    def __init__(self, loss: nn.Module, modalities: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(5, 8, dtype=torch.float64) for _ in range(3))
        self.loss = loss
        self.modalities = modalities

    def forward(self, inputs, generator=None):
        emb = [h(x) for h, x in zip(self.heads[: self.modalities], inputs)]
        if self.modalities == 2:
            return self.loss(*emb)
        return self.loss(*emb, generator=generator)


def build_loss(name: str, gather: bool = True) -> tuple[nn.Module, int]:
    from unihpr.losses import (
        ContrastiveLoss,
        LearnableTemperature,
        MultimodalInfoNCE,
        PairInfoNCE,
        SwapOneTripletSampler,
        TripletInfoNCE,
    )

    def temp(init):
        return LearnableTemperature(init=init, min=0.01, max=10.0)

    if name == "pair":
        return PairInfoNCE(temp(0.1), gather=gather), 2
    if name == "triplet-sampled":
        return TripletInfoNCE(temp(0.2), num_negatives=5, gather=gather), 3
    if name == "triplet-all":
        return TripletInfoNCE(temp(0.2), negatives="all", chunk_size=3, gather=gather), 3
    if name == "contrastive-sampled":
        return ContrastiveLoss(0.5, temp(0.1), temp(0.2), gather=gather), 3
    if name == "contrastive-all":
        return ContrastiveLoss(0.5, temp(0.1), temp(0.2), negatives="all", gather=gather), 3
    if name == "multimodal-volume":
        return MultimodalInfoNCE(temp(0.2), score="volume", num_negatives=5, gather=gather), 3
    if name == "multimodal-lambda":
        sampler = SwapOneTripletSampler()
        return MultimodalInfoNCE(temp(0.2), sampler=sampler, num_negatives=4, gather=gather), 3
    raise ValueError(name)


def run_case(name, state, inputs, seed, gather=True):
    """Loss and parameter gradients of one step on ``inputs`` (a list of (b, 5))."""
    loss_fn, k = build_loss(name, gather)
    model = Heads(loss_fn, k)
    model.load_state_dict(state, strict=False)
    wrapped = DDP(model, find_unused_parameters=True) if dist.is_initialized() else model
    generator = torch.Generator().manual_seed(seed)
    loss = wrapped(inputs[:k], generator=generator)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def worker(rank: int, out_dir: str, port: int) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    setup = torch.load(f"{out_dir}/setup.pt")
    b = setup["inputs"][0].shape[0] // WORLD
    local = [x[rank * b : (rank + 1) * b] for x in setup["inputs"]]
    results = {}
    for name in setup["cases"]:
        for gather in (True, False):
            loss, grads = run_case(name, setup["state"], local, setup["seed"], gather)
            mean_loss = loss.clone()
            dist.all_reduce(mean_loss)
            results[(name, gather)] = {"loss": mean_loss / WORLD, "grads": grads}
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    out, port_arg = sys.argv[1], int(sys.argv[2])
    mp.spawn(worker, args=(out, port_arg), nprocs=WORLD, join=True)
