/* Helpers every figure script starts with; they run inside the figure's own closure
   (psanet_lite/viz/_embed.py render), beside ROOT (the root element) and SPEC (its data). */
/* exported inflate, floatsFromBase64, layout, paintCodes, fail */
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
// What every figure shows around its panels: the title, a controls line (a picker when
// there is more than one entry to choose from, then a hint) and a readout under the panels.
function layout(entries, noun, hint) {
  if (SPEC.title) element("div", "psanet-fig-title", ROOT).textContent = SPEC.title;
  const controls = element("div", "psanet-fig-controls", ROOT);
  const panels = element("div", "psanet-fig-panels", ROOT);
  const readout = element("div", "psanet-fig-readout", ROOT);
  let picker = null;
  if (entries.length > 1) {
    const label = element("label", "", controls);
    label.textContent = noun + " ";
    picker = element("select", "", label);
    entries.forEach((entry, k) => {
      const option = element("option", "", picker);
      option.value = String(k);
      option.textContent = entry.name;
    });
  }
  element("span", "", controls).textContent = (picker ? "  " : "") + hint;
  return { panels, readout, picker };
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
