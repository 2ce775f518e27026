"""What the interactive figures share: turning arrays into compact text for the page,
the HTML skeleton around the figure's script and styles (static/*.js, static/*.css).

A figure is one self-contained HTML fragment: a root <div> with a unique id, a
<script type="application/json"> block holding every number the figure shows (masks
quantized to 8 bits, zlib-compressed, base64) and a vanilla-JS script that draws on
<canvas>. No external script or style, so the same fragment works in the built book,
in JupyterLab after running the cell, in Colab, and in a saved .html file.
"""

import base64
import functools
import html
import importlib.resources
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
    low, high = _row_bounds(rows)
    span = np.where(high > low, high - low, 1.0)
    codes = np.round((rows - low) / span * 255).astype(np.uint8)
    return codes, np.concatenate([low, high], axis=1).astype("<f4")


def row_ranges(rows):
    """The ranges quantize_rows returns, without the codes: [P, n] -> float32 [P, 2]."""
    return np.concatenate(_row_bounds(rows), axis=1).astype("<f4")


def _row_bounds(rows):
    """(low, high) [P, 1] each: min(0, row minimum) and the row maximum."""
    return np.minimum(rows.min(axis=1, keepdims=True), 0.0), rows.max(axis=1, keepdims=True)


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


@functools.cache
def static_text(name):
    """The text of psanet_lite/viz/static/<name> (a .js or .css file shipped with the package)."""
    return (importlib.resources.files("psanet_lite.viz") / "static" / name).read_text(encoding="utf-8")


def render(element_id, kind, spec, script):
    """Assemble one figure fragment: root div, styles, JSON data block and script.

    spec is JSON-serialisable; script names the figure's file in static/, whose code
    may use ROOT (the root element), SPEC (the parsed data) and static/common.js.
    """
    # "</" inside a <script> block would end it early; JSON allows "<\\/" instead.
    data = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div id="{element_id}" class="psanet-fig psanet-fig-{kind}" tabindex="0">'
        f"<style>{static_text('figure.css')}</style>"
        '<div class="psanet-fig-placeholder">Interactive figure: it appears when the page '
        "runs JavaScript (in Jupyter: run the cell in a trusted notebook).</div>"
        f'<script type="application/json" id="{element_id}-data" data-psanet-figure="{kind}">'
        f"{data}</script>"
        "<script>(function () {\n\"use strict\";\n"
        f"const ROOT = document.getElementById({json.dumps(element_id)});\n"
        f"const SPEC = JSON.parse(document.getElementById({json.dumps(element_id + '-data')}).textContent);\n"
        f"{static_text('common.js')}\n"
        'ROOT.querySelector(".psanet-fig-placeholder").remove();\n'
        f"{static_text(script)}\n"
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
