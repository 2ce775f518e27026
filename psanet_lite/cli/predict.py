"""``psanet-lite predict IMAGE... --checkpoint CKPT``: segment images and write,
per image, a palette PNG of the classes (DIR/NAME.png; its pixel values are
the class indices) and the colours over the image (DIR/NAME_overlay.png).

Earlier results of the same names are replaced; an output that would land on
one of the inputs (``--out-dir .`` beside the image), or two images that would
write the same name (a/x.png and b/x.png), are refused before any work. An
image that cannot be read is skipped; the others are still segmented, and the
command then names the ones that failed and exits with code 2.

    psanet-lite predict street.png --checkpoint runs/r50/final.pt --out-dir predictions
"""
import argparse
from pathlib import Path

from psanet_lite.cli.common import USER_ERRORS, add_model_arguments, check_outputs, fraction, load_model, one_line


def class_palette(config):
    """[K, 3] uint8 colours of the config's dataset (VOC-style colours otherwise).

    Example:
        >>> from psanet_lite.configs import get_config
        >>> class_palette(get_config("psanet_r50-d8_512x1024_40k_cityscapes"))[0].tolist()  # road
        [128, 64, 128]
    """
    import numpy as np

    from psanet_lite.data import DATASETS
    from psanet_lite.data.labels import label_palette

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
    import torch

    from psanet_lite.data.files import read_image
    from psanet_lite.data.transforms import build_eval_transforms
    from psanet_lite.engine.inference import MS_RATIOS, segment

    config = model.config
    image = read_image(path)
    x = build_eval_transforms(config.data)(image)[None].to(device)  # [1, 3, h, w]
    ratios = (config.test.ms_ratios or MS_RATIOS) if ms_flip else (1.0,)
    with torch.no_grad():
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
    parser.add_argument("--alpha", type=fraction, default=0.5, help="weight of the colours in the overlay, 0 to 1")
    parser.set_defaults(func=run)


def output_paths(image, out_dir) -> tuple[Path, Path]:
    """(class PNG, overlay PNG) that ``image`` is segmented into.

    Example:
        >>> [str(p) for p in output_paths("a/street.jpg", "out")]
        ['out/street.png', 'out/street_overlay.png']
    """
    stem = Path(image).stem
    return Path(out_dir) / f"{stem}.png", Path(out_dir) / f"{stem}_overlay.png"


def run(args) -> int:
    from psanet_lite.engine.device import pick_device

    check_outputs([(out, image) for image in args.images for out in output_paths(image, args.out_dir)],
                  [*args.images, args.checkpoint])
    device = pick_device(args.device)
    model = load_model(args, device)
    palette = class_palette(model.config)
    failed = []
    for path in args.images:
        try:
            written = _segment_and_save(model, path, device, palette, args)
        except USER_ERRORS as error:
            failed.append(one_line(error))
            continue
        print(f"{path} -> {', '.join(map(str, written))}")
    if failed:  # reported once, at the end, on one line
        raise ValueError(f"{len(failed)} of {len(args.images)} images failed: {'; '.join(failed)}")
    return 0


def _segment_and_save(model, path, device, palette, args):
    import numpy as np
    from PIL import Image

    from psanet_lite.viz.palette import colorize_labels, overlay

    image, classes = predict_image(model, path, device, args.ms_flip)
    labels_path, overlay_path = output_paths(path, args.out_dir)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    labels = Image.fromarray(classes.numpy().astype(np.uint8), mode="P")
    labels.putpalette(palette.flatten().tolist())
    labels.save(labels_path)
    blended = overlay(image.permute(1, 2, 0).numpy(), colorize_labels(classes.numpy(), palette), args.alpha)
    Image.fromarray(blended).save(overlay_path)
    return labels_path, overlay_path
