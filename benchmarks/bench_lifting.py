"""The paper's Table V and Fig. 4, and lift's temporal and robust lifters, over seeds.

    python benchmarks/bench_lifting.py [--seeds 0 1 2] [--jobs 2] [--quick]
    python benchmarks/bench_lifting.py --table lift [--seeds 0 1 2] [--jobs 2]

``--table lift`` (issue #21): the lifters of ``lift`` on the held-out clips seen
whole through fixed cameras (`lift_lab.py`'s protocol: clean, 20% of the joints
occluded, 10% of the frames empty, two detector conventions; MPJPE per clip and
acceleration error), every row over the same seeds with the mean-pose and MLP rows
of the same run, and each row's training budget in 2D-3D frames. `LIFT_ROWS` lists
the rows: single frame vs temporal, two-stage training (single frame, then
window 27), each augmentation source switched off, detector conventions
switched on, lift's default recipe, and MLP and single-frame rows at larger
budgets.
Writes ``bench_lifting_lift.json`` and ``.md``.

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


# key, label, own training steps (multiples of LIFT_STEPS), lift_lab.py arguments
# ({work}, {seed} filled in). A row with --init starts from the model that another
# row of the same seed saved (--save-dir): it runs after it, and its budget is its
# own steps plus that row's.
LIFT_ROWS = (
    ("mean", "mean training pose (no seed: scored once)", 0, ["--model", "mean"]),
    ("mlp", "SimpleBaseline MLP (+ visibility mask)", 1, ["--model", "mlp"]),
    ("single", "single frame (window 1)", 1,
     ["--model", "single", "--save-dir", "{work}/models/single"]),
    ("t27", "temporal, window 27, from scratch", 1, ["--model", "temporal"]),
    ("single-occlusion", "single frame, no occlusion training", 1,
     ["--model", "single", "--off", "occlusion"]),
    ("single-cameras", "single frame, no wide cameras (roll, focal)", 1,
     ["--model", "single", "--off", "cameras"]),
    ("single-body", "single frame, no bone / body scale", 1,
     ["--model", "single", "--off", "bone_scale", "body_scale"]),
    ("single-limbs", "single frame, no limb swap / limb angle", 1,
     ["--model", "single", "--off", "limb_swap", "limb_angle"]),
    ("single-mirror", "single frame, no mirroring", 1, ["--model", "single", "--off", "mirror"]),
    ("single+convention", "single frame + detector conventions (p 0.5)", 1,
     ["--model", "single", "--occ", "convention=0.5", "--save-dir", "{work}/models/conv"]),
    ("single+clean50", "single frame, half the windows uncorrupted", 1,
     ["--model", "single", "--occ", "clean=0.5"]),
    ("mlp-2x", "SimpleBaseline MLP, 2x budget", 2, ["--model", "mlp"]),
    ("single-2x", "single frame, 2x budget", 2, ["--model", "single"]),
    ("two-stage", "window 27 from the single-frame model (two stages)", 1,
     ["--model", "temporal", "--init", "{work}/models/single/seed{seed}",
      "--save-dir", "{work}/models/two-stage"]),
    ("two-stage+convention", "two stages + detector conventions", 1,
     ["--model", "temporal", "--occ", "convention=0.5",
      "--init", "{work}/models/conv/seed{seed}", "--save-dir", "{work}/models/two-stage-conv"]),
    ("mlp-7x", "SimpleBaseline MLP, 7x budget", 7, ["--model", "mlp"]),
    ("single-5x+convention", "single frame + detector conventions, 5x budget", 5,
     ["--model", "single", "--occ", "convention=0.5", "--save-dir", "{work}/models/conv5"]),
    ("two-stage-7x", "two stages (5x + 2x) + detector conventions", 2,
     ["--model", "temporal", "--occ", "convention=0.5",
      "--init", "{work}/models/conv5/seed{seed}", "--save-dir", "{work}/models/two-stage-7x"]),
    ("two-stage-7x+clean-2nd", "the same, half the second stage's windows uncorrupted", 2,
     ["--model", "temporal", "--occ", "convention=0.5", "clean=0.5",
      "--init", "{work}/models/conv5/seed{seed}",
      "--save-dir", "{work}/models/two-stage-7x-clean-2nd"]),
    ("single-5x+clean50", "single frame + conventions, half the windows uncorrupted, 5x", 5,
     ["--model", "single", "--occ", "convention=0.5", "clean=0.5",
      "--save-dir", "{work}/models/conv5-clean50"]),
    ("two-stage-7x+clean50", "two stages (5x + 2x), half the windows of both uncorrupted", 2,
     ["--model", "temporal", "--occ", "convention=0.5", "clean=0.5",
      "--init", "{work}/models/conv5-clean50/seed{seed}",
      "--save-dir", "{work}/models/two-stage-7x-clean50"]),
    ("default", "**lift's default**: the same, a quarter of the second stage's windows "
     "uncorrupted", 2,
     ["--model", "temporal", "--occ", "convention=0.5", "clean=0.25",
      "--init", "{work}/models/conv5-clean50/seed{seed}", "--save-dir", "{work}/models/default"]),
)  # fmt: skip
LIFT_STEPS = {False: 600, True: 8}  # per budget multiple, by --quick; 270 frames a step
LIFT_FRAMES = 270


def _source(row: tuple) -> tuple | None:
    """The row whose saved model ``row`` starts from (``--init``), or None."""
    argv = row[3]
    if "--init" not in argv:
        return None
    folder = argv[argv.index("--init") + 1].rsplit("/", 1)[0]
    return next(r for r in LIFT_ROWS if "--save-dir" in r[3]
                and r[3][r[3].index("--save-dir") + 1] == folder)  # fmt: skip


def budget_steps(row: tuple) -> int:
    """Training steps (multiples of ``LIFT_STEPS``) behind a row's model, both stages."""
    source = _source(row)
    return row[2] + (budget_steps(source) if source else 0)


def lift_args(row: tuple, seed: int, work: str, quick: bool) -> list[str]:
    """lift_lab.py arguments of one row and seed (``--init`` rows: their own stage)."""
    key, _, own, argv = row
    return [key, *(a.format(work=work, seed=seed) for a in argv), "--seeds", str(seed),
            "--steps", str(LIFT_STEPS[quick] * max(own, 1)), "--frames", str(LIFT_FRAMES)]  # fmt: skip


def run_lift(key: str, seed: int, work: str, quick: bool) -> dict:
    """One row of the lift table for one seed in this process; writes its JSON."""
    import lift_lab

    torch.set_num_threads(1)
    row = next(r for r in LIFT_ROWS if r[0] == key)
    args = lift_lab.parser().parse_args(lift_args(row, seed, work, quick))
    result = lift_lab.run_seed(args, seed, lift_lab.test_sequences())
    out = Path(work) / key / f"seed{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"key": key, "seed": seed, "result": result}) + "\n")
    return result


def lift_table(seeds: list[int], work: Path, jobs: int, quick: bool) -> dict:
    """Every row of `LIFT_ROWS` for every seed (finished ones reused): mean ± std per row."""

    def done(key: str, seed: int) -> bool:
        return (work / key / f"seed{seed}.json").is_file()

    def depth(row: tuple) -> int:
        source = _source(row)
        return 0 if source is None else 1 + depth(source)

    for level in range(max(map(depth, LIFT_ROWS)) + 1):
        # the longest runs first, so that the workers end together
        stage = sorted((r for r in LIFT_ROWS if depth(r) == level), key=lambda r: -r[2])
        todo = [(r[0], s) for r in stage for s in seeds if not done(r[0], s)]
        # the mean pose does not depend on the seed: scored once
        todo = [t for t in todo if t[0] != "mean" or t[1] == seeds[0]]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            for f in [pool.submit(run_lift, k, s, str(work), quick) for k, s in todo]:
                f.result()
    rows = {}
    for row in LIFT_ROWS:
        key, label, _, argv = row
        runs = [json.loads((work / key / f"seed{s}.json").read_text())["result"]
                for s in seeds if done(key, s)]  # fmt: skip
        cells = {k: _stats([r[k] for r in runs]) for k in runs[0]}
        growth = [100 * (r["occ20_mpjpe_clip"] / r["clean_mpjpe_clip"] - 1) for r in runs]
        cells["occ20_growth_pct"] = _stats(growth)
        budget = budget_steps(row) * LIFT_STEPS[quick] * LIFT_FRAMES
        rows[key] = {"label": label, "budget_frames": budget, "seeds": len(runs),
                     "mlp": "mlp" in argv, **cells}  # fmt: skip
    for row in rows.values():
        # the MLP trained on as many frames (the mean pose: the 1x MLP)
        ref = [r for r in rows.values() if r["mlp"] and r["budget_frames"]
               == max(row["budget_frames"], LIFT_STEPS[quick] * LIFT_FRAMES)]  # fmt: skip
        row["vs_mlp"] = (row["clean_mpjpe_clip"]["mean"] / ref[0]["clean_mpjpe_clip"]["mean"]
                         if ref else None)  # fmt: skip
    return rows


def lift_markdown(rows: dict, seeds: list[int]) -> str:
    cols = (("clean_mpjpe_clip", "clean"), ("clean_pa_mpjpe_clip", "clean PA"),
            ("occ20_mpjpe_clip", "occ20"), ("occ20_growth_pct", "occ20 growth %"),
            ("miss10_mpjpe_clip", "miss10"), ("coco_mpjpe_clip", "coco"),
            ("mediapipe_mpjpe_clip", "mediapipe"), ("clean_accel_clip", "accel clean"),
            ("occ20_accel_clip", "accel occ20"))  # fmt: skip
    lines = [
        f"Held-out clips x 4 fixed cameras, MPJPE per clip in mm (acceleration error in "
        f"mm/frame²), mean ± std over seeds {seeds}; budget in 2D-3D training frames; "
        "vs MLP: clean MPJPE over the MLP row of the same budget.",
        "",
        "| row | budget | " + " | ".join(c for _, c in cols) + " | vs MLP |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for row in rows.values():
        cells = [f"{row[k]['mean']:.1f} ± {row[k]['std']:.1f}" for k, _ in cols]
        budget = f"{row['budget_frames']:,}" if row["budget_frames"] else "–"
        lines.append(f"| {row['label']} | {budget} | " + " | ".join(cells)
                     + (f" | {row['vs_mlp']:.2f}x |" if row["vs_mlp"] else " | – |"))  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to train")
    p.add_argument("--jobs", type=int, default=2, help="seeds trained at once (1 thread each)")
    p.add_argument(
        "--table",
        choices=("paper", "lift"),
        default="paper",
        help="the paper's Table V (default) or lift's lifters (issue #21)",
    )
    p.add_argument("--quick", action="store_true", help="the CI-sized settings")
    p.add_argument("--work-dir", default="bench-lifting-runs", help="checkpoints per seed")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default benchmarks/results/bench_lifting[_quick].json); "
                   "the PNG and the markdown table are written next to it")  # fmt: skip
    p.add_argument("--cache-dir", default=None,
                   help="rendered-data cache (default: $UNIHPR_CACHE or ~/.cache/unihpr)")  # fmt: skip
    args = p.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if args.table == "lift":
        t0 = time.perf_counter()
        rows = lift_table(args.seeds, work / "lift", args.jobs, args.quick)
        name = "bench_lifting_lift_quick.json" if args.quick else "bench_lifting_lift.json"
        out = args.out or RESULTS / name
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"seeds": args.seeds, "quick": args.quick, "rows": rows,
                   "frames_per_step": LIFT_FRAMES, "steps_per_budget": LIFT_STEPS[args.quick],
                   "seconds_this_invocation": time.perf_counter() - t0}  # fmt: skip
        out.write_text(json.dumps(payload, indent=1) + "\n")
        md = lift_markdown(rows, args.seeds)
        out.with_suffix(".md").write_text(md)
        print(md)
        return 0
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
