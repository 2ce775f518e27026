"""What every ``psanet-lite`` command shares: its model and override options,
loading the model, checking output paths before the work, and turning any
error a user can cause into one line.

Nothing heavy is imported here at module level: ``psanet-lite --help`` must
answer before torch loads (torch is imported when a command runs).

Errors: a command raises; ``run_command`` prints ``psanet-lite <command>:
<message>`` on one line and returns 2 for errors a user can cause (bad values,
files that are missing, unreadable or in the wrong place), 1 with a hint for
anything else, 130 for Ctrl-C. ``--debug`` re-raises, traceback and all.
"""
import argparse
import os
import sys
from pathlib import Path

from psanet_lite.engine.options import DEVICES

# What a user can cause: bad values and types, files missing, unreadable or in the way.
USER_ERRORS = (ValueError, TypeError, OSError)


class Parser(argparse.ArgumentParser):
    """argparse, answering a bad command line in one line (``psanet-lite train: ...``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def run_command(args) -> int:
    """Run ``args.func(args)``; errors become one line on stderr and an exit code.

    Example:
        >>> def fails(args):
        ...     raise FileNotFoundError("image x.png does not exist")
        >>> run_command(argparse.Namespace(func=fails, command="predict", debug=False))
        2
    """
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"psanet-lite {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        if isinstance(error, USER_ERRORS):
            print(f"psanet-lite {args.command}: {one_line(error)}", file=sys.stderr)
            return 2
        print(f"psanet-lite {args.command}: unexpected {type(error).__name__}: {one_line(error)} "
              "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


def one_line(error: BaseException) -> str:
    """The error's message with its lines joined (argparse-style one-liners).

    Example:
        >>> one_line(ValueError("checkpoint does not fit:\\n  2 missing key(s): a, b"))
        'checkpoint does not fit: 2 missing key(s): a, b'
    """
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def add_override_argument(parser) -> None:
    """The shared ``--set KEY=VALUE`` option."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config field, e.g. --set train.iterations=100 (repeatable)")


def add_device_argument(parser) -> None:
    """The shared ``--device`` option."""
    parser.add_argument("--device", choices=DEVICES, help="default: cuda when available")


def add_model_arguments(parser) -> None:
    """--checkpoint, --config, --set, --device and --trust-pickle: what every inference command needs."""
    parser.add_argument("--checkpoint", required=True, help="psanet-lite or mmsegmentation checkpoint")
    parser.add_argument("--config", help="preset name; needed for mmsegmentation checkpoints")
    add_override_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--trust-pickle", action="store_true",
                        help="unpickle any Python object in the checkpoint (can run code: trusted files only)")


def load_model(args, device):
    """The model (eval mode, on ``device``) from --checkpoint / --config / --set / --trust-pickle."""
    from psanet_lite.build import build_model
    from psanet_lite.configs import parse_overrides

    overrides = parse_overrides(args.overrides)
    if args.trust_pickle:
        print(f"warning: --trust-pickle: {args.checkpoint} is unpickled in full, which runs any code "
              "it holds; use it only for files from a source you trust", file=sys.stderr)
    model = build_model(args.config, checkpoint=args.checkpoint, trust_pickle=args.trust_pickle, **overrides)
    return model.to(device).eval()


def image_size(text: str) -> tuple[int, int]:
    """argparse type of ``--size HxW``: '512x1024' -> (512, 1024), positive sides only.

    Example:
        >>> image_size("128X96")
        (128, 96)
    """
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        height = width = 0
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected HxW with positive sides, e.g. 512x1024, got {text!r}")
    return height, width


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1].

    Example:
        >>> fraction("0.25")
        0.25
    """
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def check_outputs(outputs, inputs) -> None:
    """Refuse, before any work, outputs that would destroy a file.

    Args:
        outputs: (output path, what it is made from) pairs, e.g. (out/x.png, a/x.png).
        inputs: paths the command reads (images, the checkpoint).

    Raises ValueError when an output is one of the inputs, when two sources
    would be written to the same output, or when an output is a folder;
    NotADirectoryError when an output's folder is a file.

    Example:
        >>> check_outputs([("out/a.png", "x/a.png"), ("out/b.png", "x/b.png")], ["x/a.png", "x/b.png"])
        >>> check_outputs([("x/a.png", "x/a.png")], ["x/a.png"])
        Traceback (most recent call last):
        ...
        ValueError: x/a.png would be written over its own input; choose another --out-dir
    """
    inputs = {_identity(path): path for path in inputs}
    seen = {}
    for output, source in outputs:
        key = _identity(output)
        if key in inputs:
            raise ValueError(f"{output} would be written over its own input; choose another --out-dir"
                             if str(inputs[key]) == str(source) else
                             f"{output} would be written over the input {inputs[key]}; choose another --out-dir")
        if key in seen and str(seen[key]) != str(source):
            raise ValueError(f"{seen[key]} and {source} would both be written to {output}; "
                             "segment files of the same name in separate runs (another --out-dir)")
        seen[key] = source
        if Path(output).is_dir():
            raise ValueError(f"output {output} is a folder")
        check_folder(Path(output).parent)


def check_folder(folder) -> None:
    """Raise unless ``folder`` is, or can be made, a writable folder.

    Example:
        >>> check_folder("new/folder")  # need not exist yet
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise NotADirectoryError(f"output folder {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {folder}: {existing} is not writable")


def _identity(path) -> str:
    """The file a path names (links and '..' resolved), for comparing paths."""
    return os.path.normcase(os.path.realpath(path))
