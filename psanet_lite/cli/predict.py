"""``psanet-lite predict IMAGE... --checkpoint CKPT``: segment images and write,
per image, a palette PNG of the classes (DIR/NAME.png; its pixel values are
the class indices) and the colours over the image (DIR/NAME_overlay.png).

    psanet-lite predict street.png --checkpoint runs/r50/final.pt --out-dir predictions
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from psanet_lite.cli.evaluate import add_model_arguments, load_model
from psanet_lite.data import DATASETS
from psanet_lite.data.files import read_image
from psanet_lite.data.transforms import build_eval_transforms
from psanet_lite.engine.distributed import pick_device
from psanet_lite.engine.inference import MS_RATIOS, segment
from psanet_lite.viz.palette import colorize_labels, label_palette, overlay


def class_palette(config) -> np.ndarray:
    """[K, 3] uint8 colours of the config's dataset (VOC-style colours otherwise).

    Example:
        >>> from psanet_lite.configs import get_config
        >>> class_palette(get_config("psanet_r50-d8_512x1024_40k_cityscapes"))[0].tolist()  # road
        [128, 64, 128]
    """
    kind = DATASETS.get(config.data.dataset, (None,))[0]
    palette = getattr(kind, "palette", None)
    if palette is None or len(palette) != config.data.num_classes:
        return label_palette(config.data.num_classes)
    return np.asarray(palette, dtype=np.uint8)


def predict_image(model, path, device, ms_flip: bool = False):
    """(image uint8 [3, H, W], class map int64 [H, W]) for one image file.

    The image is resized and normalised as the model's config says for testing
    and segmented as config.test says; the class map has the file's own size.
    """
    config = model.config
    image = read_image(path)
    x = build_eval_transforms(config.data)(image)[None].to(device)  # [1, 3, h, w]
    ratios = (config.test.ms_ratios or MS_RATIOS) if ms_flip else (1.0,)
    scores = segment(model, x, out_size=image.shape[-2:], mode=config.test.mode,
                     crop_size=config.test.crop_size, stride=config.test.stride,
                     ratios=ratios, flip=ms_flip and config.test.flip)  # [1, K, H, W]
    return image, scores.argmax(1)[0].cpu()


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="segment images into palette PNGs and overlays",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files")
    add_model_arguments(parser)
    parser.add_argument("--out-dir", default="predictions", help="output folder (default: predictions)")
    parser.add_argument("--ms-flip", action="store_true", help="multi-scale + flip test-time augmentation")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in the overlay")
    parser.set_defaults(func=run)


def run(args) -> int:
    device = pick_device(args.device)
    model = load_model(args, device)
    palette = class_palette(model.config)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat_palette = palette.flatten().tolist()
    for path in args.images:
        with torch.no_grad():
            image, classes = predict_image(model, path, device, args.ms_flip)
        labels = Image.fromarray(classes.numpy().astype(np.uint8), mode="P")
        labels.putpalette(flat_palette)
        stem = Path(path).stem
        labels.save(out_dir / f"{stem}.png")
        colours = colorize_labels(classes.numpy(), palette)
        blended = overlay(image.permute(1, 2, 0).numpy(), colours, args.alpha)
        Image.fromarray(blended).save(out_dir / f"{stem}_overlay.png")
        print(f"{path} -> {out_dir / (stem + '.png')}, {out_dir / (stem + '_overlay.png')}")
    return 0
