"""``python -m bench [--quick] [--out docs/benchmarks.md]``: aeserve vs a plain FastAPI baseline.

One run, on loopback: builds the bench models (bench/models.py) into a temporary model
directory next to links to every model of ``models/``, starts aeserve (batching on, and a second
instance with batching off) and the baseline (bench/baseline.py) as uvicorn processes pinned to
CPU 0 (and, when granian is installed, aeserve under granian for comparison) and the floor
(bench/floor.py, the least work a Python server can do per request) on the same core, drives
them with wrk pinned to CPU 1 (a Lua script posts the same body and counts statuses; each run
lasts a fixed number of seconds), measures raw onnxruntime on CPU 0 in the same run, and writes the
report (markdown table + PNG plot). Quick mode runs every piece for a
fraction of a second and writes into a temporary directory unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import v2
from bench.models import IMAGE_MODEL, TABULAR_FEATURES, TABULAR_MODEL, build_all
from bench.report import JSON_IMAGE, JSON_RECORD, NPY_BATCH

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = "0"
CLIENT_CPU = "1"

LUA = r"""
local body_file = os.getenv("BENCH_BODY")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
local accept = os.getenv("BENCH_ACCEPT")
if accept ~= nil and accept ~= "" then wrk.headers["Accept"] = accept end
local extra = os.getenv("BENCH_HEADER")
if extra ~= nil and extra ~= "" then
  local name, value = extra:match("^([^:]+):%s*(.*)$")
  wrk.headers[name] = value
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) count = 0; bad = 0 end
function response(status, headers, body)
  count = count + 1
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + t:get("bad") end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "errors": %d, "non200": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.status + summary.errors.timeout,
    bad_total, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""


@dataclass
class Result:
    server: str
    scenario: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms_per_req: float
    client_cpu_share: float  # wrk's CPU time / wall time (1.0 = one core)
    samples_per_req: int = 1


@dataclass
class Report:
    quick: bool
    machine: str
    raw: dict[str, float] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)
    cold_start_s: dict[str, float] = field(default_factory=dict)
    zoo: list[str] = field(default_factory=list)
    # 1-minute load average at the start and at the end of the run (other jobs on the machine)
    load: list[float] = field(default_factory=list)
    # ASGI servers compared in this run (uvicorn always; granian when it is installed)
    servers: list[str] = field(default_factory=list)
    # The 8x targets measured side by side: baseline and aeserve both up, wrk alternating
    # between them at 16 clients ({"server", "scenario", "round", "rps", "p99_ms"} each).
    paired: list[dict[str, Any]] = field(default_factory=list)


def free_port() -> int:
    """A free loopback port in 21000-21999 (the ports this shared machine gives the project)."""
    for port in random.sample(range(21000, 22000), 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 21000-21999")


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and its live children (granian serves from a worker child)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    vals = {ln.split(":")[0]: int(ln.split()[1]) / 1024 for ln in status if ln.startswith("Vm")}
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    ready_s: float


@contextmanager
def serve(name: str, args: list[str], env: dict[str, str], ready_path: str) -> Iterator[Server]:
    port = free_port()
    cmd = [*pinned(SERVER_CPU), *[a.replace("{port}", str(port)) for a in args]]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {proc.communicate()[0].decode()[-2000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - start > 60:
                raise RuntimeError(f"{name} not ready after 60 s")
            time.sleep(0.01)
        yield Server(name, url, proc, time.perf_counter() - start)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def aeserve(name: str, model_dir: Path, **env: str) -> Any:
    base = {
        "AESERVE_MODEL_DIR": str(model_dir),
        "AESERVE_DEFAULT_MODEL": IMAGE_MODEL,
        "AESERVE_LOG_LEVEL": "warning",
        "AESERVE_ACCESS_LOG": "false",
        "AESERVE_GRPC_PORT": "0",  # gRPC only where the bench measures it
    }
    cmd = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "{port}"]
    return serve(name, cmd, {**base, **env}, "/readyz")


def aeserve_granian(model_dir: Path) -> Any:
    """The same app (default settings) under granian, a Rust ASGI server: one worker, its
    single-threaded runtime and uvloop, on the same pinned core (not a dependency: it runs only
    when granian is installed)."""
    base = {
        "AESERVE_MODEL_DIR": str(model_dir),
        "AESERVE_DEFAULT_MODEL": IMAGE_MODEL,
        "AESERVE_LOG_LEVEL": "warning",
    }
    cmd = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "service.http.app:create_app", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
        "--runtime-mode", "st", "--loop", "uvloop", "--no-ws", "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    return serve("aeserve-granian", cmd, base, "/readyz")


def has_granian() -> bool:
    import importlib.util

    return importlib.util.find_spec("granian") is not None


def baseline(model_dir: Path) -> Any:
    cmd = [
        sys.executable, "-m", "uvicorn", "bench.baseline:create_app", "--factory",
        "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return serve("baseline", cmd, {"BENCH_MODEL_DIR": str(model_dir)}, "/openapi.json")


def floor(model_dir: Path) -> Any:
    """bench/floor.py: the least work a Python server can do per request (HTTP parse, JSON parse,
    one batched onnxruntime call, JSON dump on a raw uvloop protocol), pinned like the others:
    roughly the most any Python server can reach here, not a competitor."""
    cmd = [sys.executable, "-m", "bench.floor", "--port", "{port}", "--model-dir", str(model_dir)]
    return serve("floor", cmd, {}, "/readyz")


def wrk(
    server: Server,
    path: str,
    body: Path,
    ctype: str,
    concurrency: int,
    seconds: float,
    workdir: Path,
    accept: str = "",
    header: str = "",
) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(LUA)
    threads = 1 if concurrency < 4 else 2
    cmd = [
        *pinned(CLIENT_CPU), "wrk", f"-t{threads}", f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(script), server.url + path,
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_BODY": str(body),
        "BENCH_CTYPE": ctype,
        "BENCH_ACCEPT": accept,
        "BENCH_HEADER": header,
    }
    cpu0 = cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    if status != 0:
        raise RuntimeError(f"wrk failed: {out}")
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    stats: dict[str, Any] = json.loads(line[6:])
    stats["server_cpu_s"] = cpu_seconds(server.proc.pid) - cpu0
    stats["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    stats["wall_s"] = wall
    return stats


def run(
    report: Report,
    server: Server,
    scenario: str,
    path: str,
    body: Path,
    ctype: str,
    concurrencies: tuple[int, ...],
    seconds: float,
    workdir: Path,
    accept: str = "",
    samples: int = 1,
    warmup: bool = True,
    header: str = "",
) -> None:
    if warmup:  # first requests load code paths and grow onnxruntime's arena
        wrk(server, path, body, ctype, 4, 1, workdir, accept, header)
    for c in concurrencies:
        s = wrk(server, path, body, ctype, c, seconds, workdir, accept, header)
        duration = s["duration_us"] / 1e6
        n = max(1, s["requests"])
        result = Result(
            server=server.name,
            scenario=scenario,
            concurrency=c,
            requests=s["requests"],
            seconds=round(duration, 2),
            rps=round(s["requests"] / duration, 1),
            p50_ms=s["p50_us"] / 1000,
            p99_ms=s["p99_us"] / 1000,
            errors=s["errors"] + s["non200"],
            server_cpu_ms_per_req=round(s["server_cpu_s"] / n * 1000, 3),
            client_cpu_share=round(s["client_cpu_s"] / s["wall_s"], 2),
            samples_per_req=samples,
        )
        report.results.append(result)
        print(
            f"  {server.name:18s} {scenario:24s} c={c:<3d} {result.rps:9.0f} req/s  "
            f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
            f"server {result.server_cpu_ms_per_req:.3f} ms/req  wrk {result.client_cpu_share:.2f}",
            flush=True,
        )


RAW_SCRIPT = r"""
import json, sys, time
import numpy as np
from service.runtime.sessions import OnnxOptions, open_session
root, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
shape = [int(d) for d in sys.argv[4].split(",")]
variants = {
    "default": OnnxOptions(),
    "2 threads, spinning": OnnxOptions(2, 1, spinning=True),
    "2 threads, no spinning": OnnxOptions(2, 1, spinning=False),
    "1 thread, arena off": OnnxOptions(arena=False),
}
out = {}
for label, options in variants.items():
    enc = open_session(f"{root}/{name}/encoder.onnx", options)
    dec = open_session(f"{root}/{name}/decoder.onnx", options)
    for batch in (1, 256):
        x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
        run = lambda: dec.run(None, {"z": enc.run(None, {"x": x})[0]})
        for _ in range(20): run()
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            run(); n += 1
        dt = (time.perf_counter() - t0) / n
        cpu = (time.process_time() - c0) / n
        key = "" if label == "default" else f"{label}: "
        out[f"{key}batch{batch}_us"] = dt * 1e6
        out[f"{key}batch{batch}_cpu_us"] = cpu * 1e6
        out[f"{key}batch{batch}_samples_per_s"] = batch / dt
print(json.dumps(out))
"""


def raw_onnxruntime(
    model_dir: Path, name: str, shape: list[int], seconds: float
) -> dict[str, float]:
    """encoder + decoder through onnxruntime alone, same session options, pinned to CPU 0."""
    cmd = [*pinned(SERVER_CPU), sys.executable, "-c", RAW_SCRIPT, str(model_dir), name,
           str(seconds), ",".join(map(str, shape))]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True, text=True).stdout
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return data


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def bodies(workdir: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    image = rng.random((1, 784), dtype=np.float32).round(4)
    record = {
        f: float(v) for f, v in zip(TABULAR_FEATURES, rng.normal(size=9).round(4), strict=True)
    }
    batch = rng.random((256, 28, 28), dtype=np.float32)
    files = {
        "image.json": json.dumps({"model": IMAGE_MODEL, "inputs": image.tolist()}).encode(),
        "record.json": json.dumps({"model": TABULAR_MODEL, "records": [record]}).encode(),
        "batch256.npy": npy_bytes(batch),
        "mnist.json": json.dumps({"model": "mnist", "inputs": image.tolist()}).encode(),
    }
    out = {}
    for name, data in files.items():
        (workdir / name).write_bytes(data)
        out[name] = workdir / name
    return out


def check_answers(server: Server, files: dict[str, Path]) -> None:
    """The bodies the load generator sends must succeed (a 4xx would be measured as speed)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.post("/reconstruct", content=files["image.json"].read_bytes(),
                      headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text
        r = http.post("/anomaly-score", content=files["record.json"].read_bytes(),
                      headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text


def zoo_body(model_dir: Path, name: str, workdir: Path) -> Path | None:
    """A JSON body of one valid sample for a shipped model (mean of its input range/scaler)."""
    manifest = json.loads((model_dir / name / "model.json").read_text())
    spec = manifest["input"]
    if spec["kind"] == "tabular":
        mean = spec["scaler"]["mean"] if spec.get("scaler") else [0.0] * spec["shape"][0]
        body: dict[str, Any] = {
            "model": name,
            "records": [dict(zip(spec["features"], mean, strict=True))],
        }
    else:
        lo, hi = spec.get("range") or (0.0, 1.0)
        x = np.random.default_rng(0).uniform(lo, hi, (1, *spec["shape"])).round(4)
        body = {"model": name, "inputs": x.tolist()}
    path = workdir / f"zoo-{name}.json"
    path.write_bytes(json.dumps(body).encode())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds, every piece once")
    parser.add_argument("--out", type=Path, help="report path (default docs/benchmarks.md)")
    parser.add_argument("--seconds", type=int, help="seconds per load run (whole seconds)")
    parser.add_argument("--render", type=Path, help="only rewrite the report from this .json")
    args = parser.parse_args(argv)
    if args.render is not None:
        data = json.loads(args.render.read_text())
        data["results"] = [Result(**r) for r in data["results"]]
        write_report(Report(**data), args.out or args.render.with_suffix(".md"))
        return 0
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (make sysdeps installs it)", file=sys.stderr)
        return 2
    quick = args.quick
    # wrk runs whole seconds; quick mode: 1 s per run, no warm-up, 16 clients only.
    seconds = args.seconds or (1 if quick else 5)
    conc = (16,) if quick else (1, 16, 64)
    warm = not quick
    json_ = "application/json"
    with tempfile.TemporaryDirectory(prefix="aeserve-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = build_all(workdir / "models")
        zoo = [] if quick else shipped_models()
        for name in zoo:
            (model_dir / name).symlink_to(ROOT / "models" / name)
        files = bodies(workdir)
        report = Report(quick=quick, machine=machine(), zoo=zoo, load=[os.getloadavg()[0]])
        report.servers = ["uvicorn"] + (["granian"] if has_granian() and not quick else [])
        print(f"bench: models {sorted(p.name for p in model_dir.iterdir())}", flush=True)
        report.raw = raw_onnxruntime(model_dir, IMAGE_MODEL, [28, 28], 0.1 if quick else 2.0)
        for key, value in report.raw.items():
            print(f"  raw onnxruntime {key}: {value:,.1f}", flush=True)

        def both(srv: Server, concurrencies: tuple[int, ...] = conc) -> None:
            for scenario, path, body in (
                (JSON_IMAGE, "/reconstruct", files["image.json"]),
                (JSON_RECORD, "/anomaly-score", files["record.json"]),
            ):
                run(report, srv, scenario, path, body, json_, concurrencies, seconds, workdir,
                    warmup=warm)  # fmt: skip

        with baseline(model_dir) as srv:
            report.cold_start_s["baseline"] = round(srv.ready_s, 2)
            both(srv)
        with floor(model_dir) as srv:
            check_answers(srv, files)
            both(srv)
        grpc_port = free_port()
        with aeserve("aeserve", model_dir, AESERVE_GRPC_PORT=str(grpc_port)) as srv:
            report.cold_start_s["aeserve"] = round(srv.ready_s, 2)
            check_answers(srv, files)
            both(srv)
            run(report, srv, NPY_BATCH, f"/reconstruct?model={IMAGE_MODEL}", files["batch256.npy"],
                "application/x-npy", (1,) if quick else (1, 4), seconds, workdir,
                accept="application/x-npy", samples=256, warmup=warm)  # fmt: skip
            for name, path in (("mnist", "/reconstruct"), ("shuttle", "/anomaly-score")):
                if name in zoo:
                    body = zoo_body(model_dir, name, workdir)
                    run(report, srv, f"zoo {name} {path} JSON", path, body, json_, (16,), seconds,
                        workdir, warmup=warm)  # fmt: skip
            if not quick:  # overload: 1,024 connections; beyond the queue bounds, 503s
                run(report, srv, OVERLOAD, "/reconstruct", files["image.json"], json_, (1024,),
                    OVERLOAD_SECONDS, workdir, warmup=False)  # fmt: skip
            # The Open Inference Protocol (bench/v2.py): v2 JSON vs REST side by side, v2 binary
            # batches, gRPC at 16 clients.
            v2.runs(report, srv, v2.bodies(workdir), files["image.json"], f"127.0.0.1:{grpc_port}",
                    1 if quick else V2_ROUNDS, seconds, workdir, warm)  # fmt: skip
            rss, hwm = rss_mb(srv.proc.pid)
            report.memory = {"rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1),
                             "models": len(list(model_dir.iterdir()))}  # fmt: skip
        # API keys on (every request checked by the request hook, express lane included).
        with aeserve("aeserve-keys", model_dir, AESERVE_API_KEYS=f"{BENCH_KEY}:infer") as srv:
            auth = f"Authorization: Bearer {BENCH_KEY}"
            run(report, srv, JSON_IMAGE, "/reconstruct", files["image.json"], json_, (16,),
                seconds, workdir, warmup=warm, header=auth)  # fmt: skip
        with aeserve("aeserve-nobatch", model_dir, AESERVE_BATCHING="false") as srv:
            run(report, srv, JSON_IMAGE, "/reconstruct", files["image.json"], json_, conc,
                seconds, workdir, warmup=warm)  # fmt: skip
        paired(report, model_dir, files, 1 if quick else PAIRED_ROUNDS, seconds, workdir, warm)
        if "granian" in report.servers:
            with aeserve_granian(model_dir) as srv:
                both(srv, (16,))
        report.load.append(os.getloadavg()[0])
        out = args.out or (workdir / "benchmarks.md" if quick else ROOT / "docs" / "benchmarks.md")
        write_report(report, out)
        if quick and args.out is None:
            print(out.read_text())
    print(f"bench: wrote {out}", flush=True)
    return 0


BENCH_KEY = "bench-key-0123456789"

# One image as JSON from 1,024 connections: the queue-wait bound and the queue limit shed
# (503 + Retry-After) instead of letting the queue grow.
OVERLOAD = "overload: JSON image, 1,024 connections"
# 1,024 connections opening at once: their first requests wait for the server to accept and
# read them while it serves the others (up to wrk's 2 s timeout); over 5 s those are ~1% of the
# requests and set the p99 (957 ms), over 15 s the steady state does (209 ms, p50 179 ms).
OVERLOAD_SECONDS = 15

# Rounds of the side-by-side measurement: one round's ratio moved 7.6-12.6x within a run.
PAIRED_ROUNDS = 5
# Rounds of v2 JSON vs REST on the same server (one server: the two see the same machine).
V2_ROUNDS = 3


def paired(
    report: Report,
    model_dir: Path,
    files: dict[str, Path],
    rounds: int,
    seconds: float,
    workdir: Path,
    warmup: bool,
) -> None:
    """The two 8x targets side by side: the baseline and aeserve run at the same time (on the
    same pinned core; the idle one costs nothing) and wrk alternates between them, round after
    round (each round in the other order), so that both see the same machine. The single runs
    above are minutes apart, and on this shared machine the baseline's own rate moved 1.8x
    between runs."""
    with baseline(model_dir) as base, aeserve("aeserve", model_dir) as ours:
        for scenario, path, body in (
            (JSON_IMAGE, "/reconstruct", files["image.json"]),
            (JSON_RECORD, "/anomaly-score", files["record.json"]),
        ):
            if warmup:
                for srv in (base, ours):
                    wrk(srv, path, body, "application/json", 4, 1, workdir)
            for i in range(rounds):
                # Which goes first alternates too: neither always follows the other.
                for srv in (base, ours) if i % 2 == 0 else (ours, base):
                    stats = wrk(srv, path, body, "application/json", 16, seconds, workdir)
                    rps = stats["requests"] / (stats["duration_us"] / 1e6)
                    report.paired.append(
                        {"server": srv.name, "scenario": scenario, "round": i + 1,
                         "rps": round(rps, 1), "p99_ms": stats["p99_us"] / 1000}
                    )  # fmt: skip
                    print(
                        f"  paired {srv.name:10s} {scenario:28s} round {i + 1}: "
                        f"{rps:9.0f} req/s  p99 {stats['p99_us'] / 1000:6.2f} ms",
                        flush=True,
                    )


def shipped_models() -> list[str]:
    models = ROOT / "models"
    return sorted(p.name for p in models.iterdir() if (p / "model.json").is_file())


def machine() -> str:
    try:
        model = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_report(report: Report, out: Path) -> None:
    from bench.report import render

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report, out), encoding="utf-8")
    (out.with_suffix(".json")).write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")


__all__ = ["Report", "Result", "base64", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
