// The live explorable: an exported PSANet (ONNX, standard operators) run by onnxruntime-web
// in the reader's browser. A scene is a background and sprites on it (objects, markers);
// the reader drags a sprite, clicks a pixel or picks a scene, and each change runs the model
// and repaints the prediction, the predicted class of every object and the clicked pixel's
// collect and distribute attention, with no kernel and no network. Written by
// psanet_lite.export.explorable, which embeds the model, the scenes and this file in the
// page; the runtime comes from the site itself (or, in a notebook, from a CDN).
//
// For tests and readers of the DOM, the root element carries: data-ready, data-updates,
// data-update-ms, data-positions (JSON, each sprite's [top, left] in the last update) and
// data-sprite-classes (JSON, each sprite's predicted class: the majority over its pixels).
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

  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${url}`));
      document.head.appendChild(script);
    });
  }

  async function unpack(response) {
    // The WebAssembly binary as the site stores it, gzipped; a host that already
    // decoded it (Content-Encoding) hands over the plain binary, passed on as it is.
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function loadRuntime(spec) {
    // The first of spec.runtimes that loads: the site's copy (packed: the binary gzipped),
    // else the release on the CDN (a notebook's output has no site beside it).
    const failures = [];
    for (const runtime of spec.runtimes) {
      const base = new URL(runtime.url, document.baseURI).href;
      try {
        await loadScript(base + spec.script);
        if (typeof ort === "undefined") throw new Error(`${base + spec.script} did not define ort`);
        ort.env.wasm.wasmPaths = base;
        ort.env.wasm.numThreads = 1;
        if (runtime.packed) {
          const response = await fetch(`${base + spec.wasm}.gz`);
          if (!response.ok) throw new Error(`${base + spec.wasm}.gz: HTTP ${response.status}`);
          ort.env.wasm.wasmBinary = await unpack(response);
        }
        return;
      } catch (error) {
        failures.push(String(error.message || error));
      }
    }
    throw new Error(`onnxruntime-web could not be loaded (${failures.join("; ")})`);
  }

  function Explorable(root, spec) {
    this.root = root;
    this.spec = spec;
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
    this.scenes = spec.scenes.map((scene) => ({
      background: decode(scene.background),
      sprites: scene.sprites.map((sprite) => ({ ...sprite, rgba: decode(sprite.rgba) })),
    }));
    this.setScene(0);
  }

  Explorable.prototype.setScene = function (index) {
    const scene = this.spec.scenes[index];
    this.scene = index;
    this.sprites = this.scenes[index].sprites;
    this.positions = scene.sprites.map((sprite) => sprite.position.slice());
    this.order = scene.sprites.map((_, i) => i); // drawing order: the last is on top
    this.pixel = scene.pixel.slice();
    this.focus = scene.focus;
  };

  Explorable.prototype.opaque = function (index, y, x) {
    // Whether sprite `index` covers image pixel (y, x) where it stands now.
    const [sh, sw] = this.sprites[index].size;
    const [top, left] = this.positions[index];
    const sy = y - top, sx = x - left;
    return sy >= 0 && sx >= 0 && sy < sh && sx < sw && this.sprites[index].rgba[(sy * sw + sx) * 4 + 3] > 0;
  };

  Explorable.prototype.spriteAt = function (y, x) {
    for (let k = this.order.length - 1; k >= 0; k -= 1) if (this.opaque(this.order[k], y, x)) return this.order[k];
    return null;
  };

  Explorable.prototype.compose = function () {
    // The background with the sprites pasted in drawing order: RGB bytes [H, W, 3].
    const [height, width] = this.spec.size;
    const image = this.scenes[this.scene].background.slice();
    for (const index of this.order) {
      const { rgba, size: [sh, sw] } = this.sprites[index];
      const [top, left] = this.positions[index];
      for (let y = Math.max(0, -top); y < Math.min(sh, height - top); y += 1) {
        for (let x = Math.max(0, -left); x < Math.min(sw, width - left); x += 1) {
          const s = (y * sw + x) * 4;
          if (rgba[s + 3] === 0) continue;
          image.set(rgba.subarray(s, s + 3), ((top + y) * width + left + x) * 3);
        }
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

  Explorable.prototype.outline = function () {
    // Where the focused object reads (its `reads` box, moving with it), dashed on the input.
    const sprite = this.sprites[this.focus];
    if (!sprite || !sprite.reads) return;
    const [dy, dx, h, w] = sprite.reads;
    const [top, left] = this.positions[this.focus];
    const context = this.canvases.input.getContext("2d");
    context.save();
    context.setLineDash([2, 2]);
    context.strokeStyle = "#ffeb3b";
    context.lineWidth = 1;
    context.strokeRect(left + dx - 0.5, top + dy - 0.5, w + 1, h + 1);
    context.restore();
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

  Explorable.prototype.spriteClasses = function (labels) {
    // Each sprite's predicted class: the most frequent label over the pixels it covers.
    const [height, width] = this.spec.size;
    const classes = this.spec.classes.length;
    return this.sprites.map((sprite, index) => {
      const counts = new Array(classes).fill(0);
      const [sh, sw] = sprite.size;
      const [top, left] = this.positions[index];
      for (let y = Math.max(0, top); y < Math.min(height, top + sh); y += 1) {
        for (let x = Math.max(0, left); x < Math.min(width, left + sw); x += 1) {
          if (this.opaque(index, y, x)) counts[labels[y * width + x]] += 1;
        }
      }
      return counts.indexOf(Math.max(...counts));
    });
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
    this.outline();
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
    const predicted = this.spriteClasses(labels);
    this.root.dataset.spriteClasses = JSON.stringify(predicted);
    this.root.dataset.positions = JSON.stringify(this.positions);
    this.root.querySelector("[data-role='legend']").textContent =
      `attention of pixel (${py}, ${px}): white 0 to dark red ${top.toPrecision(3)} (both maps)`;
    const focus = this.sprites[this.focus];
    const others = [];
    this.sprites.forEach((sprite, index) => {
      if (sprite.object && index !== this.focus) others.push(`${sprite.name}: ${this.spec.classes[predicted[index]]}`);
    });
    this.root.querySelector("[data-role='readout']").textContent =
      `${focus.name} is predicted "${this.spec.classes[predicted[this.focus]]}"` +
      (focus.reads ? " (the dashed box is where it reads)" : "") +
      (others.length ? `; ${others.join("; ")}` : "");
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
    // Press on a sprite and move: drag it (on top of the others). Press and release
    // without moving: show that pixel's attention (and read out the object there).
    const canvas = this.canvases.input;
    let press = null;
    const where = (event) => {
      const box = canvas.getBoundingClientRect();
      return [Math.floor((event.clientY - box.top) * canvas.height / box.height),
        Math.floor((event.clientX - box.left) * canvas.width / box.width)];
    };
    canvas.addEventListener("pointerdown", (event) => {
      const [y, x] = where(event);
      const index = this.spriteAt(y, x);
      press = { at: [y, x], index, moved: false };
      if (index === null) return;
      const [top, left] = this.positions[index];
      press.grab = [y - top, x - left];
      press.carriesPixel = this.opaque(index, this.pixel[0], this.pixel[1]);
      this.order = this.order.filter((i) => i !== index).concat([index]);
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (press === null || press.index === null) return;
      const [y, x] = where(event);
      const [top, left] = this.positions[press.index];
      const next = [y - press.grab[0], x - press.grab[1]];
      if (next[0] === top && next[1] === left) return;
      if (press.carriesPixel) this.pixel = [this.pixel[0] + next[0] - top, this.pixel[1] + next[1] - left];
      this.positions[press.index] = next;
      press.moved = true;
      this.update();
    });
    canvas.addEventListener("pointerup", () => {
      if (press !== null && !press.moved) {
        this.pixel = press.at;
        if (press.index !== null && this.sprites[press.index].object) this.focus = press.index;
        this.update();
      }
      press = null;
    });
    this.root.querySelector("select").addEventListener("change", (event) => {
      this.setScene(Number(event.target.value));
      this.update();
    });
  };

  async function start(root) {
    const spec = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    // One runtime per page, however many explorables it shows.
    window.psanetRuntime = window.psanetRuntime || loadRuntime(spec);
    await window.psanetRuntime;
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
