"""A live explorable: the exported model runs in the reader's browser (onnxruntime-web).

    html = explorable_html("context.onnx", context_scenes(), classes=CLASSES, palette=PALETTE)

writes one self-contained HTML fragment: the ONNX file (base64, with the collect and
distribute attention as outputs, see export_onnx(attention=True)), the scenes, and the
JavaScript of explorable.js. The reader drags an object over a scene, clicks a pixel or
picks another scene; each change runs the model in WebAssembly and repaints the
prediction and the clicked pixel's attention. The runtime's files are not embedded: the
page loads them from `runtime` (the book copies them to _static/onnxruntime-web/).

A scene is a background image and the object to drag: parameterise the explorable with
another scene generator to show another task.
"""

import base64
import html
import json
from importlib import resources
from pathlib import Path

import numpy as np

RUNTIME_SCRIPT = "ort.wasm.min.js"


def _base64(array):
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


def context_scenes(count=3, size=128, seed=0):
    """Scenes of the context task (psanet_lite.data.context), one per cue colour, and the object to drag.

    Returns (scenes, sprite): scenes a list of dicts with 'name', 'background' [size, size, 3]
    uint8 (the generated image), 'position' (top-left of the object) and 'pixel' (the
    pixel whose attention is shown first); sprite [h, w, 4] uint8 RGBA, a grey disc with a
    dark rim like the task's objects.

    >>> scenes, sprite = context_scenes(count=2, size=128)
    >>> len(scenes), scenes[0]["background"].shape, sprite.shape
    (2, (128, 128, 3), (21, 21, 4))
    """
    from psanet_lite.data.context import CLASSES, make_context_sample

    rng = np.random.default_rng(seed)
    scenes, seen = [], set()
    while len(scenes) < count:
        image, label = make_context_sample(rng, size=size)
        kind = int(label.max())
        if kind in seen and len(seen) < 3:
            continue
        seen.add(kind)
        scenes.append({"name": f"cue: {CLASSES[kind].split(', ')[1]}" if kind else "no object",
                       "background": np.asarray(image, dtype=np.uint8),
                       "position": [size - 40, size // 2 - 10], "pixel": [size - 30, size // 2]})
    yy, xx = np.mgrid[-10:11, -10:11]
    radius = np.hypot(yy, xx)
    sprite = np.zeros((21, 21, 4), dtype=np.uint8)
    sprite[..., :3] = np.where(radius[..., None] > 8.5, 40, 205)
    sprite[..., 3] = np.where(radius <= 10, 255, 0)
    return scenes, sprite


def explorable_html(onnx_path, scenes, sprite, classes, palette, size, grid, mean, std,
                    runtime="../_static/onnxruntime-web/"):
    """The explorable as an HTML fragment (a string), with everything but the runtime inside.

    Args:
        onnx_path: model exported with attention=True for images of `size`.
        scenes, sprite: as context_scenes returns them.
        classes: class names; palette: [K, 3] uint8 colours.
        size: (H, W) of the images; grid: (h', w') of the attention grid.
        mean, std: the RGB normalisation the model was trained with (0-255 scale).
        runtime: URL of the folder holding onnxruntime-web's files, relative to the page.
    """
    spec = {
        "model": base64.b64encode(Path(onnx_path).read_bytes()).decode("ascii"),
        "runtime": runtime,
        "size": list(size), "grid": list(grid),
        "mean": list(map(float, mean)), "std": list(map(float, std)),
        "classes": list(classes), "palette": np.asarray(palette).astype(int).tolist(),
        "sprite": {"rgba": _base64(sprite), "size": list(sprite.shape[:2])},
        "scenes": [{"name": s["name"], "background": _base64(s["background"]), "position": s["position"],
                    "pixel": s["pixel"]} for s in scenes],
    }
    options = "".join(f'<option value="{i}">{html.escape(s["name"])}</option>' for i, s in enumerate(scenes))
    canvases = "".join(
        f'<figure style="margin:0"><canvas data-role="{role}" style="width:192px;image-rendering:pixelated">'
        f'</canvas><figcaption>{role}</figcaption></figure>'
        for role in ("input", "prediction", "collect", "distribute"))
    script = resources.files("psanet_lite.export").joinpath("explorable.js").read_text()
    return (
        '<div class="psanet-explorable">'
        f'<label>scene <select>{options}</select></label> '
        '<span data-role="timing"></span>'
        f'<div style="display:flex;gap:8px">{canvases}</div>'
        '<p data-role="readout">loading the model…</p><p data-role="legend"></p>'
        f'<script type="application/json">{json.dumps(spec)}</script>'
        f'<script src="{html.escape(runtime)}{RUNTIME_SCRIPT}"></script>'
        f"<script>{script}</script></div>"
    )
