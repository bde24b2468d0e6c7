"""The ``unihpr`` console script."""

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
    p.add_argument("--output-dir", default="unihpr-demo", help="output folder (resumable)")
    p.add_argument("--quick", action="store_true", help="CI-sized run (< 2 minutes on 2 cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="dataset cache (default ~/.cache/unihpr)")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unihpr`` command."""
    parser = argparse.ArgumentParser(prog="unihpr", description="unihpr command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("bench-losses", help="run the loss benchmark (benchmarks/bench_losses.py)")
    _add_demo_parser(sub)
    args, rest = parser.parse_known_args(argv)
    if args.version:
        from unihpr import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _run_demo(args)
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
