// Drawing helpers shared by the pages: images as arrays of values in [lo, hi] onto canvases.

// Matplotlib's tab10: the class colours of the latent map (the cards' plots use the same).
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
];

export function colour(i) {
  return PALETTE[i % PALETTE.length];
}

// values: flat or nested [H][W] numbers in [lo, hi]; drawn white-on-black at the canvas size.
export function drawImage(canvas, values, shape, range = [0, 1]) {
  const [h, w] = shape;
  const flat = Array.isArray(values[0]) ? values.flat(2) : values;
  const [lo, hi] = range;
  const img = new ImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = Math.max(0, Math.min(255, Math.round(((flat[i] - lo) / (hi - lo)) * 255)));
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  blit(canvas, img);
}

const scratch = document.createElement("canvas");

function blit(canvas, img) {
  scratch.width = img.width;
  scratch.height = img.height;
  scratch.getContext("2d").putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

// Several images side by side on one canvas (a strip), each cell `cell` pixels high.
export function drawStrip(canvas, images, shape, range = [0, 1], cell = 64) {
  const [h, w] = shape;
  const cw = Math.round((cell * w) / h);
  canvas.width = Math.max(1, images.length * (cw + 4) - 4);
  canvas.height = cell;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  const one = document.createElement("canvas");
  one.width = cw;
  one.height = cell;
  images.forEach((values, i) => {
    drawImage(one, values, shape, range);
    ctx.drawImage(one, i * (cw + 4), 0);
  });
}

// A canvas showing a pixel grid over an image of `shape` (the font's 7x5 cells).
export function drawGrid(canvas, shape) {
  const [h, w] = shape;
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "rgba(120,140,170,0.45)";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let x = 1; x < w; x++) {
    const px = Math.round((x * canvas.width) / w) + 0.5;
    ctx.moveTo(px, 0);
    ctx.lineTo(px, canvas.height);
  }
  for (let y = 1; y < h; y++) {
    const py = Math.round((y * canvas.height) / h) + 0.5;
    ctx.moveTo(0, py);
    ctx.lineTo(canvas.width, py);
  }
  ctx.stroke();
}

// Canvas size for an image of `shape` at most `box` pixels on its longer side, whole cells.
export function fit(canvas, shape, box) {
  const [h, w] = shape;
  const scale = Math.max(1, Math.floor(box / Math.max(h, w)));
  canvas.width = w * scale;
  canvas.height = h * scale;
}

export function fmt(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(digits - 1);
  return x.toPrecision(digits);
}

// -- tabular records: values standardised by `scale` ({mean, std}: the model's scaler) --------

const Z_MAX = 3; // bars and colours saturate at 3 standard deviations

function standard(values, scale, i) {
  const sd = scale.std[i] || 1;
  return (values[i] - scale.mean[i]) / sd;
}

// A diverging colour for a standardised value: blue below the mean, white at it, red above.
export function zColour(z) {
  const t = Math.max(-1, Math.min(1, z / Z_MAX));
  const [r, g, b] = t < 0 ? [33, 102, 172] : [178, 24, 43];
  const a = Math.abs(t);
  const mix = (c) => Math.round(255 + (c - 255) * a);
  return `rgb(${mix(r)},${mix(g)},${mix(b)})`;
}

// Size a canvas for `w` x `h` CSS pixels at the screen's resolution; the context draws in CSS px.
function hidpi(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

// Room for the longest label (at most `most` px), and a label cut with "…" to fit `w` px.
function labelWidth(ctx, labels, most) {
  return Math.min(most, Math.ceil(Math.max(...labels.map((t) => ctx.measureText(t).width))) + 10);
}

function clip(ctx, text, w) {
  if (ctx.measureText(text).width <= w) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > w) t = t.slice(0, -1);
  return `${t}…`;
}

// One record as a bar per feature: the bar is the value in standard deviations from the mean
// (the model's scaler: its training rows), the number is the raw value.
export function drawRecord(canvas, values, features, scale, width = 296) {
  const row = 15;
  const ctx = hidpi(canvas, width, features.length * row + 16);
  ctx.clearRect(0, 0, width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  const labelW = labelWidth(ctx, features, 130);
  const valueW = 58;
  const barW = width - labelW - valueW;
  ctx.textBaseline = "middle";
  const mid = labelW + barW / 2;
  features.forEach((f, i) => {
    const y = i * row;
    const z = standard(values, scale, i);
    const len = (Math.max(-Z_MAX, Math.min(Z_MAX, z)) / Z_MAX) * (barW / 2 - 2);
    ctx.fillStyle = zColour(Math.sign(z) * Math.max(Math.abs(z), 1.5)); // short bars stay visible
    ctx.fillRect(Math.min(mid, mid + len), y + 2, Math.abs(len), row - 4);
    ctx.fillStyle = "#3d4a5c";
    ctx.textAlign = "right";
    ctx.fillText(clip(ctx, f, labelW - 8), labelW - 6, y + row / 2);
    ctx.textAlign = "left";
    ctx.fillText(fmt(values[i], 4), labelW + barW + 6, y + row / 2);
  });
  ctx.strokeStyle = "#9aa5b4";
  ctx.beginPath();
  ctx.moveTo(mid + 0.5, 0);
  ctx.lineTo(mid + 0.5, features.length * row);
  ctx.stroke();
  ctx.fillStyle = "#5f6b7a";
  ctx.textAlign = "center";
  const y = features.length * row + 8;
  ctx.fillText(`−${Z_MAX}σ`, labelW + 10, y);
  ctx.fillText("mean", mid, y);
  ctx.fillText(`+${Z_MAX}σ`, labelW + barW - 10, y);
}

// Records side by side as columns of coloured cells, a row per feature (blue below the mean,
// red above): the tabular strip of samples, pins and interpolations.
export function drawHeat(canvas, records, scale, { cell = 24, labels = null, maxHeight = 280 } = {}) {
  const n = scale.mean.length;
  const rowH = Math.max(3, Math.min(14, Math.floor(maxHeight / n)));
  const font = `${Math.min(11, rowH - 1)}px system-ui, sans-serif`;
  const probe = document.createElement("canvas").getContext("2d");
  probe.font = font;
  const labelW = labels && rowH >= 9 ? labelWidth(probe, labels, 130) : 0;
  const ctx = hidpi(canvas, labelW + records.length * cell, n * rowH);
  ctx.font = font;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (let i = 0; i < n; i++) {
    if (labelW) {
      ctx.fillStyle = "#3d4a5c";
      const f = labels[i];
      ctx.fillText(clip(ctx, f, labelW - 8), labelW - 6, i * rowH + rowH / 2);
    }
    records.forEach((values, k) => {
      ctx.fillStyle = zColour(standard(values, scale, i));
      ctx.fillRect(labelW + k * cell, i * rowH, cell - 2, rowH - 1);
    });
  }
}
