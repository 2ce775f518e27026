"""``psanet-lite eval --checkpoint CKPT``: mIoU, mAcc, aAcc and per-class
scores on a dataset split, as mmsegmentation computes them.

The checkpoint is a psanet-lite file (it carries its config) or an
mmsegmentation file (then name its preset with --config).

    psanet-lite eval --checkpoint runs/context/final.pt
    psanet-lite eval --checkpoint psanet_r50-d8_512x1024_40k_cityscapes_20200606_103117-99fac37c.pth \\
        --config psanet_r50-d8_512x1024_40k_cityscapes --data-root data/cityscapes --ms-flip
"""
import argparse
import json
import math
from pathlib import Path

from psanet_lite.cli.common import add_model_arguments, check_outputs, load_model
from psanet_lite.engine.options import default


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a dataset split",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--data-root", help="dataset folder (not needed for 'context')")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--ms-flip", action="store_true",
                        help="multi-scale (the preset's ratios) + flip test-time augmentation")
    parser.add_argument("--workers", type=int, default=default("workers"), help="data-loading processes")
    parser.add_argument("--out", help="also write the metrics as JSON to this file (checked before the work)")
    parser.set_defaults(func=run)


def format_metrics(metrics: dict, classes) -> str:
    """A per-class table plus the summary line, in percent (NaN shown as '-').

    Example:
        >>> print(format_metrics({"IoU": [0.5], "Acc": [float("nan")], "aAcc": 1.0, "mIoU": 0.5, "mAcc": 1.0}, ["a"]))
        class     IoU    Acc
        a       50.00      -
        aAcc 100.00  mIoU 50.00  mAcc 100.00
    """
    width = max(len("class"), *(len(c) for c in classes))
    lines = [f"{'class':<{width}} {'IoU':>7} {'Acc':>6}"]
    lines += [f"{name:<{width}} {_percent(iou):>7} {_percent(acc):>6}"
              for name, iou, acc in zip(classes, metrics["IoU"], metrics["Acc"])]
    lines.append(f"aAcc {_percent(metrics['aAcc'])}  mIoU {_percent(metrics['mIoU'])}  "
                 f"mAcc {_percent(metrics['mAcc'])}")
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def run(args) -> int:
    from psanet_lite.data import build_dataset
    from psanet_lite.engine.distributed import init_distributed, shutdown_distributed
    from psanet_lite.engine.evaluator import evaluate
    from psanet_lite.engine.run_log import json_safe

    if args.out:
        inputs = [args.checkpoint] + ([args.data_root] if args.data_root else [])
        check_outputs([(args.out, "the metrics")], inputs)
    place = init_distributed(args.device)
    try:
        model = load_model(args, place.device)
        dataset = build_dataset(model.config.data, args.split, args.data_root)
        metrics = evaluate(model, dataset, model.config, place.device, ms_flip=args.ms_flip,
                           rank=place.rank, world_size=place.world_size, workers=args.workers,
                           progress=place.is_main)
    finally:
        shutdown_distributed()
    if place.is_main:
        print(format_metrics(metrics, dataset.classes))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            record = {"checkpoint": str(args.checkpoint), "config": model.config.name, "split": args.split,
                      "ms_flip": args.ms_flip, "classes": list(dataset.classes), **metrics}
            Path(args.out).write_text(json.dumps(json_safe(record), indent=1))
    return 0
