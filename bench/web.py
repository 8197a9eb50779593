"""``make bench-web`` (``python -m bench.web [--runs N] [--port P]``): how fast each page of
the web app is interactive, and how fast the latent map's decoded image follows the pointer (a
benchmark, not a test: the numbers depend on the machine and its load, printed with them).

Serves the shipped zoo (``models/``) on a loopback port and drives Debian's chromium with
Playwright. Each page is loaded ``--runs`` times, each in a fresh browser context (nothing
cached). **Interactive** is the moment, in ``performance.now()`` from the navigation's start,
when the page's data is drawn and it takes input: the marker each page sets then (the same ones
``tests/web`` waits for), seen by a ``MutationObserver`` installed before the page's own scripts,
so the figure carries no Playwright round trip. The navigation timing of the HTML document
(``responseEnd``) and ``DOMContentLoaded`` are given beside it. Then the pointer sweeps the
font model's map once per animation frame for a few seconds and the decoded images drawn per
second are counted (the issue's target: 20 per second; interactive: 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from tests.live_server import REPO, free_port_in, live_server
from tests.web.browser import browser, guarded_page
from tests.web.conftest import PORTS

# Each page and the marker that says it is interactive.
PAGES = {
    "#models": "[data-testid=model-list] section.model",
    "#image/mnist": "body[data-ready=true]",
    "#image/font": "body[data-ready=true]",
    "#image/font-denoise": "body[data-ready=true]",
    "#latent/font": "[data-testid=latent-map][data-ready=font]",
    "#latent/fashion-2d": "[data-testid=latent-map][data-ready=fashion-2d]",
    "#latent/mnist": "[data-testid=latent-map][data-ready=mnist]",
    "#latent/shuttle": "[data-testid=latent-map][data-ready=shuttle]",
    "#tabular/shuttle": "[data-testid=tabular-form][data-ready=shuttle]",
    "/docs": "#operations-inference-reconstruct_reconstruct_post",
    "/redoc": "[data-section-id^='operation/']",
    "/models/fashion-2d/card": "article.card img",
}

# Installed before any script of the page: notes the time the marker first matches.
WATCH = """(selector) => {
  const look = () => {
    if (window.__readyAt === undefined && document.querySelector(selector)) {
      window.__readyAt = performance.now();
    }
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true, attributes: true});
  document.addEventListener('DOMContentLoaded', look);
}"""

SWEEP = """async (ms) => {
  const map = document.querySelector('[data-testid=latent-map]');
  const dec = document.querySelector('[data-testid=decoded]');
  const r = map.getBoundingClientRect();
  const start = Number(dec.dataset.updates || 0);
  const t0 = performance.now();
  let k = 0;
  await new Promise((done) => {
    const step = () => {
      if (performance.now() - t0 > ms) return done();
      const fx = 0.1 + 0.8 * ((k++ % 120) / 120);
      map.dispatchEvent(new PointerEvent('pointermove', {
        clientX: r.left + fx * r.width, clientY: r.top + 0.5 * r.height, bubbles: true,
      }));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  await new Promise((done) => setTimeout(done, 300));
  const s = (performance.now() - t0 - 300) / 1000;
  return [(Number(dec.dataset.updates) - start) / s, k / s];
}"""


def target(url: str, page: str) -> str:
    return f"{url}/{page}" if page.startswith("#") else url + page


def measure(url: str, runs: int, sweep_s: float, only: list[str] | None) -> dict[str, Any]:
    pages: dict[str, Any] = {}
    with browser() as b:
        for page_name, marker in PAGES.items():
            if only and page_name not in only:
                continue
            rows = []
            for _ in range(runs):
                with guarded_page(b, url) as (page, guard):
                    page.add_init_script(f"({WATCH})({json.dumps(marker)})")
                    page.goto(target(url, page_name))
                    page.wait_for_selector(marker, state="attached", timeout=20_000)
                    page.wait_for_function("() => window.__readyAt !== undefined")
                    nav = page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return [n.responseEnd, n.domContentLoadedEventEnd, window.__readyAt]; }"
                    )
                    guard.check()
                rows.append([round(v / 1000, 4) for v in nav])
            ready = [r[2] for r in rows]
            pages[page_name] = {
                "interactive_s": {
                    "median": statistics.median(ready),
                    "min": min(ready),
                    "max": max(ready),
                },
                "html_response_end_s": statistics.median(r[0] for r in rows),
                "dom_content_loaded_s": statistics.median(r[1] for r in rows),
                "runs": rows,
            }
            got = pages[page_name]
            print(
                f"{page_name:28} interactive median {got['interactive_s']['median']:.3f} s "
                f"(min {min(ready):.3f}, max {max(ready):.3f}); "
                f"html {got['html_response_end_s']:.3f} s, "
                f"DOMContentLoaded {got['dom_content_loaded_s']:.3f} s",
                flush=True,
            )
        with guarded_page(b, url) as (page, guard):
            page.goto(f"{url}/#latent/font")
            page.wait_for_selector("[data-testid=latent-map][data-ready=font]", state="attached")
            rate, moves = page.evaluate(SWEEP, int(sweep_s * 1000))
            guard.check()
    print(f"latent map (font): {rate:.1f} decoded images/s ({moves:.1f} pointer moves/s)")
    return {"pages": pages, "decoded_per_s": rate, "pointer_moves_per_s": moves}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="loads of each page (default 5)")
    parser.add_argument("--port", type=int, default=None, help="loopback port of the server")
    parser.add_argument("--sweep-s", type=float, default=3.0, help="seconds of pointer sweep")
    parser.add_argument("--pages", nargs="*", default=None, help="only these pages (keys of PAGES)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    port = args.port or free_port_in(*PORTS)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    with live_server(REPO / "models", port=port) as url:
        result = measure(url, args.runs, args.sweep_s, args.pages)
    after = os.getloadavg()
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    result["load_before"] = load
    result["load_after"] = after
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
