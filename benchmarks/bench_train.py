"""Training throughput (samples/s) of each stage for unihpr-tiny and unihpr-w32.

    python benchmarks/bench_train.py [--steps 5] [--out bench_train.json] [--models ...]

Runs a few optimiser steps of every stage on synthetic batches of the model's
input sizes (CPU; and CUDA with bf16 autocast when available) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from unihpr.models import create_model
from unihpr.train import make_stage, paper_stage1, paper_stage2, paper_stage3

BATCH = {
    "cpu": {"unihpr-tiny": 64, "unihpr-w32": 8},
    "cuda": {"unihpr-tiny": 256, "unihpr-w32": 64},
}


def _batch(model, n, device):
    c = model.config
    j, (h, w) = c.num_joints, c.image_size
    pose3d = 0.3 * torch.randn(n, j, 3, device=device)
    pose3d = pose3d - pose3d[:, :1]
    pose2d = 500 + 300 * pose3d[..., :2]
    bbox = torch.cat([pose2d.amin(1) - 20, pose2d.amax(1) + 20], -1)
    return {"pose3d": pose3d, "pose2d": pose2d, "bbox": bbox,
            "image": torch.rand(n, 3, h, w, device=device)}  # fmt: skip


def bench(name, device, steps, warmup=2):
    model = create_model(name).to(device)
    n = BATCH[device.type][name]
    batch = _batch(model, n, device)
    rows = []
    for cfg in (paper_stage1(), paper_stage2(), paper_stage3()):
        stage = make_stage(model, cfg).to(device).train()
        opt = torch.optim.Adam(stage.trainable_parameters(), lr=1e-4)
        amp = device.type == "cuda"
        for i in range(warmup + steps):
            if i == warmup:
                if amp:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, _ = stage(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if amp:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append({"model": name, "device": str(device), "stage": cfg.name, "batch": n,
                     "samples_per_s": n * steps / dt, "s_per_step": dt / steps})  # fmt: skip
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed training steps per stage")
    p.add_argument("--models", nargs="+", default=["unihpr-tiny", "unihpr-w32"], help="model names")
    p.add_argument("--out", default="bench_train.json", help="JSON file of the rows")
    args = p.parse_args(argv)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = [r for d in devices for m in args.models for r in bench(m, d, args.steps)]
    print(
        f"{'model':12s} {'device':6s} {'stage':12s} {'batch':>5s} {'samples/s':>10s} {'s/step':>8s}"
    )
    for r in rows:
        print(f"{r['model']:12s} {r['device']:6s} {r['stage']:12s} {r['batch']:5d} "
              f"{r['samples_per_s']:10.1f} {r['s_per_step']:8.3f}")  # fmt: skip
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine()}  # fmt: skip
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
