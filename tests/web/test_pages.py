"""The web app in Debian's chromium, against a live server over the shipped zoo.

Every page must load with no console error and no request to another origin (each is aborted
and recorded by the guard). Timings are printed (``pytest -s``) and reported in the README.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page

from tests.live_server import REPO
from tests.web.browser import Guard, guarded_page

EXAMPLES = REPO / "examples"

# Each page of the app and what marks it interactive (its data is drawn and it takes input).
PAGES = {
    "models": "[data-testid=model-list] section.model",
    "image/mnist": "body[data-ready=true] [data-testid=input-canvas]",
    "latent/font": "[data-testid=latent-map][data-ready=font]",
    "tabular/shuttle": "[data-testid=tabular-form][data-ready=shuttle]",
}
# The 1 s target on loopback is measured by `make bench-web` (bench/web.py), a benchmark: the
# rules keep speed out of the tests (a shared machine's load made a 3 s bound flake here).
INTERACTIVE_S = 1.0


@contextmanager
def app_page(chromium: Browser, server: str, hash_: str) -> Iterator[tuple[Page, Guard]]:
    with guarded_page(chromium, server) as (page, guard):
        page.goto(f"{server}/#{hash_}")
        page.wait_for_selector(PAGES.get(hash_, "body[data-ready=true]"), state="attached")
        yield page, guard
        guard.check()


def canvas_png(page: Page, testid: str) -> str:
    return str(
        page.evaluate(
            "id => document.querySelector(`[data-testid=${id}]`).toDataURL()",
            testid,
        )
    )


def test_every_page_loads_offline_and_its_time_is_reported(chromium: Browser, server: str) -> None:
    timings = {}
    for hash_, ready in PAGES.items():
        with guarded_page(chromium, server) as (page, guard):
            page.goto(f"{server}/#{hash_}")
            page.wait_for_selector(ready, state="attached")
            # performance.now() counts from the navigation's start.
            timings[hash_] = page.evaluate("performance.now()") / 1000
            page.wait_for_load_state("networkidle")
            guard.check()
    print("\npage interactive (s):", {k: round(v, 3) for k, v in timings.items()})
    over = {k: round(v, 3) for k, v in timings.items() if v > INTERACTIVE_S}
    if over:
        print(f"over the {INTERACTIVE_S} s target on this run: {over}")


def test_the_guard_catches_requests_to_other_origins(chromium: Browser, server: str) -> None:
    """The check every other test relies on: such a request is aborted (never sent) and
    recorded. (Another loopback origin: were the guard broken, nothing would leave the machine.)"""
    with guarded_page(chromium, server) as (page, guard):
        page.goto(f"{server}/#models")
        page.evaluate("() => fetch('http://127.0.0.2:19999/x').catch(() => null)")
        assert guard.foreign == ["http://127.0.0.2:19999/x"]
        with pytest.raises(AssertionError, match="other origins"):
            guard.check()


def test_models_page_shows_cards_with_their_plots(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "models") as (page, _):
        font = page.locator("section.model[data-model=font]")
        font.locator("details.card-box summary").click()
        img = font.locator(".card img").first
        img.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('section.model[data-model=font] .card img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        assert font.locator(".card h2").count() >= 3
        shipped = len(list((REPO / "models").glob("*/model.json")))
        assert page.locator("section.model").count() == shipped == 14


def test_card_page_is_html_with_images_that_load(chromium: Browser, server: str) -> None:
    with guarded_page(chromium, server) as (page, guard):
        page.goto(f"{server}/models/fashion-2d/card")
        page.wait_for_load_state("networkidle")
        sizes = page.eval_on_selector_all("article img", "els => els.map(e => e.naturalWidth)")
        assert sizes and all(w > 0 for w in sizes), sizes
        guard.check()


def draw_stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """A pen stroke over the input canvas; points in fractions of its width and height."""
    box = page.get_by_test_id("input-canvas").bounding_box()
    assert box is not None
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


@pytest.mark.parametrize("model", ["mnist", "font"])
def test_drawing_shows_a_reconstruction_and_a_score(
    chromium: Browser, server: str, model: str
) -> None:
    with app_page(chromium, server, f"image/{model}") as (page, _):
        img = page.locator("#page-image")
        blank = canvas_png(page, "reconstruction")
        # A "7": a bar and a diagonal (on the font's grid it lights a few cells).
        draw_stroke(page, [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)])
        page.wait_for_function("() => document.querySelector('#score').dataset.value !== undefined")
        score = float(img.get_by_test_id("score").get_attribute("data-value") or "nan")
        assert score >= 0
        assert img.get_by_test_id("percentile").inner_text().endswith("%")
        assert img.get_by_test_id("anomaly").inner_text() in ("normal", "anomaly")
        assert canvas_png(page, "reconstruction") != blank


def test_an_uploaded_digit_is_scored_as_a_normal_digit(chromium: Browser, server: str) -> None:
    """Uploads go to the service as a data URL (``images``), as a browser has them."""
    with app_page(chromium, server, "image/mnist") as (page, _):
        with page.expect_request(lambda r: "images" in (r.post_data or "")) as sent:
            page.get_by_test_id("image-file").set_input_files(EXAMPLES / "digit-7.png")
        assert "data:image/png;base64," in (sent.value.post_data or "")
        page.wait_for_function("() => document.querySelector('#score').dataset.value")
        assert page.locator("#anomaly").inner_text() == "normal"


def test_the_denoiser_slider_corrupts_and_cleans(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "image/font-denoise") as (page, _):
        page.locator("#random-input").click()
        page.wait_for_function(
            "() => Number(document.querySelector('#input-canvas').dataset.updates) >= 1"
        )
        noisy = canvas_png(page, "noisy")
        page.get_by_test_id("noise-slider").fill("40")
        page.wait_for_function(
            "n => document.querySelector('[data-testid=noisy]').toDataURL() !== n", arg=noisy
        )
        assert page.locator("#output-title").inner_text() == "Denoised"


def test_the_decoded_image_follows_the_pointer(chromium: Browser, server: str) -> None:
    """Move over the font's latent map: the decoded glyph changes; measure updates per second."""
    with app_page(chromium, server, "latent/font") as (page, _):
        box = page.get_by_test_id("latent-map").bounding_box()
        assert box is not None
        decoded = page.get_by_test_id("decoded")

        def updates() -> int:
            return int(decoded.get_attribute("data-updates") or 0)

        def hover(fx: float, fy: float) -> str:
            before = updates()
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_function(
                "n => Number(document.querySelector('[data-testid=decoded]').dataset.updates) > n",
                arg=before,
            )
            return canvas_png(page, "decoded")

        # Two far-apart places of the plane decode to different glyphs.
        assert hover(0.15, 0.2) != hover(0.85, 0.8)
        # The pointer sweeping the map for 2 s, one move per animation frame as a mouse gives
        # them (~60/s): how many decoded images the page drew per second.
        rate, moves = page.evaluate(SWEEP, 2000)
        print(f"\nlatent map (font): {rate:.1f} decoded images/s ({moves:.0f} pointer moves/s)")
        assert rate >= 10, f"{rate:.1f} decoded images per second (target 20)"


SWEEP = """async (ms) => {
  const map = document.querySelector('[data-testid=latent-map]');
  const dec = document.querySelector('[data-testid=decoded]');
  const r = map.getBoundingClientRect();
  const start = Number(dec.dataset.updates);
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
  // Let the request in flight land, then count.
  await new Promise((done) => setTimeout(done, 300));
  const s = (performance.now() - t0 - 300) / 1000;
  return [(Number(dec.dataset.updates) - start) / s, k / s];
}"""


def test_pins_give_an_interpolation(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "latent/font-vae") as (page, _):
        before = canvas_png(page, "interpolation")
        m = page.get_by_test_id("latent-map")
        m.click(position={"x": 100, "y": 120})
        m.click(position={"x": 430, "y": 400})
        page.wait_for_function(
            "b => document.querySelector('[data-testid=interpolation]').toDataURL() !== b",
            arg=before,
        )
        assert page.locator("#pins canvas").count() == 2


def test_the_same_seed_samples_the_same_images(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "latent/font-vae") as (page, _):

        def sample(seed: int) -> str:
            page.get_by_test_id("seed-input").fill(str(seed))
            with page.expect_response(lambda r: r.url.endswith("/sample")):
                page.get_by_test_id("sample-button").click()
            page.wait_for_function(
                "s => document.querySelector('[data-testid=samples]').dataset.seed === String(s)",
                arg=seed,
            )
            return canvas_png(page, "samples")

        first = sample(7)
        other = sample(8)
        again = sample(7)
        assert first == again
        assert first != other


def test_tabular_contributions_sum_to_the_score(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "tabular/shuttle") as (page, _):
        tab = page.locator("#page-tabular")
        page.locator("#feature-f1").fill("80")  # far from normal traffic
        with page.expect_response(lambda r: r.url.endswith("/anomaly-score")):
            tab.get_by_test_id("tabular-submit").click()
        page.wait_for_function("() => document.querySelector('#tab-score').dataset.value")
        score = float(tab.get_by_test_id("score").get_attribute("data-value") or "nan")
        bars = tab.get_by_test_id("contributions").locator("rect")
        assert bars.count() == 9
        parts = [float(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.value)")]
        assert sum(parts) == pytest.approx(score, rel=1e-6)
        assert tab.get_by_test_id("anomaly").inner_text() == "anomaly"


def test_a_csv_upload_gives_one_row_per_record(chromium: Browser, server: str) -> None:
    path = EXAMPLES / "shuttle.csv"
    with path.open() as f:
        records = list(csv.DictReader(f))
    with app_page(chromium, server, "tabular/shuttle") as (page, _):
        page.get_by_test_id("csv-input").set_input_files(path)
        rows = page.get_by_test_id("results-table").locator("tbody tr")
        rows.first.wait_for()
        assert rows.count() == len(records)
        ids = rows.evaluate_all("rs => rs.map(r => r.children[1].textContent)")
        assert ids == [r["id"] for r in records]  # in file order, ids kept
        # A click on "score" sorts largest first.
        page.locator("#results-table th[data-key=score]").click()
        scores = rows.evaluate_all("rs => rs.map(r => parseFloat(r.children[2].textContent))")
        assert scores == sorted(scores, reverse=True) and len(scores) == len(records)


def test_swagger_ui_works_offline_and_try_it_out_answers(chromium: Browser, server: str) -> None:
    with guarded_page(chromium, server) as (page, guard):
        page.goto(f"{server}/docs")
        op = page.locator("#operations-inference-reconstruct_reconstruct_post")
        op.locator(".opblock-summary").click()
        op.get_by_role("button", name="Try it out").click()
        with page.expect_response(lambda r: r.url.endswith("/reconstruct")) as answer:
            op.get_by_role("button", name="Execute").click()
        assert answer.value.status == 200
        status = op.locator(".live-responses-table tr.response .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip().startswith("200")
        guard.check()


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        ("/docs", "#operations-inference-reconstruct_reconstruct_post"),
        ("/redoc", "[data-section-id^='operation/']"),
    ],
)
def test_docs_pages_fetch_the_document_once_by_their_preload(
    chromium: Browser, server: str, path: str, drawn: str
) -> None:
    """The page's <link rel=preload> fetches openapi.json while the bundle loads; the bundle's
    own fetch must take that answer (a mismatch would send it twice)."""
    with guarded_page(chromium, server) as (page, guard):
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if "openapi.json" in r.url else None)
        page.goto(f"{server}{path}")
        page.wait_for_selector(drawn, state="attached")
        page.wait_for_load_state("networkidle")
        how = page.evaluate(
            "() => performance.getEntriesByType('resource')"
            ".filter(e => e.name.endsWith('/openapi.json')).map(e => e.initiatorType)"
        )
        assert sent == [f"{server}/openapi.json"] and how == ["link"], (sent, how)
        guard.check()


def test_redoc_renders_offline(chromium: Browser, server: str) -> None:
    with guarded_page(chromium, server) as (page, guard):
        page.goto(f"{server}/redoc")
        page.get_by_text("/reconstruct", exact=False).first.wait_for(state="attached")
        page.wait_for_load_state("networkidle")
        guard.check()
