"""Benchmark the closed-form eigenvalue and the contrastive losses (PyTorch ops).

Prints two tables and writes JSON. All variants run in one process so that
their ratios are comparable:

* λ1 of B² triplets by the closed form (``lambda1_from_cosines``), by batched
  3×3 ``eigvalsh`` and by an SVD of each 3×D stack (the paper's first route,
  timed on a subsample and scaled);
* forward+backward of three ``PairInfoNCE``, ``TripletInfoNCE`` and
  ``ContrastiveLoss`` (which shares the similarity matrices between the four
  terms) at several B, plus the same objective through plain autograd.

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

from unihpr.losses import ContrastiveLoss, PairInfoNCE, TripletInfoNCE
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
    cl = ContrastiveLoss(1.0, 0.07, 0.2, validate=False).to(device)
    cl_checked = ContrastiveLoss(1.0, 0.07, 0.2).to(device)
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
        cl_compiled = ContrastiveLoss(1.0, 0.07, 0.2, backend="compile", validate=False).to(device)

        def run_cl_compiled():
            cl_compiled(*xs, generator=sgen).backward()

        run_cl_compiled()  # compile outside the timed region
        variants.append(("ContrastiveLoss (backend='compile')", run_cl_compiled))
    for name, fn in variants:
        t = time_fn(fn, device, repeat=repeat)
        rows.append({"bench": "fwd+bwd", "variant": name, "B": B, "ms": t, "vs_pairs": t / t_pairs})
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
    parser.add_argument("--no-compile", action="store_true", help=argparse.SUPPRESS)  # old flag
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
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
