"""The Open Inference Protocol in the bench: v2 JSON vs REST side by side, v2 binary batches,
gRPC at 16 clients.

- **v2 JSON, one 28x28 image, 16 clients**: ``POST /v2/models/bench-mnist/infer`` asking for
  ``x_hat`` and ``score`` (what ``/reconstruct`` answers) and REST ``/reconstruct`` on the same
  server, wrk alternating between them round after round (the ratio is the target, >= 0.8x).
- **v2 binary, 256 images**: the binary tensor extension both ways, against raw onnxruntime's
  images/s (>= 60%).
- **gRPC, one image, 16 clients**: ``ModelInfer`` with raw contents from a Python grpc.aio load
  client (``python -m bench.v2 grpc-load``, pinned to the client CPU; requests pre-serialised so
  the client does little per call), req/s and p99 beside REST's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.models import IMAGE_MODEL

if TYPE_CHECKING:
    from bench.__main__ import Report, Server

V2_JSON = "v2 infer 1 image JSON"
V2_BINARY = "v2 infer 256 images binary"
GRPC_IMAGE = "gRPC infer 1 image"
REST_IMAGE = "REST /reconstruct 1 image (paired with v2)"
PATH = f"/v2/models/{IMAGE_MODEL}/infer"
METHOD = "/inference.GRPCInferenceService/ModelInfer"


def bodies(workdir: Path) -> dict[str, tuple[Path, str]]:
    """The v2 bodies, each with its Inference-Header-Content-Length ("" for plain JSON)."""
    from service.http.grpc import proto as pb

    rng = np.random.default_rng(0)
    image = rng.random((1, 784), dtype=np.float32).round(4)
    batch = rng.random((256, 28, 28), dtype=np.float32)
    wanted = [{"name": "x_hat"}, {"name": "score"}]
    one = {
        "inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": image[0].tolist()}],
        "outputs": wanted,
    }
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [256, 28, 28],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": batch.nbytes},
                }
            ],
            "outputs": [{**o, "parameters": {"binary_data": True}} for o in wanted],
        }
    ).encode()
    message = pb.ModelInferRequest(model_name=IMAGE_MODEL)
    message.inputs.add(name="x", datatype="FP32", shape=[1, 784])
    message.outputs.add(name="x_hat")
    message.outputs.add(name="score")
    message.raw_input_contents.append(image.tobytes())
    files = {
        "v2-image.json": (json.dumps(one).encode(), ""),
        "v2-batch256.bin": (head + batch.tobytes(), str(len(head))),
        "grpc-image.pb": (message.SerializeToString(), ""),
    }
    out = {}
    for name, (data, header) in files.items():
        (workdir / name).write_bytes(data)
        out[name] = (workdir / name, header)
    return out


def check(server: Server, files: dict[str, tuple[Path, str]], grpc_address: str) -> None:
    """The bodies the load generators send must succeed (a 4xx would be measured as speed)."""
    import grpc
    import httpx

    for name in ("v2-image.json", "v2-batch256.bin"):
        path, header = files[name]
        headers = {"inference-header-content-length": header} if header else {}
        r = httpx.post(server.url + PATH, content=path.read_bytes(), headers=headers, timeout=10)
        assert r.status_code == 200, r.text
    with grpc.insecure_channel(grpc_address) as channel:
        call = channel.unary_unary(METHOD)
        call(files["grpc-image.pb"][0].read_bytes(), timeout=10)


def runs(
    report: Report,
    server: Server,
    files: dict[str, tuple[Path, str]],
    rest_body: Path,
    grpc_address: str,
    rounds: int,
    seconds: float,
    workdir: Path,
    warmup: bool,
) -> None:
    """Every v2 measurement on one aeserve (HTTP and gRPC up)."""
    from bench.__main__ import CLIENT_CPU, Result, cpu_seconds, pinned, run, wrk

    check(server, files, grpc_address)
    v2_json = files["v2-image.json"][0]
    json_ = "application/json"
    if warmup:
        wrk(server, PATH, v2_json, json_, 4, 1, workdir)
        wrk(server, "/reconstruct", rest_body, json_, 4, 1, workdir)
    for i in range(rounds):  # side by side: alternating, each round in the other order
        pair = [("aeserve-v2", PATH, v2_json), ("aeserve-rest", "/reconstruct", rest_body)]
        for name, path, body in pair if i % 2 == 0 else pair[::-1]:
            stats = wrk(server, path, body, json_, 16, seconds, workdir)
            rps = stats["requests"] / (stats["duration_us"] / 1e6)
            report.paired.append(
                {"server": name, "scenario": V2_JSON, "round": i + 1, "rps": round(rps, 1),
                 "p99_ms": stats["p99_us"] / 1000,
                 "server_ms": round(stats["server_cpu_s"] / max(1, stats["requests"]) * 1000, 3)}
            )  # fmt: skip
            print(
                f"  paired {name:12s} {V2_JSON:28s} round {i + 1}: {rps:9.0f} req/s  "
                f"p99 {stats['p99_us'] / 1000:6.2f} ms",
                flush=True,
            )
    path, header = files["v2-batch256.bin"]
    run(report, server, V2_BINARY, PATH, path, "application/octet-stream",
        (1, 4) if rounds > 1 else (1,), seconds, workdir, samples=256, warmup=warmup,
        header=f"Inference-Header-Content-Length: {header}")  # fmt: skip
    # gRPC: the Python load client on the client CPU.
    body = files["grpc-image.pb"][0]
    if warmup:
        _grpc_load(pinned(CLIENT_CPU), grpc_address, body, 4, 1)
    cpu0 = cpu_seconds(server.proc.pid)
    stats = _grpc_load(pinned(CLIENT_CPU), grpc_address, body, 16, seconds)
    n = max(1, stats["requests"])
    result = Result(
        server="aeserve",
        scenario=GRPC_IMAGE,
        concurrency=16,
        requests=stats["requests"],
        seconds=round(stats["seconds"], 2),
        rps=round(stats["requests"] / stats["seconds"], 1),
        p50_ms=stats["p50_ms"],
        p99_ms=stats["p99_ms"],
        errors=stats["errors"],
        server_cpu_ms_per_req=round((cpu_seconds(server.proc.pid) - cpu0) / n * 1000, 3),
        client_cpu_share=round(stats["client_cpu_s"] / stats["seconds"], 2),
    )
    report.results.append(result)
    print(
        f"  {server.name:18s} {GRPC_IMAGE:24s} c=16  {result.rps:9.0f} req/s  "
        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
        f"server {result.server_cpu_ms_per_req:.3f} ms/req  client {result.client_cpu_share:.2f}",
        flush=True,
    )


def _grpc_load(
    prefix: list[str], address: str, body: Path, concurrency: int, seconds: float
) -> dict[str, Any]:
    cmd = [*prefix, sys.executable, "-m", "bench.v2", "grpc-load", address, str(body),
           str(concurrency), str(seconds)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    stats: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return stats


async def _load(address: str, body: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` callers sending ``body`` (a serialised ModelInferRequest) for
    ``seconds``; latencies of every call."""
    from grpc import aio

    latencies: list[float] = []
    errors = 0
    async with aio.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD)
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    await call(body, timeout=10)
                except Exception:  # counted: the report shows errors
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.v2")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("grpc-load", help="drive ModelInfer with one serialised request")
    load.add_argument("address")
    load.add_argument("body", type=Path)
    load.add_argument("concurrency", type=int)
    load.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    stats = asyncio.run(_load(args.address, args.body.read_bytes(), args.concurrency, args.seconds))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(stats))
    return 0


__all__ = ["GRPC_IMAGE", "REST_IMAGE", "V2_BINARY", "V2_JSON", "bodies", "runs"]

if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    raise SystemExit(main())
