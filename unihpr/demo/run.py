"""``unihpr demo``: the paper's stages on the bundled real motion, with baselines.

Trains ``unihpr-tiny`` on the DeepMimic humanoid motion-capture clips bundled
with pybullet and scores it on held-out clips next to two reference rows
computed in the same run: a SimpleBaseline MLP lifter trained on the same
2D–3D pairs (same augmentation, as many pairs as UniHPR's pose path) and the
mean training pose. The recipe (measured in ``benchmarks/results/learn_log.md``):

* step 1 (2D–3D alignment) on fresh virtual cameras and augmented poses
  ([`VirtualCameraDataset`][unihpr.data.virtual_cameras.VirtualCameraDataset],
  [`PoseAugmentation`][unihpr.data.augment.PoseAugmentation]): the pose
  stages are not limited to the rendered views;
* step 2 (image alignment) on the rendered crops, with and without
  L_triplet from the same step-1 weights (for Fig. 4);
* fine-tuning on the rendered crops, each with a fresh virtual 2D–3D pair of
  a random training frame attached
  ([`WithPoses`][unihpr.data.virtual_cameras.WithPoses]), the losses balanced
  by their running means (``loss_balance="normalized"``);
* cosine learning-rate decay in every stage.

Writes to the output folder:

* ``results.json`` / ``results.md``: ``{"unihpr": {...}, "mlp_lifter": {...},
  "mean_pose": {...}}`` in mm, per clip (the Human3.6M protocol) and per
  sample (``..._sample``), see [`pose_errors`][unihpr.evaluation.pose_errors];
* ``fig4_cosine.png``: mean cross-modal cosine similarity during step 2 with
  and without L_triplet from the same step-1 weights (the paper's Fig. 4);
* ``skeletons.png``: held-out crops, their image -> 3D and 2D -> 3D
  predictions over the ground truth, clip, view and error;
* ``model/``: the evaluated model (``save_pretrained``), ``mlp_lifter/``;
* ``metrics.jsonl``, per-stage checkpoints and ``wall_time.json`` (a resumed
  run reports the wall time of all its sessions);
* ``demo_config.json``: the run's seed and settings. Running the demo again
  on the folder resumes the run; with another seed or settings it is refused
  (the differing fields are named) unless ``force=True`` starts over. One
  process at a time owns the folder (see
  [`lock_run_folder`][unihpr.train.runs.lock_run_folder]).

Needs the ``demo`` extra (pybullet, matplotlib).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unihpr._validate import check_int
from unihpr.demo.baselines import MeanPose, SimpleBaselineLifter, fit_lifter
from unihpr.evaluation import evaluate, pose_errors
from unihpr.train import (
    DistInfo,
    StageConfig,
    TrainConfig,
    Trainer,
    make_stage,
    paper_stage1,
    paper_stage2,
    paper_stage3,
    read_metrics,
    seed_everything,
    train_pipeline,
)
from unihpr.train.config import MAX_SEED, LossConfig
from unihpr.train.logger import MetricsLogger
from unihpr.train.runs import check_run_config, lock_run_folder


@dataclass
class DemoSettings:
    """Sizes and recipe of a demo run.

    Attributes:
        steps: Steps of (step 1, step 2, fine-tuning).
        batch_sizes: Batch sizes of the three stages.
        lr: Peak Adam learning rate (larger than the paper's 1e-4: the runs are short).
        lr_schedule: ``StageConfig.lr_schedule`` of every stage.
        loss_balance: ``StageConfig.loss_balance`` of fine-tuning.
        log_every: Logging interval (the Fig. 4 curves are sampled at it).
        stride: Use every ``stride``-th mocap frame.
        cameras_per_frame: Rendered views per frame (the image data).
        eval_samples: Held-out samples evaluated (``None``: all).
        augment: [`PoseAugmentation`][unihpr.data.augment.PoseAugmentation]
            fields for the pose-only data.
        side_colours: Render the left limbs blue and the right ones red (see
            [`build_humanoid_mocap`][unihpr.data.build_humanoid_mocap]).
        recombined: Extra rendered training frames with limbs recombined across
            frames (new poses for the image branch).
        image_flip: Probability of mirroring a training image (with its 2D and 3D).
        lifter_batch_size: Batch size of the MLP lifter; its step count gives it as
            many 2D–3D pairs as UniHPR's pose path sees (see [`lifter_config`][]).
    """

    # Sized to the 10-minute budget on 2 idle cores with one thread per process:
    # measured CPU time per step 0.095 s (step 1), 0.15 s (step 2, run twice) and
    # 0.26 s (fine-tuning), ~8 min in all; the MLP lifter trains meanwhile in a
    # second process (~5 min).
    steps: tuple[int, int, int] = (1200, 400, 900)
    batch_sizes: tuple[int, int, int] = (128, 48, 48)
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    loss_balance: str = "normalized"
    log_every: int = 10
    stride: int = 1
    cameras_per_frame: int = 2
    eval_samples: int | None = None
    augment: dict[str, float] = field(default_factory=lambda: {"mirror": 0.5})
    side_colours: bool = True
    recombined: int = 3462
    image_flip: float = 0.5
    lifter_batch_size: int = 64


FULL = DemoSettings()
"""The settings of ``unihpr demo``: about 8 minutes on 2 idle cores."""
QUICK = DemoSettings(steps=(40, 12, 16), batch_sizes=(64, 24, 24), log_every=2, stride=2,
                     cameras_per_frame=1, eval_samples=200, recombined=100)  # fmt: skip
"""The settings of ``unihpr demo --quick``: a smoke test of the whole pipeline."""


def demo_config(settings: DemoSettings, output_dir: str | Path, seed: int = 0,
                use_triplet: bool = True, progress: bool = True,
                model_overrides: dict[str, Any] | None = None) -> TrainConfig:  # fmt: skip
    """The TrainConfig of a demo run: the paper's stages and temperatures, the demo's
    sizes and recipe."""
    common = {"lr": settings.lr, "lr_schedule": settings.lr_schedule,
              "log_every": settings.log_every}  # fmt: skip
    stages = []
    for paper, steps, batch in zip((paper_stage1, paper_stage2, paper_stage3), settings.steps,
                                   settings.batch_sizes):  # fmt: skip
        stage = dataclasses.replace(paper(), steps=steps, batch_size=batch,
                                    checkpoint_every=max(steps // 2, 1), **common)  # fmt: skip
        stage.loss.use_triplet = use_triplet and stage.name != "align2d3d"
        stages.append(stage)
    stages[-1].loss_balance = settings.loss_balance
    return TrainConfig(
        model="unihpr-tiny", model_overrides=dict(model_overrides or {}), stages=stages,
        output_dir=str(output_dir), seed=seed, device="cpu", amp="off", progress=progress,
    )  # fmt: skip


def lifter_config(settings: DemoSettings) -> StageConfig:
    """Training of the MLP lifter: as many 2D–3D pairs as UniHPR's step 1 + fine-tuning.

    Fine-tuning sees two pairs per sample (the rendered view's and an attached
    virtual one, see [`demo_datasets`][]).
    """
    s1, _, s3 = settings.steps
    b1, _, b3 = settings.batch_sizes
    pairs = s1 * b1 + 2 * s3 * b3
    steps = max(pairs // settings.lifter_batch_size, 1)
    return StageConfig(name="finetune", steps=steps, batch_size=settings.lifter_batch_size,
                       lr=settings.lr, lr_schedule=settings.lr_schedule,
                       loss=LossConfig(tau_init=0.2, tau_min=0.2), log_every=settings.log_every,
                       checkpoint_every=max(steps // 2, 1))  # fmt: skip


@dataclass
class DemoData:
    """The demo's datasets.

    Attributes:
        train: Rendered training views (image, 2D, 3D), randomly mirrored.
        test: Rendered held-out views (clips disjoint from ``train``).
        poses: The training clips' motion through fresh virtual cameras
            (augmented), for the pose-only stages and the MLP lifter.
        rendered: The rendered training views without augmentation (the
            retrieval gallery and the mean pose).
    """

    train: Any
    test: Any
    poses: Any
    rendered: Any


def _pose_data(settings: DemoSettings) -> Any:
    from unihpr.data import HUMANOID15
    from unihpr.data.augment import PoseAugmentation
    from unihpr.data.mocap import load_humanoid_motion
    from unihpr.data.virtual_cameras import VirtualCameraDataset

    motion, clips, frames = load_humanoid_motion("train", stride=settings.stride)
    aug = PoseAugmentation(**settings.augment)
    return VirtualCameraDataset(motion, HUMANOID15, augment=aug if aug.active else None,
                                clips=clips, frames=frames)  # fmt: skip


def demo_datasets(data: DemoData) -> dict[str, Any]:
    """The dataset of each stage: pose pairs for step 1, rendered images for step 2, and
    rendered images with a fresh pose pair attached to each for fine-tuning."""
    from unihpr.data.virtual_cameras import WithPoses

    return {"align2d3d": data.poses, "align_image": data.train,
            "finetune": WithPoses(data.train, data.poses)}  # fmt: skip


def load_demo_data(settings: DemoSettings, cache_dir: str | Path | None = None,
                   progress: bool = True) -> DemoData:  # fmt: skip
    """Rendered train / held-out splits (built and cached on first use) and the pose data.

    The training images are mirrored at random (``image_flip``); the held-out
    split is never augmented.
    """
    from unihpr.data import HUMANOID15, HumanoidMocap, RandomFlip

    kw = {"stride": settings.stride, "cameras_per_frame": settings.cameras_per_frame,
          "image_size": 64, "progress": progress, "side_colours": settings.side_colours,
          "recombined": settings.recombined}  # fmt: skip
    rendered = HumanoidMocap("train", cache_dir, **kw)
    train = rendered
    if settings.image_flip:
        swap = (0, 2) if settings.side_colours else None  # keep blue = left after a mirror
        train = RandomFlip(rendered, HUMANOID15, p=settings.image_flip, swap_channels=swap)
    test = HumanoidMocap("test", cache_dir, **kw)
    return DemoData(train, test, _pose_data(settings), rendered)


def _train_lifter_job(settings: dict[str, Any], out_dir: str, seed: int) -> tuple[str, float]:
    """Train the MLP lifter (in a worker process, one thread).

    Returns:
        The weights file and the CPU seconds this call used.
    """
    t0 = time.process_time()
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    s = DemoSettings(**settings)
    lifter = fit_lifter(_pose_data(s), lifter_config(s), out_dir, seed=seed)
    path = Path(out_dir) / "model.safetensors"
    save_file({k: v.contiguous() for k, v in lifter.state_dict().items()}, str(path))
    return str(path), time.process_time() - t0


def _load_lifter(path: str, num_joints: int) -> nn.Module:
    from safetensors.torch import load_file

    lifter = SimpleBaselineLifter(num_joints)
    lifter.load_state_dict(load_file(path))
    return lifter.eval()


def cosine_curve(history: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """Steps and mean cross-modal positive cosine of logged rows (Fig. 4's y axis)."""
    steps, values = [], []
    for row in history:
        pairs = [float(v) for k, v in row.items() if k.startswith("cos/") and "-" in k]
        if len(pairs) == 3:
            steps.append(int(row["step"]))
            values.append(sum(pairs) / 3)
    return steps, values


def rolling_band(values: list[float], window: int = 9) -> tuple[list[float], list[float]]:
    """Mean ± one standard deviation of ``values`` over a centred sliding window.

    The spread of a single run's logged batch statistics: the batch-to-batch
    noise around the curve.
    """
    lo, hi = [], []
    half = window // 2
    for i in range(len(values)):
        w = torch.tensor(values[max(0, i - half) : i + half + 1], dtype=torch.float64)
        sd = float(w.std()) if len(w) > 1 else 0.0
        lo.append(values[i] - sd)
        hi.append(values[i] + sd)
    return lo, hi


class _WallClock:
    """Wall time of a run summed over its sessions (kept in ``wall_time.json``)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "wall_time.json"
        self.t0 = time.perf_counter()
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            # start the clock earlier by the time of the earlier sessions
            self.t0 -= float(json.loads(self.path.read_text())["seconds"])

    def save(self, sessions_done: bool = False) -> float:
        total = time.perf_counter() - self.t0
        self.path.write_text(json.dumps({"seconds": total, "finished": sessions_done}) + "\n")
        return total


def result_keys(metrics: dict[str, float]) -> dict[str, float]:
    """``lifting/mpjpe`` -> ``lifting_mpjpe``: [`evaluate`][unihpr.evaluation.evaluate]'s
    keys as the demo's results name them."""
    return {k.replace("/", "_").replace("-", ""): v for k, v in metrics.items()}


def baseline_errors(
    data: DemoData, settings: DemoSettings, lifter: nn.Module
) -> tuple[dict[str, float], dict[str, float]]:
    """[`pose_errors`][unihpr.evaluation.pose_errors] of the MLP lifter (2D -> 3D) and of
    the mean training pose on the evaluated held-out samples."""
    n = min(len(data.test), settings.eval_samples or len(data.test))
    batch = torch.utils.data.default_collate([data.test[i] for i in range(n)])
    with torch.no_grad():
        lifted = lifter(batch["pose2d"])
    mean = MeanPose(torch.from_numpy(data.rendered.arrays["pose3d"]))(n)
    actions = list(batch["action"])
    lifter_errors = pose_errors(lifted, batch["pose3d"], actions)
    return lifter_errors, pose_errors(mean, batch["pose3d"], actions)


RESULT_ROWS = (
    ("2D -> 3D MPJPE", "lifting_mpjpe"),
    ("2D -> 3D PA-MPJPE", "lifting_pa_mpjpe"),
    ("image -> 3D MPJPE", "image_mpjpe"),
    ("image -> 3D PA-MPJPE", "image_pa_mpjpe"),
    ("2D -> 3D retrieval MPJPE (gallery: training poses)", "retrieval_2d3d_mpjpe"),
)
"""(row label, results key) of the table of [`results_markdown`][], in order."""


def results_markdown(summary: dict[str, Any]) -> str:
    """The held-out table of a demo run: one column per model (UniHPR, the MLP lifter, the
    mean pose), one row per [`RESULT_ROWS`][] entry; "–" where a model has no such number."""
    u, m = summary["unihpr"], summary.get("mlp_lifter", {})
    # the mean pose is the same guess from a 2D pose as from an image
    z = {f"{src}_{k}": v for src in ("lifting", "image") for k, v in summary.get("mean_pose", {}).items()}  # fmt: skip
    columns = {"UniHPR": u, "MLP lifter": m, "mean pose": z}

    def cell(d: dict[str, float], key: str) -> str:
        if key not in d:
            return "–"
        sample = d.get(key + "_sample")
        return f"{d[key]:.1f}" if sample is None else f"{d[key]:.1f} / {sample:.1f}"

    def row(label: str, cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in [label, *cells]) + "|"

    lines = [row("held-out clips, mm (per clip / per sample)", list(columns)),
             "|---" * (len(columns) + 1) + "|"]  # fmt: skip
    lines += [row(label, [cell(c, key) for c in columns.values()]) for label, key in RESULT_ROWS]
    rest = [""] * (len(columns) - 1)
    pairs = ("cos_imagepose2d", "cos_imagepose3d", "cos_pose2dpose3d")
    if all(k in u for k in pairs):
        cos = f"{u['cos_mean']:.2f} ({', '.join(f'{u[k]:.2f}' for k in pairs)})"
        lines.append(row("mean cross-modal cosine (image-2D, image-3D, 2D-3D)", [cos] + ["–"] * len(rest)))  # fmt: skip
    if "seconds" in summary:
        cpu = summary.get("cpu_seconds_this_session")
        note = (f" (CPU this session: {cpu['main']:.0f} s + {cpu['mlp_lifter']:.0f} s for the "
                "MLP lifter's process)" if cpu else "")  # fmt: skip
        lines.append(row("wall time of the run (all sessions)", [f"{summary['seconds']:.0f} s{note}", *rest]))  # fmt: skip
    lines.append("")
    lines.append(
        "Lower is better: a model that learnt something that transfers to unseen motion is "
        "far below the mean pose, and UniHPR's lifting should match or beat the MLP lifter "
        "trained on the same pairs."
    )
    if "lifting_mpjpe" in m and "lifting_mpjpe" in z:
        ratio = u["lifting_mpjpe"] / m["lifting_mpjpe"]
        verdict = "better than" if ratio < 1 else "worse than"
        gain = 100 * (1 - u.get("image_mpjpe", z["image_mpjpe"]) / z["image_mpjpe"])
        side = "below" if gain >= 0 else "above"
        lines.append(
            f"Here UniHPR lifts at {ratio:.2f}x the MLP lifter's MPJPE ({verdict} it), and its "
            f"image -> 3D MPJPE is {abs(gain):.0f}% {side} the mean pose's."
        )
    return "\n".join(lines) + "\n"


def _examples(model: nn.Module, lifter: nn.Module, test: Any, count: int) -> list[dict]:
    """One held-out sample per clip (then more) with both predictions and their errors."""
    from unihpr.metrics import mpjpe

    by_clip: dict[str, list[int]] = {}
    for i in range(len(test)):
        by_clip.setdefault(str(test.arrays["clip"][i]), []).append(i)
    picks: list[int] = []
    while len(picks) < count and any(by_clip.values()):
        for idx in by_clip.values():
            if idx and len(picks) < count:
                picks.append(idx.pop(len(idx) // 2))
    batch = torch.utils.data.default_collate([test[i] for i in picks])
    with torch.no_grad():
        pred = {"image": model.estimate_3d(image=batch["image"]),
                "pose2d": model.estimate_3d(pose2d=batch["pose2d"])}  # fmt: skip
    out = []
    for k, i in enumerate(picks):
        err = {s: 1000 * float(mpjpe(p[k : k + 1], batch["pose3d"][k : k + 1]))
               for s, p in pred.items()}  # fmt: skip
        out.append({"image": batch["image"][k].numpy(), "pose2d": batch["pose2d"][k].numpy(),
                    "true3d": batch["pose3d"][k].numpy(),
                    "pred3d": {s: p[k].numpy() for s, p in pred.items()}, "error": err,
                    "clip": str(test.arrays["clip"][i]), "view": int(test.arrays["view"][i]),
                    "frame": int(test.arrays["frame"][i])})  # fmt: skip
    return out


def _fig4(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    from unihpr.demo.figures import Curve, plot_curves

    panel: dict[str, Curve] = {}
    for label, hist in runs.items():
        x, y = cosine_curve(hist)
        lo, hi = rolling_band(y)
        panel[label] = Curve(x, y, lo, hi)
    panels = {"step 2: image encoder aligned to the frozen pose encoders": panel}
    caption = (
        "Mean over the three modality pairs (image-2D, image-3D, 2D-3D) of the cosine "
        "similarity of matching embeddings in each logged training batch; the band is one "
        "standard deviation of that value over 9 neighbouring logged batches (batch-to-batch "
        "noise). Both runs start from the same step-1 weights. The paper's Fig. 4: with "
        "L_triplet the modalities align faster. Over seeds and in fine-tuning: "
        "benchmarks/bench_lifting.py."
    )
    return plot_curves(panels, path, caption=caption)


OUTPUTS = ("align2d3d", "align_image", "align_image_no_triplet", "finetune", "mlp_lifter",
           "model", "config.json", "demo_config.json", "metrics.jsonl", "wall_time.json",
           "results.json", "results.md", "fig4_cosine.png", "skeletons.png")  # fmt: skip
"""What the demo writes into its folder; ``force=True`` deletes exactly these."""


def run_demo(output_dir: str | Path = "unihpr-demo", *, quick: bool = False, seed: int = 0,
             cache_dir: str | Path | None = None, progress: bool = True, plots: bool = True,
             parallel: bool = True, force: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run the demo; returns the ``results.json`` content.

    Args:
        output_dir: Where everything is written. A run of the same seed and
            settings there is resumed.
        quick: The CI-sized run instead of the full one.
        seed: Seed of the run.
        cache_dir: Cache of the rendered dataset (default ``~/.cache/unihpr``).
        progress: Progress bars (on a TTY).
        plots: Write the PNG figures (needs matplotlib).
        parallel: Train the MLP lifter in a second process (one thread) while
            UniHPR trains, so that two cores are both used.
        force: Start over: delete the demo's [`OUTPUTS`][] in ``output_dir`` first.

    Raises:
        ValueError: ``output_dir`` is blank, or holds a demo run with another
            seed or settings (the differing fields are named) and ``force`` is off.
        BlockingIOError: Another process runs in ``output_dir``.
    """
    if not str(output_dir).strip():
        raise ValueError(f"output_dir must name a folder, got {str(output_dir)!r}")
    check_int("seed", seed, low=0, high=MAX_SEED)
    settings = QUICK if quick else FULL
    out = Path(output_dir)
    with lock_run_folder(out):
        if force:
            for path in (out / name for name in OUTPUTS):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        run_config = {"quick": quick, "seed": seed, "settings": asdict(settings)}
        check_run_config(out / "demo_config.json", run_config,
                         hint="start over with --force (force=True), which deletes the run")  # fmt: skip
        (out / "demo_config.json").write_text(json.dumps(run_config, indent=2) + "\n")
        return _run(out, settings, quick, seed, cache_dir, progress, plots, parallel)


def _run(out: Path, settings: DemoSettings, quick: bool, seed: int, cache_dir: str | Path | None,
         progress: bool, plots: bool, parallel: bool) -> dict[str, Any]:  # fmt: skip
    from unihpr.data import HUMANOID15
    from unihpr.models import create_model

    clock = _WallClock(out)
    cpu0 = time.process_time()
    data = load_demo_data(settings, cache_dir, progress)
    pool = None
    lifter_job: Future | None = None
    job_args = (asdict(settings), str(out / "mlp_lifter"), seed)
    if parallel:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        lifter_job = pool.submit(_train_lifter_job, *job_args)
    try:
        datasets = demo_datasets(data)
        config = demo_config(settings, out, seed=seed, progress=progress)
        seed_everything(seed)
        model = create_model(config.model)
        # Step 1 once; step 2 then runs twice from the same weights (with and without
        # L_triplet) for Fig. 4; the with-triplet run continues to fine-tuning, where
        # train_pipeline finds step 1 finished. (benchmarks/bench_lifting.py also
        # branches fine-tuning, over seeds.)
        _fit(model, config.stage("align2d3d"), datasets["align2d3d"], out / "align2d3d", config,
             logger=MetricsLogger(out))  # fmt: skip
        clock.save()
        cfg = copy.deepcopy(config.stage("align_image"))
        cfg.loss.use_triplet = False
        branch = out / "align_image_no_triplet"
        _fit(copy.deepcopy(model), cfg, datasets["align_image"], branch, config,
             label="align_image (no L_triplet, Fig. 4)")  # fmt: skip
        histories = {"L_pair only": read_metrics(branch / "metrics.jsonl", "align_image")}
        clock.save()
        result = train_pipeline(config, datasets, model=model, dist_info=DistInfo())
        histories["L_pair + L_triplet"] = read_metrics(out / "metrics.jsonl", "align_image")
        clock.save()
        # Retrieval queries are held-out samples; the gallery is the training
        # clips' 3D poses, so a query's own pose is never among the candidates.
        metrics = evaluate(
            model, data.test, max_samples=settings.eval_samples, gallery=data.rendered
        )
        job = lifter_job.result() if lifter_job is not None else _train_lifter_job(*job_args)
        weights, lifter_cpu = job
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    lifter = _load_lifter(weights, HUMANOID15.num_joints)
    mlp, mean_pose = baseline_errors(data, settings, lifter)
    summary: dict[str, Any] = {
        "unihpr": result_keys(metrics),
        "mlp_lifter": {f"lifting_{k}": v for k, v in mlp.items()},
        "mean_pose": mean_pose,
        "protocol": "held-out clips, root-relative camera-frame joints, all 15 joints; "
        "per clip = mean over clips of the per-clip mean (Human3.6M style); _sample = mean "
        "over samples",
        "quick": quick,
        "seed": seed,
        "settings": asdict(settings),
        "train_samples": len(data.train),
        "train_frames": len(data.poses),
        "test_samples": min(len(data.test), settings.eval_samples or len(data.test)),
        "lifter_pairs": lifter_config(settings).steps * settings.lifter_batch_size,
    }  # fmt: skip
    files = {"model": str(result.model_dir), "mlp_lifter": weights}
    if plots:
        files["fig4"] = str(_fig4(histories, out / "fig4_cosine.png"))
        from unihpr.demo.figures import plot_examples

        files["skeletons"] = str(plot_examples(
            _examples(model, lifter, data.test, 6), HUMANOID15, out / "skeletons.png",
            title=f"unihpr-tiny on held-out clips (seed {seed})",
        ))  # fmt: skip
    summary["files"] = files
    # CPU seconds of this session: with one thread per process they are what the
    # wall time would be on an idle machine (the wall time grows with other load)
    summary["cpu_seconds_this_session"] = {"main": time.process_time() - cpu0,
                                           "mlp_lifter": lifter_cpu}  # fmt: skip
    summary["seconds"] = clock.save(sessions_done=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "results.md").write_text(results_markdown(summary))
    return summary


def _fit(model: nn.Module, cfg: StageConfig, dataset: Any, out_dir: Path, config: TrainConfig,
         label: str | None = None, logger: MetricsLogger | None = None) -> None:  # fmt: skip
    """Train (or resume) one stage of ``model`` in ``out_dir`` outside the pipeline."""
    Trainer(make_stage(model, cfg), dataset, cfg, output_dir=out_dir, seed=config.seed,
            amp=config.amp, dist_info=DistInfo(), logger=logger, progress=config.progress,
            progress_label=label).fit()  # fmt: skip
