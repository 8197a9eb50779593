"""``make soak``: 10 minutes of mixed load at ~80% of measured capacity -> docs/soak.md.

A benchmark, not a test. ``python -m service`` serves the shipped zoo on a loopback port
(21000-21999); wrk (one thread per core but one, ``-c`` connections) sends a mix of the common
requests: one MNIST image as JSON (express lane), a tabular record to /anomaly-score (express
lane), a font image with options (the ASGI path) and a 64-image MNIST .npy body. First the
capacity is measured (10 s flat out); then each connection paces itself (wrk's ``delay``) so
the server gets ~80% of it, one minute per wrk run, for ``--minutes`` minutes. Every 10 s the
server's RSS is read from /proc; each minute's requests, errors (non-2xx answers and socket
errors) and p99 are recorded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PORTS = range(21000, 22000)

LUA = r"""
local dir = os.getenv("SOAK_DIR")
local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb")); local s = f:read("*a"); f:close(); return s
end
local mix = {
  {"/reconstruct", "application/json", read("mnist.json")},
  {"/anomaly-score", "application/json", read("shuttle.json")},
  {"/reconstruct", "application/json", read("font.json")},
  {"/reconstruct?model=mnist", "application/x-npy", read("mnist64.npy")},
}
local pace = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = 0; bad = 0 end
function request()
  i = i + 1
  local m = mix[(i % #mix) + 1]
  return wrk.format("POST", m[1], {["Content-Type"] = m[2]}, m[3])
end
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function delay() if pace > 0 then return math.random(0, 2 * pace) end return 0 end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format(
    'SOAK {"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    b, latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"""


def free_port() -> int:
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 21000-21999")


def bodies(workdir: Path) -> None:
    rng = np.random.default_rng(0)
    img = rng.random((1, 28, 28)).round(3).tolist()
    (workdir / "mnist.json").write_text(json.dumps({"model": "mnist", "inputs": img}))
    manifest = json.loads((ROOT / "models" / "shuttle" / "model.json").read_text())
    features = manifest["input"]["features"]
    mean = manifest["input"]["scaler"]["mean"]
    record = {f: round(m, 3) for f, m in zip(features, mean, strict=True)}
    (workdir / "shuttle.json").write_text(json.dumps({"model": "shuttle", "records": [record]}))
    glyph = (rng.random((7, 5)) > 0.5).astype(int).tolist()
    font = {"model": "font", "inputs": [glyph], "binarize": True}
    (workdir / "font.json").write_text(json.dumps(font))
    buf = io.BytesIO()
    np.save(buf, rng.random((64, 28, 28)).astype(np.float32))
    (workdir / "mnist64.npy").write_bytes(buf.getvalue())


def wrk(url: str, workdir: Path, connections: int, seconds: int, delay_ms: float) -> dict[str, Any]:
    script = workdir / "soak.lua"
    script.write_text(LUA)
    threads = max(1, min(4, (os.cpu_count() or 2) - 1))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    env = {**os.environ, "SOAK_DIR": str(workdir), "SOAK_DELAY_MS": f"{delay_ms:.3f}"}
    out = subprocess.run(
        [*cmd, "-s", str(script), url], env=env, capture_output=True, text=True, check=True
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("SOAK "))
    stats: dict[str, Any] = json.loads(line[5:])
    return stats


def answered(stats: dict[str, Any]) -> int:
    """Requests answered with a 2xx."""
    good: int = stats["requests"] - stats["non2xx"] - stats["socket_errors"]
    return good


def pace(connections: int, target: float, latency_s: float) -> float:
    """The mean pause (ms) after each answer that makes ``connections`` closed-loop clients
    send ``target`` requests/s when a request takes ``latency_s``."""
    return max(0.0, (connections / target - latency_s) * 1000)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.8, help="share of measured capacity")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "soak.md")
    args = parser.parse_args(argv)
    workdir = ROOT / ".soak"
    workdir.mkdir(exist_ok=True)
    bodies(workdir)
    port = free_port()
    env = {
        **os.environ,
        "AESERVE_MODEL_DIR": str(ROOT / "models"),
        "AESERVE_DEFAULT_MODEL": "mnist",
        "AESERVE_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    rss: list[tuple[int, float]] = []
    minutes: list[dict[str, Any]] = []
    load0 = os.getloadavg()[0]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.1)
        wrk(url, workdir, 8, 2, 0)  # warm-up
        flat = wrk(url, workdir, args.connections, 10, 0)
        # Capacity is what the server answers with 200 flat out: its quick 503s (shedding)
        # would inflate it, and 80% of an inflated capacity is an overload.
        capacity = answered(flat) / (flat["duration_us"] / 1e6)
        target = capacity * args.load
        # Each connection: one request, then a pause averaging delay: c / (latency + delay) =
        # rate. The latency at the target is not known before the first minute (flat out it is
        # mostly queueing, far above it): the first minute assumes none, and each next minute
        # takes the last minute's mean latency.
        delay_ms = pace(args.connections, target, 0.0)
        print(f"soak: capacity {capacity:.0f} req/s, target {target:.0f}, delay {delay_ms:.1f} ms")
        start = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss.append((round(time.monotonic() - start), rss_mb(proc.pid)))
                stop.wait(10)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for minute in range(1, args.minutes + 1):
            stats = wrk(url, workdir, args.connections, 60, delay_ms)
            stats["minute"] = minute
            stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
            stats["delay_ms"] = delay_ms
            minutes.append(stats)
            delay_ms = pace(args.connections, target, stats["mean_us"] / 1e6)
            print(
                f"soak: minute {minute}: {stats['requests']} requests "
                f"({stats['rps']:.0f}/s), {stats['non2xx'] + stats['socket_errors']} errors, "
                f"p99 {stats['p99_us'] / 1000:.1f} ms, RSS {rss[-1][1]:.0f} MB"
            )
        stop.set()
        sampler.join()
        rss.append((round(time.monotonic() - start), rss_mb(proc.pid)))
        statuses = answered_by_status(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    write(args, capacity, target, minutes, rss, statuses, (load0, os.getloadavg()[0]))
    return 0


def answered_by_status(metrics: str) -> dict[str, float]:
    """The server's own count of answers by status (aeserve_requests_total)."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("aeserve_requests_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def write(
    args: argparse.Namespace,
    capacity: float,
    target: float,
    minutes: list[dict[str, Any]],
    rss: list[tuple[int, float]],
    statuses: dict[str, float],
    load: tuple[float, float],
) -> None:
    total = sum(m["requests"] for m in minutes)
    errors = sum(m["non2xx"] + m["socket_errors"] for m in minutes)
    lines = [
        "# Soak: mixed load at ~80% of capacity",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make soak` (`bench/soak.py`) on "
        f"{os.cpu_count()} cores: `python -m service` on the shipped zoo, wrk with "
        f"{args.connections} connections sending, in turn, one MNIST image as JSON, one shuttle "
        "record to /anomaly-score, a font image with `binarize` (the ASGI path) and a 64-image "
        "MNIST .npy body.",
        "",
        f"Capacity measured flat out for 10 s: {capacity:.0f} requests/s answered with 200; "
        f"target {args.load:.0%}: {target:.0f}/s. Each connection pauses between requests (the "
        "`pause` column, on average); the pause is fitted again every minute from the last "
        "minute's mean latency so that the rate stays near the target. Load average at the "
        f"start and the end: {load[0]:.1f}, {load[1]:.1f} (the machine is shared).",
        "",
        f"**{args.minutes} minutes: {total:,} requests, {errors} errors** (non-2xx answers and "
        "socket errors).",
        "",
        "The server's own count of answers by status over the whole run (warm-up and capacity "
        "measurement included): "
        + ", ".join(f"{s}: {n:,.0f}" for s, n in sorted(statuses.items()))
        + ".",
        "",
        "| minute | pause ms | requests | requests/s | share of capacity | errors | p50 ms "
        "| p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in minutes:
        lines.append(
            f"| {m['minute']} | {m['delay_ms']:.1f} | {m['requests']:,} | {m['rps']:.0f} | "
            f"{m['rps'] / capacity:.0%} | "
            f"{m['non2xx'] + m['socket_errors']} | {m['p50_us'] / 1000:.1f} | "
            f"{m['p99_us'] / 1000:.1f} | {m['max_us'] / 1000:.1f} |"
        )
    lines += ["", "Server RSS every 10 s (MB):", "", "| seconds | RSS MB |", "| --- | --- |"]
    lines += [f"| {t} | {mb:.0f} |" for t, mb in rss]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"soak: wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
