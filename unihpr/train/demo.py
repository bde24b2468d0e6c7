"""``unihpr demo``: the paper's three stages on the bundled real-motion dataset.

Trains ``unihpr-tiny`` on the DeepMimic humanoid motion-capture clips bundled
with pybullet (``unihpr.data.HumanoidMocap``: rendered 64x64 crops, 2D and 3D
joints; test clips are disjoint from training clips), evaluates on the
held-out clips and writes to the output folder:

* ``results.json`` / ``results.md``: lifting MPJPE / PA-MPJPE, image->3D MPJPE /
  PA-MPJPE, 2D->3D retrieval error (mm), mean cross-modal cosine similarity;
* ``fig4_cosine.png``: mean cross-modal cosine similarity during step 2 with
  and without L_triplet (the paper's Fig. 4), both runs starting from the same
  step-1 weights;
* ``skeletons.png``: predicted vs true 3D skeletons of test samples;
* ``model/``: the trained model, written by ``save_pretrained`` (Hub-ready);
* ``metrics.jsonl`` and per-stage checkpoints.

Needs the ``demo`` extra (pybullet, matplotlib).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unihpr._optional import require
from unihpr.evaluation import evaluate
from unihpr.train.config import LossConfig, StageConfig, TrainConfig
from unihpr.train.distributed import DistInfo
from unihpr.train.loop import Trainer, seed_everything
from unihpr.train.pipeline import train_pipeline
from unihpr.train.stages import make_stage


@dataclass
class DemoSettings:
    """Sizes of a demo run.

    Attributes:
        steps: Steps of (step 1, step 2, fine-tuning).
        batch_sizes: Batch sizes of the three stages.
        lr: Adam learning rate (larger than the paper's 1e-4: the runs are short).
        log_every: Logging interval (the Fig. 4 curves are sampled at it).
        stride: Use every ``stride``-th mocap frame when building the data.
        cameras_per_frame: Rendered views per frame.
        eval_samples: Held-out samples evaluated (``None``: all).
    """

    # Sized to about 5 minutes on 2 CPU cores (the budget is 10).
    steps: tuple[int, int, int] = (1500, 400, 1200)
    batch_sizes: tuple[int, int, int] = (128, 48, 48)
    lr: float = 1e-3
    log_every: int = 10
    stride: int = 1
    cameras_per_frame: int = 2
    eval_samples: int | None = None


FULL = DemoSettings()
QUICK = DemoSettings(steps=(40, 12, 16), batch_sizes=(64, 24, 24), log_every=2, stride=2,
                     cameras_per_frame=1, eval_samples=200)  # fmt: skip


def demo_config(settings: DemoSettings, output_dir: str | Path, seed: int = 0,
                use_triplet: bool = True, progress: bool = True,
                model_overrides: dict[str, Any] | None = None) -> TrainConfig:  # fmt: skip
    """The TrainConfig of a demo run: the paper's temperatures, demo sizes."""
    s1, s2, s3 = settings.steps
    b1, b2, b3 = settings.batch_sizes
    common = {"lr": settings.lr, "log_every": settings.log_every}
    stages = [
        StageConfig(name="align2d3d", steps=s1, batch_size=b1,
                    loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100),
                    checkpoint_every=max(s1 // 2, 1), **common),
        StageConfig(name="align_image", steps=s2, batch_size=b2,
                    loss=LossConfig(tau_init=1 / 5, tau_min=1 / 10, use_triplet=use_triplet),
                    checkpoint_every=max(s2 // 2, 1), **common),
        StageConfig(name="finetune", steps=s3, batch_size=b3,
                    loss=LossConfig(tau_init=1 / 5, tau_min=1 / 5, use_triplet=use_triplet),
                    checkpoint_every=max(s3 // 2, 1), **common),
    ]  # fmt: skip
    return TrainConfig(
        model="unihpr-tiny", model_overrides=dict(model_overrides or {}), stages=stages,
        output_dir=str(output_dir), seed=seed, device="cpu", amp="off", progress=progress,
    )  # fmt: skip


def load_demo_data(settings: DemoSettings, cache_dir: str | Path | None = None,
                   progress: bool = True) -> tuple[Any, Any]:  # fmt: skip
    """Train and held-out splits of the humanoid mocap dataset (built and cached on first use)."""
    from unihpr.data import HumanoidMocap

    kw = {"stride": settings.stride, "cameras_per_frame": settings.cameras_per_frame,
          "image_size": 64, "progress": progress}  # fmt: skip
    return HumanoidMocap("train", cache_dir, **kw), HumanoidMocap("test", cache_dir, **kw)


def cosine_curve(history: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """Steps and mean cross-modal positive cosine of logged rows (Fig. 4's y axis)."""
    keys = ("cos/image-pose2d", "cos/image-pose3d", "cos/pose2d-pose3d")
    steps, values = [], []
    for row in history:
        if all(k in row for k in keys):
            steps.append(int(row["step"]))
            values.append(sum(float(row[k]) for k in keys) / len(keys))
    return steps, values


def plot_cosine(curves: dict[str, tuple[list[int], list[float]]], path: Path) -> Path:
    """Fig. 4: mean cross-modal cosine similarity over training, one line per run."""
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel("iteration (step 2: image alignment)")
    ax.set_ylabel("mean cross-modal cosine similarity")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_skeletons(pred: torch.Tensor, true: torch.Tensor, bones: Any, path: Path,
                   title: str = "") -> Path:  # fmt: skip
    """Predicted (red) vs true (black) skeletons, (N, J, 3) metres, front (x-y) view."""
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = pred.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.8), squeeze=False)
    for i, ax in enumerate(axes[0]):
        for pose, colour in ((true[i], "k"), (pred[i], "tab:red")):
            for a, b in bones:
                # camera frame: y points down, so flip it for an upright figure
                ax.plot([pose[a, 0], pose[b, 0]], [-pose[a, 1], -pose[b, 1]], colour, lw=1.5)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _branch_without_triplet(model: nn.Module, config: TrainConfig, train_set: Any,
                            out_dir: Path) -> list[dict[str, Any]]:  # fmt: skip
    """Step 2 without L_triplet from the same step-1 weights (for the Fig. 4 curve)."""
    cfg = copy.deepcopy(config.stage("align_image"))
    cfg.loss.use_triplet = False
    stage = make_stage(model, cfg)
    trainer = Trainer(stage, train_set, cfg, output_dir=out_dir, seed=config.seed,
                      amp="off", dist_info=DistInfo(), progress=config.progress,
                      progress_label="align_image (no L_triplet, Fig. 4)")  # fmt: skip
    return trainer.fit().history


def results_markdown(results: dict[str, float], seconds: float | None = None) -> str:
    """The held-out results table of a demo run."""
    rows = [
        ("Lifting (2D -> 3D) MPJPE", "lifting/mpjpe", "mm"),
        ("Lifting (2D -> 3D) PA-MPJPE", "lifting/pa_mpjpe", "mm"),
        ("Image -> 3D MPJPE", "image/mpjpe", "mm"),
        ("Image -> 3D PA-MPJPE", "image/pa_mpjpe", "mm"),
        ("2D -> 3D retrieval MPJPE (gallery: training poses)", "retrieval/2d-3d/mpjpe", "mm"),
        ("2D -> 3D retrieval PA-MPJPE (gallery: training poses)", "retrieval/2d-3d/pa_mpjpe", "mm"),
        ("Image -> 3D retrieval MPJPE (gallery: training poses)", "retrieval/image-3d/mpjpe", "mm"),
        ("3D -> image retrieval top-1", "retrieval/3d-image/top1", "%"),
        ("Mean cross-modal cosine similarity", "cos/mean", ""),
        ("  image-2D", "cos/image-pose2d", ""),
        ("  image-3D", "cos/image-pose3d", ""),
        ("  2D-3D", "cos/pose2d-pose3d", ""),
    ]
    lines = ["| held-out metric | value |", "|---|---|"]
    for label, key, unit in rows:
        if key in results:
            v = results[key]
            lines.append(
                f"| {label} | {v:.3f} |" if unit == "" else f"| {label} | {v:.1f} {unit} |"
            )
    if seconds is not None:
        lines.append(f"| wall time | {seconds:.0f} s |")
    return "\n".join(lines) + "\n"


def run_demo(output_dir: str | Path = "unihpr-demo", *, quick: bool = False, seed: int = 0,
             cache_dir: str | Path | None = None, progress: bool = True,
             plots: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run the demo; returns ``{"results": ..., "seconds": ..., "files": ...}``.

    Args:
        output_dir: Where everything is written (an existing run there is resumed).
        quick: The CI-sized run (about a minute on 2 CPU cores) instead of the full one.
        seed: Seed of the run.
        cache_dir: Cache of the rendered dataset (default ``~/.cache/unihpr``).
        progress: Progress bars (on a TTY).
        plots: Write the PNG figures (needs matplotlib).
    """
    from unihpr.data import HUMANOID15
    from unihpr.models import create_model

    t0 = time.perf_counter()
    settings = QUICK if quick else FULL
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set = load_demo_data(settings, cache_dir, progress)
    config = demo_config(settings, out, seed=seed, progress=progress)
    seed_everything(seed)
    model = create_model(config.model)
    # Step 1 once; step 2 is then run twice from the same weights (with and
    # without L_triplet) for Fig. 4; the with-triplet run continues to fine-tuning.
    step1 = copy.deepcopy(config)
    step1.stages = [config.stage("align2d3d")]
    train_pipeline(step1, train_set, model=model, dist_info=DistInfo(), save_model=False)
    no_triplet_hist = _branch_without_triplet(
        copy.deepcopy(model), config, train_set, out / "align_image_no_triplet"
    )
    result = train_pipeline(config, train_set, model=model, dist_info=DistInfo())
    with_hist = result.stages["align_image"].history
    # Retrieval queries are held-out samples; the gallery is the training
    # clips' 3D poses, so a query's own pose is never among the candidates.
    results = evaluate(model, test_set, max_samples=settings.eval_samples, gallery=train_set)
    files = {"model": str(result.model_dir)}
    if plots:
        curves = {"L_pair + L_triplet": cosine_curve(with_hist),
                  "L_pair only": cosine_curve(no_triplet_hist)}  # fmt: skip
        files["fig4"] = str(plot_cosine(curves, out / "fig4_cosine.png"))
        idx = torch.linspace(0, min(len(test_set), settings.eval_samples or len(test_set)) - 1, 5)
        batch = torch.utils.data.default_collate([test_set[int(i)] for i in idx])
        with torch.no_grad():
            pred = model.estimate_3d(image=batch["image"])
        files["skeletons"] = str(plot_skeletons(
            pred, batch["pose3d"], HUMANOID15.bones, out / "skeletons.png",
            title="image -> 3D: predicted (red) vs true (black), held-out clips",
        ))  # fmt: skip
    seconds = time.perf_counter() - t0
    summary = {
        "results": results,
        "seconds": seconds,
        "quick": quick,
        "settings": asdict(settings),
        "train_samples": len(train_set),
        "test_samples": len(test_set),
        "fig4_final_cosine": {
            "with_triplet": cosine_curve(with_hist)[1][-1:],
            "without_triplet": cosine_curve(no_triplet_hist)[1][-1:],
        },
        "files": files,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "results.md").write_text(results_markdown(results, seconds))
    return summary
