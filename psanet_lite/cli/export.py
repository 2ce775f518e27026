"""``psanet-lite export NAME_OR_CHECKPOINT --format onnx --size HxW -o model.onnx``: the
model as an ONNX file of standard operators, checked in ONNX Runtime right after.

NAME_OR_CHECKPOINT is a preset name (random weights: for trying the export) or a
checkpoint file (a psanet-lite checkpoint, or an mmsegmentation one with --config).
Prints the ONNX Runtime-against-PyTorch errors of every output. Needs the `export`
extra: pip install 'psanet-lite[export]'.

    psanet-lite export runs/context/final.pt --size 128x128 --attention -o context.onnx
    psanet-lite export psanet_r50-d8_512x1024_40k_cityscapes --dynamic-batch -o r50.onnx
"""
import argparse
import sys
from pathlib import Path

from psanet_lite.cli.common import image_size

FORMATS = ("onnx",)


def register(subparsers) -> None:
    """Add the 'export' subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser("export", help="write the model as ONNX (standard operators), checked in ONNX Runtime",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="NAME_OR_CHECKPOINT", help="preset name or checkpoint file")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="output format (default: onnx)")
    parser.add_argument("--size", type=image_size, help="input size HxW (default: the preset's crop size)")
    parser.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="weights and tensors")
    parser.add_argument("--weights-float16", action="store_true",
                        help="store float32 weights as float16 (half the file; the graph computes in float32)")
    parser.add_argument("--attention", action="store_true",
                        help="also output the collect and distribute attention matrices")
    parser.add_argument("--config", help="preset name for an mmsegmentation checkpoint")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.set_defaults(func=run)


def _build(args):
    from psanet_lite.build import build_model
    from psanet_lite.configs import names

    if args.model in names():
        return build_model(args.model)
    if Path(args.model).is_file():
        return build_model(args.config, checkpoint=args.model)
    raise ValueError(f"NAME_OR_CHECKPOINT must be a preset name (psanet-lite info --list) or a checkpoint "
                     f"file, got {args.model!r}")


def _export(args):
    from psanet_lite.export.onnx_export import export_onnx, require_export_extra

    require_export_extra()  # before building a large model
    output = Path(args.output)
    if not output.parent.is_dir():
        raise ValueError(f"-o: the folder {str(output.parent)!r} does not exist")
    model = _build(args)
    size = args.size or tuple(model.config.data.crop_size)
    smallest = model.min_input_size
    if min(size) < smallest:
        raise ValueError(f"--size must be at least {smallest}x{smallest} for this model, got {size[0]}x{size[1]}")
    report = export_onnx(model, output, size, dynamic_batch=args.dynamic_batch, dtype=args.dtype,
                         attention=args.attention, weights_float16=args.weights_float16)
    print(f"{report.path}: {report.size_bytes / 2**20:.2f} MiB, {args.dtype}, input "
          f"{'N' if args.dynamic_batch else 1}x3x{size[0]}x{size[1]}; ONNX Runtime against PyTorch:")
    print(report.summary())


def run(args) -> int:
    from psanet_lite.export.onnx_export import ExportError

    try:
        _export(args)
    except (ExportError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"psanet-lite export: {message}", file=sys.stderr)
        return 2
    return 0
