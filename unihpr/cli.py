"""The ``unihpr`` console script."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``unihpr`` command."""
    parser = argparse.ArgumentParser(prog="unihpr", description="unihpr command line")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_subparsers(dest="command")
    args = parser.parse_args(argv)
    if args.version:
        from unihpr import __version__

        print(__version__)
        return 0
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
