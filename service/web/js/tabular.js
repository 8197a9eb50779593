// The tabular playground: one record in a form (prefilled with a normal record of the model's
// reference set, and scored), its score, percentile and per-feature contributions; or a CSV of
// records, scored in batches into a sortable table. The form and the CSV take the model's raw
// columns: for models made by `aeserve fit-csv` (the manifest's `tabular` section) a category is
// picked from its list and a cell may be left empty when the column's policy imputes it; the
// contributions name the encoded features (`amount:missing`, `merchant=grocery`).
import { get, post } from "./api.js";
import { fmt } from "./draw.js";

const $ = (id) => document.getElementById(id);
const BATCH = 256; // records per request
const SVG = "http://www.w3.org/2000/svg";

// RFC 4180-ish: commas, double-quoted fields with "" escapes, CRLF or LF.
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      field = "";
      if (row.some((f) => f.trim() !== "")) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f.trim() !== "")) rows.push(row);
  return rows;
}

export class TabularPage {
  constructor(app) {
    this.app = app;
    this.model = null;
    this.normal = null;
    this.results = [];
    this.sort = { key: "index", dir: 1 };
    this.bind();
  }

  accepts(m) {
    return m.input.kind === "tabular";
  }

  async show(m) {
    if (this.model && this.model.name === m.name) return;
    this.model = m;
    this.columns = null;
    this.results = [];
    this.renderTable();
    for (const id of ["tab-score", "tab-percentile", "tab-threshold", "tab-anomaly"]) {
      $(id).textContent = "–";
      delete $(id).dataset.value;
    }
    $("contributions").replaceChildren();
    $("fields").replaceChildren();
    $("csv-note").textContent = "";
    try {
      const [detail, ref] = await Promise.all([
        get(`models/${encodeURIComponent(m.name)}`),
        m.reference ? get(`${m.reference.replace(/^\//, "")}?codes=false&inputs=true&limit=100`) : null,
      ]);
      if (this.model !== m) return;
      this.columns = columnsOf(m, detail.manifest);
      this.form();
      this.normal = normalRecord(m, this.columns, detail.manifest, ref);
      this.fill(this.normal);
      await this.scoreOne(); // the prefilled record's score: the page shows what it does at once
      if (this.model === m) $("tabular-form").dataset.ready = m.name;
    } catch (err) {
      this.app.fail(err);
    }
  }

  // A field per column: a number, or a category from the model's list; "(missing)" where the
  // column's policy imputes a missing value.
  form() {
    const cols = this.columns;
    $("fields").replaceChildren(
      ...cols.flatMap((c) => {
        const label = document.createElement("label");
        label.textContent = c.name;
        label.htmlFor = `feature-${c.name}`;
        let input;
        if (c.kind === "categorical") {
          input = document.createElement("select");
          const options = c.categories.map((v) => new Option(v, v));
          if (c.missing === "impute") options.push(new Option("(missing)", ""));
          input.replaceChildren(...options);
        } else {
          input = document.createElement("input");
          input.type = "number";
          input.step = "any";
          input.required = c.missing !== "impute";
          if (!input.required) input.placeholder = "missing";
        }
        input.id = `feature-${c.name}`;
        input.name = c.name;
        return [label, input];
      }),
    );
    $("csv-text").placeholder = `id,${cols.map((c) => c.name).join(",")}\n…`;
  }

  fill(record) {
    for (const c of this.columns) {
      const v = record[c.name];
      const input = $(`feature-${c.name}`);
      if (v === null || v === undefined) input.value = "";
      else input.value = typeof v === "number" ? String(Number(v.toPrecision(6))) : v;
    }
  }

  bind() {
    $("tabular-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.scoreOne().catch((err) => this.app.fail(err));
    });
    $("reset-record").addEventListener("click", () => {
      if (!this.normal) return;
      this.fill(this.normal);
      this.scoreOne().catch((err) => this.app.fail(err));
    });
    $("csv-file").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      if (!file) return;
      $("csv-text").value = await file.text();
      e.target.value = "";
      this.scoreCsv().catch((err) => this.app.fail(err));
    });
    $("csv-score").addEventListener("click", () => this.scoreCsv().catch((err) => this.app.fail(err)));
    $("results-table").querySelector("thead").addEventListener("click", (e) => {
      const key = e.target.dataset && e.target.dataset.key;
      if (!key) return;
      this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : key === "score" ? -1 : 1 };
      this.renderTable();
    });
  }

  async scoreOne() {
    const m = this.model;
    const record = {};
    for (const c of this.columns) {
      const v = $(`feature-${c.name}`).value.trim();
      record[c.name] = v === "" ? null : c.kind === "categorical" ? v : Number(v);
    }
    const out = await post("anomaly-score", {
      model: m.name,
      records: [record],
      top_features: m.input.features.length,
    });
    const r = out.results[0];
    $("tab-score").textContent = fmt(r.score);
    $("tab-score").dataset.value = r.score;
    $("tab-percentile").textContent = `${r.percentile.toFixed(1)}%`;
    $("tab-threshold").textContent = fmt(r.threshold);
    $("tab-anomaly").textContent = r.is_anomaly ? "anomaly" : "normal";
    $("tab-anomaly").className = r.is_anomaly ? "flag-bad" : "flag-good";
    this.chart(r.contributions, r.score);
    this.app.status("");
  }

  // One bar per feature, largest first: its part of the score (they add up to the score).
  chart(contributions, score) {
    const svg = $("contributions");
    const row = 18;
    const labelW = 12 + 7 * Math.max(...contributions.map((c) => c.feature.length));
    const width = 600;
    const barW = width - labelW - 230; // room for the figures after the longest bar
    const max = Math.max(...contributions.map((c) => c.contribution), 1e-12);
    svg.setAttribute("height", contributions.length * row + 6);
    svg.setAttribute("width", width);
    const el = (name, attrs, text) => {
      const e = document.createElementNS(SVG, name);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      return e;
    };
    svg.replaceChildren(
      ...contributions.flatMap((c, i) => {
        const y = i * row + 3;
        const w = Math.max(1, (c.contribution / max) * barW);
        const share = score > 0 ? (100 * c.contribution) / score : 0;
        return [
          el("text", { x: labelW - 6, y: y + 12, "text-anchor": "end", "font-size": 12 }, c.feature),
          el("rect", {
            x: labelW,
            y,
            width: w,
            height: row - 5,
            fill: share >= 20 ? "#d62728" : "#1f77b4",
            "data-feature": c.feature,
            "data-value": c.contribution,
          }),
          el(
            "text",
            { x: labelW + w + 6, y: y + 12, "font-size": 11, fill: "#5f6b7a" },
            `${fmt(c.contribution, 3)} (${share.toFixed(0)}%) · ${fmt(c.value, 4)} vs ${fmt(c.reconstruction, 4)}`,
          ),
        ];
      }),
    );
  }

  async scoreCsv() {
    const m = this.model;
    const rows = parseCsv($("csv-text").value);
    if (rows.length < 2) throw new Error("the CSV needs a header row and at least one record");
    const header = rows[0].map((h) => h.trim());
    const names = this.columns.map((c) => c.name);
    const missing = names.filter((f) => !header.includes(f));
    if (missing.length) throw new Error(`the CSV has no column for ${missing.join(", ")}`);
    const col = Object.fromEntries(header.map((h, i) => [h, i]));
    const idCol = header.indexOf("id");
    const ignored = header.filter((h) => h !== "id" && !names.includes(h));
    const records = rows.slice(1).map((r, n) => {
      const rec = {};
      for (const c of this.columns) {
        const cell = (r[col[c.name]] ?? "").trim();
        if (c.kind === "categorical") {
          rec[c.name] = cell === "" ? null : cell; // the service knows the missing-value words
          continue;
        }
        const v = Number(cell);
        if (cell === "" && c.missing === "impute") rec[c.name] = null;
        else if (cell !== "" && Number.isFinite(v)) rec[c.name] = v;
        else if (c.missing === "impute") rec[c.name] = cell; // "NA", "?": the service decides
        else throw new Error(`row ${n + 1}: '${c.name}' is not a number (${JSON.stringify(cell)})`);
      }
      if (idCol >= 0) rec.id = r[idCol];
      return rec;
    });
    this.results = [];
    for (let i = 0; i < records.length; i += BATCH) {
      const out = await post("anomaly-score", { model: m.name, records: records.slice(i, i + BATCH), top_features: 3 });
      out.results.forEach((r, k) => this.results.push({ index: i + k + 1, ...r }));
    }
    const flagged = this.results.filter((r) => r.is_anomaly).length;
    $("csv-note").textContent =
      `${records.length} records, ${flagged} flagged` + (ignored.length ? `; ignored column(s): ${ignored.join(", ")}` : "");
    this.renderTable();
    this.app.status("");
  }

  renderTable() {
    const table = $("results-table");
    const cols = [
      ["index", "#"],
      ["id", "id"],
      ["score", "score"],
      ["percentile", "percentile"],
      ["is_anomaly", "verdict"],
      ["top", "top features"],
    ];
    const head = document.createElement("tr");
    for (const [key, title] of cols) {
      const th = document.createElement("th");
      th.textContent = title;
      th.dataset.key = key;
      if (this.sort.key === key) th.setAttribute("aria-sort", this.sort.dir > 0 ? "ascending" : "descending");
      head.append(th);
    }
    table.querySelector("thead").replaceChildren(...(this.results.length ? [head] : []));
    const { key, dir } = this.sort;
    const value = (r) => (key === "top" ? r.contributions[0]?.feature ?? "" : r[key] ?? "");
    const sorted = [...this.results].sort((a, b) => {
      const x = value(a);
      const y = value(b);
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true })) * dir;
    });
    table.querySelector("tbody").replaceChildren(
      ...sorted.map((r) => {
        const tr = document.createElement("tr");
        if (r.is_anomaly) tr.className = "anomaly";
        const cells = [
          r.index,
          r.id ?? "",
          fmt(r.score),
          `${r.percentile.toFixed(1)}%`,
          r.is_anomaly ? "anomaly" : "normal",
          r.contributions.map((c) => `${c.feature} ${(100 * c.share).toFixed(0)}%`).join(", "),
        ];
        for (const c of cells) {
          const td = document.createElement("td");
          td.textContent = String(c);
          tr.append(td);
        }
        return tr;
      }),
    );
  }
}

// The columns a record has: the manifest's `tabular` columns (models made by `aeserve fit-csv`),
// else one numeric column per feature.
function columnsOf(m, manifest) {
  if (manifest.tabular && manifest.tabular.columns) return manifest.tabular.columns;
  return m.input.features.map((name) => ({ name, kind: "numeric", categories: null, missing: "refuse" }));
}

// A normal record of the model as raw column values: the first normal item of the reference set
// (its encoded features turned back into columns), else the training mean.
function normalRecord(m, columns, manifest, ref) {
  let row = null;
  if (ref && ref.inputs) {
    const i = ref.labels.findIndex((l) => ref.label_names[l] === "normal" || ref.label_names[l] === "item");
    if (i >= 0) row = ref.inputs[i];
  }
  if (!row) row = manifest.input.scaler ? manifest.input.scaler.mean : m.input.features.map(() => 0);
  const at = Object.fromEntries(m.input.features.map((f, i) => [f, row[i]]));
  const record = {};
  for (const c of columns) {
    if (c.kind === "categorical") {
      // The category whose one-hot feature is largest; none lit: missing.
      let best = null;
      let most = 0.5;
      for (const v of c.categories) {
        const x = at[`${c.name}=${v}`] ?? 0;
        if (x > most) [best, most] = [v, x];
      }
      record[c.name] = best ?? (c.missing === "impute" ? null : c.categories[0]);
    } else if ((at[`${c.name}:missing`] ?? 0) >= 0.5) {
      record[c.name] = null;
    } else {
      record[c.name] = at[c.name];
    }
  }
  return record;
}
