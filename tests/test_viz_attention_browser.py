"""AttentionFigure(scale="uniform", targets=...) in Debian's chromium: the legend is drawn,
clicking a region outlines its target box on both panels and the readout gives the share
the hand-made attention puts on it; clicking elsewhere hides them.

Writes a figure to a temporary folder, serves it on localhost and aborts every other request.
"""

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from psanet_lite.viz import AttentionFigure

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SIZE, SIDE = 64, 8              # a 64 px image, an 8x8 map (stride 8), P = 64 positions
MARKER = (8, 40, 23, 55)        # touches cells rows 1..2, columns 5..6: 4 of 64
REGION = (40, 8, 47, 23)        # the clicked object: cells (5, 1) and (5, 2)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    # Every collect mask puts all its weight on the marker's 4 cells (share 64 / 4 = 16x);
    # every distribute mask is uniform (1x) but that of cell (5, 2), which is collect's.
    weights = torch.zeros(SIDE, SIDE)
    weights[1:3, 5:7] = 0.25
    collect = weights.reshape(-1)[:, None, None].expand(-1, SIDE, SIDE).clone()  # Y[:, h, w] = weights
    distribute = torch.full((SIDE * SIDE, SIDE, SIDE), 1 / SIDE**2)
    distribute[5 * SIDE + 2] = weights  # Y[s] = the mask of cell s
    image = np.full((SIZE, SIZE, 3), 128, np.uint8)
    targets = [[{"pixels": REGION, "box": MARKER, "label": "deciding marker"}]]
    figure = AttentionFigure(image, collect, distribute, scale="uniform", targets=targets, display_width=256)
    folder = tmp_path_factory.mktemp("attention")
    figure.save(folder / "index.html")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


def test_clicking_a_region_outlines_its_marker_and_reads_out_the_share(page_url):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    external, errors = [], []

    def route(request_route):
        if request_route.request.url.startswith(page_url.rsplit("/", 1)[0] + "/"):
            request_route.continue_()
        else:
            external.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.route("**/*", route)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(page_url)
        page.wait_for_selector(".psanet-fig[data-ready='true']", timeout=10_000)

        ticks = page.eval_on_selector_all(".psanet-fig-legend-ticks span", "spans => spans.map(s => s.textContent)")
        assert ticks == ["\u22641/16\u00d7", "1/4\u00d7", "1\u00d7", "4\u00d7", "\u226516\u00d7"]
        assert "weight relative to uniform attention" in page.text_content(".psanet-fig-legend")
        assert page.eval_on_selector(".psanet-fig-legend-bar", "c => c.getBoundingClientRect().width") > 100

        stage = page.query_selector(".psanet-fig-stage").bounding_box()

        def click(y, x):  # image pixel (y, x)
            page.mouse.click(stage["x"] + (x + 0.5) / SIZE * stage["width"],
                             stage["y"] + (y + 0.5) / SIZE * stage["height"])

        click(44, 12)
        assert page.get_attribute(".psanet-fig", "data-selected") == "0,5,1"
        share = page.text_content(".psanet-fig-share")
        assert share == "share on the deciding marker: collect 16.0\u00d7, distribute 1.0\u00d7 uniform"
        outlines = page.query_selector_all(".psanet-fig-target")
        assert len(outlines) == 2
        y0, x0, y1, x1 = MARKER
        scale = stage["width"] / SIZE
        for outline in outlines:
            assert outline.is_visible()
            box = outline.bounding_box()
            panel = outline.evaluate_handle("node => node.parentElement").as_element().bounding_box()
            assert box["x"] - panel["x"] == pytest.approx(x0 * scale, abs=1)
            assert box["y"] - panel["y"] == pytest.approx(y0 * scale, abs=1)
            assert box["width"] == pytest.approx((x1 - x0 + 1) * scale, abs=1)
            assert box["height"] == pytest.approx((y1 - y0 + 1) * scale, abs=1)
        readout = page.text_content(".psanet-fig-readout")
        assert "collect: largest weight 0.250 (16.0\u00d7 uniform) at (1, 5)" in readout

        click(44, 20)  # the region's other cell
        assert page.get_attribute(".psanet-fig", "data-selected") == "0,5,2"
        share = page.text_content(".psanet-fig-share")
        assert share == "share on the deciding marker: collect 16.0\u00d7, distribute 16.0\u00d7 uniform"

        click(4, 4)  # the top-left cell lies in no region
        assert page.get_attribute(".psanet-fig", "data-selected") == "0,0,0"
        assert all(not outline.is_visible() for outline in page.query_selector_all(".psanet-fig-target"))
        assert page.query_selector(".psanet-fig-share") is None
        browser.close()
    assert not external, f"requests to other hosts: {external}"
    assert not errors, errors
