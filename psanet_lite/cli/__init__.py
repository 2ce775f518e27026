"""The ``psanet-lite`` command line.

Each subcommand lives in its own module of this package, named in SUBCOMMANDS
(command -> module). A module exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to the function that runs it, and imports torch and
the library only inside that function, so that ``--help`` answers at once.
Adding a command is one line here. Shared options and error handling live in
psanet_lite.cli.common.
"""
import importlib
import sys

from psanet_lite.cli.common import Parser, run_command

SUBCOMMANDS = {
    "info": "psanet_lite.cli.info",
    "train": "psanet_lite.cli.train",
    "eval": "psanet_lite.cli.evaluate",
    "predict": "psanet_lite.cli.predict",
    "attention": "psanet_lite.cli.attention",
    "export": "psanet_lite.cli.export",
}


def build_parser() -> Parser:
    """The ``psanet-lite`` parser with every subcommand (and --debug on each)."""
    parser = Parser(prog="psanet-lite", description="PSANet: point-wise spatial attention for scene parsing.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return parser


def main(argv=None) -> int:
    """Run ``psanet-lite`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
