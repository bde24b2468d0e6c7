"""Exact (all 3B² − 3B + 1 triplets) vs sampled (B − 1 negatives) Triplet-InfoNCE.

Measures forward + backward time (median) and the peak memory of one
forward + backward from (B, D) embeddings that require grad.

Memory method:
* CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the
  step (exact allocator accounting).
* CPU: every configuration runs in a fresh subprocess; the peak is the growth
  of the process's resident-set high-water mark (``ru_maxrss``) across one
  forward + backward, after a tiny warm-up has loaded the code paths.
  tracemalloc cannot see torch's allocations; ru_maxrss does (it counts all
  pages the process touched), at the price of a few MiB of allocator noise.

Usage:
    python benchmarks/bench_exact.py --sizes 64 180 512 --out bench_exact.json
    python benchmarks/bench_exact.py --device cuda --sizes 512 2048 --dim 512
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, time_fn


def _step(mode: str, x: list[torch.Tensor], backend: str) -> None:
    from unihpr.losses import TripletInfoNCE
    from unihpr.ops.exact_triplet import exact_triplet_info_nce

    g = torch.Generator().manual_seed(0)
    if mode == "sampled":
        loss = TripletInfoNCE(0.2, validate=False)(*x, generator=g)
    else:
        xn = [torch.nn.functional.normalize(t, dim=1) for t in x]
        loss = exact_triplet_info_nce(
            xn[0] @ xn[1].T, xn[0] @ xn[2].T, xn[1] @ xn[2].T, 0.2, backend=backend
        )[0]
    loss.backward()


def measure(mode: str, B: int, D: int, device: str, backend: str, repeat: int) -> dict:
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(B)
    x = [torch.randn(B, D, generator=gen).to(dev).requires_grad_() for _ in range(3)]
    warm = [torch.randn(8, D).to(dev).requires_grad_() for _ in range(3)]
    _step(mode, warm, backend)
    # The measured step is also the first timing sample (exact at large B on
    # a CPU is slow enough that extra repeats are costly).
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        _step(mode, x, backend)
        torch.cuda.synchronize()
        first = (time.perf_counter() - t0) * 1e3
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        _step(mode, x, backend)
        first = (time.perf_counter() - t0) * 1e3
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    times = [first]
    if repeat > 1:
        times.append(time_fn(lambda: _step(mode, x, backend), dev, repeat=repeat - 1, warmup=0))
    ms = sorted(times)[len(times) // 2] if len(times) > 2 else min(times)
    return {
        "mode": mode if mode == "sampled" else f"exact-{backend}",
        "B": B,
        "D": D,
        "device": device,
        "fwd+bwd ms": ms,
        "peak MiB": peak,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 180, 512], help="batch sizes B")
    p.add_argument("--dim", type=int, default=128, help="embedding size D")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats per configuration")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    p.add_argument("--exact-repeat-large", type=int, default=1, help="repeats for exact, B >= 512")
    p.add_argument("--out", type=Path, default=None, help="write the rows to this JSON file")
    p.add_argument("--_one", nargs=3, metavar=("MODE", "B", "BACKEND"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._one:
        torch.set_num_threads(args.threads)
        mode, B, backend = args._one[0], int(args._one[1]), args._one[2]
        repeat = args.exact_repeat_large if (mode == "exact" and B >= 512) else args.repeat
        print(json.dumps(measure(mode, B, args.dim, args.device, backend, repeat)))
        return
    backends = ["torch"]
    if args.device.startswith("cuda"):
        try:
            import triton  # noqa: F401

            backends.append("triton")
        except ImportError:
            pass
    rows = []
    for B in args.sizes:
        for mode, backend in [("sampled", "torch")] + [("exact", b) for b in backends]:
            cmd = [sys.executable, __file__, "--dim", str(args.dim), "--device", args.device]
            cmd += ["--repeat", str(args.repeat), "--threads", str(args.threads)]
            cmd += ["--exact-repeat-large", str(args.exact_repeat_large)]
            cmd += ["--_one", mode, str(B), backend]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    for B in args.sizes:
        ref = next(r for r in rows if r["B"] == B and r["mode"] == "sampled")
        for r in rows:
            if r["B"] == B:
                r["mem / sampled"] = r["peak MiB"] / max(ref["peak MiB"], 1e-9)
                r["time / sampled"] = r["fwd+bwd ms"] / ref["fwd+bwd ms"]
    print_table(
        rows,
        ["mode", "B", "D", "device", "fwd+bwd ms", "peak MiB", "mem / sampled", "time / sampled"],
    )
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
