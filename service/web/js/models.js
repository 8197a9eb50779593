// The models page: every loaded model, what it can do, its metrics and its card (HTML).
import { blobUrl, getText } from "./api.js";
import { fmt } from "./draw.js";

const PLAYGROUNDS = {
  image: (m) => m.input.kind === "image",
  latent: (m) => Boolean(m.reference) && (m.input.kind === "image" || m.input.kind === "tabular"),
  tabular: (m) => m.input.kind === "tabular",
};
const TITLES = { image: "image playground", latent: "latent explorer", tabular: "tabular playground" };

export class ModelsPage {
  constructor(app) {
    this.app = app;
    this.list = document.getElementById("model-list");
    this.drawn = false;
  }

  show() {
    if (this.drawn) return;
    this.drawn = true;
    const items = this.app.models.map((m) => this.model(m));
    for (const f of this.app.failed || []) {
      const div = document.createElement("div");
      div.className = "model failed";
      div.textContent = `${f.name}: refused at load: ${f.reason}`;
      items.push(div);
    }
    this.list.replaceChildren(...items);
  }

  model(m) {
    const el = document.createElement("section");
    el.className = "model";
    el.dataset.model = m.name;
    const shape = m.input.kind === "image" ? m.input.shape.join("×") : `${m.input.shape[0]} features`;
    const links = Object.entries(PLAYGROUNDS)
      .filter(([, ok]) => ok(m))
      .map(([page]) => `<a class="badge" href="#${page}/${encodeURIComponent(m.name)}">${TITLES[page]}</a>`)
      .join("");
    el.innerHTML = `
      <h2></h2><div class="desc"></div>
      <div class="facts">
        <span>${m.family.toUpperCase()}</span><span>${m.input.kind} ${shape}</span>
        <span>${m.latent_dim}-D latent (${m.prior})</span><span>version ${m.version}</span>
        <span>score: ${m.score.kind}, threshold ${fmt(m.score.threshold)} (${m.score.threshold_rule || ""})</span>
      </div>
      <div>${m.endpoints.map((e) => `<span class="badge">${e}</span>`).join("")} ${links}</div>
      <details class="metrics-box"><summary>metrics</summary><table class="metrics"><tbody></tbody></table></details>
      <details class="card-box"><summary>model card</summary><div class="card-body muted">loading…</div></details>`;
    el.querySelector("h2").textContent = m.name;
    el.querySelector(".desc").textContent = m.description || "";
    const rows = Object.entries(m.metrics).map(([k, v]) => {
      const tr = document.createElement("tr");
      const target = v.target !== null && v.target !== undefined ? ` (target ${v.target})` : "";
      tr.innerHTML = "<td></td><td></td><td class='muted'></td>";
      tr.children[0].textContent = k;
      tr.children[1].textContent = typeof v.value === "number" ? fmt(v.value) + target : String(v.value);
      tr.children[2].textContent = v.split || "";
      return tr;
    });
    el.querySelector(".metrics tbody").replaceChildren(...rows);
    const card = el.querySelector(".card-box");
    if (!m.card) {
      card.querySelector(".card-body").textContent = "no card";
    } else {
      card.addEventListener("toggle", () => this.card(m, card), { once: true });
    }
    return el;
  }

  async card(m, box) {
    const body = box.querySelector(".card-body");
    try {
      const page = await getText(`${m.card.replace(/^\//, "")}?format=html`, "text/html");
      const doc = new DOMParser().parseFromString(page, "text/html");
      const article = doc.querySelector("article");
      // The plots are fetched with the API key and shown from blob: URLs; the card's own
      // src (a path of this service) would be asked for without the key.
      const images = [...article.querySelectorAll("img")].filter((img) => {
        const src = img.getAttribute("src") || "";
        return src.startsWith("/") && !src.startsWith("//");
      });
      for (const img of images) {
        img.dataset.src = img.getAttribute("src");
        img.removeAttribute("src");
      }
      body.className = "card-body card";
      body.replaceChildren(...article.childNodes);
      await Promise.all(
        images.map(async (img) => {
          try {
            img.src = await blobUrl(img.dataset.src); // absolute: the card page carries the prefix
          } catch (err) {
            img.alt = `${img.alt || "plot"}: ${err.message}`;
          }
        }),
      );
    } catch (err) {
      body.textContent = err.message;
    }
  }
}
