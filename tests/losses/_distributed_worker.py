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

    def forward(self, inputs, generator=None, labels=None):
        emb = [h(x) for h, x in zip(self.heads[: self.modalities], inputs)]
        kwargs = {} if labels is None else {"labels": labels}
        if self.modalities == 2 or isinstance(self.loss, self.no_generator):
            return self.loss(*emb, **kwargs)
        return self.loss(*emb, generator=generator, **kwargs)

    @property
    def no_generator(self):
        from unihpr.losses import GRAMLoss, PairInfoNCE, SigLIPLoss

        return (GRAMLoss, PairInfoNCE, SigLIPLoss)


# Modes of a run: (gather, distributed).
MODES = {"local": (True, "local"), "off": (False, "local"), "global": (True, "global")}
LABELLED = ("pair-labels", "contrastive-labels", "triplet-all-labels")


def build_loss(name: str, gather: bool = True, distributed: str = "local") -> tuple[nn.Module, int]:
    from torch import nn as tnn

    from unihpr.losses import (
        ContrastiveLoss,
        EmbeddingQueue,
        GRAMLoss,
        LearnableTemperature,
        MultimodalInfoNCE,
        PairInfoNCE,
        SigLIPLoss,
        SwapOneTripletSampler,
        TripletInfoNCE,
    )

    def temp(init):
        return LearnableTemperature(init=init, min=0.01, max=10.0)

    opts = {"gather": gather, "distributed": distributed}
    if name in ("pair", "pair-labels"):
        return PairInfoNCE(temp(0.1), label_smoothing=0.05, **opts), 2
    if name == "triplet-sampled":
        return TripletInfoNCE(temp(0.2), num_negatives=5, **opts), 3
    if name in ("triplet-all", "triplet-all-labels"):
        return TripletInfoNCE(temp(0.2), negatives="all", chunk_size=3, **opts), 3
    if name in ("contrastive-sampled", "contrastive-labels"):
        pair, triplet = PairInfoNCE(temp(0.1), **opts), TripletInfoNCE(temp(0.2), **opts)
        return ContrastiveLoss(pair, triplet, 0.5), 3
    if name == "contrastive-all":
        triplet = TripletInfoNCE(temp(0.2), negatives="all", **opts)
        return ContrastiveLoss(PairInfoNCE(temp(0.1), **opts), triplet, 0.5), 3
    if name == "multimodal-volume":
        return MultimodalInfoNCE(temp(0.2), score="volume", num_negatives=5, **opts), 3
    if name == "multimodal-lambda":
        sampler = SwapOneTripletSampler()
        return MultimodalInfoNCE(temp(0.2), sampler=sampler, num_negatives=4, **opts), 3
    if name == "siglip":
        bias = tnn.Parameter(torch.tensor(-2.0, dtype=torch.float64))
        return SigLIPLoss(temp(0.3), bias, **opts), 2
    if name == "triplet-planes":
        return TripletInfoNCE(temp(0.2), negatives="planes", chunk_size=2, **opts), 3
    if name == "triplet-each":
        return TripletInfoNCE(temp(0.2), num_negatives=5, anchor_modalities="each", **opts), 3
    if name == "pair-queue":
        return PairInfoNCE(temp(0.1), queue=EmbeddingQueue(12), **opts), 2
    if name == "contrastive-queue":
        pair = PairInfoNCE(temp(0.1), queue=EmbeddingQueue(12), **opts)
        triplet = TripletInfoNCE(temp(0.2), negatives="all", **opts)
        return ContrastiveLoss(pair, triplet, 0.5), 3
    if name == "gram":
        return GRAMLoss(temp(0.1), 0.1, **opts), 3
    raise ValueError(name)


def run_case(name, state, inputs, seed, gather=True, distributed="local", labels=None):
    """Loss and parameter gradients of one step on ``inputs`` (a list of (b, 5))."""
    loss_fn, k = build_loss(name, gather, distributed)
    model = Heads(loss_fn, k)
    model.load_state_dict(state, strict=False)
    wrapped = DDP(model, find_unused_parameters=True) if dist.is_initialized() else model
    generator = torch.Generator().manual_seed(seed)
    if name not in LABELLED:
        labels = None
    if name.endswith("-queue"):
        # An earlier step fills the queue (rows transformed alike on every rank).
        with torch.no_grad():
            wrapped([x.roll(1, dims=1) for x in inputs[:k]], generator=generator)
    loss = wrapped(inputs[:k], generator=generator, labels=labels)
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
    labels = setup["labels"][rank * b : (rank + 1) * b]
    results = {}
    for name in setup["cases"]:
        for mode, (gather, distributed) in MODES.items():
            loss, grads = run_case(
                name, setup["state"], local, setup["seed"], gather, distributed, labels
            )
            mean_loss = loss.clone()
            dist.all_reduce(mean_loss)
            results[(name, mode)] = {"loss": mean_loss / WORLD, "own": loss, "grads": grads}
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    out, port_arg = sys.argv[1], int(sys.argv[2])
    mp.spawn(worker, args=(out, port_arg), nprocs=WORLD, join=True)
