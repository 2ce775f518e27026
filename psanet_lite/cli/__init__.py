"""The ``psanet-lite`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it.
"""
import argparse
import sys

from psanet_lite.cli import attention, evaluate, export, info, predict, train

SUBCOMMANDS = (info, train, evaluate, predict, attention, export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psanet-lite",
        description="PSANet: point-wise spatial attention for scene parsing.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
