"""lift()'s throughput on one CPU thread, and how much of it is lift's own overhead.

For a sequence of ``--frames`` MediaPipe-33 frames and each of ``--models``: the
median wall time of ``unihpr.lift`` on clean input, with 20% of the joints
masked, and with 10% of the frames missing (filled from their neighbours);
next to it, the model's forward passes alone on the same canonical keypoints
(``_lift_frames``). ``overhead`` = lift - model (CPU time): the layout conversion,
masking, box normalisation, gap filling and output conversion.

    python benchmarks/bench_lift.py --out benchmarks/results/bench_lift.json

Each time is the median of ``--repeat`` runs (one torch thread), as wall time
and as the process's CPU time: on a shared machine the wall time also measures
the other processes, the CPU time does not. ``--models`` compares lift's
default (temporal) with other models, e.g. the single-frame ``unihpr-tiny-mocap``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import machine, print_table, write_json

from unihpr.inference import (
    DEFAULT_LIFT_MODEL,
    _canonical,
    _convert,
    _lift_frames,
    _resolve_model,
    lift,
)


def timed_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) time of ``fn()`` in milliseconds, after two warm-up calls."""
    fn(), fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.process_time() - c0))
    return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1000, help="frames in the sequence")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=7, help="timed runs (the median is kept)")
    p.add_argument("--models", nargs="+", default=[DEFAULT_LIFT_MODEL, "unihpr-tiny-mocap"],
                   help="lift's models: names or folders")  # fmt: skip
    p.add_argument("--out", default="benchmarks/results/bench_lift.json", help="output JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    # a body-like pose with noise, in pixels of a 1920 x 1080 image
    from unihpr.data.mapping import map_joints

    rest = rng.uniform(-200, 200, size=(15, 2))
    kp15 = rest + rng.normal(scale=15, size=(args.frames, 15, 2)) + [960, 540]
    kp = np.repeat(kp15[:, :1], 33, axis=1)  # unused MediaPipe points: finite, ignored
    m = map_joints(np.eye(33)[None], "mediapipe33", "humanoid15")[0]  # (15, 33) weights
    for d in range(3, 15):
        kp[:, int(np.argmax(m[d]))] = kp15[:, d]
    conf = np.ones((args.frames, 33))
    occluded = np.where(rng.random(conf.shape) < 0.2, 0.0, conf)
    missing = kp.copy()
    missing[rng.random(args.frames) < 0.1] = np.nan

    rows = []
    for model in args.models:
        net = _resolve_model(model, None)
        reference = getattr(net.config, "bbox_reference", 1.0)
        for name, (k, c) in {"clean": (kp, conf), "20% joints masked": (kp, occluded),
                             "10% frames missing": (missing, conf)}.items():  # fmt: skip
            _, pose, vis = _convert(k, "mediapipe33", c, 0.3)
            canon, vis = _canonical(pose, vis, reference, 4)
            canon = canon.float()

            def model_only(canon=canon, vis=vis, net=net) -> None:
                with torch.no_grad():
                    _lift_frames(net, canon, vis, 1024)

            _, model_cpu = timed_ms(model_only, args.repeat)
            wall, cpu = timed_ms(lambda k=k, c=c, m=model: lift(k, "mediapipe33", c, m),
                                 args.repeat)  # fmt: skip
            rows.append({"model": str(model), "input": name, "lift_ms": wall, "lift_cpu_ms": cpu,
                         "frames_per_s": 1000 * args.frames / wall,
                         "frames_per_cpu_s": 1000 * args.frames / cpu,
                         "model_cpu_ms": model_cpu, "overhead_cpu_ms": cpu - model_cpu})  # fmt: skip
    cols = ["model", "input", "lift_ms", "lift_cpu_ms", "frames_per_s", "frames_per_cpu_s",
            "model_cpu_ms", "overhead_cpu_ms"]  # fmt: skip
    print_table(rows, cols)
    write_json(args.out, {"machine": machine(), "frames": args.frames, "rows": rows})


if __name__ == "__main__":
    main()
