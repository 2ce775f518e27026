"""A live explorable: the exported model runs in the reader's browser (onnxruntime-web).

    scenes = marker_scenes()
    html = explorable_html("markers.onnx", scenes, CLASSES, PALETTE, size, grid, mean, std)

writes one self-contained HTML fragment: the ONNX file (base64, with the collect and
distribute attention as outputs, see export_onnx(attention=True)), the scenes, and the
JavaScript of explorable.js. A scene is a background image and sprites on it (objects,
markers), each of which the reader can drag; clicking picks the pixel whose attention is
shown. Each change runs the model in WebAssembly and repaints the prediction, the
predicted class of every object and the clicked pixel's collect and distribute attention.
Another task is another scene generator: the page and its script know nothing of markers.

The runtime is not embedded. The page loads it from `runtime`, a folder of the site that
copy_runtime fills (the book's build copies it to _static/onnxruntime-web/), and where that
folder does not exist (the fragment shown in JupyterLab or Colab), from the same
onnxruntime-web release on a CDN. The site's copy stores the WebAssembly binary gzipped
(3.7 MB instead of 14.2 MB) and the page unpacks it, so the page weighs the same on every
host, whether it compresses what it serves or not.
"""

import base64
import gzip
import html
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np

# The release book/package.json pins (tests/test_export_explorable.py holds them equal).
ONNXRUNTIME_WEB_VERSION = "1.30.0"
CDN_RUNTIME = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ONNXRUNTIME_WEB_VERSION}/dist/"
# What the page loads of onnxruntime-web's dist folder: the WebAssembly build, single-threaded.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs")
WASM_BINARY = "ort-wasm-simd-threaded.wasm"  # stored as WASM_BINARY + ".gz" by copy_runtime


def _base64(array):
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


def _sprite(name, rgba, position, **extra):
    return {"name": name, "rgba": np.asarray(rgba, dtype=np.uint8), "position": [int(p) for p in position], **extra}


def compose(scene):
    """The image a scene shows: its sprites pasted over its background in order (what
    explorable.js feeds the model). uint8 [H, W, 3].

    >>> scenes = context_scenes(count=1)
    >>> compose(scenes[0]).shape
    (128, 128, 3)
    """
    image = scene["background"].copy()
    height, width = image.shape[:2]
    for sprite in scene["sprites"]:
        rgba = sprite["rgba"]
        top, left = sprite["position"]
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + rgba.shape[0], height), min(left + rgba.shape[1], width)
        patch = rgba[y0 - top:y1 - top, x0 - left:x1 - left]
        opaque = patch[..., 3] > 0
        image[y0:y1, x0:x1][opaque] = patch[..., :3][opaque]
    return image


def context_scenes(count=3, size=128, seed=0):
    """Scenes of the context task (psanet_lite.data.context), one per cue colour, each
    with one object to drag: a grey disc with a dark rim like the task's objects.

    Returns a list of scenes: dicts with 'name', 'background' uint8 [size, size, 3] (the
    generated image), 'sprites' (one dict: 'name', 'rgba' uint8 [21, 21, 4], 'position'
    (top, left), 'object': True), 'pixel' (y, x) whose attention is shown first and
    'focus' (the index of the sprite the readout starts with).

    >>> scenes = context_scenes(count=2, size=128)
    >>> len(scenes), scenes[0]["background"].shape, scenes[0]["sprites"][0]["rgba"].shape
    (2, (128, 128, 3), (21, 21, 4))
    """
    from psanet_lite.data.context import CLASSES, make_context_sample

    yy, xx = np.mgrid[-10:11, -10:11]
    radius = np.hypot(yy, xx)
    rgba = np.zeros((21, 21, 4), dtype=np.uint8)
    rgba[..., :3] = np.where(radius[..., None] > 8.5, 40, 205)
    rgba[..., 3] = np.where(radius <= 10, 255, 0)
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
                       "sprites": [_sprite("disc", rgba, (size - 40, size // 2 - 10), object=True)],
                       "pixel": [size - 30, size // 2], "focus": 0})
    return scenes


def marker_scenes(count=3, size=128, seed=0):
    """Scenes of the marker task (psanet_lite.data.markers) in which every object and every
    marker is a sprite the reader can drag.

    Scene i is a marker sample drawn by make_marker_sample from numpy's
    default_rng((seed, k)) for increasing k (a stream apart from the dataset's splits):
    the first sample that has a disc (even i) or a square (odd i) with a decoy beside it.
    That object (the largest such, the first of equals) is the scene's focus: its centre
    is the pixel shown first, and the spot it reads (its shape's offset) is outlined.
    Moving its decoy onto that spot hands the object the decoy's colour.

    Returns a list of scenes: dicts with 'name', 'seed' ((seed, k)), 'background' uint8
    [size, size, 3] (the grey texture the sample was drawn on), 'sprites', 'pixel' (y, x)
    and 'focus' (a sprite index). Markers come first among the sprites, then objects (drawn on top).
    Every sprite has 'name', 'rgba' uint8 [h, w, 4] and 'position' (top, left); a
    marker also 'colour' (the class it gives, 1..3); an object also 'object': True,
    'shape', 'reads' (the box of its deciding marker relative to its position: dy, dx,
    h, w) and 'marker' and 'decoy' (sprite indices; decoy None where none was drawn).
    compose(scene) gives back the generated image.

    >>> scene = marker_scenes(count=1)[0]
    >>> focus = scene["sprites"][scene["focus"]]
    >>> focus["name"], focus["reads"], scene["sprites"][focus["decoy"]]["name"]
    ('disc 2', [-2, 94, 17, 17], 'red decoy of disc 2')
    """
    from psanet_lite.data.context import _background, shape_mask
    from psanet_lite.data.markers import CLASSES, MARGIN, OFFSETS, make_marker_sample

    scenes, k = [], 0
    while len(scenes) < count:
        wanted = ("disc", "square")[len(scenes) % 2]
        rng = np.random.default_rng((seed, k))
        k += 1
        start = rng.bit_generator.state
        image, _, objects = make_marker_sample(rng, size)
        candidates = [j for j, o in enumerate(objects) if o["shape"] == wanted and o["decoy"] is not None]
        if not candidates:
            continue
        focus = max(candidates, key=lambda j: objects[j]["radius"])  # the largest: easiest to see and to drag
        rng.bit_generator.state = start  # make_marker_sample draws this texture first, under everything
        grey = np.clip(_background(rng, size), 0, 255).astype(np.uint8)
        markers, shapes = [], []
        for j, o in enumerate(objects):
            indices = {}
            for role in ("marker", "decoy"):
                if o[role] is None:
                    indices[role] = None
                    continue
                y0, x0, y1, x1 = o[role]
                patch = image[y0:y1 + 1, x0:x1 + 1]
                colour = 1 + o["colour"] if role == "marker" else _nearest_marker_colour(patch)
                indices[role] = len(markers)
                name = CLASSES[colour].split(", ")[1].removesuffix(" marker")  # 'red'
                markers.append(_sprite(f"{name} {role} of {o['shape']} {j + 1}",
                                       np.dstack([patch, np.full(patch.shape[:2], 255, np.uint8)]), (y0, x0),
                                       colour=colour))
            (cy, cx), r = o["centre"], o["radius"]
            inside = shape_mask(size, cy, cx, r, disc=o["shape"] == "disc")[cy - r:cy + r + 1, cx - r:cx + r + 1]
            rgba = np.dstack([image[cy - r:cy + r + 1, cx - r:cx + r + 1], np.where(inside, 255, 0).astype(np.uint8)])
            dy, dx = OFFSETS[o["shape"]]
            side = 2 * (r + MARGIN) + 1
            shapes.append(_sprite(f"{o['shape']} {j + 1}", rgba, (cy - r, cx - r), object=True, shape=o["shape"],
                                  reads=[dy - MARGIN, dx - MARGIN, side, side], **indices))
        scenes.append({"name": f"sample {k - 1}: {shapes[focus]['name']} and its decoy", "seed": (seed, k - 1),
                       "background": np.dstack([grey] * 3), "sprites": markers + shapes,
                       "pixel": list(objects[focus]["centre"]), "focus": len(markers) + focus})
    return scenes


def _nearest_marker_colour(patch):
    """The class (1..3) of the marker colour nearest to the mean of `patch` [h, w, 3]."""
    from psanet_lite.data.markers import MARKER_COLOURS

    distances = np.linalg.norm(np.array(MARKER_COLOURS) - patch.reshape(-1, 3).mean(axis=0), axis=1)
    return 1 + int(distances.argmin())


def copy_runtime(package, target):
    """Fill the folder `target` (replaced) with what the explorable loads of onnxruntime-web:
    RUNTIME_FILES from `package` (the package's dist folder) and WASM_BINARY gzipped, which
    the page unpacks itself. Returns the bytes written.

    >>> copy_runtime("book/node_modules/onnxruntime-web/dist", "_static/onnxruntime-web")  # doctest: +SKIP
    3733558
    """
    package, target = Path(package), Path(target)
    for name in RUNTIME_FILES + (WASM_BINARY,):
        if not (package / name).is_file():
            raise FileNotFoundError(
                f"{package / name} is missing: is onnxruntime-web installed (`npm ci --prefix book`)?")
    shutil.rmtree(target, ignore_errors=True)  # nothing of an earlier copy stays behind
    target.mkdir(parents=True)
    for name in RUNTIME_FILES:
        shutil.copy2(package / name, target / name)
    # mtime=0: the same bytes on every build
    (target / f"{WASM_BINARY}.gz").write_bytes(gzip.compress((package / WASM_BINARY).read_bytes(), 9, mtime=0))
    return sum((target / name).stat().st_size for name in RUNTIME_FILES + (f"{WASM_BINARY}.gz",))


def explorable_html(onnx_path, scenes, classes, palette, size, grid, mean, std,
                    runtime="../_static/onnxruntime-web/", fallback=CDN_RUNTIME):
    """The explorable as an HTML fragment (a string), with everything but the runtime inside.

    Args:
        onnx_path: model exported with attention=True for images of `size`.
        scenes: as marker_scenes or context_scenes return them.
        classes: class names; palette: [K, 3] uint8 colours.
        size: (H, W) of the images; grid: (h', w') of the attention grid.
        mean, std: the RGB normalisation the model was trained with (0-255 scale).
        runtime: URL of the folder copy_runtime filled, relative to the page.
        fallback: URL of onnxruntime-web's dist folder, used where `runtime` cannot be
            loaded (a notebook); None for none.
    """
    runtimes = [{"url": runtime, "packed": True}] + ([{"url": fallback, "packed": False}] if fallback else [])
    keep = ("name", "position", "reads", "object")
    spec = {
        "model": base64.b64encode(Path(onnx_path).read_bytes()).decode("ascii"),
        "runtimes": runtimes, "wasm": WASM_BINARY, "script": RUNTIME_FILES[0],
        "size": list(size), "grid": list(grid),
        "mean": list(map(float, mean)), "std": list(map(float, std)),
        "classes": list(classes), "palette": np.asarray(palette).astype(int).tolist(),
        "scenes": [{"name": s["name"], "background": _base64(s["background"]), "pixel": list(s["pixel"]),
                    "focus": s["focus"],
                    "sprites": [{**{key: p[key] for key in keep if key in p},
                                 "rgba": _base64(p["rgba"]), "size": list(p["rgba"].shape[:2])}
                                for p in s["sprites"]]}
                   for s in scenes],
    }
    options = "".join(f'<option value="{i}">{html.escape(s["name"])}</option>' for i, s in enumerate(scenes))
    canvases = "".join(
        f'<figure style="margin:0"><canvas data-role="{role}" style="width:192px;image-rendering:pixelated">'
        f'</canvas><figcaption>{role}</figcaption></figure>'
        for role in ("input", "prediction", "collect", "distribute"))
    script = resources.files("psanet_lite.export").joinpath("explorable.js").read_text()
    # "</" cannot end the JSON's script element early: base64 and names never hold it, but be sure
    data = json.dumps(spec).replace("</", "<\\/")
    return (
        '<div class="psanet-explorable">'
        f'<label>scene <select>{options}</select></label> '
        '<span data-role="timing"></span>'
        f'<div style="display:flex;gap:8px">{canvases}</div>'
        '<p data-role="readout">loading the model…</p><p data-role="legend"></p>'
        f'<script type="application/json">{data}</script>'
        f"<script>{script}</script></div>"
    )
