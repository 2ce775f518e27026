"""Test-time inference as mmsegmentation runs it: whole image, sliding window,
and multi-scale + flip averaging.

The model is any module that maps normalised images [N, 3, H, W] to logits
[N, K, H, W] in eval mode (PSANet does). Every function here returns class
scores at the requested output size; ``scores.argmax(1)`` is the prediction.
"""
import torch
import torch.nn.functional as F

MS_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # mmsegmentation's ms+flip test ratios


def _pair(value, name):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (h, w) pair of them, got {value!r}")
    return pair


def resize_scores(scores: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of [N, K, h, w] scores to ``size`` (no-op when equal)."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=align_corners)


@torch.no_grad()
def whole_inference(model, images: torch.Tensor) -> torch.Tensor:
    """One forward pass over the whole image: [N, 3, H, W] -> logits [N, K, H, W].

    Example:
        >>> net = torch.nn.Conv2d(3, 4, 1)
        >>> whole_inference(net, torch.randn(1, 3, 8, 8)).shape
        torch.Size([1, 4, 8, 8])
    """
    return resize_scores(model(images), images.shape[-2:], getattr(model, "align_corners", False))


@torch.no_grad()
def slide_inference(model, images: torch.Tensor, crop_size, stride) -> torch.Tensor:
    """Sliding-window inference (mmsegmentation's slide_inference).

    Windows of ``crop_size`` = (h, w) start every ``stride`` pixels; there are
    max(H - h + stride - 1, 0) // stride + 1 rows of them (the same for columns),
    and the last one is pulled back to end at the border. A window larger than
    the image shrinks to the image. Each window's logits are added into a
    zero canvas of the full size (mmsegmentation pads them out to it) and the
    sum is divided by how many windows covered each pixel.

    Args:
        images: [N, 3, H, W] normalised.
        crop_size: int or (h, w).
        stride: int or (h, w).

    Returns:
        logits [N, K, H, W], averaged over overlapping windows.

    Example:
        >>> net = torch.nn.Conv2d(3, 2, 1)
        >>> x = torch.randn(1, 3, 10, 13)
        >>> torch.allclose(slide_inference(net, x, 6, 4), net(x), atol=1e-6)
        True
    """
    (h_crop, w_crop), (h_stride, w_stride) = _pair(crop_size, "crop_size"), _pair(stride, "stride")
    n, _, height, width = images.shape
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    total = None
    count = images.new_zeros((1, 1, height, width))
    for row in range(h_grids):
        for col in range(w_grids):
            y2 = min(row * h_stride + h_crop, height)
            x2 = min(col * w_stride + w_crop, width)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            logits = whole_inference(model, images[:, :, y1:y2, x1:x2])  # [N, K, y2-y1, x2-x1]
            if total is None:
                total = images.new_zeros((n, logits.shape[1], height, width))
            total[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


@torch.no_grad()
def segment(model, images: torch.Tensor, out_size=None, mode: str = "whole", crop_size=None,
            stride=None, ratios=(1.0,), flip: bool = False) -> torch.Tensor:
    """Class scores for a batch, with optional multi-scale and flip averaging.

    With one ratio and no flip the scores are the logits. Otherwise, as in
    mmsegmentation's test-time augmentation, each pass (image resized by a
    ratio, and mirrored when ``flip``) is run with ``mode``, resized to
    ``out_size``, turned into probabilities with a softmax, mirrored back,
    and the probabilities are averaged.

    Args:
        images: [N, 3, H, W] normalised.
        out_size: (H_out, W_out) of the returned scores; None keeps (H, W).
        mode: 'whole' or 'slide' (then crop_size and stride are needed).
        ratios: resize ratios, e.g. MS_RATIOS; each gives a size int(H*r + 0.5).
        flip: also run every ratio on the horizontally flipped image.

    Returns:
        [N, K, H_out, W_out]: logits, or averaged probabilities.

    Example:
        >>> net = torch.nn.Conv2d(3, 4, 1).eval()
        >>> probs = segment(net, torch.randn(1, 3, 16, 16), ratios=MS_RATIOS, flip=True)
        >>> probs.shape, bool(torch.allclose(probs.sum(1), torch.ones(1, 16, 16)))
        (torch.Size([1, 4, 16, 16]), True)
    """
    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and (crop_size is None or stride is None):
        raise ValueError("mode='slide' needs crop_size and stride")
    if not ratios:
        raise ValueError("ratios must name at least one resize ratio")
    height, width = images.shape[-2:]
    out_size = (height, width) if out_size is None else tuple(out_size)
    align_corners = getattr(model, "align_corners", False)

    def run(x):
        logits = whole_inference(model, x) if mode == "whole" else slide_inference(model, x, crop_size, stride)
        return resize_scores(logits, out_size, align_corners)

    if len(ratios) == 1 and ratios[0] == 1.0 and not flip:
        return run(images)
    total = 0.0
    flips = (False, True) if flip else (False,)
    for ratio in ratios:
        size = (int(height * ratio + 0.5), int(width * ratio + 0.5))
        scaled = resize_scores(images, size, align_corners=False)
        for mirrored in flips:
            x = scaled.flip(-1) if mirrored else scaled
            probs = run(x).softmax(dim=1)
            total = total + (probs.flip(-1) if mirrored else probs)
    return total / (len(ratios) * len(flips))
