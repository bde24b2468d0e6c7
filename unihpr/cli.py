"""The ``unihpr`` console script.

Subcommands:

* ``unihpr demo``: the paper's three stages on the bundled motion-capture clips;
* ``unihpr build-image-index``: the JSON-lines image index of extracted
  Human3.6M frames (also ``python -m unihpr.data.image_index``).

``unihpr SUBCOMMAND --help`` describes every argument.
"""

from __future__ import annotations

import argparse
import sys


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train unihpr-tiny through the three stages on the bundled mocap data",
        description="Train unihpr-tiny (step 1, step 2 with and without L_triplet, "
        "fine-tuning) on the DeepMimic humanoid clips bundled with pybullet, evaluate on "
        "held-out clips, write results, plots and a save_pretrained folder.",
    )
    p.add_argument(
        "--output-dir", default="unihpr-demo",
        help="output folder; a run already there is resumed (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="CI-sized run (< 2 minutes on 2 cores)")
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed of initialisation, data order and negative sampling (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--cache-dir", default=None,
        help="cache of the rendered dataset (default: $UNIHPR_CACHE or ~/.cache/unihpr)",
    )  # fmt: skip
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib figures")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads per process (default 1: the MLP lifter trains in a second "
        "process, so two cores are used; 1 thread does not collapse when the machine is shared)",
    )  # fmt: skip
    p.add_argument("--serial", action="store_true",
                   help="train the MLP lifter after UniHPR in the same process")  # fmt: skip


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from unihpr.train.demo import results_markdown, run_demo

    if args.threads < 1:
        print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    summary = run_demo(
        args.output_dir, quick=args.quick, seed=args.seed, cache_dir=args.cache_dir,
        plots=not args.no_plots, parallel=not args.serial,
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
    parser = argparse.ArgumentParser(prog="unihpr", description="unihpr command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo_parser(sub)
    _add_image_index_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unihpr`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from unihpr import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        return _run_demo(args)
    if args.command is not None:
        return args.run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
