"""Click an output position, see its theoretical and effective receptive field.

The numbers are computed in Python (psanet_lite.viz.receptive_field) for a grid of
output positions and embedded in the page; the browser only looks them up. The
figure draws the gradient map of the clicked position over the input (its effective
receptive field), the theoretical window as a dashed box, and a dot for every output
position that can be clicked.
"""

import numpy as np

from psanet_lite.viz import _embed
from psanet_lite.viz.palette import colormap_lut
from psanet_lite.viz.receptive_field import effective_area

_SCRIPT = r"""
const lut = bytesFromBase64(SPEC.lut);
if (SPEC.title) element("div", "psanet-fig-title", ROOT).textContent = SPEC.title;
const controls = element("div", "psanet-fig-controls", ROOT);
const panels = element("div", "psanet-fig-panels", ROOT);
const readout = element("div", "psanet-fig-readout", ROOT);
let picker = null;
if (SPEC.networks.length > 1) {
  const label = element("label", "", controls);
  label.textContent = "Network ";
  picker = element("select", "", label);
  SPEC.networks.forEach((net, k) => {
    const option = element("option", "", picker);
    option.value = String(k);
    option.textContent = net.name;
  });
}
element("span", "", controls).textContent =
  (picker ? "  " : "") + "Click near a dot (an output position) to see what it depends on.";
const panel = element("div", "psanet-fig-panel", panels);
panel.style.width = SPEC.display_width + "px";
const stage = element("div", "psanet-fig-stage" + (SPEC.nearest ? " nearest" : ""), panel);
stage.style.height = Math.round(SPEC.display_width * SPEC.height / SPEC.width) + "px";
if (SPEC.image) {
  const img = element("img", "", stage);
  img.alt = "input image";
  img.src = SPEC.image;
}
const canvas = element("canvas", "psanet-fig-mask", stage);
canvas.dataset.branch = "gradient";
canvas.width = SPEC.width;
canvas.height = SPEC.height;
canvas.style.opacity = String(SPEC.opacity);
const pixels = canvas.getContext("2d").createImageData(SPEC.width, SPEC.height);
const box = element("div", "psanet-fig-box", stage);
const dots = element("div", "", stage);
const marker = element("div", "psanet-fig-marker", stage);
marker.style.width = marker.style.height = "10px";
marker.style.margin = "-5px 0 0 -5px";
marker.style.borderRadius = "50%";
element("div", "psanet-fig-caption", panel).textContent =
  "colour: |gradient| of the marked output unit with respect to each input pixel " +
  "(effective receptive field); dashed box: theoretical receptive field";

let codes = null;
const state = { k: 0, p: 0 };
const percent = (value, extent) => (100 * value / extent) + "%";

function showNetwork(k) {
  dots.replaceChildren();
  for (const [y, x] of SPEC.networks[k].centers) {
    const dot = element("div", "psanet-fig-dot", dots);
    dot.style.top = percent(y + 0.5, SPEC.height);
    dot.style.left = percent(x + 0.5, SPEC.width);
  }
  state.k = k;
}

function redraw() {
  const net = SPEC.networks[state.k];
  const n = SPEC.height * SPEC.width;
  paintCodes(canvas, pixels, codes, net.offset + state.p * n, lut);
  const [y, x] = net.centers[state.p];
  const [top, left, bottom, right] = net.boxes[state.p];
  marker.style.top = percent(y + 0.5, SPEC.height);
  marker.style.left = percent(x + 0.5, SPEC.width);
  box.style.top = percent(top, SPEC.height);
  box.style.left = percent(left, SPEC.width);
  box.style.height = percent(bottom - top + 1, SPEC.height);
  box.style.width = percent(right - left + 1, SPEC.width);
  const area = net.areas[state.p];
  readout.textContent = net.name + ": output unit centred on input pixel (" + y + ", " + x + ")" +
    " \u00b7 theoretical receptive field " + (bottom - top + 1) + "\u00d7" + (right - left + 1) +
    " px \u00b7 " + Math.round(100 * SPEC.mass) + "% of the gradient lies in " + area +
    " px (\u2248 " + Math.sqrt(area).toFixed(1) + "\u00b2)";
  ROOT.dataset.selected = state.k + "," + state.p;
}

function select(k, p) {
  if (k !== state.k) showNetwork(k);
  state.p = p;
  redraw();
}

function nearest(k, y, x) {
  let best = 0, bestDistance = Infinity;
  SPEC.networks[k].centers.forEach(([cy, cx], p) => {
    const distance = (cy - y) ** 2 + (cx - x) ** 2;
    if (distance < bestDistance) { best = p; bestDistance = distance; }
  });
  return best;
}

stage.addEventListener("click", (event) => {
  const rect = stage.getBoundingClientRect();
  const y = (event.clientY - rect.top) / rect.height * SPEC.height - 0.5;
  const x = (event.clientX - rect.left) / rect.width * SPEC.width - 0.5;
  select(state.k, nearest(state.k, y, x));
});
if (picker) {
  picker.addEventListener("change", () => {
    const [y, x] = SPEC.networks[state.k].centers[state.p];
    const k = Number(picker.value);
    select(k, nearest(k, y, x));
  });
}

inflate(SPEC.gradients).then((inflated) => {
  codes = inflated;
  showNetwork(0);
  select(0, nearest(0, (SPEC.height - 1) / 2, (SPEC.width - 1) / 2));
  ROOT.dataset.ready = "true";
}).catch((error) => fail(ROOT, error));
"""


def _as_list(value, name):
    if isinstance(value, (list, tuple)) and len(value) and np.ndim(value[0]) >= 2:
        return [_embed.to_numpy(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return [_embed.to_numpy(value, name)]


class ReceptiveFieldFigure:
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
        if names is None:
            names = [f"network {k + 1}" for k in range(len(gradients))]
        names = [str(n) for n in names]
        if len(names) != len(gradients):
            raise ValueError(f"got {len(gradients)} network(s) but {len(names)} name(s)")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
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
        self.spec = {
            "version": 1, "title": title, "height": height, "width": width, "image": image_src,
            "networks": networks, "gradients": _embed.pack(np.concatenate(codes).tobytes()),
            "lut": _embed.base64_of(colormap_lut(cmap)), "opacity": float(opacity),
            "display_width": int(display_width), "mass": float(mass),
            "nearest": interpolation == "nearest",
        }
        self.nbytes = _embed.check_size(
            self.to_html(), max_bytes, "use fewer output positions, a smaller input, or a larger max_bytes"
        )

    def to_html(self):
        """The figure as an HTML fragment with a fresh element id."""
        return _embed.render(_embed.new_element_id("receptive-field"), "receptive-field", self.spec, _SCRIPT)

    def _repr_html_(self):
        return self.to_html()

    def save(self, path, title="Receptive fields"):
        """Write the figure as a standalone .html page."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(_embed.standalone_page(self.to_html(), title))

    def __repr__(self):
        counts = ", ".join(f"{n['name']}: {len(n['centers'])} positions" for n in self.spec["networks"])
        return (f"ReceptiveFieldFigure({self.spec['height']}x{self.spec['width']} input; {counts}; "
                f"{self.nbytes / 1e3:.0f} kB)")


def read_receptive_field_data(figure):
    """What a ReceptiveFieldFigure embeds, decoded: one dict per network with "name",
    "centers", "boxes", "areas" and "codes" (uint8 [P, H, W], each map scaled to 0..255).

    figure: a ReceptiveFieldFigure, its HTML fragment, or its parsed JSON spec.
    """
    if isinstance(figure, ReceptiveFieldFigure):
        spec = figure.spec
    elif isinstance(figure, str):
        spec = _embed.spec_from_html(figure, "receptive-field")
    else:
        spec = figure
    codes = np.frombuffer(_embed.unpack(spec["gradients"]), dtype=np.uint8)
    n = spec["height"] * spec["width"]
    out = []
    for net in spec["networks"]:
        count = len(net["centers"])
        maps = codes[net["offset"]:net["offset"] + count * n].reshape(count, spec["height"], spec["width"])
        out.append({key: net[key] for key in ("name", "centers", "boxes", "areas")} | {"codes": maps})
    return out
