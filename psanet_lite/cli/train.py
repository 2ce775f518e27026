"""``psanet-lite train PRESET --work-dir DIR``: train a preset, optionally changed.

Settings come from the preset (psanet_lite.configs) and may be changed with
``--set section.field=value`` (repeatable; a field name that exists in one
section only may drop the section: ``--set iterations=100``). Values are read
as Python literals (``--set data.crop_size=(64,64)``), else as strings; every
field is checked before training starts.

A stopped run continues with the same command plus ``--resume`` (the preset and
``--set`` options must be the same: the checkpoint's config is compared; a
larger ``--iterations`` extends a finished run). Ctrl-C prints that command.
Training stops at the first NaN or infinite loss and keeps its checkpoints.

    psanet-lite train psanet_lite_context --work-dir runs/context
    psanet-lite train psanet_lite_context --work-dir runs/context --resume   # after a stop
    torchrun --nproc_per_node 4 $(which psanet-lite) train psanet_r50-d8_512x1024_40k_cityscapes \\
        --work-dir runs/r50 --data-root data/cityscapes --amp bf16
"""
import argparse
import shlex
import sys

from psanet_lite.cli.common import add_device_argument, add_override_argument
from psanet_lite.engine.options import AMP_CHOICES, default


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a preset", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", help="preset name (psanet-lite info --list shows them)")
    parser.add_argument("--work-dir", required=True, help="folder for checkpoints, logs and TensorBoard files")
    parser.add_argument("--data-root", help="dataset folder (not needed for the generated 'context' dataset)")
    add_override_argument(parser)
    parser.add_argument("--iterations", type=int, help="shortcut for --set train.iterations=N")
    parser.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                        help="continue from CHECKPOINT, or from the newest readable one in --work-dir")
    add_device_argument(parser)
    parser.add_argument("--amp", choices=AMP_CHOICES, default=default("amp"),
                        help="mixed precision: bf16, or fp16 with a gradient scaler")
    parser.add_argument("--seed", type=int, default=default("seed"))
    parser.add_argument("--workers", type=int, default=default("workers"),
                        help="data-loading processes per training process")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic algorithms only (bitwise-repeatable GPU runs)")
    parser.add_argument("--log-interval", type=int, default=default("log_interval"),
                        help="iterations between log records")
    parser.add_argument("--keep-checkpoints", type=int, default=default("keep_checkpoints"),
                        help="training checkpoints to keep (0: all)")
    parser.add_argument("--no-eval", action="store_true", help="skip the periodic validation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from psanet_lite.configs import get_config, parse_overrides
    from psanet_lite.engine.options import TrainOptions

    overrides = parse_overrides(args.overrides)
    if args.iterations is not None:
        overrides["train.iterations"] = args.iterations
    config = get_config(args.preset, **overrides)
    options = TrainOptions(
        data_root=args.data_root, resume=args.resume, device=args.device, amp=args.amp, seed=args.seed,
        workers=args.workers, deterministic=args.deterministic, log_interval=args.log_interval,
        keep_checkpoints=args.keep_checkpoints, evaluate=not args.no_eval, progress=not args.no_progress,
    )
    from psanet_lite.engine.trainer import TrainingInterrupted, train

    try:
        summary = train(config, args.work_dir, options)
    except TrainingInterrupted as stop:
        print(f"\npsanet-lite train: {stop}. Continue with: {resume_command(args.argv, args.resume)}", file=sys.stderr)
        return 130
    message = f"done: {summary['iterations']} iterations, weights in {args.work_dir}/final.pt"
    if "mIoU" in summary:
        message += f", val mIoU {100 * summary['mIoU']:.2f}"
    print(message)
    return 0


def resume_command(argv, resume=None) -> str:
    """The user's own train command (``argv`` after ``psanet-lite``) with ``--resume``;
    a ``--resume PATH`` given before is dropped: the newest checkpoint is in the work dir now.

    Example:
        >>> resume_command(["train", "p", "--work-dir", "w", "--set", "lr=0.1", "--resume", "old.pt"], "old.pt")
        'psanet-lite train p --work-dir w --set lr=0.1 --resume'
    """
    kept, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token == "--resume":
            i += 2 if resume not in (None, "auto") and argv[i + 1:i + 2] == [resume] else 1
            continue
        if not token.startswith("--resume="):
            kept.append(token)
        i += 1
    return shlex.join(["psanet-lite", *kept, "--resume"])
