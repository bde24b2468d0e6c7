"""The paper's Table V and Fig. 4 on the bundled mocap clips, over seeds.

    python benchmarks/bench_lifting.py [--seeds 0 1 2] [--jobs 2] [--quick]

Rows (unihpr-tiny, the demo's recipe and step counts, `unihpr.train.demo.FULL`):

* mean training pose;
* SimpleBaseline MLP lifter: the same 2D–3D pair data and augmentation as
  UniHPR's pose stages, as many pairs as UniHPR's step 1 + fine-tuning;
* UniHPR without alignment: fine-tuning only, no contrastive term anywhere;
* L_pair: step 1, step 2 and fine-tuning with the pairwise InfoNCE only;
* L_pair + L_triplet: step 2 and fine-tuning add the singular-value term;
* + representation token (R): the same with the decoders' source token
  (rows above decode without it, as in the paper).

All rows of a seed share the seed; the aligned rows share step 1, and the
last two rows share step 2 (the token only exists in the decoders, which
steps 1 and 2 do not train). Columns: 2D -> 3D and image -> 3D MPJPE /
PA-MPJPE on the held-out clips, per clip and per sample
(`unihpr.train.evaluate.pose_errors`, the one protocol of the project).
Fig. 4: mean cross-modal cosine similarity of the training batches in step 2
and in fine-tuning, with and without L_triplet, mean ± std over seeds.

Each seed runs in its own process (one thread) and writes
``<out>/seed<k>.json``; finished seeds are reused, unfinished ones resume from
their checkpoints. Writes ``bench_lifting.json`` and ``bench_lifting.png``
(by default into ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
ROWS = (
    ("mean pose", "mean_pose"),
    ("SimpleBaseline MLP lifter", "mlp"),
    ("UniHPR, no alignment", "no_align"),
    ("UniHPR, L_pair", "pair"),
    ("UniHPR, L_pair + L_triplet", "triplet"),
    ("UniHPR, L_pair + L_triplet + R", "triplet_r"),
)
COLUMNS = ("lifting_mpjpe", "lifting_pa_mpjpe", "image_mpjpe", "image_pa_mpjpe")


def _history(path: Path, stage: str) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("stage") == stage]


def run_seed(seed: int, out: str, quick: bool, cache_dir: str | None) -> dict:
    """All rows of one seed (resumable); returns and writes ``seed<k>.json``."""
    from unihpr.data import HUMANOID15
    from unihpr.models import create_model
    from unihpr.train import evaluate, pose_errors, seed_everything, train_pipeline
    from unihpr.train.baselines import MeanPose, fit_lifter
    from unihpr.train.demo import (
        FULL,
        QUICK,
        cosine_curve,
        demo_config,
        lifter_config,
        load_demo_data,
    )
    from unihpr.train.distributed import DistInfo

    torch.set_num_threads(1)
    settings = QUICK if quick else FULL
    root = Path(out) / f"seed{seed}"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load_demo_data(settings, cache_dir, progress=False)
    datasets = {"align2d3d": data.poses, "align_image": data.train, "finetune": data.train}
    n = min(len(data.test), settings.eval_samples or len(data.test))
    batch = torch.utils.data.default_collate([data.test[i] for i in range(n)])
    actions = list(batch["action"])
    rows: dict[str, dict] = {}

    def lifting_row(pred):
        return {f"lifting_{k}": v for k, v in pose_errors(pred, batch["pose3d"], actions).items()}

    mean = MeanPose(torch.from_numpy(data.train.arrays["pose3d"]))(n)
    rows["mean_pose"] = lifting_row(mean)
    rows["mean_pose"].update(
        {f"image_{k}": v for k, v in pose_errors(mean, batch["pose3d"], actions).items()}
    )
    lifter = fit_lifter(data.poses, lifter_config(settings), root / "mlp", seed=seed)
    with torch.no_grad():
        rows["mlp"] = lifting_row(lifter(batch["pose2d"]))

    def run(name, model, stages, triplet):
        cfg = demo_config(settings, root / name, seed=seed, use_triplet=triplet, progress=False)
        cfg.stages = [s for s in cfg.stages if s.name in stages]
        if name == "no_align":
            cfg.stage("finetune").contrastive_weight = 0.0
        train_pipeline(cfg, datasets, model=model, dist_info=DistInfo(), save_model=False)
        return model

    def score(model):
        m = evaluate(model, data.test, max_samples=settings.eval_samples)
        return {k.replace("/", "_"): v for k, v in m.items()
                if k.startswith(("lifting/", "image/", "cos/"))}  # fmt: skip

    def fresh(token: bool):
        seed_everything(seed)
        return create_model("unihpr-tiny", use_representation_token=token)

    rows["no_align"] = score(run("no_align", fresh(False), ("finetune",), False))
    step1 = run("step1", fresh(False), ("align2d3d",), False)
    curves = {}
    for name, triplet in (("pair", False), ("triplet", True)):
        aligned = run(f"{name}_step2", copy.deepcopy(step1), ("align_image",), triplet)
        with_r = None
        if triplet:  # same steps 1-2, decoders with the representation token
            with_r = fresh(True)
            missing = with_r.load_state_dict(aligned.state_dict(), strict=False).missing_keys
            assert all("representation_tokens" in k for k in missing), missing
        rows[name] = score(run(name, aligned, ("finetune",), triplet))
        if with_r is not None:
            rows["triplet_r"] = score(run("triplet_r", with_r, ("finetune",), True))
        curves[name] = {
            "step2": cosine_curve(_history(root / f"{name}_step2" / "metrics.jsonl",
                                           "align_image")),
            "finetune": cosine_curve(_history(root / name / "metrics.jsonl", "finetune")),
        }  # fmt: skip
    result = {"seed": seed, "rows": rows, "curves": curves, "settings": asdict(settings),
              "test_samples": n, "joints": HUMANOID15.num_joints,
              "lifter_pairs": lifter_config(settings).steps * settings.lifter_batch_size,
              "seconds_this_session": time.perf_counter() - t0}  # fmt: skip
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


def markdown(agg: dict, seeds: list[int]) -> str:
    """Table V on the bundled clips: per clip (per sample), mean ± std over seeds."""
    lines = [
        f"Held-out clips, mm, mean ± std over seeds {seeds}; each cell: per clip (per sample).",
        "",
        "| row | 2D→3D MPJPE | 2D→3D PA-MPJPE | image→3D MPJPE | image→3D PA-MPJPE |",
        "|---|---|---|---|---|",
    ]
    for label, key in ROWS:
        cells = []
        for col in COLUMNS:
            c = agg["table"][key]
            if key == "mlp" and col.startswith("image"):
                cells.append("–")
            elif col in c:
                a, s = c[col], c[col + "_sample"]
                cells.append(f"{a['mean']:.1f} ± {a['std']:.1f} ({s['mean']:.1f} ± {s['std']:.1f})")
            else:
                cells.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(agg: dict, path: Path) -> Path:
    from unihpr.train.demo_figures import Curve, plot_curves

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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="seeds trained at once (1 thread each)")
    p.add_argument("--quick", action="store_true", help="the CI-sized demo settings")
    p.add_argument("--work-dir", default="bench-lifting-runs", help="checkpoints per seed")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default benchmarks/results/bench_lifting[_quick].json); "
                   "the PNG and the markdown table are written next to it")  # fmt: skip
    p.add_argument("--cache-dir", default=None)
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
    md = markdown(agg, args.seeds)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
