"""Parameter counts and forward latency of the named UniHPR configurations.

Prints a table and writes JSON (``--out``). CPU always; CUDA too when available.
Defaults (batch 2, 5 timed repeats, 2 DDIM steps) finish in about two minutes
on 2 CPU cores.

    PYTHONPATH=. python benchmarks/bench_models.py --out bench_models.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from unihpr.models import create_model, list_models
from unihpr.models.unihpr import count_parameters


def _time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3  # median, ms


def bench(name: str, device: str, batch: int, repeats: int, steps: int) -> dict:
    model = create_model(name, diffusion_sampling_steps=steps).eval().to(device)
    c = model.config
    h, w = c.image_size
    img = torch.rand(batch, 3, h, w, device=device)
    p2 = torch.rand(batch, c.num_joints, 2, device=device) * min(h, w)
    p3 = torch.randn(batch, c.num_joints, 3, device=device) * 0.3
    counts = {
        k: count_parameters(getattr(model, k))
        for k in ("image_encoder", "pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d")
    }
    with torch.inference_mode():
        emb = model.encode_pose2d(p2)
        row = {
            "model": name,
            "device": device,
            "batch": batch,
            "decoder": c.decoder,
            "ddim_steps": steps if c.decoder == "diffusion" else None,
            "params_total": model.num_parameters(),
            **{f"params_{k}": v for k, v in counts.items()},
            "ms_encode_image": _time(lambda: model.encode_image(img), repeats, device),
            "ms_encode_pose2d": _time(lambda: model.encode_pose2d(p2), repeats, device),
            "ms_encode_pose3d": _time(lambda: model.encode_pose3d(p3), repeats, device),
            "ms_decode3d": _time(lambda: model.decode(emb, "pose2d"), repeats, device),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list_models(), help="model names")
    parser.add_argument("--batch", type=int, default=2, help="batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per row")
    parser.add_argument("--ddim-steps", type=int, default=2, help="diffusion sampling steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default="bench_models.json", help="JSON file of the rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [
        bench(n, d, args.batch, args.repeats, args.ddim_steps) for d in devices for n in args.models
    ]
    cols = ["model", "device", "batch", "params_total", "ms_encode_image", "ms_encode_pose2d",
            "ms_encode_pose3d", "ms_decode3d"]  # fmt: skip
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[k]:.1f}" if isinstance(r[k], float) else f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in cols))  # fmt: skip
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor(),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "results": rows}, fh, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
