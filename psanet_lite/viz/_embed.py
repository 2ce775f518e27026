"""What the interactive figures share: turning arrays into compact text for the page,
the HTML skeleton, and the JavaScript helpers that undo the encoding in the browser.

A figure is one self-contained HTML fragment: a root <div> with a unique id, a
<script type="application/json"> block holding every number the figure shows (masks
quantized to 8 bits, zlib-compressed, base64) and a vanilla-JS script that draws on
<canvas>. No external script or style, so the same fragment works in the built book,
in JupyterLab after running the cell, in Colab, and in a saved .html file.
"""

import base64
import html
import io
import json
import uuid
import zlib

import numpy as np

# Every figure stays under this many bytes of HTML unless the caller raises it.
DEFAULT_MAX_BYTES = 2_000_000


def to_numpy(x, name):
    """A torch tensor or array-like -> float32 numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().to("cpu").float().numpy()
    try:
        array = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers, found NaN or inf")
    return array


def to_image(image, name="image"):
    """An image in any common layout -> [H, W, 3] uint8.

    Accepts [H, W] (grey), [H, W, 3] or [3, H, W] (the torch layout); uint8 values are
    kept, float values are read as 0..1 (and clipped).
    """
    if hasattr(image, "detach"):
        image = image.detach().to("cpu").numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[2] != 3:
        image = image.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name} must be [H, W], [H, W, 3] or [3, H, W], got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise TypeError(f"{name} must hold numbers, got dtype {image.dtype}")
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def png_data_uri(image):
    """[H, W, 3] uint8 -> 'data:image/png;base64,...' (PNG keeps the page small)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def quantize_rows(rows):
    """Scale every row to 0..255 by its own range: [P, n] -> (uint8 [P, n], float32 [P, 2]).

    The range runs from min(0, row minimum) to the row maximum, so weights (>= 0) keep
    zero at code 0 and a flat mask looks flat; the browser reads
    value = low + q / 255 * (high - low). Per-row scaling keeps a peaked mask and a
    spread-out one equally readable.
    """
    low = np.minimum(rows.min(axis=1, keepdims=True), 0.0)
    high = rows.max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    codes = np.round((rows - low) / span * 255).astype(np.uint8)
    return codes, np.concatenate([low, high], axis=1).astype("<f4")


def pack(data):
    """bytes -> base64 text of their zlib stream (the browser inflates it)."""
    return base64.b64encode(zlib.compress(bytes(data), 9)).decode("ascii")


def unpack(text):
    """Inverse of pack: base64 text -> the original bytes."""
    return zlib.decompress(base64.b64decode(text))


def base64_of(array):
    """A numpy array -> base64 of its raw bytes (little-endian as given)."""
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def new_element_id(kind):
    """A fresh id for one rendering, so two figures (or one shown twice) never clash."""
    return f"psanet-{kind}-{uuid.uuid4().hex[:12]}"


# Styles shared by all figures; scoped by the .psanet-fig class.
CSS = """
.psanet-fig { font: 13px/1.4 system-ui, sans-serif; color: inherit; margin: 0.5em 0 1em; outline: none; }
.psanet-fig .psanet-fig-title { font-weight: 600; margin-bottom: 0.4em; }
.psanet-fig .psanet-fig-controls { margin-bottom: 0.4em; }
.psanet-fig .psanet-fig-panels { display: flex; flex-wrap: wrap; gap: 12px; }
.psanet-fig .psanet-fig-panel { flex: 0 0 auto; margin: 0; }
.psanet-fig .psanet-fig-stage { position: relative; overflow: hidden; cursor: crosshair;
  background: #000; user-select: none; -webkit-user-select: none; }
.psanet-fig .psanet-fig-stage img, .psanet-fig .psanet-fig-stage canvas {
  position: absolute; left: 0; top: 0; width: 100%; height: 100%; max-width: none; margin: 0; }
.psanet-fig .psanet-fig-stage img { filter: brightness(0.8); }
/* "screen" adds the mask's light to the image: black (weight 0) leaves the image as it
   is, so the mask canvas can stay opaque and keep exactly the colours it was given. */
.psanet-fig .psanet-fig-stage canvas { mix-blend-mode: screen; }
.psanet-fig .psanet-fig-stage.nearest img, .psanet-fig .psanet-fig-stage.nearest canvas {
  image-rendering: pixelated; }
.psanet-fig .psanet-fig-marker { position: absolute; box-sizing: border-box; border: 2px solid #0f0;
  box-shadow: 0 0 0 1px #000; pointer-events: none; min-width: 4px; min-height: 4px; }
.psanet-fig .psanet-fig-box { position: absolute; box-sizing: border-box; border: 2px dashed #fff;
  box-shadow: 0 0 0 1px #000; pointer-events: none; }
.psanet-fig .psanet-fig-dot { position: absolute; width: 3px; height: 3px; margin: -1px 0 0 -1px;
  background: rgba(255, 255, 255, 0.7); pointer-events: none; }
.psanet-fig .psanet-fig-caption { margin-top: 0.3em; opacity: 0.8; }
.psanet-fig .psanet-fig-readout { margin-top: 0.4em; font-variant-numeric: tabular-nums; min-height: 2.8em; }
"""

# Helpers every figure script starts with; they run inside the figure's own closure.
COMMON_JS = """
function bytesFromBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
async function inflate(text) {
  const stream = new Blob([bytesFromBase64(text)]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
function floatsFromBase64(text) {
  return new Float32Array(bytesFromBase64(text).buffer);
}
function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}
// Colour codes[offset .. offset + width*height) through the 256-colour table into canvas.
function paintCodes(canvas, image, codes, offset, lut) {
  const px = image.data;
  for (let p = 0, n = canvas.width * canvas.height; p < n; p++) {
    const c = 3 * codes[offset + p];
    px[4 * p] = lut[c]; px[4 * p + 1] = lut[c + 1]; px[4 * p + 2] = lut[c + 2]; px[4 * p + 3] = 255;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}
function fail(root, error) {
  root.textContent = "This figure could not be drawn: " + error;
}
"""


def render(element_id, kind, spec, script):
    """Assemble one figure fragment: root div, styles, JSON data block and script.

    spec is JSON-serialisable; script is the figure's JS body, which may use the
    names ROOT (the root element) and SPEC (the parsed data) plus COMMON_JS helpers.
    """
    # "</" inside a <script> block would end it early; JSON allows "<\\/" instead.
    data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div id="{element_id}" class="psanet-fig psanet-fig-{kind}" tabindex="0">'
        f"<style>{CSS}</style>"
        '<div class="psanet-fig-placeholder">Interactive figure: it appears when the page '
        "runs JavaScript (in Jupyter: run the cell in a trusted notebook).</div>"
        f'<script type="application/json" id="{element_id}-data" data-psanet-figure="{kind}">'
        f"{data}</script>"
        "<script>(function () {\n\"use strict\";\n"
        f"const ROOT = document.getElementById({json.dumps(element_id)});\n"
        f"const SPEC = JSON.parse(document.getElementById({json.dumps(element_id + '-data')}).textContent);\n"
        f"{COMMON_JS}\n"
        'ROOT.querySelector(".psanet-fig-placeholder").remove();\n'
        f"{script}\n"
        "})();</script></div>"
    )


def spec_from_html(fragment, kind):
    """The parsed JSON data block of a rendered figure of the given kind."""
    opening = f'data-psanet-figure="{kind}">'
    try:
        start = fragment.index(opening) + len(opening)
    except ValueError:
        raise ValueError(f"no {kind} figure data found in the given HTML") from None
    return json.loads(fragment[start:fragment.index("</script>", start)])


def check_size(fragment, max_bytes, advice):
    """Raise ValueError when the HTML fragment is heavier than max_bytes."""
    size = len(fragment.encode("utf-8"))
    if size > max_bytes:
        raise ValueError(
            f"this figure would weigh {size / 1e6:.2f} MB of HTML, over the {max_bytes / 1e6:.2f} MB "
            f"budget (max_bytes); {advice}"
        )
    return size


def standalone_page(fragment, title):
    """Wrap a figure fragment into a complete HTML document."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head><body>{fragment}</body></html>\n"
    )
