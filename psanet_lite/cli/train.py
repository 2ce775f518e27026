"""``psanet-lite train PRESET --work-dir DIR``: train a preset, optionally changed.

Settings come from the preset (psanet_lite.configs) and may be changed with
``--set section.field=value`` (repeatable; a field name that exists in one
section only may drop the section: ``--set iterations=100``). Values are read
as Python literals (``--set data.crop_size=(64,64)``), else as strings.

A stopped run continues with the same command plus ``--resume`` (the preset and
``--set`` options must be the same: the checkpoint's config is compared).

    psanet-lite train psanet_lite_context --work-dir runs/context
    psanet-lite train psanet_lite_context --work-dir runs/context --resume   # after a stop
    torchrun --nproc_per_node 4 $(which psanet-lite) train psanet_r50-d8_512x1024_40k_cityscapes \\
        --work-dir runs/r50 --data-root data/cityscapes --amp bf16
"""
import argparse
import ast
import sys

from psanet_lite.configs import get_config
from psanet_lite.engine.trainer import AMP_DTYPES, TrainingInterrupted, TrainOptions, train


def parse_overrides(pairs) -> dict:
    """['train.iterations=100', 'crop_size=(64,64)'] -> {'train.iterations': 100, 'crop_size': (64, 64)}.

    Example:
        >>> parse_overrides(["iterations=100", "psa_type=collect"])
        {'iterations': 100, 'psa_type': 'collect'}
    """
    overrides = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE (e.g. train.iterations=100), got {pair!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[key.strip()] = value
    return overrides


def add_override_argument(parser) -> None:
    """The shared ``--set KEY=VALUE`` option."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a config field, e.g. --set train.iterations=100 (repeatable)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a preset", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", help="preset name (psanet-lite info lists them)")
    parser.add_argument("--work-dir", required=True, help="folder for checkpoints, logs and TensorBoard files")
    parser.add_argument("--data-root", help="dataset folder (not needed for the generated 'context' dataset)")
    add_override_argument(parser)
    parser.add_argument("--iterations", type=int, help="shortcut for --set train.iterations=N")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                        help="continue from CHECKPOINT, or from the latest one in --work-dir")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="none",
                        help="mixed precision: bf16, or fp16 with a gradient scaler")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes per training process")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms only (bitwise-repeatable GPU runs)")
    parser.add_argument("--log-interval", type=int, default=10, help="iterations between log records")
    parser.add_argument("--keep-checkpoints", type=int, default=3, help="training checkpoints to keep (0: all)")
    parser.add_argument("--no-eval", action="store_true", help="skip the periodic validation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    overrides = parse_overrides(args.overrides)
    if args.iterations is not None:
        overrides["train.iterations"] = args.iterations
    config = get_config(args.preset, **overrides)
    options = TrainOptions(
        data_root=args.data_root, resume=args.resume, device=args.device, amp=args.amp, seed=args.seed,
        workers=args.workers, deterministic=args.deterministic, log_interval=args.log_interval,
        keep_checkpoints=args.keep_checkpoints, evaluate=not args.no_eval, progress=not args.no_progress,
    )
    try:
        summary = train(config, args.work_dir, options)
    except TrainingInterrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return 130
    message = f"done: {summary['iterations']} iterations, weights in {args.work_dir}/final.pt"
    if "mIoU" in summary:
        message += f", val mIoU {100 * summary['mIoU']:.2f}"
    print(message)
    return 0
