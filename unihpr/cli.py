"""The ``unihpr`` console script.

Subcommands:

* ``unihpr demo``: the paper's three stages on the bundled motion-capture clips;
* ``unihpr build-image-index``: the JSON-lines image index of extracted
  Human3.6M frames (also ``python -m unihpr.data.image_index``).

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


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    from unihpr.train.config import MAX_SEED

    p = sub.add_parser(
        "demo",
        help="train unihpr-tiny through the three stages on the bundled mocap data",
        description="Train unihpr-tiny (step 1, step 2 with and without L_triplet, "
        "fine-tuning) on the DeepMimic humanoid clips bundled with pybullet, evaluate on "
        "held-out clips, write results, plots and a save_pretrained folder.",
    )
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


def _add_image_index_parser(sub: argparse._SubParsersAction) -> None:
    from unihpr.data import image_index

    p = sub.add_parser(
        "build-image-index",
        help="write the JSON-lines image index of extracted Human3.6M frames",
        description="Write the image index that unihpr.data.ImageIndexDataset reads: one "
        "JSON line per frame with its image path, box, 2D and 3D pose (needs the "
        "VideoPose3D npz files and the frames extracted from the videos).",
    )
    image_index.add_arguments(p)
    p.set_defaults(run=image_index.run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``unihpr`` command."""
    parser = _Parser(prog="unihpr", description="unihpr command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_parser(sub)
    _add_image_index_parser(sub)
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
