/* AttentionFigure (psanet_lite/viz/attention_figure.py): click a pixel, see its collect
   and distribute masks. Runs after common.js inside the figure's closure. */
const lut = bytesFromBase64(SPEC.lut);
const ranges = floatsFromBase64(SPEC.ranges);
const peaks = new Uint16Array(bytesFromBase64(SPEC.peaks).buffer);
const branches = SPEC.branches;
const relative = SPEC.scale === "uniform";
const { panels, readout, picker } = layout(
  SPEC.images, "Image", "Click a pixel (or use the arrow keys) to see its attention masks.");
const views = branches.map((branch) => {
  const panel = element("div", "psanet-fig-panel", panels);
  panel.style.width = SPEC.display_width + "px";
  const stage = element("div", "psanet-fig-stage" + (SPEC.nearest ? " nearest" : "") +
                        (relative ? " relative" : ""), panel);
  const img = element("img", "", stage);
  img.alt = "input image";
  const canvas = element("canvas", "psanet-fig-mask", stage);
  canvas.dataset.branch = branch;
  canvas.style.opacity = String(SPEC.opacity);
  const target = element("div", "psanet-fig-target", stage);
  target.hidden = true;
  const marker = element("div", "psanet-fig-marker", stage);
  element("div", "psanet-fig-caption", panel).textContent = SPEC.captions[branch];
  return { branch, stage, img, canvas, target, marker, image: null };
});
if (SPEC.legend) drawLegend(SPEC.legend);

// The colour bar of the shared scale, under the panels: the colormap left to right, the
// ticks Python chose (place along the bar in 0..1, label) and the caption.
function drawLegend(legend) {
  const box = element("div", "psanet-fig-legend", null);
  panels.after(box);
  const bar = element("canvas", "psanet-fig-legend-bar", box);
  bar.width = 256;
  bar.height = 1;
  const strip = bar.getContext("2d").createImageData(256, 1);
  paintCodes(bar, strip, Uint8Array.from({ length: 256 }, (_, c) => c), 0, lut);
  const ticks = element("div", "psanet-fig-legend-ticks", box);
  for (const [at, label] of legend.ticks) {
    const tick = element("span", "", ticks);
    tick.style.left = (100 * at) + "%";
    tick.textContent = label;
  }
  element("div", "psanet-fig-caption", box).textContent = legend.caption;
}

// A share of uniform: one decimal from 1x up, two significant digits below (as
// uniform_scale.share_text writes it).
const ratio = (x) => (x >= 1 ? x.toFixed(1) : x.toPrecision(2)) + "\u00d7";

let masks = null;  // every image's codes, inflated once
const state = { k: 0, h: 0, w: 0 };

function showImage(k) {
  const entry = SPEC.images[k];
  for (const view of views) {
    view.img.src = entry.src;
    view.stage.style.height = Math.round(SPEC.display_width * entry.height / entry.width) + "px";
    view.canvas.width = entry.map_width;
    view.canvas.height = entry.map_height;
    view.image = view.canvas.getContext("2d").createImageData(entry.map_width, entry.map_height);
    view.marker.style.width = (100 / entry.map_width) + "%";
    view.marker.style.height = (100 / entry.map_height) + "%";
  }
  state.k = k;
}

function redraw() {
  const entry = SPEC.images[state.k];
  const n = entry.map_height * entry.map_width;
  const s = state.h * entry.map_width + state.w;
  const parts = ["position (" + state.h + ", " + state.w + ") of the " +
                 entry.map_height + "\u00d7" + entry.map_width + " feature map"];
  const region = entry.regions ? entry.regions[s] : -1;
  const target = region >= 0 ? entry.targets[region] : null;
  views.forEach((view, b) => {
    const offset = entry.offset + (b * n + s) * n;
    paintCodes(view.canvas, view.image, masks, offset, lut);
    view.marker.style.left = (100 * state.w / entry.map_width) + "%";
    view.marker.style.top = (100 * state.h / entry.map_height) + "%";
    view.target.hidden = !target;
    if (target) {  // the box in image pixels, inclusive
      const [y0, x0, y1, x1] = target.box;
      view.target.style.top = (100 * y0 / entry.height) + "%";
      view.target.style.left = (100 * x0 / entry.width) + "%";
      view.target.style.height = (100 * (y1 - y0 + 1) / entry.height) + "%";
      view.target.style.width = (100 * (x1 - x0 + 1) / entry.width) + "%";
    }
    const row = entry.range_offset + b * n + s;
    const largest = ranges[2 * row + 1], best = peaks[row];
    parts.push(view.branch + ": largest weight " + largest.toPrecision(3) +
               (relative ? " (" + ratio(largest * n) + " uniform)" : "") + " at (" +
               Math.floor(best / entry.map_width) + ", " + (best % entry.map_width) + ")");
  });
  const lines = [parts.join(" \u00b7 ")];
  if (target) {
    const i = target.cells.indexOf(s);
    lines.push("share on the " + target.label + ": " +
               branches.map((branch) => branch + " " + ratio(target.shares[branch][i])).join(", ") +
               " uniform");
  }
  readout.replaceChildren(...lines.map((line, i) => {
    const div = element("div", i ? "psanet-fig-share" : "", null);
    div.textContent = line;
    return div;
  }));
  ROOT.dataset.selected = state.k + "," + state.h + "," + state.w;
}

function select(k, h, w) {
  if (k !== state.k) showImage(k);
  const entry = SPEC.images[k];
  state.h = Math.min(Math.max(h, 0), entry.map_height - 1);
  state.w = Math.min(Math.max(w, 0), entry.map_width - 1);
  redraw();
}

for (const view of views) {
  view.stage.addEventListener("click", (event) => {
    const rect = view.stage.getBoundingClientRect();
    const entry = SPEC.images[state.k];
    select(state.k,
           Math.floor((event.clientY - rect.top) / rect.height * entry.map_height),
           Math.floor((event.clientX - rect.left) / rect.width * entry.map_width));
    ROOT.focus({ preventScroll: true });
  });
}
ROOT.addEventListener("keydown", (event) => {
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  const move = moves[event.key];
  if (!move || !masks) return;
  event.preventDefault();
  select(state.k, state.h + move[0], state.w + move[1]);
});
if (picker) {
  picker.addEventListener("change", () => {
    const old = SPEC.images[state.k], entry = SPEC.images[Number(picker.value)];
    // Keep the same relative place in the image when switching.
    select(Number(picker.value),
           Math.floor((state.h + 0.5) / old.map_height * entry.map_height),
           Math.floor((state.w + 0.5) / old.map_width * entry.map_width));
  });
}

inflate(SPEC.masks).then((codes) => {
  masks = codes;
  showImage(0);
  const first = SPEC.images[0];
  select(0, Math.floor(first.map_height / 2), Math.floor(first.map_width / 2));
  ROOT.dataset.ready = "true";
}).catch((error) => fail(ROOT, error));
