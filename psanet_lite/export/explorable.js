// The live explorable: an exported PSANet (ONNX, standard operators) run by onnxruntime-web
// in the reader's browser. The reader drags the object, clicks a pixel or picks a scene;
// the prediction and the clicked pixel's collect and distribute attention update, with no
// kernel and no network. Written by psanet_lite.export.explorable, which embeds the model,
// the scenes and this file in the page; the runtime's files come from the site itself.
/* global ort */
(function () {
  "use strict";

  function decode(text) {
    const bytes = atob(text);
    const out = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length; i += 1) out[i] = bytes.charCodeAt(i);
    return out;
  }

  function heat(value) {
    // One colour scale for both attention maps: white (0) to dark red (the legend's maximum).
    const v = Math.max(0, Math.min(1, value));
    return [255, Math.round(255 * (1 - v)), Math.round(255 * (1 - v) * (1 - v))];
  }

  function Explorable(root, spec) {
    this.root = root;
    this.spec = spec;
    this.scene = 0;
    this.position = spec.scenes[0].position.slice();
    this.pixel = spec.scenes[0].pixel.slice();
    this.busy = false;
    this.pending = false;
    const [height, width] = spec.size;
    this.canvases = {};
    for (const name of ["input", "prediction", "collect", "distribute"]) {
      const canvas = root.querySelector(`canvas[data-role="${name}"]`);
      canvas.width = width;
      canvas.height = height;
      this.canvases[name] = canvas;
    }
    this.sprite = decode(spec.sprite.rgba);
    this.backgrounds = spec.scenes.map((scene) => decode(scene.background));
  }

  Explorable.prototype.compose = function () {
    // The scene with the object pasted at its position: RGB bytes [H, W, 3].
    const [height, width] = this.spec.size;
    const image = this.backgrounds[this.scene].slice();
    const [sh, sw] = this.spec.sprite.size;
    const [top, left] = this.position;
    for (let y = 0; y < sh; y += 1) {
      for (let x = 0; x < sw; x += 1) {
        const ty = top + y, tx = left + x, s = (y * sw + x) * 4;
        if (ty < 0 || tx < 0 || ty >= height || tx >= width || this.sprite[s + 3] === 0) continue;
        const t = (ty * width + tx) * 3;
        for (let c = 0; c < 3; c += 1) image[t + c] = this.sprite[s + c];
      }
    }
    return image;
  };

  Explorable.prototype.paint = function (name, rgb) {
    const canvas = this.canvases[name];
    const pixels = canvas.getContext("2d").createImageData(canvas.width, canvas.height);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      pixels.data[j] = rgb[i];
      pixels.data[j + 1] = rgb[i + 1];
      pixels.data[j + 2] = rgb[i + 2];
      pixels.data[j + 3] = 255;
    }
    canvas.getContext("2d").putImageData(pixels, 0, 0);
  };

  Explorable.prototype.input = function (image) {
    // Normalised float32 [1, 3, H, W] from RGB bytes [H, W, 3].
    const [height, width] = this.spec.size;
    const plane = height * width;
    const data = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p += 1) {
      for (let c = 0; c < 3; c += 1) data[c * plane + p] = (image[p * 3 + c] - this.spec.mean[c]) / this.spec.std[c];
    }
    return new ort.Tensor("float32", data, [1, 3, height, width]);
  };

  Explorable.prototype.show = function (image, outputs) {
    const [height, width] = this.spec.size;
    const plane = height * width;
    const logits = outputs.logits.data;
    const classes = this.spec.classes.length;
    const prediction = new Uint8Array(plane * 3);
    const labels = new Int32Array(plane);
    for (let p = 0; p < plane; p += 1) {
      let best = 0;
      for (let k = 1; k < classes; k += 1) if (logits[k * plane + p] > logits[best * plane + p]) best = k;
      labels[p] = best;
      prediction.set(this.spec.palette[best], p * 3);
    }
    this.paint("input", image);
    this.paint("prediction", prediction);
    const [gh, gw] = this.spec.grid;
    const cells = gh * gw;
    const [py, px] = this.pixel;
    const cell = Math.floor(py * gh / height) * gw + Math.floor(px * gw / width);
    const maps = {};
    let top = 0;
    for (const name of ["collect", "distribute"]) {
      // [1, cells, gh, gw]: entry (t, s) is the weight of position t in the output at s.
      const values = outputs[name].data;
      maps[name] = new Float32Array(cells);
      for (let t = 0; t < cells; t += 1) maps[name][t] = values[t * cells + cell];
      for (const v of maps[name]) top = Math.max(top, v);
    }
    for (const name of ["collect", "distribute"]) {
      const rgb = new Uint8Array(plane * 3);
      for (let y = 0; y < height; y += 1) {
        for (let x = 0; x < width; x += 1) {
          const t = Math.floor(y * gh / height) * gw + Math.floor(x * gw / width);
          rgb.set(heat(maps[name][t] / top), (y * width + x) * 3);
        }
      }
      this.paint(name, rgb);
    }
    const counts = new Array(classes).fill(0);
    const [sh, sw] = this.spec.sprite.size;
    const centre = [this.position[0] + (sh >> 1), this.position[1] + (sw >> 1)];
    const objectClass = labels[Math.min(height - 1, Math.max(0, centre[0])) * width + Math.min(width - 1, Math.max(0, centre[1]))];
    for (const label of labels) counts[label] += 1;
    this.root.dataset.objectClass = String(objectClass);
    this.root.querySelector("[data-role='legend']").textContent = `attention of pixel (${py}, ${px}): white 0 to dark red ${top.toPrecision(3)} (both maps)`;
    this.root.querySelector("[data-role='readout']").textContent =
      `the dragged object's centre is predicted "${this.spec.classes[objectClass]}"`;
  };

  Explorable.prototype.update = async function () {
    if (this.busy) {
      this.pending = true;
      return;
    }
    this.busy = true;
    const start = performance.now();
    const image = this.compose();
    const outputs = await this.session.run({ images: this.input(image) });
    this.show(image, outputs);
    const elapsed = performance.now() - start;
    this.root.dataset.updateMs = elapsed.toFixed(1);
    this.root.dataset.updates = String(Number(this.root.dataset.updates || 0) + 1);
    this.root.querySelector("[data-role='timing']").textContent = `update ${elapsed.toFixed(0)} ms`;
    this.busy = false;
    if (this.pending) {
      this.pending = false;
      this.update();
    }
  };

  Explorable.prototype.listen = function () {
    const canvas = this.canvases.input;
    const [sh, sw] = this.spec.sprite.size;
    let grab = null;
    const where = (event) => {
      const box = canvas.getBoundingClientRect();
      return [Math.floor((event.clientY - box.top) * canvas.height / box.height),
        Math.floor((event.clientX - box.left) * canvas.width / box.width)];
    };
    canvas.addEventListener("pointerdown", (event) => {
      const [y, x] = where(event);
      const [top, left] = this.position;
      if (y >= top && y < top + sh && x >= left && x < left + sw) {
        grab = [y - top, x - left];
        canvas.setPointerCapture(event.pointerId);
      } else {
        this.pixel = [y, x];
        this.update();
      }
    });
    canvas.addEventListener("pointermove", (event) => {
      if (grab === null) return;
      const [y, x] = where(event);
      this.position = [y - grab[0], x - grab[1]];
      this.update();
    });
    canvas.addEventListener("pointerup", () => { grab = null; });
    this.root.querySelector("select").addEventListener("change", (event) => {
      this.scene = Number(event.target.value);
      this.update();
    });
  };

  async function start(root) {
    const spec = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    ort.env.wasm.wasmPaths = new URL(spec.runtime, document.baseURI).href;
    ort.env.wasm.numThreads = 1;
    const explorable = new Explorable(root, spec);
    explorable.session = await ort.InferenceSession.create(decode(spec.model), { executionProviders: ["wasm"] });
    explorable.listen();
    await explorable.update();
    root.dataset.ready = "true";
  }

  for (const root of document.querySelectorAll(".psanet-explorable:not([data-started])")) {
    root.dataset.started = "true";
    start(root).catch((error) => {
      root.dataset.error = String(error);
      root.querySelector("[data-role='readout']").textContent = `the model could not run here: ${error}`;
    });
  }
}());
