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
