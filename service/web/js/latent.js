// The latent explorer: the reference set's codes on a plane (the 2-D code space itself, or the
// codes' first two principal axes), the decoded output under the pointer, pins, the
// interpolation between two pins, and samples from the prior with a seed. Image models decode
// to images; tabular models to records, drawn as a bar per feature (the decoded record) and as
// columns of coloured cells (pins, interpolation, samples), in standard deviations of the
// model's scaler.
import { get, post } from "./api.js";
import { colour, drawHeat, drawImage, drawRecord, drawStrip, fit, fmt } from "./draw.js";

const $ = (id) => document.getElementById(id);
const SIZE = 560; // CSS pixels of the map
const THUMBS_MAX = 64; // draw the items themselves (glyphs) up to this many, dots beyond

export class LatentPage {
  constructor(app) {
    this.app = app;
    this.map = $("latent-map");
    this.base = document.createElement("canvas"); // the scatter, drawn once per model
    this.model = null;
    this.ref = null;
    this.pointer = null; // [u, v] under the pointer
    this.sent = null; // the last pointer position sent for decoding
    this.inflight = 0; // decode requests on their way
    this.seq = 0; // numbers the requests; `drawn`: the newest one drawn
    this.drawn = 0;
    this.pins = [];
    this.samples = [];
    this.updates = 0;
    this.bind();
  }

  accepts(m) {
    const image = m.input.kind === "image" && m.input.shape.length === 2;
    return Boolean(m.reference) && (image || m.input.kind === "tabular");
  }

  async show(m) {
    if (this.model && this.model.name === m.name) return;
    this.model = m;
    this.ref = null;
    this.pins = [];
    this.samples = [];
    this.pointer = null;
    this.tabular = m.input.kind === "tabular";
    this.scale = null;
    for (const id of ["decoded", "interpolation", "samples"]) {
      const c = $(id);
      c.style.width = c.style.height = "";
      c.classList.toggle("chart", this.tabular);
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
    }
    if (this.tabular) {
      $("decoded").width = 300;
      $("decoded").height = 16 * m.input.shape[0];
    } else {
      fit($("decoded"), m.input.shape, 224);
    }
    $("decoded-title").textContent = this.tabular ? "Decoded record under the pointer" : "Under the pointer";
    $("plane-row").hidden = this.tabular;
    $("pins").replaceChildren();
    $("pointer-z").textContent = "move over the map";
    $("prior-note").textContent =
      m.family === "vae"
        ? "a VAE's prior: z ~ N(0, I); the same seed gives the same samples"
        : "a plain AE's prior: a Gaussian fitted to the training codes; the same seed gives the same samples";
    try {
      // The codes are not needed (the points are); the items themselves only as thumbnails
      // (the font's glyphs) or, for tabular models, to scale records without a scaler.
      const small = !this.tabular && m.input.shape[0] * m.input.shape[1] <= 64;
      const url = `${m.reference.replace(/^\//, "")}?codes=false${small ? "&inputs=true" : ""}`;
      const [ref, scale] = await Promise.all([get(url), this.tabular ? this.scaleOf(m) : null]);
      if (this.model !== m) return;
      ref.thumbs = ref.inputs && ref.n <= THUMBS_MAX;
      this.ref = ref;
      this.scale = scale;
      this.extent();
      this.plane = null;
      this.drawBase();
      this.legend();
      const p = ref.plane;
      const items = this.tabular ? "records" : "items";
      $("plane-note").textContent =
        p.kind === "latent"
          ? `(${ref.n} ${items} of the ${ref.split} split; the 2-D code space itself)`
          : `(${ref.n} ${items} of the ${ref.split} split; ${m.latent_dim}-D codes on their first two principal axes, ` +
            `${Math.round(100 * (p.explained[0] + p.explained[1]))}% of the variance; ` +
            (this.tabular
              ? "a point of the map decodes, through the mean code, to the record on the right)"
              : "the map decodes that plane through the mean code)");
      this.compose();
      this.map.dataset.ready = m.name; // interactive from here
      if (!this.pointer) {
        this.pointer = [(this.box[0] + this.box[1]) / 2, (this.box[2] + this.box[3]) / 2];
        this.follow();
      }
      if (this.tabular) return; // no decoded plane: a record is not a picture
      // Then the decoded plane behind the points (one larger request).
      const plane = await this.decodePlane(m);
      if (this.model !== m) return;
      this.plane = plane;
      this.drawBase();
      this.compose();
      this.map.dataset.plane = m.name;
    } catch (err) {
      this.app.fail(err);
    }
  }

  // How a tabular model's records are drawn: in standard deviations of its scaler (the
  // training rows), else of the reference set's own records.
  async scaleOf(m) {
    const detail = await get(`models/${encodeURIComponent(m.name)}`);
    const scaler = detail.manifest.input.scaler;
    if (scaler) return { mean: scaler.mean, std: scaler.std };
    const ref = await get(`${m.reference.replace(/^\//, "")}?codes=false&inputs=true`);
    const rows = ref.inputs || [];
    const n = Math.max(1, rows.length);
    const mean = m.input.features.map((_, i) => rows.reduce((s, r) => s + r[i], 0) / n);
    const std = mean.map((mu, i) => Math.sqrt(rows.reduce((s, r) => s + (r[i] - mu) ** 2, 0) / n) || 1);
    return { mean, std };
  }

  // The plotted square: the points' bounding box with a margin (VAEs: at least +-3).
  extent() {
    const pts = this.ref.points;
    let [u0, u1, v0, v1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const [u, v] of pts) {
      u0 = Math.min(u0, u);
      u1 = Math.max(u1, u);
      v0 = Math.min(v0, v);
      v1 = Math.max(v1, v);
    }
    if (this.model.family === "vae" && this.ref.plane.kind === "latent") {
      [u0, u1, v0, v1] = [Math.min(u0, -3), Math.max(u1, 3), Math.min(v0, -3), Math.max(v1, 3)];
    }
    const half = (Math.max(u1 - u0, v1 - v0) / 2) * 1.12 || 1;
    const cu = (u0 + u1) / 2;
    const cv = (v0 + v1) / 2;
    this.box = [cu - half, cu + half, cv - half, cv + half];
  }

  toScreen([u, v]) {
    const [u0, u1, v0, v1] = this.box;
    return [((u - u0) / (u1 - u0)) * SIZE, SIZE - ((v - v0) / (v1 - v0)) * SIZE];
  }

  fromScreen(x, y) {
    const [u0, u1, v0, v1] = this.box;
    return [u0 + (x / SIZE) * (u1 - u0), v0 + ((SIZE - y) / SIZE) * (v1 - v0)];
  }

  // The code of a point of the plane: mean + u * axes[0] + v * axes[1].
  code([u, v]) {
    const { mean, axes } = this.ref.plane;
    return mean.map((m, i) => m + u * axes[0][i] + v * axes[1][i]);
  }

  project(z) {
    const { mean, axes } = this.ref.plane;
    return [0, 1].map((k) => axes[k].reduce((s, a, i) => s + a * (z[i] - mean[i]), 0));
  }

  // The plane decoded on a grid (one /decode call): what the model makes of every place of the
  // map, the "new letters between the known ones". Drawn faintly behind the points.
  async decodePlane(m) {
    const [h, w] = m.input.shape;
    const k = h * w <= 40 ? 24 : 14; // the font's glyphs densely, larger images (digits, 28x28) fewer
    const [u0, u1, v0, v1] = this.box;
    const latents = [];
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) {
        latents.push(this.code([u0 + ((c + 0.5) / k) * (u1 - u0), v1 - ((r + 0.5) / k) * (v1 - v0)]));
      }
    }
    const out = await post("decode", { model: m.name, latents });
    return { k, outputs: out.outputs };
  }

  drawPlane(ctx) {
    const { k, outputs } = this.plane;
    const shape = this.model.input.shape;
    const [lo, hi] = this.model.input.range || [0, 1];
    const cell = SIZE / k;
    const one = document.createElement("canvas");
    fit(one, shape, Math.ceil(cell));
    ctx.save();
    ctx.globalAlpha = 0.28;
    ctx.imageSmoothingEnabled = false;
    outputs.forEach((o, i) => {
      // Dark ink on the light map: inverted values.
      drawImage(one, o.flat(2).map((v) => hi - v + lo), shape, [lo, hi]);
      const [r, c] = [Math.floor(i / k), i % k];
      const sw = (one.width / Math.max(one.width, one.height)) * cell * 0.9;
      const sh = (one.height / Math.max(one.width, one.height)) * cell * 0.9;
      ctx.drawImage(one, c * cell + (cell - sw) / 2, r * cell + (cell - sh) / 2, sw, sh);
    });
    ctx.restore();
  }

  drawBase() {
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.base, this.map]) {
      c.width = SIZE * dpr;
      c.height = SIZE * dpr;
    }
    const ctx = this.base.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fbfcfd";
    ctx.fillRect(0, 0, SIZE, SIZE);
    if ($("show-plane").checked && this.plane) this.drawPlane(ctx);
    // Axes through the origin, and the scale at the edges.
    ctx.strokeStyle = "#dde3ea";
    ctx.lineWidth = 1;
    const [ox, oy] = this.toScreen([0, 0]);
    ctx.beginPath();
    ctx.moveTo(ox, 0);
    ctx.lineTo(ox, SIZE);
    ctx.moveTo(0, oy);
    ctx.lineTo(SIZE, oy);
    ctx.stroke();
    const ref = this.ref;
    const shape = this.model.input.shape;
    this.drawPoints(ctx, ref, shape);
    this.drawAxes(ctx);
  }

  // Axis names and ranges, on white tags so they read over the decoded plane.
  drawAxes(ctx) {
    const [u0, u1, v0, v1] = this.box;
    const [a, b] = this.ref.plane.kind === "latent" ? ["z₁", "z₂"] : ["PC 1", "PC 2"];
    const tag = (text, x, y, align) => {
      ctx.font = "12px system-ui, sans-serif";
      const w = ctx.measureText(text).width + 8;
      const left = align === "right" ? x - w : x;
      ctx.fillStyle = "rgba(255,255,255,0.9)";
      ctx.fillRect(left, y - 13, w, 18);
      ctx.fillStyle = "#3d4a5c";
      ctx.fillText(text, left + 4, y);
    };
    tag(`${a} →  ${fmt(u0, 2)} … ${fmt(u1, 2)}`, SIZE - 4, SIZE - 6, "right");
    tag(`${b} ↑  ${fmt(v0, 2)} … ${fmt(v1, 2)}`, 4, 16, "left");
  }

  drawPoints(ctx, ref, shape) {
    if (ref.thumbs) {
      // Each item as dark ink on white in a blue frame, at its code.
      const scale = Math.max(2, Math.floor(30 / Math.max(...shape)));
      const [h, w] = [shape[0] * scale, shape[1] * scale];
      const one = document.createElement("canvas");
      one.width = w;
      one.height = h;
      ref.points.forEach((p, i) => {
        const [x, y] = this.toScreen(p);
        drawImage(one, ref.inputs[i].flat().map((v) => 255 - v), shape, [0, 255]);
        ctx.fillStyle = "#fff";
        ctx.fillRect(x - w / 2 - 2, y - h / 2 - 2, w + 4, h + 4);
        ctx.drawImage(one, x - w / 2, y - h / 2);
        ctx.strokeStyle = "#1d5fa8";
        ctx.lineWidth = 1.5;
        ctx.strokeRect(x - w / 2 - 2, y - h / 2 - 2, w + 4, h + 4);
      });
      return;
    }
    // The rarest classes last, on top (a tabular set's few anomalies over its normal records).
    const counts = this.counts();
    const order = ref.points.map((_, i) => i).sort((a, b) => counts[ref.labels[b]] - counts[ref.labels[a]]);
    const radius = this.tabular ? 3.2 : 2.6;
    ctx.globalAlpha = 0.75;
    for (const i of order) {
      const [x, y] = this.toScreen(ref.points[i]);
      ctx.fillStyle = this.labelColour(ref.labels[i]);
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }

  counts() {
    const counts = this.ref.label_names.map(() => 0);
    for (const l of this.ref.labels) counts[l] += 1;
    return counts;
  }

  // Class colours; a tabular set's "normal" and "anomaly" in blue and red.
  labelColour(i) {
    const name = this.ref.label_names[i];
    if (name === "normal") return "#1f77b4";
    if (name === "anomaly") return "#d62728";
    return colour(i);
  }

  legend() {
    const el = $("legend");
    const ref = this.ref;
    if (ref.thumbs) {
      el.textContent = `the ${ref.n} items themselves, at their codes`;
      return;
    }
    const counts = this.counts();
    el.replaceChildren(
      ...ref.label_names.map((name, i) => {
        const s = document.createElement("span");
        s.style.setProperty("--c", this.labelColour(i));
        s.textContent = this.tabular ? `${name} (${counts[i]})` : name;
        return s;
      }),
    );
    if (this.tabular) {
      const key = document.createElement("span");
      key.className = "scale-key";
      key.textContent = "records: blue below the training mean, red above (in standard deviations)";
      el.append(key);
    }
  }

  // Base scatter + pins, the interpolation path, samples and the pointer.
  compose() {
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.map.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.base, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.pins.length >= 2) {
      const [a, b] = this.pins.slice(-2).map((p) => this.toScreen(p));
      ctx.strokeStyle = "#e76f51";
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(...a);
      ctx.lineTo(...b);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.font = "bold 12px system-ui, sans-serif";
    this.pins.forEach((p, i) => {
      const [x, y] = this.toScreen(p);
      ctx.fillStyle = "#e76f51";
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillStyle = "#fff";
      ctx.fillText(String(i + 1), x - 3.5, y + 4);
    });
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2;
    for (const p of this.samples) {
      const [x, y] = this.toScreen(p);
      ctx.beginPath();
      ctx.moveTo(x - 5, y - 5);
      ctx.lineTo(x + 5, y + 5);
      ctx.moveTo(x + 5, y - 5);
      ctx.lineTo(x - 5, y + 5);
      ctx.stroke();
    }
    if (this.pointer) {
      const [x, y] = this.toScreen(this.pointer);
      ctx.strokeStyle = "rgba(29,53,87,0.8)";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(x, y, 8, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  bind() {
    const where = (e) => {
      const r = this.map.getBoundingClientRect();
      return this.fromScreen(((e.clientX - r.left) / r.width) * SIZE, ((e.clientY - r.top) / r.height) * SIZE);
    };
    this.map.addEventListener("pointermove", (e) => {
      if (!this.ref) return;
      this.pointer = where(e);
      this.compose();
      this.follow();
    });
    this.map.addEventListener("click", (e) => {
      if (!this.ref) return;
      this.pins.push(where(e));
      this.pins = this.pins.slice(-6);
      this.compose();
      this.drawPins().catch((err) => this.app.fail(err));
    });
    $("clear-pins").addEventListener("click", () => {
      this.pins = [];
      $("pins").replaceChildren();
      const c = $("interpolation");
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
      this.compose();
    });
    $("show-plane").addEventListener("change", () => {
      if (!this.ref) return;
      this.drawBase();
      this.compose();
    });
    $("sample").addEventListener("click", () => this.sample().catch((err) => this.app.fail(err)));
  }

  // Decode the pointer's code. Up to two requests in flight (on loopback the round trip, not
  // the model, bounds the rate); an answer older than the one drawn is dropped.
  follow() {
    while (this.inflight < 2 && this.pointer && this.pointer !== this.sent) {
      const m = this.model;
      const p = this.pointer;
      const z = this.code(p);
      const seq = ++this.seq;
      this.sent = p;
      this.inflight += 1;
      post("decode", { model: m.name, latents: [z] })
        .then((out) => {
          if (m !== this.model || seq < this.drawn) return;
          this.drawn = seq;
          this.drawOne($("decoded"), out.outputs[0]);
          // Short codes in full; a long one by its place on the plane (a wall of numbers says less).
          $("pointer-z").textContent =
            z.length <= 8
              ? `z = [${z.map((v) => v.toFixed(2)).join(", ")}]`
              : `PC 1 = ${p[0].toFixed(2)}, PC 2 = ${p[1].toFixed(2)} (the ${z.length}-D code: mean + PC 1 · axis 1 + PC 2 · axis 2)`;
          this.updates += 1;
          $("decoded").dataset.updates = this.updates;
        })
        .catch((err) => this.app.fail(err))
        .finally(() => {
          this.inflight -= 1;
          this.follow();
        });
    }
  }

  // One decoded output: an image, or a record as a bar per feature.
  drawOne(canvas, output) {
    const m = this.model;
    if (this.tabular) drawRecord(canvas, output, m.input.features, this.scale);
    else drawImage(canvas, output, m.input.shape, m.input.range || [0, 1]);
  }

  // Several decoded outputs side by side (cell: their height for images, width for records).
  drawMany(canvas, outputs, cell) {
    const m = this.model;
    if (this.tabular) {
      drawHeat(canvas, outputs, this.scale, { cell: Math.max(14, Math.round(cell / 2)), labels: m.input.features });
    } else {
      drawStrip(canvas, outputs, m.input.shape, m.input.range || [0, 1], cell);
    }
  }

  async drawPins() {
    const m = this.model;
    const shape = m.input.shape;
    const range = m.input.range || [0, 1];
    const out = await post("decode", { model: m.name, latents: this.pins.map((p) => this.code(p)) });
    if (m !== this.model) return;
    if (this.tabular) {
      const c = document.createElement("canvas");
      this.drawMany(c, out.outputs, 56);
      $("pins").replaceChildren(c);
    } else $("pins").replaceChildren(
      ...out.outputs.map((o) => {
        const c = document.createElement("canvas");
        c.className = "pixels";
        fit(c, shape, 56);
        drawImage(c, o, shape, range);
        return c;
      }),
    );
    if (this.pins.length < 2) return;
    const [a, b] = this.pins.slice(-2).map((p) => this.code(p));
    const steps = 12;
    const path = Array.from({ length: steps }, (_, k) => a.map((v, i) => v + ((b[i] - v) * k) / (steps - 1)));
    const strip = await post("decode", { model: m.name, latents: path });
    if (m !== this.model) return;
    this.drawMany($("interpolation"), strip.outputs, 64);
  }

  async sample() {
    const m = this.model;
    const seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
    const out = await post("sample", { model: m.name, n: 8, seed });
    if (m !== this.model) return;
    this.drawMany($("samples"), out.outputs, 40);
    $("samples").dataset.seed = out.seed;
    this.samples = out.latents.map((z) => this.project(z));
    this.compose();
  }
}
