"""Prometheus config and rules: checked and unit-tested with Debian's promtool, and every metric
the rules read is exported by a running service."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DOCKER, StartService, client

PROMETHEUS = DOCKER / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULES_TEST = Path(__file__).parent / "prometheus" / "rules_test.yml"
# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    *("by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"),
    *("and", "or", "unless", "inf", "nan"),
}


def promtool(*args: str, cwd: Path | None = None) -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool missing: `make sysdeps` installs Debian's prometheus"
    result = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects (not functions, labels, keywords or recorded names)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors ([5m])
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        following = expr[m.end() :].lstrip()
        if following.startswith("(") or m.group() in PROMQL_WORDS:
            continue  # a function call or keyword
        names.add(m.group())
    return names


def test_metric_names_parser() -> None:
    expr = 'histogram_quantile(0.9, sum by (model, le) (rate(x_bucket{status=~"5.."}[5m]))) > 1'
    assert metric_names(expr) == {"x_bucket"}
    assert metric_names("a:b:c > 0.01 and on (model) up == 0") == {"a:b:c", "up"}


def test_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    # The container paths of the mounted files, mapped back to the repository's.
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    config = (PROMETHEUS / "prometheus.yml").read_text()
    for volume in compose["services"]["prometheus"]["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            config = config.replace(target, str((DOCKER / source).resolve()))
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(config)
    out = promtool("check", "config", str(rendered))
    assert "SUCCESS" in out and "rules found" in out
    promtool("check", "rules", str(RULES))


def test_rules_compute_what_they_claim() -> None:
    """`promtool test rules`: rates, ratios, quantiles and alerts on known input series."""
    out = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert "SUCCESS" in out
    tested = yaml.safe_load(RULES_TEST.read_text())["tests"]
    exprs = " ".join(t["expr"] for case in tested for t in case.get("promql_expr_test", []))
    alerts = {t["alertname"] for case in tested for t in case.get("alert_rule_test", [])}
    for rule in rules():
        if "record" in rule:
            assert rule["record"] in exprs, f"no promtool test for {rule['record']}"
        else:
            assert rule["alert"] in alerts, f"no promtool test for alert {rule['alert']}"


def scrape(text: str) -> dict[str, set[str]]:
    """Exported sample names with the label names they carry (Prometheus text format)."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m and not line.startswith("#"):
            labels = set(re.findall(r"([a-zA-Z_]\w*)=", m.group(3) or ""))
            out.setdefault(m.group(1), set()).update(labels)
    return out


def test_every_metric_the_rules_use_is_exported(start_service: StartService) -> None:
    proc = start_service()
    with client() as http:
        # Labelled series appear once observed: serve requests first. The tiny model's score is
        # 0 at the origin and large far from its 2-d code plane: one normal, one flagged.
        assert http.post(proc.url + "/reconstruct", json={"inputs": [[0.0] * 4]}).status_code == 200
        scored = http.post(proc.url + "/anomaly-score", json={"inputs": [[0.0] * 4, [9.0] * 4]})
        assert scored.status_code == 200, scored.text
        assert scored.json()["is_anomaly"] == [False, True]
        exported = scrape(http.get(proc.url + "/metrics").text)
    synthetic = {"up"}  # Prometheus adds it per target
    used: set[str] = set()
    for rule in rules():
        used |= {n for n in metric_names(rule["expr"]) if ":" not in n}
    assert used - synthetic, "the rules read no service metric"
    missing = used - synthetic - set(exported)
    assert not missing, f"rules use metrics the service does not export: {missing}"
    # And the labels the rules group by are on those series.
    grouped: set[str] = set()
    for rule in rules():
        for labels in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
            grouped |= {label.strip() for label in labels.split(",")}
    for name in used - synthetic:
        if name.startswith("aeserve_request"):
            assert grouped - {"le"} <= exported[name], (name, exported[name])


@pytest.mark.parametrize("name", ["aeserve_models_loaded", "aeserve_models_failed"])
def test_model_gauges_report_the_repository(start_service: StartService, name: str) -> None:
    proc = start_service()
    with client() as http:
        text = http.get(proc.url + "/metrics").text
    value = float(re.search(rf"^{name} (\S+)$", text, flags=re.M).group(1))  # type: ignore[union-attr]
    assert value == (1.0 if name.endswith("loaded") else 0.0)


def test_anomaly_counters_count_scored_and_flagged_samples(start_service: StartService) -> None:
    proc = start_service()
    with client() as http:
        for rows in ([[0.0] * 4, [9.0] * 4], [[0.0] * 4, [0.0] * 4, [-9.0] * 4]):
            assert http.post(proc.url + "/anomaly-score", json={"inputs": rows}).status_code == 200
        text = http.get(proc.url + "/metrics").text
    for name, expected in (("samples", 5.0), ("flagged", 2.0)):
        m = re.search(rf'^aeserve_anomaly_{name}_total\{{model="tiny"\}} (\S+)$', text, re.M)
        assert m and float(m.group(1)) == expected, name
