"""Click a pixel, see its attention masks: the interactive figure of PSANet's two branches.

The attention matrices come in the layout the PSA head uses them, one [H'*W', H', W']
array per image (psa_mask's output after the softmax, batch index dropped):
Y[t, h, w] links position t = row * W' + col with the clicked position (h, w).

- collect: Y[:, h, w] is the clicked pixel's mask, how much it gathers from every t
  (the head's bmm sums features over t with these weights);
- distribute: Y[h * W' + w] is the clicked pixel's mask, how much of its feature goes
  to every t.

This is the layout PSANet.attention_maps(images) returns ({'collect': [N, H'*W', H', W'],
'distribute': ...}), so AttentionFigure(images, maps["collect"], maps["distribute"])
shows a trained model's attention. Each mask is drawn at H' x W' and stretched over the
image, so a feature map at 1/8 of the image resolution lines up with the pixels it came
from.
"""

import base64

import numpy as np

from psanet_lite.viz import _embed
from psanet_lite.viz.figure import Figure, check_interpolation, picker_names

BRANCHES = ("collect", "distribute")


def _as_list(value, name, item_ndim):
    """One item, a list of items, or a batch with one more dimension -> list of arrays."""
    if isinstance(value, (list, tuple)):
        return [_embed.to_numpy(v, f"{name}[{i}]") for i, v in enumerate(value)]
    array = _embed.to_numpy(value, name)
    if array.ndim == item_ndim + 1:
        return list(array)
    return [array]


class AttentionFigure(Figure):
    """Interactive figure: click a pixel of an image, see its collect and distribute masks.

    Args:
        images: one image or a list ([H, W, 3] / [H, W] / [3, H, W]; uint8, or floats in
            0..1), or a batch [N, 3, H, W]. With several images a picker chooses among them.
        collect: the collect attention per image, ``[H'*W', H', W']`` each (a list, or a
            batch ``[N, H'*W', H', W']``); Y[:, h, w] is the mask of pixel (h, w).
        distribute: the same for the distribute branch (``Y[h*W'+w]`` is the mask of
            pixel (h, w)), or None to show collect alone.
        names: labels for the picker (default "image 1", "image 2", ...).
        title: optional heading above the figure.
        cmap: matplotlib colormap for the masks.
        opacity: strength of the masks over the image (0..1); they are added to the
            image's light ("screen" blending), so weight 0 leaves the image as it is.
        display_width: width of each panel in CSS pixels.
        interpolation: 'bilinear' (smooth upsampling) or 'nearest' (see the cells).
        max_bytes: refuse to build a figure heavier than this (default 2 MB).

    Each mask is stored with 8 bits, scaled from zero to its own largest weight (the
    readout shows that weight), so every mask uses the whole colormap.

    Example:
        >>> import torch
        >>> from psanet_lite.ops import psa_mask
        >>> a = torch.randn(1, 7 * 7, 4, 4)
        >>> y = psa_mask(a, "collect").softmax(dim=1)[0]   # (16, 4, 4)
        >>> fig = AttentionFigure(torch.rand(3, 32, 32), collect=y)
        >>> "psanet-fig-attention" in fig._repr_html_()
        True
    """

    KIND = "attention"
    SCRIPT = "attention.js"
    PAGE_TITLE = "PSANet attention"

    def _describe(self):
        shapes = ", ".join(f"{e['map_height']}x{e['map_width']}" for e in self.spec["images"])
        return f"{len(self.images)} image(s), maps {shapes}, branches {self.spec['branches']}"

    def __init__(self, images, collect, distribute=None, *, names=None, title=None, cmap="inferno",
                 opacity=0.9, display_width=300, interpolation="bilinear",
                 max_bytes=_embed.DEFAULT_MAX_BYTES):
        if hasattr(images, "ndim") and images.ndim == 4:
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        self.images = [_embed.to_image(img, f"images[{i}]") for i, img in enumerate(images)]
        branches = {"collect": _as_list(collect, "collect", 3)}
        if distribute is not None:
            branches["distribute"] = _as_list(distribute, "distribute", 3)
        for branch, maps in branches.items():
            if len(maps) != len(self.images):
                raise ValueError(
                    f"got {len(self.images)} image(s) but {len(maps)} {branch} attention map(s)"
                )
        names = picker_names(names, len(self.images), "image")
        check_interpolation(interpolation)
        if not 0.0 <= float(opacity) <= 1.0:
            raise ValueError(f"opacity must lie in 0..1, got {opacity!r}")

        entries, codes, ranges = [], [], []
        byte_offset = range_offset = 0
        for k, image in enumerate(self.images):
            shape = None
            for branch, maps in branches.items():
                y = maps[k]
                if y.ndim != 3 or y.shape[0] != y.shape[1] * y.shape[2]:
                    raise ValueError(
                        f"{branch}[{k}] must be [H'*W', H', W'] (one attention matrix), got shape {y.shape}"
                    )
                if shape is not None and y.shape != shape:
                    raise ValueError(f"collect[{k}] and distribute[{k}] differ in shape: {shape} vs {y.shape}")
                shape = y.shape
                n = y.shape[0]
                # Row s of `rows` is the mask of clicked pixel s, flattened over t.
                rows = y.reshape(n, n).T if branch == "collect" else y.reshape(n, n)
                q, r = _embed.quantize_rows(rows)
                codes.append(q.reshape(-1))
                ranges.append(r.reshape(-1))
            n, map_height, map_width = shape
            entries.append({
                "name": names[k], "src": _embed.png_data_uri(image),
                "height": int(image.shape[0]), "width": int(image.shape[1]),
                "map_height": int(map_height), "map_width": int(map_width),
                "offset": byte_offset, "range_offset": range_offset,
            })
            byte_offset += len(branches) * n * n
            range_offset += len(branches) * n

        captions = {
            "collect": "collect: how much the marked pixel gathers from each position",
            "distribute": "distribute: how much of the marked pixel's feature goes to each position",
        }
        self._finish(
            {
                "branches": list(branches),
                "captions": {b: captions[b] for b in branches},
                "images": entries,
                "masks": _embed.pack(np.concatenate(codes).tobytes()),
                "ranges": _embed.base64_of(np.concatenate(ranges)),
            },
            title=title, cmap=cmap, opacity=opacity, display_width=display_width,
            interpolation=interpolation, max_bytes=max_bytes,
            advice="show fewer images, smaller attention maps, or pass a larger max_bytes",
        )



def read_attention_data(figure):
    """What an AttentionFigure embeds, decoded in Python (for tests and tools).

    Args:
        figure: an AttentionFigure, its HTML fragment, or its parsed JSON spec.

    Returns:
        a list with one dict per image: {"name", "map_height", "map_width", and per
        branch name a dict {"codes": uint8 [n, n], "values": float64 [n, n]}} where
        ``n = H'*W'`` and row s belongs to the pixel ``s = h*W' + w``.
    """
    spec = AttentionFigure.spec_of(figure)
    codes = np.frombuffer(_embed.unpack(spec["masks"]), dtype=np.uint8)
    ranges = np.frombuffer(base64.b64decode(spec["ranges"]), dtype="<f4")
    out = []
    for entry in spec["images"]:
        n = entry["map_height"] * entry["map_width"]
        item = {key: entry[key] for key in ("name", "map_height", "map_width")}
        for b, branch in enumerate(spec["branches"]):
            start = entry["offset"] + b * n * n
            q = codes[start:start + n * n].reshape(n, n)
            r0 = entry["range_offset"] + b * n
            low, high = ranges[2 * r0:2 * (r0 + n)].astype(np.float64).reshape(n, 2).T
            item[branch] = {"codes": q, "values": low[:, None] + q / 255.0 * (high - low)[:, None]}
        out.append(item)
    return out
