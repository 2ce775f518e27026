"""`psanet-lite info NAME`: what a preset builds, its parameter count and FLOPs at the crop size.

    $ psanet-lite info psanet_r50-d8_512x1024_40k_cityscapes
    $ psanet-lite info psanet_lite_context --size 64x64
    $ psanet-lite info --list
"""

import json

from psanet_lite.cli.common import image_size


def register(subparsers):
    """Add the 'info' subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "info",
        help="parameter count and FLOPs of a preset",
        description="Print a preset's model, parameter count, FLOPs at the crop size and published results.",
    )
    parser.add_argument("name", nargs="?", help="preset name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the preset names and exit")
    parser.add_argument("--size", type=image_size, help="input size HxW for the FLOP count (default: the crop size)")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    parser.set_defaults(func=run)


def describe(name, size=None):
    """A dict describing preset `name`: model, parameters, FLOPs at `size` (default: crop size).

    >>> describe("psanet_lite_context")["flops_input_size"]
    [128, 128]
    """
    from psanet_lite.build import build_model
    from psanet_lite.configs import get_config
    from psanet_lite.models.flops import count_flops

    config = get_config(name)
    model = build_model(config)  # random weights: only shapes matter here
    size = tuple(size or config.data.crop_size)
    flops, flops_by_part = count_flops(model, size)
    parts = {"backbone": model.backbone, "decode_head": model.decode_head, "aux_head": model.aux_head}
    m = config.model
    return {
        "name": name,
        "backbone": m.backbone if m.backbone == "lite" else f"{m.backbone}-{m.depth}",
        "decode_head": m.decode_head,
        "psa_type": m.psa_type,
        "mask_size": list(m.mask_size),
        "shrink_factor": m.shrink_factor,
        "num_classes": config.data.num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameters_by_part": {k: sum(p.numel() for p in v.parameters()) for k, v in parts.items() if v is not None},
        "flops": flops,
        "flops_by_part": flops_by_part,
        "flops_input_size": list(size),
        "published": None if config.published is None else vars(config.published),
    }


def _format(info):
    by_part = ", ".join(f"{k.replace('_', ' ')} {v / 1e6:.2f}M" for k, v in info["parameters_by_part"].items())
    height, width = info["flops_input_size"]
    lines = [
        info["name"],
        f"  model       {info['backbone']} + {info['decode_head']} head"
        + (f" ({info['psa_type']}, mask {info['mask_size'][0]}x{info['mask_size'][1]}, shrink {info['shrink_factor']})"
           if info["decode_head"] == "psa" else "")
        + f", {info['num_classes']} classes",
        f"  parameters  {info['parameters']:,} ({by_part})",
        f"  FLOPs       {info['flops'] / 1e9:,.{1 if info['flops'] >= 1e10 else 3}f} G for one {height}x{width} image (inference; multiply-add = 2)",
    ]
    published = info["published"]
    if published:
        extra = ""
        if published["memory_gb"] is not None:
            extra = f", {published['memory_gb']} GB, {published['fps']} fps on {published['device']}"
        lines.append(f"  published   mIoU {published['miou']:.2f}, ms+flip {published['miou_ms_flip']:.2f}{extra}")
    return "\n".join(lines)


def run(args):
    from psanet_lite.configs import names

    if args.list:
        print("\n".join(names()))
        return 0
    if not args.name:
        raise ValueError("give a preset name (psanet-lite info --list shows them)")
    info = describe(args.name, args.size)
    print(json.dumps(info, indent=2) if args.json else _format(info))
    return 0
