/* ReceptiveFieldFigure (psanet_lite/viz/receptive_field_figure.py): click an output
   position, see its effective and theoretical receptive field. Runs after common.js. */
const lut = bytesFromBase64(SPEC.lut);
const { panels, readout, picker } = layout(
  SPEC.networks, "Network", "Click near a dot (an output position) to see what it depends on.");
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
