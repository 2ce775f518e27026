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

Two colour scales: scale="max" draws each mask from zero to its own largest weight (every
mask uses the whole colormap, but colours cannot be compared between pixels);
scale="uniform" draws every mask on one shared scale, log2 of the weight over the uniform
share (viz/uniform_scale.py), with a legend. Targets (viz/attention_targets.py) outline
what a clicked region should look at and read out the share of the clicked mask on it.
"""

import base64

import numpy as np

from psanet_lite.viz import _embed, uniform_scale
from psanet_lite.viz.attention_targets import check_targets, embed_targets
from psanet_lite.viz.figure import Figure, check_interpolation, picker_names

BRANCHES = ("collect", "distribute")
SCALES = {  # scale -> (default colormap, default opacity)
    "max": ("inferno", 0.9),               # added to the image's light: black (weight 0) leaves it as is
    "uniform": (uniform_scale.CMAP, 0.7),  # laid over the image, which shows through the colours
}


def _as_list(value, name, item_ndim):
    """One item, a list of items, or a batch with one more dimension -> list of arrays."""
    if isinstance(value, (list, tuple)):
        return [_embed.to_numpy(v, f"{name}[{i}]") for i, v in enumerate(value)]
    array = _embed.to_numpy(value, name)
    if array.ndim == item_ndim + 1:
        return list(array)
    return [array]


def _scale_settings(scale, log_range, cmap, opacity):
    """Checked (log_range, cmap, opacity) of a colour scale: 'max' or 'uniform' (see AttentionFigure)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be 'max' (each mask to its own largest weight) or 'uniform' "
                         f"(relative to uniform attention), got {scale!r}")
    if scale == "max" and log_range is not None:
        raise ValueError(f"log_range applies to scale='uniform' only, got log_range={log_range!r} with scale='max'")
    if scale == "uniform":
        log_range = uniform_scale.check_log_range(uniform_scale.DEFAULT_LOG_RANGE if log_range is None
                                                  else log_range)
    cmap = SCALES[scale][0] if cmap is None else cmap
    opacity = SCALES[scale][1] if opacity is None else opacity
    if not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must lie in 0..1, got {opacity!r}")
    return log_range, cmap, opacity


def _encode_masks(y, branch, scale, log_range, name):
    """One attention matrix [n, H', W'] -> (rows [n, n], 8-bit codes [n, n], ranges [n]).

    Row s of `rows` is the mask of clicked pixel s, flattened over t; a range is its mask's
    largest weight (the readout's), the codes span it ('max') or one fixed log range ('uniform')."""
    n = y.shape[0]
    rows = y.reshape(n, n).T if branch == "collect" else y.reshape(n, n)
    if scale == "uniform" and rows.min() < 0:
        raise ValueError(f"scale='uniform' needs weights >= 0 (attention after the softmax), "
                         f"{name} holds {rows.min():.3g}")
    if scale == "uniform":  # one fixed range for every mask
        return rows, uniform_scale.relative_codes(rows, log_range), _embed.row_ranges(rows)
    q, r = _embed.quantize_rows(rows)
    return rows, q, r


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
        scale: 'max' (each mask from zero to its own largest weight) or 'uniform' (every
            mask by log2(weight * H'W'), relative to uniform attention, on one scale with a
            legend; the weights must be >= 0).
        log_range: with scale='uniform', the colours span 2**-log_range .. 2**log_range
            times uniform (default 4: 1/16x .. 16x); weights beyond are clipped.
        targets: None, or per image None or a list of dicts {"pixels": bool [H, W] or a
            box (y0, x0, y1, x1), "box": (y0, x0, y1, x1), "label": str} (inclusive
            pixels): clicking a region's pixels outlines its box on both panels and reads
            out the share of the clicked masks on the box's cells (1 = uniform), computed
            from the float weights. ``marker_targets(val.objects(k), val.size)`` builds
            them for the marker data.
        cmap: matplotlib colormap for the masks (default 'inferno' for scale='max',
            'RdBu_r' for scale='uniform').
        opacity: strength of the masks over the image (0..1; default 0.9 for 'max', 0.7
            for 'uniform'). With 'max' they are added to the image's light ("screen"
            blending), so weight 0 leaves the image as it is; with 'uniform' they are laid
            over it.
        display_width: width of each panel in CSS pixels.
        interpolation: 'bilinear' (smooth upsampling) or 'nearest' (see the cells).
        max_bytes: refuse to build a figure heavier than this (default 2 MB).

    Each mask is stored with 8 bits: with scale='max' scaled from zero to its own largest
    weight, with scale='uniform' over the fixed range of log2(weight * H'W'). The readout
    shows each mask's largest weight and where it lies, from the float weights.

    Example:
        >>> import torch
        >>> from psanet_lite.ops import psa_mask
        >>> a = torch.randn(1, 7 * 7, 4, 4)
        >>> y = psa_mask(a, "collect").softmax(dim=1)[0]   # (16, 4, 4)
        >>> fig = AttentionFigure(torch.rand(3, 32, 32), collect=y)
        >>> "psanet-fig-attention" in fig._repr_html_()
        True
        >>> corner = [{"pixels": (0, 0, 7, 7), "box": (24, 24, 31, 31), "label": "far corner"}]
        >>> fig = AttentionFigure(torch.rand(3, 32, 32), collect=y, scale="uniform", targets=[corner])
        >>> fig.spec["legend"]["caption"]
        'weight relative to uniform attention'
    """

    KIND = "attention"
    SCRIPT = "attention.js"
    PAGE_TITLE = "PSANet attention"

    def _describe(self):
        shapes = ", ".join(f"{e['map_height']}x{e['map_width']}" for e in self.spec["images"])
        return (f"{len(self.images)} image(s), maps {shapes}, branches {self.spec['branches']}, "
                f"scale {self.spec['scale']!r}")

    def __init__(self, images, collect, distribute=None, *, names=None, title=None, scale="max",
                 log_range=None, targets=None, cmap=None, opacity=None, display_width=300,
                 interpolation="bilinear", max_bytes=_embed.DEFAULT_MAX_BYTES):
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
        log_range, cmap, opacity = _scale_settings(scale, log_range, cmap, opacity)
        targets = check_targets(targets, len(self.images))

        entries, codes, ranges, peaks = [], [], [], []
        byte_offset = range_offset = 0
        for k, image in enumerate(self.images):
            shape, masks = None, {}
            for branch, maps in branches.items():
                y = maps[k]
                if y.ndim != 3 or y.shape[0] != y.shape[1] * y.shape[2]:
                    raise ValueError(
                        f"{branch}[{k}] must be [H'*W', H', W'] (one attention matrix), got shape {y.shape}"
                    )
                if shape is not None and y.shape != shape:
                    raise ValueError(f"collect[{k}] and distribute[{k}] differ in shape: {shape} vs {y.shape}")
                shape = y.shape
                rows, q, r = _encode_masks(y, branch, scale, log_range, f"{branch}[{k}]")
                codes.append(q.reshape(-1))
                ranges.append(r.reshape(-1))
                peaks.append(rows.argmax(axis=1).astype("<u2"))
                masks[branch] = rows
            n, map_height, map_width = shape
            entry = {
                "name": names[k], "src": _embed.png_data_uri(image),
                "height": int(image.shape[0]), "width": int(image.shape[1]),
                "map_height": int(map_height), "map_width": int(map_width),
                "offset": byte_offset, "range_offset": range_offset,
            }
            if targets[k]:
                regions, entry["targets"] = embed_targets(
                    targets[k], masks, image.shape[:2], (map_height, map_width), f"targets[{k}]")
                entry["regions"] = regions.tolist()
            entries.append(entry)
            byte_offset += len(branches) * n * n
            range_offset += len(branches) * n

        captions = {
            "collect": "collect: how much the marked pixel gathers from each position",
            "distribute": "distribute: how much of the marked pixel's feature goes to each position",
        }
        data = {
            "branches": list(branches),
            "captions": {b: captions[b] for b in branches},
            "images": entries,
            "masks": _embed.pack(np.concatenate(codes).tobytes()),
            "ranges": _embed.base64_of(np.concatenate(ranges)),
            "peaks": _embed.base64_of(np.concatenate(peaks)),
            "scale": scale,
        }
        if scale == "uniform":
            data["log_range"] = log_range
            data["legend"] = {"caption": uniform_scale.CAPTION, "ticks": uniform_scale.legend_ticks(log_range)}
        self._finish(
            data,
            title=title, cmap=cmap, opacity=opacity, display_width=display_width,
            interpolation=interpolation, max_bytes=max_bytes,
            advice="show fewer images, smaller attention maps, or pass a larger max_bytes",
        )



def read_attention_data(figure):
    """What an AttentionFigure embeds, decoded in Python (for tests and tools).

    Args:
        figure: an AttentionFigure, its HTML fragment, or its parsed JSON spec.

    Returns:
        a list with one dict per image: {"name", "map_height", "map_width", "targets"
        (as embedded: label, box, cells, shares per branch; [] when none), and per branch
        name a dict {"codes": uint8 [n, n], "values": float64 [n, n], "peaks": int [n]}}
        where ``n = H'*W'``, row s belongs to the pixel ``s = h*W' + w``, values are the
        weights the codes stand for (with scale='uniform' clipped to the legend's range)
        and peaks[s] is the position of row s's largest weight.
    """
    spec = AttentionFigure.spec_of(figure)
    codes = np.frombuffer(_embed.unpack(spec["masks"]), dtype=np.uint8)
    ranges = np.frombuffer(base64.b64decode(spec["ranges"]), dtype="<f4")
    peaks = np.frombuffer(base64.b64decode(spec["peaks"]), dtype="<u2")
    out = []
    for entry in spec["images"]:
        n = entry["map_height"] * entry["map_width"]
        item = {key: entry[key] for key in ("name", "map_height", "map_width")}
        item["targets"] = entry.get("targets", [])
        for b, branch in enumerate(spec["branches"]):
            start = entry["offset"] + b * n * n
            q = codes[start:start + n * n].reshape(n, n)
            r0 = entry["range_offset"] + b * n
            if spec["scale"] == "uniform":
                values = uniform_scale.weights_of_codes(q, spec["log_range"])
            else:
                low, high = ranges[2 * r0:2 * (r0 + n)].astype(np.float64).reshape(n, 2).T
                values = low[:, None] + q / 255.0 * (high - low)[:, None]
            item[branch] = {"codes": q, "values": values, "peaks": peaks[r0:r0 + n].astype(np.int64)}
        out.append(item)
    return out
