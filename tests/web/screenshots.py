"""The README's screenshots of the web app: ``make screenshots`` (writes docs/web/*.png).

Starts the service over the shipped zoo on a loopback port, drives Debian's chromium through a
short session on each page (as a person would use it), and saves what the browser shows.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from tests.live_server import REPO, free_port_in, live_server
from tests.web.browser import browser, guarded_page
from tests.web.conftest import PORTS

OUT = REPO / "docs" / "web"


def at(page: Page, testid: str, fx: float, fy: float) -> tuple[float, float]:
    box = page.get_by_test_id(testid).bounding_box()
    assert box is not None
    return box["x"] + fx * box["width"], box["y"] + fy * box["height"]


def stroke(page: Page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*at(page, "input-canvas", *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(page, "input-canvas", *p), steps=12)
    page.mouse.up()


def settle(page: Page) -> None:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(400)


def shoot(page: Page, name: str) -> Path:
    path = OUT / f"{name}.png"
    page.screenshot(path=path)
    print(path.relative_to(REPO))
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        live_server(REPO / "models", port=free_port_in(*PORTS)) as url,
        browser() as b,
        guarded_page(b, url, width=1280, height=900) as (page, guard),
    ):
        page.goto(f"{url}/#models")
        page.wait_for_selector("section.model")
        page.locator("section.model[data-model=breast-cancer] details.metrics-box summary").click()
        settle(page)
        shoot(page, "models")

        page.goto(f"{url}/models/fashion-2d/card")
        page.locator("h3", has_text="Latent map").first.evaluate(
            "h => { h.scrollIntoView({block: 'start'}); window.scrollBy(0, -12); }"
        )
        settle(page)
        shoot(page, "card-fashion-2d")

        page.goto(f"{url}/#image/mnist")
        page.wait_for_selector("body[data-ready=true]")
        stroke(page, [(0.3, 0.25), (0.72, 0.25), (0.5, 0.8)])
        page.wait_for_function("() => document.querySelector('#score').dataset.value")
        settle(page)
        shoot(page, "image-mnist")

        page.goto(f"{url}/#image/font-denoise")
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_test_id("image-file").set_input_files(REPO / "examples" / "glyph-e.png")
        page.get_by_test_id("noise-slider").fill("10")
        page.wait_for_function("() => document.querySelector('#score').dataset.value")
        settle(page)
        shoot(page, "image-denoise")

        page.set_viewport_size({"width": 1280, "height": 1060})
        page.goto(f"{url}/#latent/font")
        page.wait_for_selector("[data-testid=latent-map][data-ready=font]")
        m = page.get_by_test_id("latent-map")
        m.click(position={"x": 150, "y": 330})
        m.click(position={"x": 420, "y": 150})
        page.get_by_test_id("sample-button").click()
        page.mouse.move(*at(page, "latent-map", 0.62, 0.52))
        settle(page)
        shoot(page, "latent-font")

        page.goto(f"{url}/#latent/fashion-2d")
        page.wait_for_selector("[data-testid=latent-map][data-ready=fashion-2d]")
        m.click(position={"x": 120, "y": 470})
        m.click(position={"x": 470, "y": 120})
        page.mouse.move(*at(page, "latent-map", 0.5, 0.35))
        settle(page)
        shoot(page, "latent-fashion-2d")

        page.goto(f"{url}/#latent/shuttle")
        page.wait_for_selector("[data-testid=latent-map][data-ready=shuttle]")
        m.click(position={"x": 120, "y": 330})
        m.click(position={"x": 400, "y": 250})
        page.get_by_test_id("sample-button").click()
        page.mouse.move(*at(page, "latent-map", 0.55, 0.45))
        settle(page)
        shoot(page, "latent-shuttle")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.goto(f"{url}/#tabular/shuttle")
        page.wait_for_selector("[data-testid=tabular-form][data-ready=shuttle]")
        page.locator("#feature-f5").fill("80")
        page.get_by_test_id("tabular-submit").click()
        page.get_by_test_id("csv-input").set_input_files(REPO / "examples" / "shuttle.csv")
        page.get_by_test_id("results-table").locator("tbody tr").first.wait_for()
        page.locator("#results-table th[data-key=score]").click()
        settle(page)
        page.set_viewport_size({"width": 1280, "height": 1250})
        shoot(page, "tabular-shuttle")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.goto(f"{url}/docs")
        page.locator("#operations-inference-reconstruct_reconstruct_post").wait_for()
        settle(page)
        shoot(page, "docs")
        guard.check()


if __name__ == "__main__":
    main()
