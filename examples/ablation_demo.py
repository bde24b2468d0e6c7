"""The rows of the paper's Table V on the bundled mocap data, for one seed.

    python examples/ablation_demo.py [--quick] [--seed 0] [--output-dir unihpr-ablation]

Rows: mean pose, a SimpleBaseline MLP lifter (same pair data and number of
pairs), UniHPR without alignment, with L_pair, with L_pair + L_triplet, and
with the representation token; see `unihpr.demo.ablation`. Columns: 2D -> 3D
and image -> 3D MPJPE / PA-MPJPE on the held-out clips, per clip (per sample),
in mm. Writes ablation.md / ablation.json. For mean ± std over seeds and the
Fig. 4 curves run ``benchmarks/bench_lifting.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from unihpr.demo.ablation import ablation_markdown, run_ablation
from unihpr.demo.run import FULL, QUICK, DemoSettings, load_demo_data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI-sized settings of unihpr demo")
    p.add_argument("--output-dir", type=Path, default=Path("unihpr-ablation"),
                   help="where the runs, ablation.md and ablation.json go")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every row")
    p.add_argument("--cache-dir", default=None,
                   help="rendered-data cache (default: $UNIHPR_CACHE or ~/.cache/unihpr)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--steps", type=int, nargs=3, metavar=("S1", "S2", "S3"),
                   help="override the steps of (step 1, step 2, fine-tuning)")  # fmt: skip
    p.add_argument("--batch-sizes", type=int, nargs=3, metavar=("B1", "B2", "B3"),
                   help="override the batch sizes of the three stages")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings: DemoSettings = copy.deepcopy(QUICK if args.quick else FULL)
    if args.steps:
        settings.steps = tuple(args.steps)
    if args.batch_sizes:
        settings.batch_sizes = tuple(args.batch_sizes)
    t0 = time.perf_counter()
    data = load_demo_data(settings, args.cache_dir, progress=False)
    result = run_ablation(settings, data, args.output_dir, seed=args.seed)
    table = {key: {col: {"mean": v, "std": 0.0} for col, v in row.items()}
             for key, row in result["rows"].items()}  # fmt: skip
    md = ablation_markdown(table, [args.seed]) + (
        f"\nwall time {time.perf_counter() - t0:.0f} s, steps {tuple(settings.steps)}, "
        f"batch sizes {tuple(settings.batch_sizes)}\n"
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "ablation.md").write_text(md)
    (args.output_dir / "ablation.json").write_text(json.dumps(result["rows"], indent=2) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
