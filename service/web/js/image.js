// The image playground: draw (a pixel grid for binary glyph models, soft strokes otherwise) or
// upload / drop an image; the reconstruction, score, percentile and verdict follow every stroke.
// Denoisers get a noise slider: the drawing is corrupted (the model's own kind of noise) and
// the model's denoised output is shown.
import { get, post } from "./api.js";
import { drawGrid, drawImage, fit, fmt } from "./draw.js";

const $ = (id) => document.getElementById(id);

// A small seeded PRNG (mulberry32): the same noise for the same slider value while drawing.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(rand) {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

export class ImagePage {
  constructor(app) {
    this.app = app;
    this.canvas = $("input-canvas");
    this.model = null;
    this.values = null; // Float32Array [H*W] in [0, 1]
    this.inflight = false;
    this.dirty = false;
    this.pendingImage = null; // an uploaded image's data URL, sent as is once
    this.updates = 0; // answers drawn (tests read it)
    this.bind();
  }

  accepts(m) {
    return m.input.kind === "image" && m.input.shape.length === 2;
  }

  show(m) {
    if (this.model && this.model.name === m.name) return;
    this.model = m;
    const [h, w] = m.input.shape;
    this.values = new Float32Array(h * w);
    for (const c of [this.canvas, $("reconstruction"), $("noisy-canvas")]) fit(c, m.input.shape, 280);
    const den = m.denoiser && m.training.denoising;
    $("noise-panel").hidden = !den;
    $("output-title").textContent = den ? "Denoised" : "Reconstruction";
    if (den) {
      const kind = m.training.denoising.kind;
      const slider = $("noise");
      slider.max = kind === "gaussian" ? 100 : 50;
      slider.value = Math.round(m.training.denoising.level * 100);
      $("noise-value").textContent = this.noiseText();
    }
    $("draw-hint").textContent = m.input.binary
      ? "click or drag over the cells to set pixels; drag from a lit cell to erase"
      : "draw with the mouse; right button or shift erases; drop an image onto the canvas";
    $("random-input").disabled = !m.reference;
    $("random-input").title = m.reference
      ? "an item of the model's reference set"
      : "this model has no reference set (reference.npz) to take an item from";
    for (const id of ["score", "percentile", "threshold", "anomaly"]) $(id).textContent = "–";
    $("score-note").textContent = "";
    this.render();
    this.clearOutput();
  }

  noiseText() {
    const v = Number($("noise").value);
    return this.model.training.denoising.kind === "gaussian" ? `σ = ${(v / 100).toFixed(2)}` : `${v}%`;
  }

  bind() {
    const c = this.canvas;
    let painting = null; // the value being painted (binary), or the brush sign
    let last = null;
    const at = (e) => {
      const r = c.getBoundingClientRect();
      const [h, w] = this.model.input.shape;
      return [((e.clientX - r.left) / r.width) * w, ((e.clientY - r.top) / r.height) * h];
    };
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => {
      if (!this.model) return;
      c.setPointerCapture(e.pointerId);
      const p = at(e);
      if (this.model.input.binary) {
        painting = this.cell(p) >= 0.5 ? 0 : 1;
      } else {
        painting = e.button === 2 || e.shiftKey ? -1 : 1;
      }
      last = p;
      this.paint(p, p, painting);
    });
    c.addEventListener("pointermove", (e) => {
      if (painting === null) return;
      const p = at(e);
      this.paint(last, p, painting);
      last = p;
    });
    const stop = () => {
      painting = null;
      last = null;
    };
    c.addEventListener("pointerup", stop);
    c.addEventListener("pointercancel", stop);
    $("clear-input").addEventListener("click", () => {
      this.values.fill(0);
      this.changed();
    });
    $("random-input").addEventListener("click", () => this.sample().catch((e) => this.app.fail(e)));
    $("image-file").addEventListener("change", (e) => {
      if (e.target.files[0]) this.upload(e.target.files[0]);
      e.target.value = "";
    });
    c.addEventListener("dragover", (e) => {
      e.preventDefault();
      c.classList.add("dragover");
    });
    c.addEventListener("dragleave", () => c.classList.remove("dragover"));
    c.addEventListener("drop", (e) => {
      e.preventDefault();
      c.classList.remove("dragover");
      if (e.dataTransfer.files[0]) this.upload(e.dataTransfer.files[0]);
    });
    $("noise").addEventListener("input", () => {
      $("noise-value").textContent = this.noiseText();
      this.schedule();
    });
  }

  cell([x, y]) {
    const [h, w] = this.model.input.shape;
    const i = Math.floor(y) * w + Math.floor(x);
    return x >= 0 && y >= 0 && x < w && y < h ? this.values[i] : 0;
  }

  // Paint along the segment a -> b (model pixel coordinates).
  paint(a, b, value) {
    const [h, w] = this.model.input.shape;
    const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / 0.25));
    for (let s = 0; s <= steps; s++) {
      const x = a[0] + ((b[0] - a[0]) * s) / steps;
      const y = a[1] + ((b[1] - a[1]) * s) / steps;
      if (this.model.input.binary) {
        const cx = Math.floor(x);
        const cy = Math.floor(y);
        if (cx >= 0 && cy >= 0 && cx < w && cy < h) this.values[cy * w + cx] = value;
        continue;
      }
      // A soft round brush about 2.5 pixels wide: strokes like MNIST's pen.
      const r = Math.max(1.5, w / 18);
      for (let py = Math.floor(y - r); py <= Math.ceil(y + r); py++) {
        for (let px = Math.floor(x - r); px <= Math.ceil(x + r); px++) {
          if (px < 0 || py < 0 || px >= w || py >= h) continue;
          const d2 = (px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2;
          const ink = Math.min(1, 1.6 * Math.exp(-d2 / (2 * (r / 2) ** 2)));
          const i = py * w + px;
          this.values[i] = value > 0 ? Math.max(this.values[i], ink) : Math.min(this.values[i], 1 - ink);
        }
      }
    }
    this.changed();
  }

  changed() {
    this.pendingImage = null;
    this.render();
    this.schedule();
  }

  render() {
    drawImage(this.canvas, this.values, this.model.input.shape);
    if (this.model.input.binary) drawGrid(this.canvas, this.model.input.shape);
  }

  clearOutput() {
    const ctx = $("reconstruction").getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, $("reconstruction").width, $("reconstruction").height);
  }

  async sample() {
    const m = this.model;
    if (!this.reference || this.reference.model !== m.name) {
      this.reference = await get(`${m.reference.replace(/^\//, "")}?inputs=true&limit=200`);
    }
    const ref = this.reference;
    const i = Math.floor(Math.random() * ref.n);
    this.values = Float32Array.from(ref.inputs[i].flat(), (v) => v / 255);
    this.changed();
    $("score-note").textContent = `dataset item ${ref.ids[i]} (${ref.label_names[ref.labels[i]]})`;
  }

  // An uploaded or dropped image: drawn at the model's size here, and sent once as a data URL.
  upload(file) {
    const reader = new FileReader();
    reader.onload = async () => {
      try {
        const url = reader.result;
        const img = new Image();
        img.src = url;
        await img.decode();
        const [h, w] = this.model.input.shape;
        const off = document.createElement("canvas");
        off.width = w;
        off.height = h;
        const ctx = off.getContext("2d");
        ctx.drawImage(img, 0, 0, w, h);
        const data = ctx.getImageData(0, 0, w, h).data;
        for (let i = 0; i < w * h; i++) {
          const lum = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
          this.values[i] = this.model.input.binary ? (lum >= 0.5 ? 1 : 0) : lum;
        }
        this.render();
        this.pendingImage = url;
        this.schedule();
        $("score-note").textContent = `uploaded ${file.name}`;
      } catch (err) {
        this.app.fail(new Error(`${file.name} is not an image this browser can read`));
      }
    };
    reader.readAsDataURL(file);
  }

  // At most one round of requests in flight; changes meanwhile are sent when it returns.
  schedule() {
    this.dirty = true;
    if (!this.inflight) this.run();
  }

  async run() {
    this.inflight = true;
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.round();
        this.app.status("");
      } catch (err) {
        this.app.fail(err);
      }
    }
    this.inflight = false;
  }

  inputs() {
    const m = this.model;
    const [lo, hi] = m.input.range || [0, 1];
    let x = Array.from(this.values);
    const den = m.denoiser && m.training.denoising;
    if (den) x = this.corrupt(x, den.kind, Number($("noise").value) / 100);
    return x.map((v) => lo + v * (hi - lo));
  }

  corrupt(x, kind, level) {
    const rand = rng(1234);
    if (kind === "bitflip") return x.map((v) => (rand() < level ? 1 - Math.round(v) : v));
    if (kind === "masking") return x.map((v) => (rand() < level ? 0 : v));
    return x.map((v) => Math.min(1, Math.max(0, v + level * gauss(rand))));
  }

  async round() {
    const m = this.model;
    const den = m.denoiser && m.training.denoising;
    const body = { model: m.name };
    if (this.pendingImage && !den) {
      Object.assign(body, { images: [this.pendingImage], resize: true });
    } else {
      body.inputs = [this.inputs()];
    }
    const [out, scored] = await Promise.all([
      post(den ? "denoise" : "reconstruct", body),
      post("anomaly-score", body),
    ]);
    if (m !== this.model) return;
    if (den) drawImage($("noisy-canvas"), body.inputs[0], m.input.shape, m.input.range || [0, 1]);
    drawImage($("reconstruction"), out.outputs[0], m.input.shape, m.input.range || [0, 1]);
    const score = scored.scores[0];
    $("score").textContent = fmt(score);
    $("score").dataset.value = score;
    $("percentile").textContent = `${scored.percentiles[0].toFixed(1)}%`;
    $("percentile").dataset.value = scored.percentiles[0];
    $("threshold").textContent = fmt(scored.threshold);
    const bad = scored.is_anomaly[0];
    $("anomaly").textContent = bad ? "anomaly" : "normal";
    $("anomaly").className = bad ? "flag-bad" : "flag-good";
    if (den) {
      $("score-note").textContent =
        "score, percentile and verdict are the noisy input's (what the model was given); noise 0 scores the drawing itself";
    }
    this.updates += 1;
    this.canvas.dataset.updates = this.updates;
  }
}
