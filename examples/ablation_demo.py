"""The rows of the paper's Table V on the bundled mocap data, plus an MLP lifter.

    python examples/ablation_demo.py [--quick] [--output-dir unihpr-ablation]

Rows (unihpr-tiny, same data split, same fine-tuning in every row):
no alignment (fine-tuning only); L_pair only in steps 1-2; L_pair + L_triplet;
+ representation token (R). Rows 1-3 decode without the representation token,
as in the paper. The reference row is a SimpleBaseline MLP lifter (Martinez et
al. 2017) trained on the same training clips for as many samples as the
UniHPR fine-tuning plus step 1. Columns: ground-truth-2D lifting and image ->
3D MPJPE / PA-MPJPE on the held-out clips (mm). Writes ablation.md / .json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from unihpr.evaluation import evaluate
from unihpr.models import create_model
from unihpr.train import LossConfig, StageConfig, Trainer, seed_everything, train_pipeline
from unihpr.train.baselines import LifterStage, SimpleBaselineLifter
from unihpr.train.demo import FULL, QUICK, DemoSettings, demo_config, load_demo_data
from unihpr.train.distributed import DistInfo

ROWS = [
    ("baseline (no alignment)", False, False, False),
    ("L_pair", True, False, False),
    ("L_pair + L_triplet", True, True, False),
    ("L_pair + L_triplet + R", True, True, True),
]


def _unihpr_row(settings, out, seed, align, triplet, token, train, test):
    cfg = demo_config(settings, out, seed=seed, use_triplet=triplet, progress=False,
                      model_overrides={"use_representation_token": token})  # fmt: skip
    cfg.stage("finetune").loss.use_triplet = True  # identical fine-tuning in every row
    if not align:
        cfg.stages = [cfg.stage("finetune")]
    seed_everything(seed)
    model = create_model(cfg.model, **cfg.model_overrides)
    train_pipeline(cfg, train, model=model, dist_info=DistInfo(), save_model=False)
    return evaluate(model, test, max_samples=settings.eval_samples)


def _lifter_row(settings, out, seed, train, test):
    steps = settings.steps[0] + settings.steps[2]
    cfg = StageConfig(name="finetune", steps=steps, batch_size=64, lr=1e-3,
                      loss=LossConfig(tau_init=0.2, tau_min=0.2), checkpoint_every=steps,
                      log_every=10)  # fmt: skip
    seed_everything(seed)
    lifter = SimpleBaselineLifter(train[0]["pose3d"].shape[0])
    Trainer(LifterStage(lifter, cfg), train, cfg, output_dir=out, seed=seed, amp="off",
            dist_info=DistInfo(), progress=False).fit()  # fmt: skip
    lifter.eval()
    n = min(len(test), settings.eval_samples or len(test))
    batch = torch.utils.data.default_collate([test[i] for i in range(n)])
    from unihpr.metrics import mpjpe, pa_mpjpe

    with torch.no_grad():
        pred = lifter(batch["pose2d"], batch["bbox"])
    return {"lifting/mpjpe": 1000 * float(mpjpe(pred, batch["pose3d"])),
            "lifting/pa_mpjpe": 1000 * float(pa_mpjpe(pred, batch["pose3d"]))}  # fmt: skip


def _fmt(v):
    return "-" if v is None else f"{v:.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI-sized settings of unihpr demo")
    p.add_argument("--output-dir", type=Path, default=Path("unihpr-ablation"),
                   help="output folder; runs already there are resumed")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every run")
    p.add_argument("--cache-dir", default=None,
                   help="cache of the rendered dataset (default: $UNIHPR_CACHE or ~/.cache/unihpr)")  # fmt: skip
    p.add_argument("--steps", type=int, nargs=3, metavar=("S1", "S2", "S3"),
                   help="override the steps of (step 1, step 2, fine-tuning)")  # fmt: skip
    p.add_argument("--batch-sizes", type=int, nargs=3, metavar=("B1", "B2", "B3"),
                   help="override the batch sizes of the three stages")  # fmt: skip
    args = p.parse_args(argv)
    settings: DemoSettings = copy.deepcopy(QUICK if args.quick else FULL)
    if args.steps:
        settings.steps = tuple(args.steps)
    if args.batch_sizes:
        settings.batch_sizes = tuple(args.batch_sizes)
    t0 = time.perf_counter()
    train, test = load_demo_data(settings, args.cache_dir, progress=False)
    table = {}
    for i, (name, align, triplet, token) in enumerate(ROWS):
        table[name] = _unihpr_row(settings, args.output_dir / f"row{i}", args.seed, align,
                                  triplet, token, train, test)  # fmt: skip
    table["SimpleBaseline MLP lifter"] = _lifter_row(settings, args.output_dir / "mlp", args.seed,
                                                     train, test)  # fmt: skip
    lines = ["| row | GT-2D MPJPE | GT-2D PA-MPJPE | Image MPJPE | Image PA-MPJPE |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, r in table.items():
        lines.append(f"| {name} | {_fmt(r.get('lifting/mpjpe'))} | {_fmt(r.get('lifting/pa_mpjpe'))}"
                     f" | {_fmt(r.get('image/mpjpe'))} | {_fmt(r.get('image/pa_mpjpe'))} |")  # fmt: skip
    md = "\n".join(lines) + (
        f"\n\nwall time {time.perf_counter() - t0:.0f} s, steps {settings.steps}, "
        f"batch sizes {settings.batch_sizes}\n"
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "ablation.md").write_text(md)
    (args.output_dir / "ablation.json").write_text(json.dumps(table, indent=2) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
