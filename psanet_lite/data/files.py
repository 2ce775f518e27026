"""Reading image and label files, with errors that name the file and the fault.

A dataset with a broken file must stop with a message a person can act on
("label .../x.png is 512x256 but its image is 1024x512"), never a deep trace
from inside a worker, and never skip the sample silently.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors

# Single-channel PNG modes a label may be stored in: 8-bit gray, palette
# (VOC's SegmentationClassAug), 16-bit and 32-bit gray.
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I")


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        picture = Image.open(path)
        picture.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read {what} {path}: {error}") from error
    return picture


def read_image(path) -> tv_tensors.Image:
    """Read an image file as RGB.

    Grayscale and RGBA files (ADE20K has a few) are converted to RGB; 16-bit
    grayscale files are scaled to 8 bits (65535 -> 255).

    Returns:
        tv_tensors.Image, uint8, shape [3, H, W].

    Example:
        >>> image = read_image("leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png")  # doctest: +SKIP
        >>> image.shape  # doctest: +SKIP
        torch.Size([3, 1024, 2048])
    """
    picture = _open(Path(path), "image")
    if picture.mode.startswith("I"):  # 16-bit (or 32-bit) gray: scale to 8 bits, not clip
        picture = _gray_to_8_bits(picture, path)
    array = np.asarray(picture.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    return tv_tensors.Image(torch.from_numpy(array.copy()).permute(2, 0, 1))


def _gray_to_8_bits(picture: Image.Image, path) -> Image.Image:
    values = np.asarray(picture).astype(np.int64)  # [H, W]
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"image {path} holds values outside 0-65535 (PIL mode {picture.mode!r}); "
                         "expected an 8-bit or 16-bit image")
    return Image.fromarray(np.round(values / 257).astype(np.uint8), mode="L")


def read_label(path) -> np.ndarray:
    """Read a single-channel label PNG (gray or palette) as its raw values.

    A palette PNG yields its palette indices, which is how VOC stores class
    indices; an RGB label is rejected because its colours would have to be
    decoded through a table this function does not know.

    Returns:
        numpy int64 array of shape [H, W] with the values stored in the file.

    Example:
        >>> raw = read_label("annotations/validation/ADE_val_00000001.png")  # doctest: +SKIP
        >>> raw.dtype, raw.ndim  # doctest: +SKIP
        (dtype('int64'), 2)
    """
    path = Path(path)
    picture = _open(path, "label")
    if picture.mode not in LABEL_MODES:
        raise ValueError(
            f"label {path} has PIL mode {picture.mode!r}; expected a single-channel "
            f"PNG (gray or palette, one of {', '.join(LABEL_MODES)})"
        )
    return np.asarray(picture).astype(np.int64)


def check_same_size(image: torch.Tensor, label: np.ndarray, image_path, label_path) -> None:
    """Raise ValueError when a label's height and width differ from its image's.

    Example:
        >>> check_same_size(torch.zeros(3, 4, 5), np.zeros((4, 5)), "a.jpg", "a.png")
    """
    image_hw, label_hw = tuple(image.shape[-2:]), tuple(label.shape)
    if image_hw != label_hw:
        raise ValueError(
            f"label {label_path} is {label_hw[1]}x{label_hw[0]} but its image "
            f"{image_path} is {image_hw[1]}x{image_hw[0]} (width x height)"
        )
