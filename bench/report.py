"""The benchmark report: a markdown table, the targets checked, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.__main__ import Report, Result

JSON_IMAGE = "reconstruct 1 image JSON"
JSON_RECORD = "anomaly-score 1 record JSON"
NPY_BATCH = "reconstruct 256 images npy"


def find(report: Report, server: str, scenario: str, c: int) -> Result | None:
    for r in report.results:
        if r.server == server and r.scenario == scenario and r.concurrency == c:
            return r
    return None


def paired_ratio(report: Report, scenario: str) -> tuple[float, float, float, float, int] | None:
    """aeserve's and the baseline's mean req/s over the alternating rounds, their ratio, and
    aeserve's worst p99 in them; None when the run has no paired rounds."""
    rows = [p for p in report.paired if p["scenario"] == scenario]
    ours = [p for p in rows if p["server"] == "aeserve"]
    base = [p for p in rows if p["server"] == "baseline"]
    if not ours or not base:
        return None
    ours_rps = sum(p["rps"] for p in ours) / len(ours)
    base_rps = sum(p["rps"] for p in base) / len(base)
    return ours_rps / base_rps, ours_rps, base_rps, max(p["p99_ms"] for p in ours), len(ours)


def targets(report: Report) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of the issue that this run measured."""
    rows: list[tuple[str, str, bool | None]] = []
    for scenario in (JSON_IMAGE, JSON_RECORD):
        ours, base = find(report, "aeserve", scenario, 16), find(report, "baseline", scenario, 16)
        if ours and base:
            ratio = ours.rps / base.rps
            p99 = ours.p99_ms
            low = find(report, "floor", scenario, 16)
            floor = f"; floor (bench/floor.py): {low.rps / base.rps:.1f}x" if low else ""
            side = paired_ratio(report, scenario)
            if side is None:
                measured = (
                    f"{ratio:.1f}x ({ours.rps:,.0f} vs {base.rps:,.0f} req/s), p99 {p99:.2f} ms"
                )
            else:
                # Side by side (the same minutes of the machine) is the measure; the single runs,
                # minutes apart, are shown beside it.
                ratio, ours_rps, base_rps, p99, rounds = side
                measured = (
                    f"{ratio:.1f}x side by side ({ours_rps:,.0f} vs {base_rps:,.0f} req/s, "
                    f"{rounds} alternating rounds), p99 {p99:.2f} ms; single runs "
                    f"{ours.rps / base.rps:.1f}x"
                )
            rows.append(
                (
                    f"{scenario}, 16 clients: >= 8x baseline req/s, p99 < 10 ms",
                    measured + floor,
                    ratio >= 8 and p99 < 10,
                )
            )
    on64, off64 = (find(report, s, JSON_IMAGE, 64) for s in ("aeserve", "aeserve-nobatch"))
    if on64 and off64:
        ratio = on64.rps / off64.rps
        rows.append(
            (
                "batching on vs off, 64 single-image clients: >= 2x req/s",
                f"{ratio:.2f}x ({on64.rps:,.0f} vs {off64.rps:,.0f} req/s)",
                ratio >= 2,
            )
        )
    on1, off1 = (find(report, s, JSON_IMAGE, 1) for s in ("aeserve", "aeserve-nobatch"))
    if on1 and off1:
        diff = on1.p99_ms - off1.p99_ms
        rows.append(
            (
                "batching on vs off, 1 client: p99 at most 1 ms higher",
                f"{on1.p99_ms:.2f} vs {off1.p99_ms:.2f} ms ({diff:+.2f} ms)",
                diff <= 1.0,
            )
        )
    keys = find(report, "aeserve-keys", JSON_IMAGE, 16)
    plain = find(report, "aeserve", JSON_IMAGE, 16)
    if keys and plain:
        rows.append(
            (
                "API keys on (express lane), 1 image JSON, 16 clients: the cost, stated",
                f"{keys.rps / plain.rps:.2f}x the same server without keys ({keys.rps:,.0f} vs "
                f"{plain.rps:,.0f} req/s, single runs), p99 {keys.p99_ms:.2f} ms",
                True,
            )
        )
    raw = report.raw.get("batch256_samples_per_s")
    best = max(
        (r for r in report.results if r.scenario == NPY_BATCH), key=lambda r: r.rps, default=None
    )
    if raw and best:
        share = best.rps * best.samples_per_req / raw
        rows.append(
            (
                "256-image .npy request: >= 50% of raw onnxruntime images/s",
                f"{share:.0%} ({best.rps * 256:,.0f} vs {raw:,.0f} images/s, c={best.concurrency})",
                share >= 0.5,
            )
        )
    return rows + v2_targets(report)


def v2_targets(report: Report) -> list[tuple[str, str, bool | None]]:
    """The Open Inference Protocol's targets (bench/v2.py)."""
    from bench.v2 import GRPC_IMAGE, V2_BINARY, V2_JSON

    rows: list[tuple[str, str, bool | None]] = []
    pairs = [p for p in report.paired if p["scenario"] == V2_JSON]
    ours = [p for p in pairs if p["server"] == "aeserve-v2"]
    rest = [p for p in pairs if p["server"] == "aeserve-rest"]
    if ours and rest:
        v2_rps = sum(p["rps"] for p in ours) / len(ours)
        rest_rps = sum(p["rps"] for p in rest) / len(rest)
        ratio = v2_rps / rest_rps
        rows.append(
            (
                "v2 JSON 1 image, 16 clients: >= 0.8x REST /reconstruct req/s (same run)",
                f"{ratio:.2f}x side by side ({v2_rps:,.0f} vs {rest_rps:,.0f} req/s, "
                f"{len(ours)} alternating rounds); p99 {max(p['p99_ms'] for p in ours):.2f} vs "
                f"{max(p['p99_ms'] for p in rest):.2f} ms",
                ratio >= 0.8,
            )
        )
    raw = report.raw.get("batch256_samples_per_s")
    best = max(
        (r for r in report.results if r.scenario == V2_BINARY), key=lambda r: r.rps, default=None
    )
    if raw and best:
        share = best.rps * best.samples_per_req / raw
        rows.append(
            (
                "v2 binary 256-image request: >= 60% of raw onnxruntime images/s",
                f"{share:.0%} ({best.rps * 256:,.0f} vs {raw:,.0f} images/s, c={best.concurrency})",
                share >= 0.6,
            )
        )
    grpc = find(report, "aeserve", GRPC_IMAGE, 16)
    rest16 = find(report, "aeserve", JSON_IMAGE, 16)
    if grpc:
        beside = (
            f"; REST /reconstruct JSON {rest16.rps:,.0f} req/s, p99 {rest16.p99_ms:.2f} ms"
            if rest16
            else ""
        )
        rows.append(
            (
                "gRPC 1 image, 16 clients (Python grpc.aio load client): report req/s and p99",
                f"{grpc.rps:,.0f} req/s, p99 {grpc.p99_ms:.2f} ms, server "
                f"{grpc.server_cpu_ms_per_req:.3f} ms/req, client CPU {grpc.client_cpu_share:.2f}"
                + beside,
                None,
            )
        )
    return rows


def render(report: Report, out: Path) -> str:
    plot = out.with_suffix(".png")
    plotted = _plot(report, plot)
    raw1 = report.raw.get("batch1_us", 0.0)
    has_floor = any(r.server == "floor" for r in report.results)
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`"
        + (" --quick" if report.quick else "")
        + f") from one run on {report.machine}. Rerun it to check; numbers are from one run on",
        "a shared, noisy machine, so compare the ratios within the run rather than",
        "absolute figures.",
        "",
        "## Setup",
        "",
        "- **Servers** (one process each, uvicorn with httptools + uvloop, access log off), pinned",
        "  to CPU 0 with `taskset`: **aeserve** (`python -m service`, default settings:",
        "  batching on, max 64 samples, max wait 500 µs; models whose forward pass on 64 samples",
        "  takes <= 5 ms run their batches on the event loop; the express lane on),",
        "  **aeserve-keys** (the same with an API key required: `AESERVE_API_KEYS`),",
        "  **aeserve-nobatch** (the same with `AESERVE_BATCHING=false`: no express",
        "  lane, every request's ONNX call in the thread pool) and the",
        "  **baseline** (`bench/baseline.py`: FastAPI + pydantic `list[list[float]]` request and",
        "  response models, a sync endpoint, one onnxruntime call per request)."
        + (
            " **aeserve-granian**: the same app as aeserve under granian (a Rust ASGI server;"
            " one worker, single-threaded runtime, uvloop), for the choice of server."
            if "granian" in report.servers
            else ""
        )
        + (
            " The **floor** (`bench/floor.py`, same core) is described under the targets."
            if has_floor
            else ""
        ),
        "- **Load**: `wrk` pinned to CPU 1 with a Lua script that posts the same body to every",
        "  server,",
        "  counts non-200 answers and runs a fixed time (whole seconds, wrk's unit; the number",
        "  of requests is in the JSON next to this file). `wrk cpu` is the load generator's",
        "  CPU time over wall time (1.00 =",
        "  all of CPU 1); the server's CPU time per request is read from `/proc`.",
        "- **Models**: `bench-mnist`, a dense 784-256-64-32 autoencoder on 28x28 images (random",
        "  weights, built by `bench/models.py`), and `bench-tabular` (9 features, 9-32-16-4),",
        "  served",
        "  next to the shipped zoo" + (f" ({', '.join(report.zoo)})" if report.zoo else "") + ".",
        f"- **Raw onnxruntime** (same session options, CPU 0): one image {raw1:.0f} µs "
        f"({1e6 / raw1 if raw1 else 0:,.0f} images/s, encoder + decoder); a batch of 256: "
        f"{report.raw.get('batch256_samples_per_s', 0):,.0f} images/s.",
    ]
    if report.load:
        lines.append(
            "- **Machine load** (1-minute load average, 2 cores): "
            + " at the start, ".join(f"{x:.1f}" for x in report.load[:2])
            + (" at the end" if len(report.load) > 1 else " at the start")
            + " of the run; above 2, other processes took CPU from the servers and wrk."
        )
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for target, measured, met in targets(report):
        shown = "reported" if met is None else "yes" if met else "NO"
        lines.append(f"| {target} | {measured} | {shown} |")
    if has_floor:
        lines += [
            "",
            "The **floor** (`bench/floor.py`) is not a service: it does the least work a Python",
            "server can do for these two requests (httptools on a raw uvloop protocol, `orjson`,",
            "one batched onnxruntime call per event-loop iteration, one write per answer), with no",
            "validation, error answers, metrics or logging. Its ratio to the baseline in the same",
            "run (above) is roughly the most a one-process Python server, aeserve included, can",
            "reach on this machine. The gap between aeserve and the floor is what everything a",
            "real service does costs (validation, errors, model lookup, metrics, the ASGI",
            "framework); a floor below 8x means the target leaves nothing for it.",
        ]
    if report.paired:
        lines += [
            "",
            "**Side by side.** The 8x targets are measured with the baseline and aeserve up at",
            "the same time on the same pinned core, wrk alternating between them at 16 clients,",
            "so that both see the same minutes of this shared machine (the single runs in the",
            "results below are minutes apart; the baseline's own rate moved 1.8x between runs).",
            "",
            "| request | round | baseline req/s | aeserve req/s | ratio | aeserve p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        pairs: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
        for p in report.paired:
            pairs.setdefault((p["scenario"], p["round"]), {})[p["server"]] = p
        for (scenario, i), by in pairs.items():
            if "baseline" in by and "aeserve" in by:
                b, a = by["baseline"], by["aeserve"]
                lines.append(
                    f"| {scenario} | {i} | {b['rps']:,.0f} | {a['rps']:,.0f} | "
                    f"{a['rps'] / b['rps']:.1f}x | {a['p99_ms']:.2f} |"
                )
    v2_pairs: dict[int, dict[str, dict[str, float]]] = {}
    for p in report.paired:
        if p["server"] in ("aeserve-v2", "aeserve-rest"):
            v2_pairs.setdefault(p["round"], {})[p["server"]] = p
    if v2_pairs:
        lines += [
            "",
            "**Open Inference Protocol, side by side** (`bench/v2.py`): one aeserve, wrk",
            "alternating at 16 clients between `POST /v2/models/bench-mnist/infer` (JSON, one",
            "image, outputs `x_hat` and `score`) and REST `/reconstruct` with the same image.",
            "",
            "| round | REST req/s | v2 req/s | v2 / REST | REST p99 ms | v2 p99 ms "
            "| REST server ms/req | v2 server ms/req |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for i, by in sorted(v2_pairs.items()):
            if "aeserve-v2" in by and "aeserve-rest" in by:
                r, v = by["aeserve-rest"], by["aeserve-v2"]
                lines.append(
                    f"| {i} | {r['rps']:,.0f} | {v['rps']:,.0f} | {v['rps'] / r['rps']:.2f}x | "
                    f"{r['p99_ms']:.2f} | {v['p99_ms']:.2f} | {r.get('server_ms', 0):.3f} | "
                    f"{v.get('server_ms', 0):.3f} |"
                )
    lines += [
        "",
        "## Results",
        "",
        "| server | request | clients | req/s | vs baseline | share of raw ORT | p50 ms | p99 ms "
        "| server ms/req | wrk cpu | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report.results:
        base = find(report, "baseline", r.scenario, r.concurrency)
        vs = f"{r.rps / base.rps:.1f}x" if base and r.server != "baseline" else ""
        share = ""
        if r.scenario == NPY_BATCH and report.raw.get("batch256_samples_per_s"):
            share = f"{r.rps * r.samples_per_req / report.raw['batch256_samples_per_s']:.0%}"
        elif r.scenario == JSON_IMAGE and raw1:
            share = f"{r.rps * raw1 / 1e6:.0%}"
        lines.append(
            f"| {r.server} | {r.scenario} | {r.concurrency} | {r.rps:,.0f} | {vs} | {share} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.server_cpu_ms_per_req:.3f} "
            f"| {r.client_cpu_share:.2f} | {r.errors} |"
        )
    lines += [
        "",
        "`share of raw ORT`: the endpoint's images/s over raw onnxruntime's for the same batch",
        "size",
        "(one image per call for JSON, 256 for .npy).",
        "",
    ]
    if plotted:
        lines += [f"![requests/s and p99 latency]({plot.name})", ""]
    lines += [
        "## Memory and cold start",
        "",
        f"- aeserve RSS with all {report.memory.get('models', 0):.0f} models loaded, after the "
        f"runs: {report.memory.get('rss_mb', 0):.0f} MB "
        f"(peak {report.memory.get('peak_rss_mb', 0):.0f} MB).",
        f"- Cold start to ready (process start to `/readyz` 200): aeserve "
        f"{report.cold_start_s.get('aeserve', 0):.2f} s, baseline (to `/openapi.json`) "
        f"{report.cold_start_s.get('baseline', 0):.2f} s.",
        "",
    ]
    lines += [
        "## onnxruntime session options",
        "",
        "Raw onnxruntime on CPU 0, the bench model, encoder + decoder per call (wall µs per call,",
        "CPU µs per call, images/s). The service uses the first row",
        "(`service/runtime/sessions.py`).",
        "",
        "| options | 1 image: µs | CPU µs | 256 images: µs | CPU µs | images/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    variants = sorted({k.split(": ")[0] for k in report.raw if ": " in k})
    labels = ["default", *variants]
    for label in labels:
        key = "" if label == "default" else f"{label}: "
        r = report.raw
        if f"{key}batch1_us" not in r:
            continue
        name = "1 thread, no spinning, arena (default)" if label == "default" else label
        lines.append(
            f"| {name} | {r[f'{key}batch1_us']:.0f} | {r[f'{key}batch1_cpu_us']:.0f} "
            f"| {r[f'{key}batch256_us']:,.0f} | {r[f'{key}batch256_cpu_us']:,.0f} "
            f"| {r[f'{key}batch256_samples_per_s']:,.0f} |"
        )
    lines.append("")
    notes = Path(__file__).with_name("NOTES.md")
    if notes.is_file():
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines)


def _plot(report: Report, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups = [
        (s, sc)
        for sc in (JSON_IMAGE, JSON_RECORD)
        for s in ("baseline", "aeserve-nobatch", "aeserve", "aeserve-granian")
        if any(r.server == s and r.scenario == sc for r in report.results)
    ]
    concs = sorted(
        {r.concurrency for r in report.results if r.scenario in (JSON_IMAGE, JSON_RECORD)}
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(groups))
    for i, (server, scenario) in enumerate(groups):
        xs, rps, p99 = [], [], []
        for j, c in enumerate(concs):
            r = find(report, server, scenario, c)
            if r:
                xs.append(j + i * width)
                rps.append(r.rps)
                p99.append(r.p99_ms)
        label = f"{server}: {scenario.replace(' JSON', '')}"
        ax1.bar(xs, rps, width, label=label)
        ax2.bar(xs, p99, width, label=label)
    for ax, title in ((ax1, "requests/s (higher is better)"), (ax2, "p99 latency, ms (log)")):
        ax.set_xticks(
            [j + 0.4 - width / 2 for j in range(len(concs))], [f"{c} clients" for c in concs]
        )
        ax.set_title(title)
    ax2.set_yscale("log")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
