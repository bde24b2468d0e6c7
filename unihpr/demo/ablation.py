"""The paper's Table V (alignment ablation) on the demo's data, for one seed.

[`run_ablation`][] trains every row with the demo's recipe and step counts
and scores all of them with one protocol
([`pose_errors`][unihpr.evaluation.pose_errors]) on the held-out clips:

* ``mean_pose``: the mean training pose (the floor to beat);
* ``mlp``: the SimpleBaseline MLP lifter on the same 2D–3D pair data and
  augmentation as UniHPR's pose stages, as many pairs as UniHPR's step 1 +
  fine-tuning (see [`lifter_config`][unihpr.demo.run.lifter_config]);
* ``no_align``: UniHPR fine-tuning only, no contrastive term anywhere;
* ``pair``: steps 1 and 2 and fine-tuning with the pairwise InfoNCE only;
* ``triplet``: step 2 and fine-tuning add L_triplet;
* ``triplet_r``: the same with the decoders' representation token (the rows
  above decode without it, as in the paper).

Every UniHPR row fine-tunes for the same steps on the same data. The aligned
rows share step 1, and ``triplet_r`` shares step 2 with ``triplet`` (the
token exists only in the decoders, which steps 1 and 2 do not train).
``benchmarks/bench_lifting.py`` runs it over seeds;
``examples/ablation_demo.py`` runs one seed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from unihpr.demo.baselines import fit_lifter
from unihpr.demo.run import (
    DemoData,
    DemoSettings,
    baseline_errors,
    cosine_curve,
    demo_config,
    demo_datasets,
    lifter_config,
    result_keys,
)
from unihpr.evaluation import evaluate
from unihpr.models import create_model
from unihpr.train.distributed import DistInfo
from unihpr.train.logger import read_metrics
from unihpr.train.loop import seed_everything
from unihpr.train.pipeline import train_pipeline

#: (label, key) of the rows of [`run_ablation`][], in table order.
ABLATION_ROWS: tuple[tuple[str, str], ...] = (
    ("mean pose", "mean_pose"),
    ("SimpleBaseline MLP lifter", "mlp"),
    ("UniHPR, no alignment", "no_align"),
    ("UniHPR, L_pair", "pair"),
    ("UniHPR, L_pair + L_triplet", "triplet"),
    ("UniHPR, L_pair + L_triplet + R", "triplet_r"),
)

#: Error columns of the table (each also as ``..._sample``).
ABLATION_COLUMNS = ("lifting_mpjpe", "lifting_pa_mpjpe", "image_mpjpe", "image_pa_mpjpe")


def ablation_markdown(table: dict[str, dict[str, dict[str, float]]], seeds: list[int]) -> str:
    """Table V: ``{row key: {column: {"mean", "std"}}}`` -> Markdown, per clip (per sample)."""
    lines = [
        f"Held-out clips, mm, mean ± std over seeds {list(seeds)}; each cell: per clip "
        "(per sample).",
        "",
        "| row | 2D→3D MPJPE | 2D→3D PA-MPJPE | image→3D MPJPE | image→3D PA-MPJPE |",
        "|---|---|---|---|---|",
    ]
    for label, key in ABLATION_ROWS:
        cells = []
        for col in ABLATION_COLUMNS:
            c = table.get(key, {})
            if col in c and col + "_sample" in c:
                a, s = c[col], c[col + "_sample"]
                cells.append(f"{a['mean']:.1f} ± {a['std']:.1f} ({s['mean']:.1f} ± {s['std']:.1f})")
            else:
                cells.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_ablation(
    settings: DemoSettings, data: DemoData, output_dir: str | Path, *, seed: int = 0
) -> dict[str, Any]:
    """Train and score every row for one seed (resumes from ``output_dir``).

    Args:
        settings: Step counts and recipe (e.g. [`FULL`][unihpr.demo.run.FULL]).
        data: The demo's datasets ([`load_demo_data`][unihpr.demo.run.load_demo_data]).
        output_dir: Checkpoints of every run.
        seed: Seed of every row.

    Returns:
        ``{"rows": {key: {"lifting_mpjpe", "lifting_mpjpe_sample", "image_mpjpe", ...}},
        "curves": {"pair" | "triplet": {"step2" | "finetune": (steps, mean cosines)}}}``
        (errors in mm).
    """
    root = Path(output_dir)
    datasets = demo_datasets(data)
    lifter = fit_lifter(data.poses, lifter_config(settings), root / "mlp", seed=seed)
    mlp, mean_pose = baseline_errors(data, settings, lifter)
    rows: dict[str, dict[str, float]] = {
        "mean_pose": {f"{p}_{k}": v for p in ("lifting", "image") for k, v in mean_pose.items()},
        "mlp": {f"lifting_{k}": v for k, v in mlp.items()},
    }

    def run(name: str, model: torch.nn.Module, stages: tuple[str, ...], triplet: bool):
        cfg = demo_config(settings, root / name, seed=seed, use_triplet=triplet, progress=False)
        cfg.stages = [s for s in cfg.stages if s.name in stages]
        if name == "no_align":
            cfg.stage("finetune").contrastive_weight = 0.0
        train_pipeline(cfg, datasets, model=model, dist_info=DistInfo(), save_model=False)
        return model

    def score(model: torch.nn.Module) -> dict[str, float]:
        return result_keys(evaluate(model, data.test, max_samples=settings.eval_samples))

    def fresh(token: bool) -> torch.nn.Module:
        seed_everything(seed)
        return create_model("unihpr-tiny", use_representation_token=token)

    rows["no_align"] = score(run("no_align", fresh(False), ("finetune",), False))
    step1 = run("step1", fresh(False), ("align2d3d",), False)
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for name, triplet in (("pair", False), ("triplet", True)):
        aligned = run(f"{name}_step2", copy.deepcopy(step1), ("align_image",), triplet)
        if triplet:  # the same steps 1-2; decoders with the representation token
            with_token = fresh(True)
            missing = with_token.load_state_dict(aligned.state_dict(), strict=False).missing_keys
            if any("representation_tokens" not in k for k in missing):
                raise RuntimeError(f"unexpected missing keys {missing}")
            rows["triplet_r"] = score(run("triplet_r", with_token, ("finetune",), True))
        rows[name] = score(run(name, aligned, ("finetune",), triplet))
        curves[name] = {
            "step2": cosine_curve(read_metrics(root / f"{name}_step2" / "metrics.jsonl",
                                               "align_image")),
            "finetune": cosine_curve(read_metrics(root / name / "metrics.jsonl", "finetune")),
        }  # fmt: skip
    return {"rows": rows, "curves": curves}
