"""One attention mask in matplotlib, on the interactive figure's scale: the static twin of
AttentionFigure(scale="uniform") for printed pages and exercises.

    image = plot_attention_mask(ax, collect[:, h, w].view(16, 16), image_size=(128, 128), target=targets[0])
    attention_colorbar(image, ax=axes)

The colours are log2(weight * h*w) clipped to [-log_range, log_range] with the figure's
colormap (viz/uniform_scale.py); a target's box is outlined and the mask's share on it
(engine.attention_shares.uniform_share, 1 = uniform) is added to the title.
"""

import numpy as np
import torch

from psanet_lite.engine.attention_shares import box_cells, uniform_share
from psanet_lite.viz import uniform_scale

TARGET_COLOUR = "#ffd400"  # the interactive figure's outline (static/figure.css)


def plot_attention_mask(ax, mask, *, image_size, target=None, title="", log_range=uniform_scale.DEFAULT_LOG_RANGE):
    """Draw one mask relative to uniform attention on `ax`; returns the AxesImage (for a colorbar).

    Args:
        ax: a matplotlib Axes.
        mask: [h, w] weights of one clicked pixel over the map (``collect[:, y, x].view(h, w)`` or
            ``distribute[y * w + x].view(h, w)``), numpy or torch.
        image_size: (H, W) of the image in pixels: the mask is stretched over
            ``extent=(0, W, H, 0)``, so an image drawn with that extent lines up.
        target: None or a dict with "box" (y0, x0, y1, x1, inclusive pixels) and "label"
            (a marker_targets entry): the box is outlined and the share put in the title.
        title: the title's first line.
        log_range: colours span 2**-log_range .. 2**log_range times uniform.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> mask = np.zeros((4, 4)); mask[0, 2:] = 0.5          # all weight on two of 16 cells
        >>> fig, ax = plt.subplots()
        >>> _ = plot_attention_mask(ax, mask, image_size=(32, 32), title="cell (3, 0)",
        ...                         target={"box": (0, 16, 7, 31), "label": "deciding marker"})
        >>> ax.get_title()
        'cell (3, 0)\\nshare on the deciding marker: 8.0×'
        >>> plt.close(fig)
    """
    from matplotlib.patches import Rectangle  # matplotlib loads only when a plot is drawn

    log_range = uniform_scale.check_log_range(log_range)
    mask = mask.detach().cpu().double().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, np.float64)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [h, w] (one pixel's weights over the map), got shape {mask.shape}")
    height, width = image_size
    shown = ax.imshow(uniform_scale.relative_log2(mask.reshape(-1), log_range).reshape(mask.shape),
                      cmap=uniform_scale.CMAP, vmin=-log_range, vmax=log_range,
                      extent=(0, width, height, 0), interpolation="nearest")
    lines = [title] if title else []
    if target is not None:
        y0, x0, y1, x1 = target["box"]
        cells = box_cells(target["box"], height // mask.shape[0], mask.shape)
        share = uniform_share(torch.from_numpy(mask.reshape(-1)), cells).item()
        ax.add_patch(Rectangle((x0, y0), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor=TARGET_COLOUR,
                               linewidth=2))
        lines.append(f"share on the {target.get('label', 'target')}: {uniform_scale.share_text(share)}")
    ax.set_title("\n".join(lines), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def attention_colorbar(shown, **kwargs):
    """The legend of plot_attention_mask: a colorbar with the interactive figure's ticks
    (1/16x .. 16x) and caption. kwargs go to ``Figure.colorbar`` (ax=..., shrink=...)."""
    low, high = shown.get_clim()
    ticks = uniform_scale.legend_ticks(high)
    colorbar = shown.figure.colorbar(shown, **kwargs)
    colorbar.set_ticks([low + at * (high - low) for at, _ in ticks], labels=[label for _, label in ticks])
    colorbar.set_label(uniform_scale.CAPTION)
    return colorbar
