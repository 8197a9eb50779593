"""The web app beyond the image zoo: tabular models in the latent explorer, a model of the
user's own CSV (``aeserve fit-csv``: categorical columns, missing cells) on every page that fits
it, and the app with API keys on (the cards' plots fetched with the key)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.cli.test_fit_csv import write_transactions
from tests.live_server import REPO, free_port_in, live_server
from tests.web.browser import guarded_page
from tests.web.conftest import PORTS
from tests.web.test_pages import app_page, canvas_png

KEY = "web-test-key-0123456789"


def hover_changes_the_decoded_output(page: Page) -> None:
    """Two far-apart places of the map decode to different outputs."""
    box = page.get_by_test_id("latent-map").bounding_box()
    assert box is not None
    shots = []
    for fx, fy in ((0.1, 0.1), (0.9, 0.9)):
        before = int(page.get_by_test_id("decoded").get_attribute("data-updates") or 0)
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_function(
            "n => Number(document.querySelector('[data-testid=decoded]').dataset.updates) > n",
            arg=before,
        )
        shots.append(canvas_png(page, "decoded"))
    assert shots[0] != shots[1]


def test_tabular_models_are_in_the_latent_explorer(chromium: Browser, server: str) -> None:
    with app_page(chromium, server, "latent/shuttle") as (page, _):
        options = page.get_by_test_id("model-select").locator("option")
        names = options.evaluate_all("os => os.map(o => o.value)")
        assert {"shuttle", "breast-cancer", "font", "mnist"} <= set(names)
        # The classes, coloured, with their counts in the reference set (1,000 test rows).
        legend = page.locator("#legend span:not(.scale-key)")
        texts = legend.all_inner_texts()
        assert [t.split(" ")[0] for t in texts] == ["normal", "anomaly"]
        assert sum(int(t.split("(")[1].rstrip(")")) for t in texts) == 1000
        colours = legend.evaluate_all("ss => ss.map(s => s.style.getPropertyValue('--c'))")
        assert len(set(colours)) == 2
        assert page.locator("#plane-row").is_hidden()  # no decoded picture plane for records
        hover_changes_the_decoded_output(page)
        # Pins, their interpolation, and samples with a seed, drawn as records.
        m = page.get_by_test_id("latent-map")
        before = canvas_png(page, "interpolation")
        m.click(position={"x": 120, "y": 200})
        m.click(position={"x": 420, "y": 380})
        page.wait_for_function(
            "b => document.querySelector('[data-testid=interpolation]').toDataURL() !== b",
            arg=before,
        )
        page.get_by_test_id("seed-input").fill("3")
        page.get_by_test_id("sample-button").click()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=samples]').dataset.seed === '3'"
        )


@pytest.fixture(scope="module")
def user_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model of a user's CSV (categorical merchant, missing amounts and merchants), fitted
    briefly: the pages need its columns and its reference set, not a good model."""
    from aeserve.cli import main

    d = tmp_path_factory.mktemp("user")
    write_transactions(d / "tx.csv", n=400)
    argv = ["fit-csv", str(d / "tx.csv"), "--label", "is_fraud", "--id-column", "tx_id"]
    argv += ["--name", "tx", "--models", str(d / "models"), "--epochs", "3", "--quiet"]
    assert main(argv) == 0
    with live_server(d / "models", port=free_port_in(*PORTS)) as url:
        yield url


@pytest.mark.slow
def test_a_model_of_your_own_csv_on_every_page(
    chromium: Browser, user_server: str, tmp_path: Path
) -> None:
    with app_page(chromium, user_server, "models") as (page, _):
        links = page.locator("section.model[data-model=tx] a.badge")
        assert set(links.all_inner_texts()) == {"latent explorer", "tabular playground"}
    with app_page(chromium, user_server, "latent/tx") as (page, _):
        hover_changes_the_decoded_output(page)
    with app_page(chromium, user_server, "tabular/tx") as (page, _):
        tab = page.locator("#page-tabular")
        # A field per raw column: the category is picked from the model's list.
        merchant = page.locator("select#feature-merchant")
        options = merchant.locator("option").evaluate_all("os => os.map(o => o.value)")
        assert options == ["grocery", "online", "travel", ""]  # "": (missing)
        assert page.locator("#feature-amount").get_attribute("placeholder") == "missing"
        # The prefilled normal record is scored as the page opens.
        assert tab.get_by_test_id("score").get_attribute("data-value")
        merchant.select_option("")
        page.locator("#feature-amount").fill("")
        page.locator("#feature-hour").fill("3")
        with page.expect_response(lambda r: r.url.endswith("/anomaly-score")) as answer:
            tab.get_by_test_id("tabular-submit").click()
        assert answer.value.status == 200
        result = answer.value.json()["results"][0]
        page.wait_for_function(
            "s => document.querySelector('#tab-score').dataset.value === String(s)",
            arg=result["score"],
        )
        bars = tab.get_by_test_id("contributions").locator("rect")
        features = bars.evaluate_all("els => els.map(e => e.dataset.feature)")
        assert {"amount:missing", "merchant=grocery"} <= set(features)
        parts = [float(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.value)")]
        assert sum(parts) == pytest.approx(result["score"], rel=1e-6)
        # A CSV of raw columns, with empty cells and a missing-value word.
        path = tmp_path / "few.csv"
        rows = [["id", "amount", "hour", "merchant"], ["a", "41.5", "13", "grocery"]]
        rows += [["b", "", "14", "online"], ["c", "420", "3", "NA"]]
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        page.get_by_test_id("csv-input").set_input_files(path)
        table = page.get_by_test_id("results-table").locator("tbody tr")
        table.first.wait_for()
        ids = table.evaluate_all("rs => rs.map(r => r.children[1].textContent)")
        assert ids == ["a", "b", "c"]


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    with live_server(
        REPO / "models",
        port=free_port_in(*PORTS),
        AESERVE_DEFAULT_MODEL="font",
        AESERVE_API_KEYS=f"{KEY}:infer",
    ) as url:
        yield url


def test_with_api_keys_on_the_cards_show_their_plots(chromium: Browser, keyed_server: str) -> None:
    """An <img> cannot send the key: the app fetches the card's plots with it (blob: URLs)."""
    with guarded_page(chromium, keyed_server) as (page, guard):
        page.add_init_script(f"localStorage.setItem('aeserve.apiKey', {KEY!r})")
        page.goto(f"{keyed_server}/#models")
        font = page.locator("section.model[data-model=font]")
        font.locator("details.card-box summary").click()
        page.wait_for_function(
            "() => { const is = [...document.querySelectorAll("
            "'section.model[data-model=font] .card img')];"
            " return is.length > 2 && is.every(i => i.complete && i.naturalWidth > 0); }"
        )
        srcs = font.locator(".card img").evaluate_all("is => is.map(i => i.src)")
        assert all(s.startswith("blob:") for s in srcs), srcs
        # The playgrounds work with the key too.
        page.goto(f"{keyed_server}/#latent/font")
        page.wait_for_selector("[data-testid=latent-map][data-ready=font]", state="attached")
        page.goto(f"{keyed_server}/#tabular/shuttle")
        page.wait_for_selector("[data-testid=tabular-form][data-ready=shuttle]", state="attached")
        guard.check()
    # A person without a key is told where it goes; typed in, the models come.
    with guarded_page(chromium, keyed_server) as (page, guard):
        page.goto(f"{keyed_server}/#models")
        status = page.get_by_test_id("status")
        status.filter(has_text="401").wait_for()
        assert "API key field" in status.inner_text()
        page.get_by_test_id("api-key").fill(KEY)
        page.get_by_test_id("api-key").dispatch_event("change")
        page.locator("section.model[data-model=font]").wait_for()
        assert status.inner_text() == ""
        assert not guard.foreign
        assert all("401" in e for e in guard.errors), guard.errors  # the first, keyless /models
    # Without the key the service refuses the plots (what the blob URLs get around).
    assert httpx.get(f"{keyed_server}/models/font/files/loss.png").status_code == 401
