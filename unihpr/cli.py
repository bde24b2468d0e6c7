"""The ``unihpr`` console script.

Subcommands:

* ``unihpr demo``: the paper's three stages on the bundled motion-capture clips;
* ``unihpr lift KEYPOINTS --layout LAYOUT -o OUT.npz``: 2D keypoints in a file -> 3D poses;
* ``unihpr build-image-index``: the JSON-lines image index of extracted
  Human3.6M frames.

``unihpr SUBCOMMAND --help`` describes every argument. Every error (a bad
argument, a file that cannot be read or written, a run folder in use or
holding another run) ends the command with exit status 2 and one line on
stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Largest ``--threads`` accepted: far above any CPU's cores, far below what overflows.
MAX_THREADS = 1024


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _folder(text: str) -> Path:
    """An argument naming a folder that exists or can be created."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a folder, got {text!r}")
    path = Path(text)
    for part in (path, *path.parents):  # the nearest existing one must be a folder
        if part.exists():
            if not part.is_dir():
                raise argparse.ArgumentTypeError(f"{str(part)!r} is a file, not a folder")
            break
    return path


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            if low <= int(text) <= high:
                return int(text)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {text!r}")

    return parse


def _add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from unihpr.train.config import MAX_SEED

    p.add_argument(
        "--output-dir", type=_folder, default=Path("unihpr-demo"),
        help="output folder; a run of the same seed and settings there is resumed "
        "(default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="CI-sized run (< 2 minutes on 2 cores)")
    p.add_argument(
        "--seed", type=_int_in(0, MAX_SEED), default=0,
        help="seed of initialisation, data order and negative sampling (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--force", action="store_true",
        help="start over: delete the run in --output-dir (its checkpoints and results) first, "
        "instead of refusing a run with another seed or settings",
    )  # fmt: skip
    p.add_argument(
        "--cache-dir", type=_folder, default=None,
        help="cache of the rendered dataset (default: $UNIHPR_CACHE or ~/.cache/unihpr)",
    )  # fmt: skip
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument(
        "--threads", type=_int_in(1, MAX_THREADS), default=1,
        help="torch CPU threads per process (default 1: the MLP lifter trains in a second "
        "process, so two cores are used; 1 thread does not collapse when the machine is shared)",
    )  # fmt: skip
    p.add_argument("--serial", action="store_true",
                   help="train the MLP lifter after UniHPR in the same process")  # fmt: skip
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from unihpr.demo.run import results_markdown, run_demo

    torch.set_num_threads(args.threads)
    summary = run_demo(
        args.output_dir, quick=args.quick, seed=args.seed, cache_dir=args.cache_dir,
        plots=not args.no_plots, parallel=not args.serial, force=args.force,
    )  # fmt: skip
    print(results_markdown(summary))
    for name, path in summary["files"].items():
        print(f"{name}: {path}")
    return 0


def _add_image_index_arguments(p: argparse.ArgumentParser) -> None:
    from unihpr.data import image_index

    image_index.add_arguments(p)
    p.set_defaults(run=image_index.run)


def _add_lift_arguments(p: argparse.ArgumentParser) -> None:
    from unihpr.inference import DEFAULT_LIFT_MODEL, LIFT_LAYOUTS

    progress_min_frames = 20_000  # --progress auto: a bar from this many frames on

    p.add_argument("keypoints", help="input file: .npz, .json or .csv")
    p.add_argument("--layout", required=True, choices=LIFT_LAYOUTS, help="keypoint layout")
    p.add_argument(
        "-o", "--output", default=None,
        help="output .npz (pose3d, valid, joint_names) or .json (default: KEYPOINTS_3d.npz)",
    )  # fmt: skip
    p.add_argument("--model", default=DEFAULT_LIFT_MODEL, help="model name or folder")
    p.add_argument("--confidence-threshold", type=float, default=0.3,
                   help="keypoints with a lower confidence are masked (default: %(default)s)")  # fmt: skip
    p.add_argument("--min-visible", type=int, default=4,
                   help="fewest visible joints of a lifted frame (default: %(default)s)")  # fmt: skip
    p.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                   help="coordinates are normalised to [0, 1]: multiply x by W and y by H")  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cpu)")
    p.add_argument(
        "--progress", choices=("auto", "always", "never"), default="auto",
        help=f"progress bar on stderr; auto: from {progress_min_frames} frames on, "
        "on a terminal only",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        import numpy as np

        from unihpr._validate import check_real
        from unihpr.data.skeletons import HUMANOID15
        from unihpr.inference import lift
        from unihpr.keypoint_files import read_keypoints, write_poses

        src = Path(args.keypoints)
        out = Path(args.output or src.with_name(src.stem + "_3d.npz"))
        try:
            if out.suffix.lower() not in (".npz", ".json"):
                raise ValueError(f"{out}: the output must be a .npz or .json file")
            kp, conf = read_keypoints(src, args.layout)
            if args.image_size is not None:
                kp = kp * [check_real(n, v, low=0, low_open=True)
                           for n, v in zip(("--image-size W", "--image-size H"), args.image_size)]  # fmt: skip
            show = args.progress == "always" or (
                args.progress == "auto" and len(kp) >= progress_min_frames and sys.stderr.isatty()
            )
            pose3d, valid = lift(
                kp, args.layout, conf, args.model, return_valid=True, progress=show,
                confidence_threshold=args.confidence_threshold, min_visible=args.min_visible,
                device=args.device,
            )  # fmt: skip
            write_poses(out, pose3d, valid, HUMANOID15.joint_names)
        except (OSError, ValueError, TypeError) as err:
            print(f"unihpr lift: error: {err}", file=sys.stderr)
            return 2
        empty = int(np.isnan(pose3d).all(axis=(1, 2)).sum())
        print(f"wrote {out}: {len(pose3d)} frames, {int(valid.sum())} lifted, "
              f"{len(pose3d) - int(valid.sum()) - empty} filled from their neighbours, "
              f"{empty} without any pose")  # fmt: skip
        return 0

    p.set_defaults(run=run)


#: Subcommand name -> (function adding its arguments and ``run``, help line, description).
_SUBCOMMANDS = {
    "demo": (
        _add_demo_arguments,
        "train unihpr-tiny through the three stages on the bundled mocap data",
        "Train unihpr-tiny (step 1, step 2 with and without L_triplet, "
        "fine-tuning) on the DeepMimic humanoid clips bundled with pybullet, evaluate on "
        "held-out clips, write results, plots and a save_pretrained folder.",
    ),
    "build-image-index": (
        _add_image_index_arguments,
        "write the JSON-lines image index of extracted Human3.6M frames",
        "Write the image index that unihpr.data.ImageIndexDataset reads: one "
        "JSON line per frame with its image path, box, 2D and 3D pose (needs the "
        "VideoPose3D npz files and the frames extracted from the videos).",
    ),
    "lift": (
        _add_lift_arguments,
        "lift 2D keypoints in a file (npz, COCO-style JSON, CSV) to 3D poses",
        "Lift one person's 2D keypoints (one row per video frame) to "
        "root-relative 3D poses in metres (15 humanoid joints). Input formats: see "
        "unihpr.keypoint_files. Frames without enough visible joints are filled from their "
        "neighbours; the output's 'valid' says which frames were lifted.",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``unihpr`` command."""
    parser = _Parser(prog="unihpr", description="unihpr command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_arguments, summary, description) in _SUBCOMMANDS.items():
        add_arguments(sub.add_parser(name, help=summary, description=description))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unihpr`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from unihpr import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except (OSError, ValueError) as err:  # the user's files, folders and settings
        message = " ".join(str(err).split("\n"))
        print(f"unihpr {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
