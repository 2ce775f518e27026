"""Click an output position, see its theoretical and effective receptive field.

The numbers are computed in Python (psanet_lite.viz.receptive_field) for a grid of
output positions and embedded in the page; the browser only looks them up. The
figure draws the gradient map of the clicked position over the input (its effective
receptive field), the theoretical window as a dashed box, and a dot for every output
position that can be clicked.
"""

import numpy as np

from psanet_lite.viz import _embed
from psanet_lite.viz.figure import Figure, check_interpolation, picker_names
from psanet_lite.viz.receptive_field import effective_area


def _as_list(value, name):
    if isinstance(value, (list, tuple)) and len(value) and np.ndim(value[0]) >= 2:
        return [_embed.to_numpy(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return [_embed.to_numpy(value, name)]


class ReceptiveFieldFigure(Figure):
    """Interactive figure: click an output position, see its receptive fields.

    Args:
        gradients: [P, H, W] gradient maps, one per output position (from
            gradient_receptive_field), or a list of them, one per network; a picker
            switches between networks.
        centers: [P, 2] input coordinates (row, col) of each output position's centre
            (ReceptiveField.center), or a list matching gradients.
        boxes: [P, 4] theoretical windows (top, left, bottom, right), inclusive input
            pixel coordinates (ReceptiveField.box), or a list matching gradients.
        image: optional [H, W, 3] / [3, H, W] image drawn under the maps.
        names: network names for the picker.
        title: optional heading.
        cmap: matplotlib colormap for the gradient maps.
        opacity: strength of the maps over the image (0..1), added to its light.
        display_width: width of the panel in CSS pixels.
        mass: the readout's effective size is the number of pixels holding this share
            of the gradient (effective_area).
        interpolation: 'nearest' (default: see input pixels) or 'bilinear'.
        max_bytes: refuse to build a figure heavier than this (default 2 MB).

    Example:
        >>> import torch
        >>> from psanet_lite.viz.receptive_field import gradient_receptive_field, theoretical_receptive_field
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.Conv2d(1, 1, 3, padding=1))
        >>> rf = theoretical_receptive_field(net)
        >>> positions = [(r, c) for r in (2, 8) for c in (2, 8)]
        >>> maps = gradient_receptive_field(net, torch.randn(4, 1, 12, 12), positions)
        >>> fig = ReceptiveFieldFigure(maps, [(rf.center(r), rf.center(c)) for r, c in positions],
        ...                            [rf.box(r, c) for r, c in positions])
        >>> fig.spec["networks"][0]["areas"][0] <= rf.size ** 2
        True
    """

    KIND = "receptive-field"
    SCRIPT = "receptive_field.js"
    PAGE_TITLE = "Receptive fields"

    def __init__(self, gradients, centers, boxes, image=None, *, names=None, title=None,
                 cmap="inferno", opacity=0.9, display_width=360, mass=0.95,
                 interpolation="nearest", max_bytes=_embed.DEFAULT_MAX_BYTES):
        gradients = _as_list(gradients, "gradients")
        centers = _as_list(centers, "centers")
        boxes = _as_list(boxes, "boxes")
        if not len(gradients) == len(centers) == len(boxes):
            raise ValueError(
                f"gradients, centers and boxes must describe the same networks, got "
                f"{len(gradients)}, {len(centers)} and {len(boxes)}"
            )
        names = picker_names(names, len(gradients), "network")
        check_interpolation(interpolation)
        shape = gradients[0].shape[1:] if gradients[0].ndim == 3 else None
        networks, codes, offset = [], [], 0
        for k, (g, c, b) in enumerate(zip(gradients, centers, boxes)):
            if g.ndim != 3 or g.shape[1:] != shape:
                raise ValueError(f"gradients[{k}] must be [P, H, W] with one input size for all, got {g.shape}")
            if np.any(g < 0):
                raise ValueError(f"gradients[{k}] must be magnitudes (>= 0); take .abs() first")
            if c.shape != (len(g), 2) or b.shape != (len(g), 4):
                raise ValueError(
                    f"network {k}: {len(g)} gradient maps need centers [{len(g)}, 2] and boxes "
                    f"[{len(g)}, 4], got {c.shape} and {b.shape}"
                )
            q, _ = _embed.quantize_rows(g.reshape(len(g), -1))
            codes.append(q.reshape(-1))
            networks.append({
                "name": names[k], "offset": offset,
                "centers": np.round(c, 2).tolist(), "boxes": np.round(b, 2).tolist(),
                "areas": effective_area(g, mass).tolist(),
            })
            offset += q.size
        height, width = int(shape[0]), int(shape[1])
        image_src = None
        if image is not None:
            image = _embed.to_image(image)
            if image.shape[:2] != (height, width):
                raise ValueError(f"image is {image.shape[:2]} but the gradient maps are {(height, width)}")
            image_src = _embed.png_data_uri(image)
        self._finish(
            {"height": height, "width": width, "image": image_src, "networks": networks,
             "gradients": _embed.pack(np.concatenate(codes).tobytes()), "mass": float(mass)},
            title=title, cmap=cmap, opacity=opacity, display_width=display_width,
            interpolation=interpolation, max_bytes=max_bytes,
            advice="use fewer output positions, a smaller input, or a larger max_bytes",
        )

    def _describe(self):
        counts = ", ".join(f"{n['name']}: {len(n['centers'])} positions" for n in self.spec["networks"])
        return f"{self.spec['height']}x{self.spec['width']} input; {counts};"


def read_receptive_field_data(figure):
    """What a ReceptiveFieldFigure embeds, decoded: one dict per network with "name",
    "centers", "boxes", "areas" and "codes" (uint8 [P, H, W], each map scaled to 0..255).

    figure: a ReceptiveFieldFigure, its HTML fragment, or its parsed JSON spec.
    """
    spec = ReceptiveFieldFigure.spec_of(figure)
    codes = np.frombuffer(_embed.unpack(spec["gradients"]), dtype=np.uint8)
    n = spec["height"] * spec["width"]
    out = []
    for net in spec["networks"]:
        count = len(net["centers"])
        maps = codes[net["offset"]:net["offset"] + count * n].reshape(count, spec["height"], spec["width"])
        out.append({key: net[key] for key in ("name", "centers", "boxes", "areas")} | {"codes": maps})
    return out
