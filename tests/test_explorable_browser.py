"""The live explorable in Debian's chromium, with the book's trained marker model: moving a
decoy onto the spot an object reads turns the object to the decoy's colour, as the marker
task's rule says, and back when it leaves; one update stays within 150 ms, and the page
(model and runtime) within 15 MB.

Builds a page from psanet_lite.export.explorable in a temporary folder (the model with
float16 weights, the marker scenes, onnxruntime-web's files from book/node_modules,
installed by `npm ci --prefix book`), serves it on localhost and aborts every other request.

The model is psanet_lite.book.marker_run("bi").model: `make test` runs this module after
`make book`, so it comes from the book's run cache (with an empty cache it trains for
minutes). To use another checkpoint of the same recipe, set PSANET_LITE_EXPLORABLE_CHECKPOINT
to its final.pt, e.g. one that benchmarks/ablation_context.py --task markers wrote.
"""

import json
import os
import statistics
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "book" / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
CHECKPOINT = "PSANET_LITE_EXPLORABLE_CHECKPOINT"
BUDGET_MS = 150
PAGE_BUDGET_BYTES = 15_000_000  # model and runtime: issue 19
MODEL_BUDGET_BYTES = 3_000_000
SIZE = (128, 128)
ROOT_SELECTOR = ".psanet-explorable"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _trained_marker_model():
    from psanet_lite.build import build_model

    if os.environ.get(CHECKPOINT):
        return build_model(checkpoint=os.environ[CHECKPOINT]).eval()
    from psanet_lite.book import marker_run

    return marker_run("bi").model


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")
    from psanet_lite.data.markers import CLASSES, PALETTE
    from psanet_lite.export import export_onnx
    from psanet_lite.export.explorable import copy_runtime, explorable_html, marker_scenes

    if not RUNTIME.is_dir():
        pytest.fail(f"{RUNTIME} is missing: run `npm ci --prefix book` first")
    folder = tmp_path_factory.mktemp("explorable")
    model = _trained_marker_model()
    report = export_onnx(model, folder / "model.onnx", SIZE, attention=True, weights_float16=True)
    assert report.size_bytes <= MODEL_BUDGET_BYTES, f"model file {report.size_bytes} bytes"
    copy_runtime(RUNTIME, folder / "ort")
    scenes = marker_scenes(count=2, size=SIZE[0])
    grid = model.decode_head.attention_grid(SIZE[0] // 8, SIZE[1] // 8)[:2]
    for name, runtime in (("index.html", "ort/"), ("notebook.html", "no-site-here/")):
        # notebook.html: as in a notebook's output, where the site's folder does not exist
        fragment = explorable_html(folder / "model.onnx", scenes, CLASSES, PALETTE, SIZE, grid,
                                   model.config.data.mean, model.config.data.std, runtime=runtime)
        (folder / name).write_text(f"<!doctype html><html><body>{fragment}</body></html>", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", scenes
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def _open(browser, url, external, errors, route_external=None):
    """A page at `url` with every request outside its host aborted (and listed in `external`)
    unless route_external fulfils it."""
    host = url.split("/", 3)[:3]
    page = browser.new_page(viewport={"width": 1280, "height": 600})

    def route(request_route):
        request_url = request_route.request.url
        if request_url.split("/", 3)[:3] == host:
            request_route.continue_()
        elif route_external is not None and route_external(request_route):
            pass
        else:
            external.append(request_url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector(f"{ROOT_SELECTOR}[data-ready='true'], {ROOT_SELECTOR}[data-error]", timeout=120_000)
    failure = page.locator(ROOT_SELECTOR).get_attribute("data-error")
    assert failure is None, failure
    return page


def _shown(page, name):
    """What the root element's data-NAME holds (JSON), e.g. 'positions'."""
    return page.evaluate(f"JSON.parse(document.querySelector('{ROOT_SELECTOR}').dataset.{name})")


def _wait_shown(page, name, condition):
    """Wait until `condition`, JavaScript about `value` (data-NAME, parsed), holds."""
    page.wait_for_function(
        f"(() => {{ const value = JSON.parse(document.querySelector('{ROOT_SELECTOR}').dataset.{name} || 'null');"
        f" return value !== null && ({condition}); }})()")


def _drag(page, sprite, start, end, steps=8):
    """Drag sprite `sprite` from its top-left `start` to `end` (image pixels) in `steps`
    moves; the update time of each move, in ms."""
    box = page.locator(f"{ROOT_SELECTOR} canvas[data-role='input']").bounding_box()
    scale = box["width"] / SIZE[1]

    def client(y, x):  # the centre of image pixel (y, x) on the screen
        return box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale

    grab = (3, 3)  # inside every marker, which is opaque everywhere
    page.mouse.move(*client(start[0] + grab[0], start[1] + grab[1]))
    page.mouse.down()
    times = []
    for step in range(1, steps + 1):
        before = int(page.locator(ROOT_SELECTOR).get_attribute("data-updates"))
        y = start[0] + round((end[0] - start[0]) * step / steps)
        x = start[1] + round((end[1] - start[1]) * step / steps)
        page.mouse.move(*client(y + grab[0], x + grab[1]))
        page.wait_for_function(f"Number(document.querySelector('{ROOT_SELECTOR}').dataset.updates) > {before}")
        times.append(float(page.locator(ROOT_SELECTOR).get_attribute("data-update-ms")))
    page.mouse.up()
    # the last update shows the sprite where the drag ended
    _wait_shown(page, "positions", f"value[{sprite}].join() === '{end[0]},{end[1]}'")
    return times


def test_a_decoy_moved_onto_the_spot_an_object_reads_gives_it_its_colour_within_the_budget(site, browser, tmp_path):
    url, scenes = site
    external, errors = [], []
    page = _open(browser, f"{url}/index.html", external, errors)
    times, seen = [], []
    for index, scene in enumerate(scenes[:2]):  # a disc's scene, then a square's
        if index:
            page.select_option(f"{ROOT_SELECTOR} select", str(index))
            start = json.dumps([sprite["position"] for sprite in scene["sprites"]], separators=(",", ":"))
            _wait_shown(page, "positions", f"JSON.stringify(value) === '{start}'")
        focus = scene["sprites"][scene["focus"]]
        marker, decoy = scene["sprites"][focus["marker"]], scene["sprites"][focus["decoy"]]
        before = _shown(page, "spriteClasses")[scene["focus"]]
        # the decoy goes onto the spot the object's shape selects, covering its marker (same size)
        times += _drag(page, focus["decoy"], decoy["position"], marker["position"])
        moved = _shown(page, "spriteClasses")[scene["focus"]]
        page.locator(ROOT_SELECTOR).screenshot(path=str(tmp_path / f"scene{index}-moved.png"))
        times += _drag(page, focus["decoy"], marker["position"], decoy["position"])
        back = _shown(page, "spriteClasses")[scene["focus"]]
        seen.append((focus["name"], (before, moved, back), (marker["colour"], decoy["colour"], marker["colour"])))
    transferred = page.evaluate("""() => performance.getEntriesByType('navigation').concat(
        performance.getEntriesByType('resource')).reduce((sum, e) => sum + e.encodedBodySize, 0)""")
    page.close()
    assert not external, f"requests to other hosts: {external}"
    assert not errors, errors
    print(f"classes (before, decoy on the spot, decoy back) vs the rule's: {seen}")
    print(f"update times (ms): {times}; page {transferred / 1e6:.2f} MB; screenshots in {tmp_path}")
    for name, predicted, rule in seen:
        assert predicted == rule, f"{name}: predicted classes {predicted}, the rule says {rule}"
    assert statistics.median(times) <= BUDGET_MS, f"update times {times} ms (budget {BUDGET_MS} ms)"
    assert transferred <= PAGE_BUDGET_BYTES, f"the page loaded {transferred} bytes"


def test_in_a_notebook_the_runtime_comes_from_the_cdn(site, browser):
    # A notebook's output has no site beside it: the page falls back to the release on the
    # CDN, here answered from the local copy of that release (the test stays offline).
    from psanet_lite.export.explorable import CDN_RUNTIME

    url, _ = site
    external, errors, served = [], [], []

    def from_local_copy(request_route):
        if not request_route.request.url.startswith(CDN_RUNTIME):
            return False
        name = request_route.request.url[len(CDN_RUNTIME):]
        served.append(name)
        request_route.fulfill(path=str(RUNTIME / name), headers={"Access-Control-Allow-Origin": "*"})
        return True

    page = _open(browser, f"{url}/notebook.html", external, errors, route_external=from_local_copy)
    readout = page.locator(f"{ROOT_SELECTOR} [data-role='readout']").text_content()
    page.close()
    assert not external, f"requests to other hosts: {external}"
    assert not errors, errors
    assert "ort.wasm.min.js" in served and "ort-wasm-simd-threaded.wasm" in served, served
    assert "is predicted" in readout, readout
