"""``psanet-lite attention IMAGE --pixel y,x --checkpoint CKPT``: where one
pixel collects information from, and where it distributes its own to.

For the attention cell that holds pixel (y, x) (row, column in the image),
writes over the image:
    DIR/NAME_collect_Y_X.png     the weight each position has in that cell's
                                 output (its collect mask; sums to 1)
    DIR/NAME_distribute_Y_X.png  the weight the cell's features have in each
                                 position's output (its distribute mask)
The pixel is marked with a cross. Heads with one direction write one file.
Earlier results of the same names are replaced; an output that would land on
an input is refused before any work.

    psanet-lite attention sample.png --pixel 40,100 --checkpoint runs/context/final.pt
"""
import argparse
from pathlib import Path

from psanet_lite.cli.common import add_model_arguments, check_outputs, load_model


def parse_pixel(text: str) -> tuple[int, int]:
    """'40,100' -> (40, 100).

    Example:
        >>> parse_pixel("3, 7")
        (3, 7)
    """
    try:
        y, x = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pixel expects y,x (two integers), got {text!r}") from None
    return y, x


def pixel_masks(model, image, pixel: tuple[int, int]) -> dict:
    """The collect / distribute masks of ``pixel`` for one image.

    Args:
        model: PSANet with a PSA head, eval mode.
        image: uint8 [3, H, W] as read from the file.
        pixel: (y, x) in the image.

    Returns:
        {direction: float tensor [h', w']} on the attention grid; collect: the
        weights the pixel's cell gathers with (column of the attention matrix),
        distribute: the weights its features arrive with everywhere (row).
    """
    from psanet_lite.data.transforms import build_eval_transforms

    check_pixel(pixel, image)
    y, x = pixel
    height, width = image.shape[-2:]
    device = next(model.parameters()).device
    inputs = build_eval_transforms(model.config.data)(image)[None].to(device)  # [1, 3, h, w]
    maps = model.attention_maps(inputs)  # direction -> [1, h'*w', h', w']
    masks = {}
    for direction, matrix in maps.items():
        grid_h, grid_w = matrix.shape[-2:]
        row, col = y * grid_h // height, x * grid_w // width
        cell = row * grid_w + col
        if direction == "collect":
            masks[direction] = matrix[0, :, row, col].reshape(grid_h, grid_w).cpu()
        else:
            masks[direction] = matrix[0, cell].cpu()
    return masks


def check_pixel(pixel, image) -> None:
    """Raise ValueError unless (y, x) lies inside ``image`` ([3, H, W]).

    Example:
        >>> import torch
        >>> check_pixel((40, 0), torch.zeros(3, 32, 32))
        Traceback (most recent call last):
        ...
        ValueError: --pixel 40,0 lies outside the 32x32 (HxW) image: y must be 0 to 31, x 0 to 31
    """
    height, width = image.shape[-2:]
    y, x = pixel
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f"--pixel {y},{x} lies outside the {height}x{width} (HxW) image: "
                         f"y must be 0 to {height - 1}, x 0 to {width - 1}")


def draw_mask(image, mask, pixel, alpha: float = 0.6):
    """The mask as a heat map, enlarged to the image (cells stay square), over
    it, with a cross at ``pixel``: [H, W, 3] uint8."""
    import numpy as np
    from PIL import Image

    from psanet_lite.viz.palette import heatmap, overlay

    height, width = image.shape[-2:]
    colours = Image.fromarray(heatmap(mask.numpy())).resize((width, height), Image.NEAREST)
    picture = overlay(image.permute(1, 2, 0).numpy(), np.asarray(colours), alpha)
    y, x = pixel
    arm = max(2, min(height, width) // 40)
    picture[max(y - arm, 0): y + arm + 1, x] = (0, 255, 255)
    picture[y, max(x - arm, 0): x + arm + 1] = (0, 255, 255)
    return picture


def register(subparsers) -> None:
    parser = subparsers.add_parser("attention", help="collect and distribute masks of one pixel",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="image file")
    parser.add_argument("--pixel", required=True, type=parse_pixel, help="y,x of the pixel (row, column)")
    add_model_arguments(parser)
    parser.add_argument("--out-dir", default="attention", help="output folder (default: attention)")
    parser.set_defaults(func=run)


def output_path(image, direction: str, pixel, out_dir) -> Path:
    """Where the ``direction`` mask of ``pixel`` in ``image`` is drawn.

    Example:
        >>> str(output_path("a/sample.png", "collect", (40, 100), "attention"))
        'attention/sample_collect_40_100.png'
    """
    y, x = pixel
    return Path(out_dir) / f"{Path(image).stem}_{direction}_{y}_{x}.png"


def run(args) -> int:
    from PIL import Image

    from psanet_lite.data.files import read_image
    from psanet_lite.engine.device import pick_device

    check_outputs([(output_path(args.image, d, args.pixel, args.out_dir), args.image)
                   for d in ("collect", "distribute")], [args.image, args.checkpoint])
    image = read_image(args.image)
    check_pixel(args.pixel, image)
    model = load_model(args, pick_device(args.device))
    masks = pixel_masks(model, image, args.pixel)
    for direction, mask in masks.items():
        path = output_path(args.image, direction, args.pixel, args.out_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_mask(image, mask, args.pixel)).save(path)
        print(f"{direction} mask of pixel ({args.pixel[0]}, {args.pixel[1]}) -> {path}")
    return 0
