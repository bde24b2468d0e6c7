"""Train UniHPR on Human3.6M with the paper's three stages and evaluate it.

Usage (single GPU, or ``torchrun --nproc_per_node N examples/train_h36m.py ...``)::

    python examples/train_h36m.py --data-root DIR [--with-3dhp] [--output-dir runs/h36m]

Files expected in ``DIR`` (VideoPose3D / P-STMO conventions, see
``unihpr.data``):

* ``data_3d_h36m.npz`` (required) and ``data_2d_h36m_cpn_ft_h36m_dbb.npz``
  (required with ``--keypoints cpn``, the default) or ``data_2d_h36m_gt.npz``;
* ``h36m_images.jsonl`` (optional): an image index written by
  ``unihpr build-image-index`` with image paths relative to ``DIR``;
  without it only the lifting branch is trained (no step 2, no image rows);
* ``data_train_3dhp.npz`` (only with ``--with-3dhp``): MPI-INF-3DHP training data;
* ``3dpw/`` (optional): 3DPW ``sequenceFiles/test`` pickles for the
  cross-dataset row (ground-truth 2D, PA-MPJPE).

Writes ``OUTPUT/results.json`` and ``OUTPUT/results.md`` with the rows of the
paper's Tables I-IV for this run (a ``-`` where the data for a column is
missing). Training resumes automatically when re-run with the same output dir.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KEYPOINT_FILES = {"cpn": "data_2d_h36m_cpn_ft_h36m_dbb.npz", "gt": "data_2d_h36m_gt.npz"}
IMAGE_INDEX = "h36m_images.jsonl"
DATA_3DHP = "data_train_3dhp.npz"
DIR_3DPW = "3dpw"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", type=Path, required=True, help="folder with the dataset files")
    p.add_argument("--output-dir", type=Path, default=Path("runs/h36m"),
                   help="checkpoints, model and results; a run there is resumed")  # fmt: skip
    p.add_argument("--model", default="unihpr-w32", help="unihpr-w32 | unihpr-w48 | unihpr-tiny")
    p.add_argument("--config", type=Path, help="TrainConfig JSON overriding the paper defaults")
    p.add_argument("--keypoints", choices=sorted(KEYPOINT_FILES), default="cpn",
                   help="2D keypoints for lifting (paper: cpn)")  # fmt: skip
    p.add_argument("--image-index", type=Path, help=f"image index (default DIR/{IMAGE_INDEX})")
    p.add_argument("--with-3dhp", action="store_true", help=f"also train on DIR/{DATA_3DHP}")
    p.add_argument("--steps", type=int, nargs=3, metavar=("S1", "S2", "S3"),
                   help="steps of the three stages (the paper does not state them)")  # fmt: skip
    p.add_argument("--batch-size", type=int, nargs=3, metavar=("B1", "B2", "B3"),
                   help="per-process batch sizes (paper: 2048 180 180)")  # fmt: skip
    from unihpr.losses.samplers import SAMPLERS
    from unihpr.losses.triplet import NEGATIVE_MODES
    from unihpr.ops.backend import BACKENDS

    loss = p.add_argument_group("contrastive loss (every stage; see unihpr.train.LossConfig)")
    loss.add_argument("--negatives", choices=NEGATIVE_MODES,
                      help="triplet negatives: sampled (paper) or all 3B^2-3B+1 (exact)")  # fmt: skip
    loss.add_argument("--backend", choices=BACKENDS,
                      help="loss kernels: triton (exact mode, CUDA), compile (sampled mode)")  # fmt: skip
    loss.add_argument("--sampler", choices=sorted(SAMPLERS),
                      help="negative sampler of the sampled mode (paper: uniform)")  # fmt: skip
    loss.add_argument("--num-negatives", type=int, help="sampled negatives per anchor (B-1)")
    loss.add_argument("--chunk-size", type=int, help="rows per block of the exact PyTorch path")
    p.add_argument("--train-stride", type=int, default=1, help="use every k-th training frame")
    p.add_argument("--real-cameras-step1", action="store_true",
                   help="step 1 on the 4 real cameras' 2D (default: the training subjects' "
                   "world-frame 3D seen through fresh virtual cameras, mirrored half the time)")  # fmt: skip
    p.add_argument("--eval-stride", type=int, default=1, help="use every k-th test frame")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when available), cpu, cuda or cuda:N")  # fmt: skip
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"],
                   help="mixed precision (auto: bf16, or fp16 on older GPUs; off on the CPU)")  # fmt: skip
    p.add_argument("--num-workers", type=int, default=4, help="DataLoader workers per process")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order")
    p.add_argument("--eval-only", action="store_true", help="evaluate OUTPUT/model only")
    p.add_argument("--force", action="store_true",
                   help="start over instead of resuming the run in --output-dir (a run with "
                   "other settings is never resumed)")  # fmt: skip
    return p


def expected_files(args: argparse.Namespace) -> list[tuple[Path, str, bool]]:
    """(path, description, required) of every file this run would read."""
    root = args.data_root
    return [
        (root / "data_3d_h36m.npz", "Human3.6M 3D poses (VideoPose3D format)", True),
        (root / KEYPOINT_FILES[args.keypoints], f"Human3.6M 2D keypoints ({args.keypoints})", True),
        (args.image_index or root / IMAGE_INDEX, "image index (optional: image branch)", False),
        (root / DATA_3DHP, "MPI-INF-3DHP training npz (P-STMO)", args.with_3dhp),
        (root / DIR_3DPW, "3DPW sequenceFiles/test pickles (optional: cross-dataset row)", False),
    ]


def missing_data_message(args: argparse.Namespace) -> str | None:
    """A message listing the expected files when a required one is missing, else None."""
    files = expected_files(args)
    if all(path.exists() for path, _, required in files if required):
        return None
    lines = [f"Human3.6M data not found under {str(args.data_root)!r}. Expected:"]
    for path, what, required in files:
        state = "found" if path.exists() else ("MISSING" if required else "absent")
        lines.append(f"  [{state:7s}] {path}  - {what}")
    lines.append(
        "The npz files are those of VideoPose3D (github.com/facebookresearch/VideoPose3D, "
        "DATASETS.md); the image index is built with `unihpr build-image-index`."
    )
    return "\n".join(lines)


def make_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of this run: paper defaults, then ``--config``, then flags."""
    from unihpr.train import TrainConfig

    cfg = TrainConfig.load_json(args.config) if args.config else TrainConfig()
    cfg.model = args.model
    cfg.output_dir = str(args.output_dir)
    cfg.device, cfg.amp, cfg.num_workers, cfg.seed = (
        args.device, args.amp, args.num_workers, args.seed,
    )  # fmt: skip
    loss_flags = {
        key: getattr(args, key)
        for key in ("negatives", "backend", "sampler", "num_negatives", "chunk_size")
        if getattr(args, key, None) is not None
    }
    for i, stage in enumerate(cfg.stages):
        if args.steps:
            stage.steps = args.steps[i]
        if args.batch_size:
            stage.batch_size = args.batch_size[i]
        for key, value in loss_flags.items():
            setattr(stage.loss, key, value)
        stage.__post_init__()  # re-validate the overridden values
    return cfg


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def tables_markdown(results: dict[str, float | None]) -> str:
    """The rows of the paper's Tables I-IV for this run (mm / %)."""
    r = results.get
    return "\n".join([
        "Table I - image-based 3D HPE", "",
        "| Method | 3DPW PA-MPJPE | H36M MPJPE | H36M PA-MPJPE |", "|---|---|---|---|",
        f"| UniHPR (this run) | - | {_fmt(r('image/mpjpe'))} | {_fmt(r('image/pa_mpjpe'))} |", "",
        "Table II - lifting-based 3D HPE", "",
        "| Method | 3DPW PA-MPJPE | H36M MPJPE | H36M PA-MPJPE |", "|---|---|---|---|",
        f"| UniHPR (this run) | {_fmt(r('3dpw/lifting/pa_mpjpe'))} | "
        f"{_fmt(r('lifting/mpjpe'))} | {_fmt(r('lifting/pa_mpjpe'))} |", "",
        "Table III - pose retrieval (H36M test)", "",
        "| Retrieval | MPJPE | PA-MPJPE |", "|---|---|---|",
        f"| 2D-3D | {_fmt(r('retrieval/2d-3d/mpjpe'))} | {_fmt(r('retrieval/2d-3d/pa_mpjpe'))} |",
        f"| Image-3D | {_fmt(r('retrieval/image-3d/mpjpe'))} | "
        f"{_fmt(r('retrieval/image-3d/pa_mpjpe'))} |", "",
        "Table IV - image retrieval (H36M test, 1 fps)", "",
        "| Retrieval | Top-1 Acc. | Top-3 Acc. |", "|---|---|---|",
        f"| 3D-Image | {_fmt(r('retrieval/3d-image/top1'))} | {_fmt(r('retrieval/3d-image/top3'))} |",
        f"| 2D-Image | {_fmt(r('retrieval/2d-image/top1'))} | {_fmt(r('retrieval/2d-image/top3'))} |",
    ]) + "\n"  # fmt: skip


def virtual_camera_poses(path_3d: Path, subjects: Sequence[str], stride: int = 1) -> Any:
    """Step-1 data: the subjects' world-frame 3D (17 joints) through fresh virtual cameras.

    The cameras cover the Human3.6M rig's range and more (any azimuth, -5..30 degrees
    elevation, 4-7 m, f 1100-1200 px on a 1000-px sensor, z up); half the poses are
    mirrored. Step 1 then sees a new view of every pose in every epoch instead of four.
    """
    import numpy as np

    from unihpr.data import (
        H36M17,
        CameraDistribution,
        PoseAugmentation,
        VirtualCameraDataset,
        load_h36m_3d,
    )
    from unihpr.data.skeletons import H36M32_TO_H36M17

    positions = load_h36m_3d(path_3d)
    motion, clips, frames = [], [], []
    for subject in subjects:
        for action, world in sorted(positions[subject].items()):  # S11's corrupt take is a test one
            keep = np.arange(0, len(world), stride)
            motion.append(world[keep][:, H36M32_TO_H36M17])
            clips += [f"{subject}/{action}"] * len(keep)
            frames += keep.tolist()
    cameras = CameraDistribution(elevation=(-5.0, 30.0), distance=(4.0, 7.0),
                                 focal=(1100.0, 1200.0), up_axis="z")  # fmt: skip
    return VirtualCameraDataset(np.concatenate(motion), H36M17, cameras=cameras,
                                augment=PoseAugmentation(mirror=0.5), clips=clips,
                                frames=frames)  # fmt: skip


def _subset_by_subject(dataset: Any, subjects: Sequence[str]) -> Any:
    import torch

    keep = [i for i, rec in enumerate(dataset.records) if rec["subject"] in set(subjects)]
    return torch.utils.data.Subset(dataset, keep)


def _strided(dataset: Any, stride: int) -> Any:
    import torch

    return (
        dataset if stride == 1 else torch.utils.data.Subset(dataset, range(0, len(dataset), stride))
    )


def run(args: argparse.Namespace) -> dict[str, float | None]:
    """Train (unless ``--eval-only``) and evaluate; returns the results dict."""
    import torch

    from unihpr.data import (
        H36M_TEST_SUBJECTS,
        H36M_TRAIN_SUBJECTS,
        Human36M,
        ImageIndexDataset,
        MPIInf3DHP,
        ThreeDPW,
    )
    from unihpr.evaluation import evaluate
    from unihpr.modalities import MODALITIES
    from unihpr.models import UniHPR, get_config
    from unihpr.train import init_distributed, train_pipeline
    from unihpr.train.distributed import barrier

    cfg = make_config(args)
    info = init_distributed(cfg.device)
    root = args.data_root
    d3, d2 = root / "data_3d_h36m.npz", root / KEYPOINT_FILES[args.keypoints]
    index = args.image_index or root / IMAGE_INDEX
    image_size = get_config(cfg.model, **cfg.model_overrides).image_size
    lift_train = _strided(Human36M(d3, d2, "train"), args.train_stride)
    if args.with_3dhp:
        lift_train = torch.utils.data.ConcatDataset([lift_train, MPIInf3DHP(root / DATA_3DHP)])
    images = None
    if index.is_file():
        images = ImageIndexDataset(index, root, image_size=image_size)
    modalities = MODALITIES if images is not None else ("pose2d", "pose3d")
    if not args.eval_only:
        step1 = lift_train
        if not args.real_cameras_step1:
            step1 = virtual_camera_poses(d3, H36M_TRAIN_SUBJECTS, args.train_stride)
        datasets = {"align2d3d": step1, "finetune": lift_train}
        if images is not None:
            img_train = _strided(_subset_by_subject(images, H36M_TRAIN_SUBJECTS), args.train_stride)
            datasets.update(align_image=img_train, finetune=img_train)
        result = train_pipeline(
            cfg, datasets, modalities=modalities, dist_info=info, resume=not args.force
        )
        model = result.model
    else:
        model = UniHPR.from_pretrained(args.output_dir / "model").to(info.device)
    results: dict[str, float | None] = {}
    if info.is_main:
        test = _strided(Human36M(d3, d2, "test"), args.eval_stride)
        results.update(evaluate(model, test, modalities=("pose2d", "pose3d")))
        if images is not None:
            img_test = _strided(_subset_by_subject(images, H36M_TEST_SUBJECTS), args.eval_stride)
            img_res = evaluate(
                model, img_test, image_retrieval_stride=max(1, 50 // args.eval_stride)
            )
            results.update({k: v for k, v in img_res.items() if k.startswith(("image/", "retrieval/image", "retrieval/3d-image", "retrieval/2d-image"))})  # fmt: skip
        if (root / DIR_3DPW).is_dir():
            pw = evaluate(model, ThreeDPW(root / DIR_3DPW), modalities=("pose2d", "pose3d"))
            results["3dpw/lifting/pa_mpjpe"] = pw["lifting/pa_mpjpe"]
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.output_dir / "results.md").write_text(tables_markdown(results))
        print(tables_markdown(results))
    barrier()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    for name in ("train_stride", "eval_stride"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    message = missing_data_message(args)
    if message:
        print(message, file=sys.stderr)
        return 2
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
