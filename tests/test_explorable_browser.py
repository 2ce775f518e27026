"""The live explorable in Debian's chromium: the exported book model runs in WebAssembly,
follows a dragged object, and one update stays within 150 ms.

Builds a page from psanet_lite.export.explorable in a temporary folder (the model, the
scenes, onnxruntime-web's files from book/node_modules, installed by `npm ci --prefix book`),
serves it on localhost and aborts every other request.
"""

import shutil
import statistics
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "book" / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
BUDGET_MS = 150
SIZE = (128, 128)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")
    from psanet_lite.build import build_model
    from psanet_lite.data.context import CLASSES, PALETTE
    from psanet_lite.export import export_onnx
    from psanet_lite.export.explorable import context_scenes, explorable_html

    if not RUNTIME.is_dir():
        pytest.fail(f"{RUNTIME} is missing: run `npm ci --prefix book` first")
    folder = tmp_path_factory.mktemp("explorable")
    torch.manual_seed(0)
    model = build_model("psanet_lite_context").eval()
    export_onnx(model, folder / "model.onnx", SIZE, attention=True, weights_float16=True)
    shutil.copytree(RUNTIME, folder / "ort")
    scenes, sprite = context_scenes(count=3, size=SIZE[0])
    grid = model.decode_head.attention_grid(SIZE[0] // 8, SIZE[1] // 8)[:2]
    fragment = explorable_html(folder / "model.onnx", scenes, sprite, CLASSES, PALETTE, SIZE, grid,
                               model.config.data.mean, model.config.data.std, runtime="ort/")
    (folder / "index.html").write_text(f"<!doctype html><html><body>{fragment}</body></html>", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_dragging_the_object_reruns_the_model_within_the_budget(site):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    external, errors = [], []

    def route(request_route):
        if request_route.request.url.startswith(site + "/"):
            request_route.continue_()
        else:
            external.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        page.route("**/*", route)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{site}/index.html")
        page.wait_for_selector(".psanet-explorable[data-ready='true']", timeout=60_000)
        root = page.locator(".psanet-explorable")
        box = page.locator("canvas[data-role='input']").bounding_box()
        scale = box["width"] / SIZE[1]
        # The object starts with its top-left at (88, 54): grab its centre, drag it up and across.
        start = (box["x"] + (54 + 10) * scale, box["y"] + (88 + 10) * scale)
        page.mouse.move(*start)
        page.mouse.down()
        times = []
        for step in range(1, 9):
            before = int(root.get_attribute("data-updates"))
            page.mouse.move(start[0] - 6 * step * scale, start[1] - 4 * step * scale)
            page.wait_for_function(
                f"Number(document.querySelector('.psanet-explorable').dataset.updates) > {before}")
            times.append(float(root.get_attribute("data-update-ms")))
        page.mouse.up()
        page.select_option(".psanet-explorable select", "1")
        page.wait_for_function("Number(document.querySelector('.psanet-explorable').dataset.updates) >= 10")
        browser.close()
    assert not external, f"requests to other hosts: {external}"
    assert not errors, errors
    print(f"update times (ms): {times}")
    assert statistics.median(times) <= BUDGET_MS, f"update times {times} ms (budget {BUDGET_MS} ms)"
