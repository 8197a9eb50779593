"""``bench/web.py`` (``make bench-web``) still finds every page's marker and counts decoded
images: one load of each page. The figures are a benchmark's, so no bound is asserted here."""

from __future__ import annotations

from bench.web import PAGES, measure


def test_the_page_timing_bench_measures_every_page(server: str) -> None:
    result = measure(server, runs=1, sweep_s=0.5, only=None)
    assert set(result["pages"]) == set(PAGES)
    for name, got in result["pages"].items():
        t = got["interactive_s"]["median"]
        assert 0 < t < 60, (name, t)
        assert got["html_response_end_s"] <= t, name
    assert result["decoded_per_s"] > 0
