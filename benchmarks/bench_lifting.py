"""The paper's Table V and Fig. 4 on the bundled mocap clips, over seeds.

    python benchmarks/bench_lifting.py [--seeds 0 1 2] [--jobs 2] [--quick]

Rows (unihpr-tiny, the demo's recipe and step counts, `unihpr.demo.run.FULL`;
see `unihpr.demo.ablation` for what each row trains): mean training pose,
SimpleBaseline MLP lifter (same pair data, augmentation and number of pairs),
UniHPR without alignment, with L_pair, with L_pair + L_triplet, and + the
representation token. Columns: 2D -> 3D and image -> 3D MPJPE / PA-MPJPE on
the held-out clips, per clip and per sample (`unihpr.evaluation.pose_errors`,
the one protocol of the project), mean ± std over seeds. Fig. 4: mean
cross-modal cosine similarity of the training batches in step 2 and in
fine-tuning, with and without L_triplet, mean ± std over seeds.

Each seed runs in its own process (one thread) and writes
``<out>/seed<k>.json``; finished seeds are reused, unfinished ones resume from
their checkpoints. Writes ``bench_lifting.json`` and ``bench_lifting.png``
(by default into ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import torch

from unihpr.demo.ablation import ABLATION_COLUMNS as COLUMNS
from unihpr.demo.ablation import ABLATION_ROWS as ROWS
from unihpr.demo.ablation import ablation_markdown

RESULTS = Path(__file__).parent / "results"


def run_seed(seed: int, out: str, quick: bool, cache_dir: str | None) -> dict:
    """All rows of one seed in this process (resumable); writes ``seed<k>.json``."""
    from unihpr.data import HUMANOID15
    from unihpr.demo.ablation import run_ablation
    from unihpr.demo.run import FULL, QUICK, lifter_config, load_demo_data

    torch.set_num_threads(1)
    settings = QUICK if quick else FULL
    t0 = time.perf_counter()
    data = load_demo_data(settings, cache_dir, progress=False)
    result = run_ablation(settings, data, Path(out) / f"seed{seed}", seed=seed)
    result.update({"seed": seed, "settings": asdict(settings), "joints": HUMANOID15.num_joints,
                   "test_samples": min(len(data.test), settings.eval_samples or len(data.test)),
                   "lifter_pairs": lifter_config(settings).steps * settings.lifter_batch_size,
                   "seconds_this_session": time.perf_counter() - t0})  # fmt: skip
    (Path(out) / f"seed{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}  # fmt: skip


def aggregate(results: list[dict]) -> dict:
    """Mean ± std over seeds of every row and column, and of the Fig. 4 curves."""
    table = {}
    for _, key in ROWS:
        cols = {}
        for col in COLUMNS:
            for suffix in ("", "_sample"):
                vals = [r["rows"][key][col + suffix] for r in results
                        if col + suffix in r["rows"].get(key, {})]  # fmt: skip
                if vals:
                    cols[col + suffix] = _stats(vals)
        table[key] = cols
    curves = {}
    for run in ("pair", "triplet"):
        for stage in ("step2", "finetune"):
            xs = results[0]["curves"][run][stage][0]
            ys = torch.tensor([r["curves"][run][stage][1] for r in results], dtype=torch.float64)
            curves[f"{run}/{stage}"] = {
                "step": xs, "mean": ys.mean(0).tolist(),
                "std": (ys.std(0) if len(results) > 1 else torch.zeros_like(ys[0])).tolist(),
            }  # fmt: skip
    return {"table": table, "curves": curves}


def figure(agg: dict, path: Path) -> Path:
    from unihpr.demo.figures import Curve, plot_curves

    panels = {}
    for stage, title in (("step2", "step 2 (image alignment)"), ("finetune", "fine-tuning")):
        panels[title] = {}
        for run, label in (("pair", "L_pair only"), ("triplet", "L_pair + L_triplet")):
            c = agg["curves"][f"{run}/{stage}"]
            lo = [m - s for m, s in zip(c["mean"], c["std"])]
            hi = [m + s for m, s in zip(c["mean"], c["std"])]
            panels[title][label] = Curve(c["step"], c["mean"], lo, hi)
    caption = (
        "Mean over the three modality pairs of the cosine similarity of matching embeddings "
        "in the logged training batches; line: mean over seeds, band: ± one standard "
        "deviation over seeds. Each seed's two runs start from the same step-1 weights."
    )
    return plot_curves(panels, path, caption=caption)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train")
    p.add_argument("--jobs", type=int, default=2, help="seeds trained at once (1 thread each)")
    p.add_argument("--quick", action="store_true", help="the CI-sized demo settings")
    p.add_argument("--work-dir", default="bench-lifting-runs", help="checkpoints per seed")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default benchmarks/results/bench_lifting[_quick].json); "
                   "the PNG and the markdown table are written next to it")  # fmt: skip
    p.add_argument("--cache-dir", default=None,
                   help="rendered-data cache (default: $UNIHPR_CACHE or ~/.cache/unihpr)")  # fmt: skip
    args = p.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    todo = [s for s in args.seeds if not (work / f"seed{s}.json").is_file()]
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            for f in [pool.submit(run_seed, s, str(work), args.quick, args.cache_dir)
                      for s in todo]:  # fmt: skip
                f.result()
    results = [json.loads((work / f"seed{s}.json").read_text()) for s in args.seeds]
    agg = aggregate(results)
    agg.update({"seeds": args.seeds, "quick": args.quick, "settings": results[0]["settings"],
                "lifter_pairs": results[0]["lifter_pairs"],
                "test_samples": results[0]["test_samples"],
                "protocol": "per clip: mean over held-out clips of the per-clip mean; per "
                "sample: mean over samples; root-relative camera-frame joints, all 15 joints",
                "seconds": time.perf_counter() - t0})  # fmt: skip
    out = args.out or RESULTS / ("bench_lifting_quick.json" if args.quick else "bench_lifting.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(agg, indent=1) + "\n")
    figure(agg, out.with_suffix(".png"))
    md = ablation_markdown(agg["table"], args.seeds)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
