// Talking to the service: JSON in and out, the API key as a Bearer token, problem+json errors
// turned into Error messages a person can act on. Same origin only.
const KEY = "aeserve.apiKey";

export function apiKey() {
  return window.localStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) window.localStorage.setItem(KEY, value);
  else window.localStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const h = { accept: "application/json", ...extra };
  const key = apiKey();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

export class ApiError extends Error {
  constructor(status, detail) {
    let hint = "";
    if (status === 401) hint = apiKey() ? " (the key in the API key field is refused)" : " (type the key into the API key field, top right)";
    if (status === 403) hint = " (the key in the API key field lacks the scope)";
    super(`${detail}${hint}`);
    this.status = status;
  }
}

async function check(r) {
  if (r.ok) return r;
  let detail = `${r.status} ${r.statusText}`;
  try {
    const body = await r.json();
    if (body.detail) detail = `${r.status}: ${body.detail}`;
  } catch {
    /* not JSON: keep the status line */
  }
  throw new ApiError(r.status, detail);
}

// A GET that failed before any answer (the browser dropped it, e.g. net::ERR_NETWORK_CHANGED
// when the machine's interfaces change) is sent again, twice at most: GETs change nothing.
async function fetchGet(path, init) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(path, init);
    } catch (err) {
      if (attempt >= 2 || !(err instanceof TypeError)) throw err;
      await new Promise((done) => setTimeout(done, 100 * (attempt + 1)));
    }
  }
}

export async function get(path) {
  const r = await check(await fetchGet(path, { headers: headers() }));
  return r.json();
}

export async function getText(path, accept) {
  const r = await check(await fetchGet(path, { headers: headers({ accept }) }));
  return r.text();
}

// A file of the service (a card's plot) as a blob: URL, fetched with the key (an <img src>
// cannot send one, so with keys on the plots would be refused).
export async function blobUrl(path) {
  const r = await check(await fetchGet(path, { headers: headers({ accept: "*/*" }) }));
  return URL.createObjectURL(await r.blob());
}

export async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: headers({ "content-type": "application/json" }),
    body: JSON.stringify(body),
  });
  return (await check(r)).json();
}
