// The web app: one page per hash (#models, #image, #latent, #tabular), one shared model select.
import { apiKey, get, setApiKey } from "./api.js";
import { ImagePage } from "./image.js";
import { LatentPage } from "./latent.js";
import { ModelsPage } from "./models.js";
import { TabularPage } from "./tabular.js";

const $ = (id) => document.getElementById(id);

export const app = {
  models: [], // GET /models: the summaries
  status(message) {
    $("status").textContent = message || "";
  },
  fail(err) {
    console.warn(err); // a warning, not an error: a refused input is not a bug of the page
    app.status(err.message || String(err));
  },
};

const pages = {};

function route() {
  const [name, model] = (window.location.hash.slice(1) || "models").split("/");
  const page = pages[name] ? name : "models";
  document.querySelectorAll(".page").forEach((s) => (s.hidden = s.id !== `page-${page}`));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const p = pages[page];
  const toolbar = $("toolbar");
  const select = $("model-select");
  app.status("");
  if (!p.accepts) {
    toolbar.hidden = true;
    p.show();
    return;
  }
  const fitting = app.models.filter((m) => p.accepts(m));
  toolbar.hidden = false;
  select.replaceChildren(
    ...fitting.map((m) => new Option(`${m.name} — ${m.description || m.family}`, m.name)),
  );
  if (!fitting.length) {
    $("model-info").textContent = "no loaded model fits this page";
    return;
  }
  const chosen = fitting.find((m) => m.name === model) || fitting[0];
  select.value = chosen.name;
  $("model-info").textContent = describe(chosen);
  p.show(chosen);
}

function describe(m) {
  const shape = m.input.kind === "image" ? m.input.shape.join("x") : `${m.input.shape[0]} features`;
  return `${m.family.toUpperCase()} · ${m.input.kind} ${shape} · ${m.latent_dim}-D latent · v${m.version}`;
}

async function start() {
  const key = $("api-key");
  key.value = apiKey();
  key.addEventListener("change", () => {
    setApiKey(key.value.trim());
    load();
  });
  $("model-select").addEventListener("change", (e) => {
    const page = (window.location.hash.slice(1) || "models").split("/")[0];
    window.location.hash = `${page}/${e.target.value}`;
  });
  pages.models = new ModelsPage(app);
  pages.image = new ImagePage(app);
  pages.latent = new LatentPage(app);
  pages.tabular = new TabularPage(app);
  window.aeserve = { app, pages }; // for a person's console (and tests' debugging)
  window.addEventListener("hashchange", route);
  await load();
}

async function load() {
  try {
    const listing = await get("models");
    app.models = listing.models;
    app.failed = listing.failed;
    route();
    document.body.dataset.ready = "true"; // tests wait for this
  } catch (err) {
    app.fail(err);
    if (err.status === 503) setTimeout(load, 1000); // models still loading
  }
}

start();
