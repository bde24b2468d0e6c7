"""lift()'s throughput on one CPU thread, and how much of it is lift's own overhead.

For a sequence of ``--frames`` MediaPipe-33 frames (the default model): the
median wall time of ``unihpr.lift`` on clean input, with 20% of the joints
masked, and with 10% of the frames missing (filled from their neighbours);
next to it, the model's forward passes alone on the same canonical keypoints
(``_lift_frames``). ``overhead`` = lift - model: the layout conversion,
masking, box normalisation, gap filling and output conversion.

    python benchmarks/bench_lift.py --out benchmarks/results/bench_lift.json

Times are CPU time of the process (``time.process_time``, one torch thread):
on a shared machine wall time mostly measures the other processes.
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


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``fn()`` in milliseconds, after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(1e3 * (time.process_time() - t0))
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1000, help="frames in the sequence")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeat", type=int, default=7, help="timed runs (the median is kept)")
    p.add_argument("--model", default=DEFAULT_LIFT_MODEL, help="lift's model: name or folder")
    p.add_argument("--out", default="benchmarks/results/bench_lift.json", help="output JSON")
    args = p.parse_args()
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

    net = _resolve_model(args.model, None)
    rows = []
    for name, (k, c) in {"clean": (kp, conf), "20% joints masked": (kp, occluded),
                         "10% frames missing": (missing, conf)}.items():  # fmt: skip
        _, pose, vis = _convert(k, "mediapipe33", c, 0.3)
        canon, vis = _canonical(pose, vis, net.config.bbox_reference, 4)
        canon = canon.float()

        def model_only(canon=canon, vis=vis) -> None:
            with torch.no_grad():
                _lift_frames(net, canon, vis, 1024)

        model_ms = cpu_ms(model_only, args.repeat)
        ms = cpu_ms(lambda k=k, c=c: lift(k, "mediapipe33", c, args.model), args.repeat)
        rows.append({"input": name, "lift_ms": ms, "frames_per_s": 1000 * args.frames / ms,
                     "model_ms": model_ms, "overhead_ms": ms - model_ms})  # fmt: skip
    print_table(rows, ["input", "lift_ms", "frames_per_s", "model_ms", "overhead_ms"])
    write_json(args.out, {"machine": machine(), "frames": args.frames, "rows": rows})


if __name__ == "__main__":
    main()
