"""Benchmark the closed-form eigenvalue and the contrastive losses (PyTorch ops).

Prints two tables and writes JSON. All variants run in one process so that
their ratios are comparable:

* λ1 of B² triplets by the closed form (``lambda1_from_cosines``), by batched
  3×3 ``eigvalsh`` and by an SVD of each 3×D stack (the paper's first route,
  timed on a subsample and scaled);
* forward+backward of three ``PairInfoNCE``, ``TripletInfoNCE`` and
  ``ContrastiveLoss`` (which shares the similarity matrices between the four
  terms) at several B, plus the same objective through plain autograd;
* forward+backward of the losses users of other libraries expect
  (``SigLIPLoss``, ``GRAMLoss``, ``PairInfoNCE`` with ``labels=`` and with an
  ``EmbeddingQueue``, ``TripletInfoNCE(negatives="planes")``) against their
  reference formula written in plain autograd, with the largest difference of
  the two losses (float32 on the device, and float64 on the CPU). References
  that materialise B³ or B²·K² tensors are skipped above a size cap.

Targets (CPU, 2 threads): closed form >= 50x faster than ``eigvalsh``;
``ContrastiveLoss`` <= 1.2x the three ``PairInfoNCE`` (the GPU target of
benchmarks/gpu_check.py; on the CPU the triplet term's elementwise work is not
hidden behind the matrix products, so expect more).

The JSON records the machine, the thread count and the load average before
and after the run: timings taken while other processes share the cores are
not clean, and the file says so.

Usage: ``python benchmarks/bench_losses.py [--device cuda] [--threads 2] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, time_fn, write_json

from unihpr.losses import (
    ContrastiveLoss,
    EmbeddingQueue,
    GRAMLoss,
    PairInfoNCE,
    SigLIPLoss,
    TripletInfoNCE,
)
from unihpr.losses._preamble import Prepared
from unihpr.ops import lambda1_from_cosines


def bench_eigen(n_side: int, dim: int, device: torch.device, svd_count: int) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(0)
    x = [F.normalize(torch.randn(n_side, dim, generator=g), dim=1).to(device) for _ in range(3)]
    # B² triplets (i, j, j'): logits of one sampled Triplet-InfoNCE of batch B.
    s12, s13, s23 = x[0] @ x[1].T, x[0] @ x[2].T, x[1] @ x[2].T
    jj = torch.randperm(n_side, generator=g).to(device)
    a, b, c = s12, s13[:, jj], s23[:, jj].diagonal()[None, :].expand(n_side, -1)
    count = n_side * n_side
    closed = time_fn(lambda: lambda1_from_cosines(a, b, c), device, repeat=21, warmup=5)

    def eigvalsh():
        G = torch.ones(count, 3, 3, device=device)
        G[:, 0, 1] = G[:, 1, 0] = a.reshape(-1)
        G[:, 0, 2] = G[:, 2, 0] = b.reshape(-1)
        G[:, 1, 2] = G[:, 2, 1] = c.reshape(-1)
        return torch.linalg.eigvalsh(G)[:, -1]

    eig = time_fn(eigvalsh, device, repeat=5, warmup=1)
    # SVD of 3×D stacks on a subsample, scaled to B² (it is far too slow for all).
    m = torch.stack([x[0][:svd_count], x[1][:svd_count], x[2][:svd_count]], dim=1)
    svd = time_fn(lambda: torch.linalg.svdvals(m)[:, 0] ** 2, device, repeat=3, warmup=1)
    svd_full = svd * count / svd_count
    err = (lambda1_from_cosines(a, b, c).reshape(-1) - eigvalsh()).abs().max()
    rows = [
        ("closed form (lambda1_from_cosines)", closed),
        ("eigvalsh 3x3, batched", eig),
        (f"svd 3xD (from {svd_count})", svd_full),
    ]
    out = [
        {"bench": "lambda1", "variant": v, "B": n_side, "triplets": count, "ms": ms,
         "vs_closed": ms / closed}
        for v, ms in rows
    ]  # fmt: skip
    out.append(
        {"bench": "lambda1", "variant": "max |closed - eigvalsh| (both f32)", "B": n_side,
         "triplets": count, "ms": float(err), "vs_closed": ""}
    )  # fmt: skip
    return out


def bench_losses(B: int, dim: int, device: torch.device, repeat: int, compiled: bool) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(1)
    base = [torch.randn(B, dim, generator=g).to(device) for _ in range(3)]
    xs = [t.clone().requires_grad_() for t in base]
    pair = PairInfoNCE(0.07, validate=False).to(device)
    trip = TripletInfoNCE(0.2, validate=False).to(device)
    cl = ContrastiveLoss(PairInfoNCE(0.07, validate=False), trip).to(device)
    cl_checked = ContrastiveLoss(PairInfoNCE(0.07), TripletInfoNCE(0.2)).to(device)
    sgen = torch.Generator(device=device).manual_seed(0)

    def run_pairs():
        (pair(xs[0], xs[1]) + pair(xs[0], xs[2]) + pair(xs[1], xs[2])).backward()

    def run_triplet():
        trip(*xs, generator=sgen).backward()

    def run_cl():
        cl(*xs, generator=sgen).backward()

    def run_cl_checked():
        cl_checked(*xs, generator=sgen).backward()

    def run_cl_naive():
        # The unfused reference: pair terms plus the triplet term through
        # plain autograd of the closed form.
        x1, x2, x3 = (F.normalize(t, dim=1) for t in xs)
        s12, s13, s23 = x1 @ x2.T, x1 @ x3.T, x2 @ x3.T
        target = torch.arange(B, device=device)
        loss = sum(
            0.5 * (F.cross_entropy(s / 0.07, target) + F.cross_entropy(s.T / 0.07, target))
            for s in (s12, s13, s23)
        )
        idx = cl.triplet.sampler(B, generator=sgen, device=device)
        ar = torch.arange(B, device=device)[:, None]
        i, j, k = (torch.cat([ar, n], 1) for n in idx)
        a, b, c = s12[i, j], s13[i, k], s23[j, k]
        p, q = a * a + b * b + c * c, 2 * a * b * c
        r = torch.sqrt(p / 3)
        lam = 1 + 2 * r * torch.cos(torch.acos((q / (2 * r**3)).clamp(-1, 1)) / 3)
        logits = lam / 0.2
        loss = loss + (torch.logsumexp(logits, 1) - logits[:, 0]).mean()
        loss.backward()

    t_pairs = time_fn(run_pairs, device, repeat=repeat)
    rows = [
        {"bench": "fwd+bwd", "variant": "3x PairInfoNCE", "B": B, "ms": t_pairs, "vs_pairs": 1.0},
    ]
    variants = [
        ("TripletInfoNCE (sampled)", run_triplet),
        ("ContrastiveLoss (fused, validate=False)", run_cl),
        ("ContrastiveLoss (fused, validate=True)", run_cl_checked),
        ("ContrastiveLoss (plain autograd)", run_cl_naive),
    ]
    if compiled:
        cl_compiled = ContrastiveLoss(
            PairInfoNCE(0.07, validate=False),
            TripletInfoNCE(0.2, backend="compile", validate=False),
        ).to(device)

        def run_cl_compiled():
            cl_compiled(*xs, generator=sgen).backward()

        run_cl_compiled()  # compile outside the timed region
        variants.append(("ContrastiveLoss (backend='compile')", run_cl_compiled))
    for name, fn in variants:
        t = time_fn(fn, device, repeat=repeat)
        rows.append({"bench": "fwd+bwd", "variant": name, "B": B, "ms": t, "vs_pairs": t / t_pairs})
    return rows


def _references(queued: list[torch.Tensor]):
    """Plain-autograd reference formulas of the new losses, by name: (fn(xs) -> loss, cap)."""

    def siglip(xs):  # open_clip's SigLipLoss expression, logit_scale 10, logit_bias -10
        x, y = (F.normalize(t, dim=1) for t in xs[:2])
        z = 2 * torch.eye(x.shape[0], dtype=x.dtype, device=x.device) - 1
        return -F.logsigmoid(z * (10.0 * x @ y.T - 10.0)).sum() / x.shape[0]

    def gram(xs):  # explicit (B, B, K, D) stacks and torch.linalg.det
        x = [F.normalize(t, dim=1) for t in xs]
        n = x[0].shape[0]
        m = torch.stack(
            [x[0][:, None].expand(n, n, -1), *(t[None].expand(n, n, -1) for t in x[1:])], dim=2
        )
        vol = torch.sqrt(torch.linalg.det(m @ m.transpose(-1, -2)).clamp_min(1e-6))
        logits = -vol / 0.07
        target = torch.arange(n, device=logits.device)
        ce = F.cross_entropy
        return 0.5 * (
            ce(logits, target, label_smoothing=0.1) + ce(logits.T, target, label_smoothing=0.1)
        )

    def pair_labels(xs):  # SupCon L_out with a mask
        x, y = (F.normalize(t, dim=1) for t in xs[:2])
        labels = torch.arange(x.shape[0], device=x.device) // 4
        mask = (labels[:, None] == labels[None, :]).to(x.dtype)
        s = x @ y.T / 0.07
        out = 0.0
        for logits in (s, s.T):
            logp = torch.log_softmax(logits, dim=1)
            out = out - ((mask * logp).sum(1) / mask.sum(1)).mean() / 2
        return out

    def pair_queue(xs):  # softmax over the batch and the queued rows
        x, y = (F.normalize(t, dim=1) for t in xs[:2])
        qx, qy = queued[0].to(x.dtype), queued[1].to(x.dtype)
        target = torch.arange(x.shape[0], device=x.device)
        return 0.5 * (
            F.cross_entropy(x @ torch.cat([y, qy]).T / 0.07, target)
            + F.cross_entropy(y @ torch.cat([x, qx]).T / 0.07, target)
        )

    def planes(xs):  # all B³ λ1 by batched eigvalsh, one softmax per plane
        x = [F.normalize(t, dim=1) for t in xs]
        n = x[0].shape[0]
        a = (x[0] @ x[1].T)[:, :, None].expand(n, n, n)
        b = (x[0] @ x[2].T)[:, None, :].expand(n, n, n)
        c = (x[1] @ x[2].T)[None, :, :].expand(n, n, n)
        one = torch.ones_like(a)
        g = torch.stack([torch.stack(r, -1) for r in ((one, a, b), (a, one, c), (b, c, one))], -2)
        lam = torch.linalg.eigvalsh(g)[..., -1] / 0.2  # (i, j, k)
        r = torch.arange(n, device=lam.device)
        pos = lam[r, r, r]
        lse = [
            torch.logsumexp(lam[r].flatten(1), 1),  # (a, j, k)
            torch.logsumexp(lam[:, r].transpose(0, 1).flatten(1), 1),  # (i, a, k)
            torch.logsumexp(lam[:, :, r].permute(2, 0, 1).flatten(1), 1),  # (i, j, a)
        ]
        return (sum(lse) / 3 - pos).mean()

    return {
        "SigLIPLoss": (siglip, None),
        "GRAMLoss (K=3)": (gram, 512),
        "PairInfoNCE(labels=)": (pair_labels, None),
        "PairInfoNCE(queue=)": (pair_queue, None),
        "TripletInfoNCE(negatives='planes')": (planes, 64),
    }


def bench_new_losses(B: int, dim: int, device: torch.device, repeat: int) -> list[dict]:
    """Each new loss against its reference formula: time and agreement of the values."""
    g = torch.Generator(device="cpu").manual_seed(2)
    base = [torch.randn(B, dim, generator=g) for _ in range(3)]
    queued = [F.normalize(torch.randn(4 * B, dim, generator=g), dim=1) for _ in range(2)]
    labels = torch.arange(B) // 4

    def library(name: str, dtype: torch.dtype, dev: torch.device):
        if name == "SigLIPLoss":
            fn = SigLIPLoss(0.1, -10.0, validate=False)
            return lambda xs: fn(xs[0], xs[1])
        if name == "GRAMLoss (K=3)":
            fn = GRAMLoss(0.07, 0.1, validate=False)
            return lambda xs: fn(*xs)
        if name == "PairInfoNCE(labels=)":
            fn = PairInfoNCE(0.07, validate=False)
            lab = labels.to(dev)
            return lambda xs: fn(xs[0], xs[1], labels=lab)
        if name == "PairInfoNCE(queue=)":
            queue = EmbeddingQueue(4 * B)
            queue.push(Prepared([q.to(dev, dtype) for q in queued], None))
            fn = PairInfoNCE(0.07, validate=False, queue=queue).eval()  # eval: no push
            return lambda xs: fn(xs[0], xs[1])
        fn = TripletInfoNCE(0.2, negatives="planes", validate=False)
        return lambda xs: fn(*xs)

    caps = {name: cap for name, (_, cap) in _references(queued).items()}
    refs = _references([q.to(device) for q in queued])
    refs64 = _references([q.double() for q in queued])
    rows = []
    for name, cap in caps.items():
        lib = library(name, torch.float32, device)
        xs = [t.to(device).requires_grad_() for t in base]

        def run(fn=lib, xs=xs):
            fn(xs).backward()

        def run_ref(fn=refs[name][0], xs=xs):
            fn(xs).backward()

        row = {"bench": "vs reference", "variant": name, "B": B}
        row["ms"] = time_fn(run, device, repeat=repeat)
        if cap is None or cap >= B:
            row["ref_ms"] = time_fn(run_ref, device, repeat=repeat)
            row["vs_ref"] = row["ms"] / row["ref_ms"]
            x64 = [t.double() for t in base]
            lib64 = library(name, torch.float64, torch.device("cpu"))
            with torch.no_grad():
                row["max_abs_diff_f32"] = abs(float(lib(xs)) - float(refs[name][0](xs)))
                row["max_abs_diff_f64"] = abs(float(lib64(x64)) - float(refs64[name][0](x64)))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default: cuda when available)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[48, 180, 2048],
        help="batch sizes B of the loss timings",
    )  # fmt: skip
    parser.add_argument("--dim", type=int, default=512, help="embedding size D")
    parser.add_argument(
        "--eigen-batch", type=int, default=512, help="B for the λ1 comparison (B² triplets)"
    )
    parser.add_argument(
        "--svd-count", type=int, default=4096, help="triplets timed with per-triplet SVDs"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed repeats per row")
    parser.add_argument(
        "--compile", action="store_true", help="add backend='compile' (compiles ~1 min per B)"
    )
    parser.add_argument("--label", default="", help="free text stored in the JSON")
    parser.add_argument(
        "--out", default="benchmarks/results/bench_losses.json", help="JSON file of the rows"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    rows = bench_eigen(args.eigen_batch, args.dim, device, args.svd_count)
    print_table(rows, ["bench", "variant", "B", "triplets", "ms", "vs_closed"])
    print()
    loss_rows = []
    for B in args.batch_sizes:
        loss_rows += bench_losses(B, args.dim, device, args.repeat, args.compile)
    print_table(loss_rows, ["bench", "variant", "B", "ms", "vs_pairs"])
    print()
    new_rows = []
    for B in args.batch_sizes:
        new_rows += bench_new_losses(B, args.dim, device, args.repeat)
    diffs = ("max_abs_diff_f32", "max_abs_diff_f64")
    shown = [{k: f"{v:.1e}" if k in diffs else v for k, v in r.items()} for r in new_rows]
    print_table(shown, ["bench", "variant", "B", "ms", "ref_ms", "vs_ref", *diffs])
    load_after = os.getloadavg()
    cores = os.cpu_count() or 1
    print(f"\nload average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {cores} cores")  # fmt: skip
    write_json(
        args.out,
        {
            "machine": machine(),
            "device": str(device),
            "label": args.label,
            "load_average_1min": {"before": load_before[0], "after": load_after[0], "cores": cores},
            "lambda1": rows,
            "losses": loss_rows,
            "new_losses": new_rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
