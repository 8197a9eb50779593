"""The floor: the least work a Python server can do per request for the bench's two requests.

``python -m bench.floor --port P --model-dir D`` (or ``BENCH_MODEL_DIR``). This is not a product
and not a second service: it does no validation, has no error answers, no metrics, no logging, no
settings and serves exactly the two bench models (``bench-mnist`` on ``POST /reconstruct``,
``bench-tabular`` on ``POST /anomaly-score``, whatever model name the body gives). A malformed
body gets no error answer: the exception closes its connection. It exists only so that the
benchmark can measure, in the same run, roughly the most any Python server (aeserve included)
can reach on this machine for these requests:

HTTP parse (httptools, on a raw uvloop ``asyncio.Protocol``, keep-alive) -> ``orjson.loads`` ->
numpy array -> one batched onnxruntime call per endpoint and loop iteration (encoder + decoder,
sessions with 1 intra-op and 1 inter-op thread like bench/baseline.py) -> ``orjson.dumps`` ->
one ``transport.write`` per answer.

Batching: every request parsed in ``data_received`` is appended to its endpoint's queue; the first
one schedules ``flush`` with ``loop.call_soon``. uvloop runs the read callbacks of all ready
sockets before the ``call_soon`` callbacks, so one flush takes every request that arrived in that
loop iteration, concatenates them (at most 64 rows a batch), runs the models once and writes each
request's rows back. Answers to one connection are written in the order of its requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import httptools
import numpy as np
import onnxruntime as ort
import orjson
import uvloop

from bench.models import IMAGE_MODEL, TABULAR_MODEL
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE, Manifest

MAX_ROWS = 64
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
READY = b'{"status":"ready"}'
DUMPS = orjson.OPT_SERIALIZE_NUMPY


def session(path: Path) -> ort.InferenceSession:
    """Like bench/baseline.py's ``_session``: CPU, one intra-op and one inter-op thread."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


class Model:
    """One bench model: its two sessions, and how its answers are built from a batch."""

    def __init__(self, model_dir: Path) -> None:
        self.manifest = Manifest.read(model_dir)
        self.name = self.manifest.name
        self.version = self.manifest.version
        self.encoder = session(model_dir / ENCODER_FILE)
        self.decoder = session(model_dir / DECODER_FILE)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x_hat and the per-row MSE, one encoder and one decoder call. The MSE is computed in
        float32 like bench/baseline.py and answered as float64 (what its ``tolist()`` gives)."""
        x_hat: np.ndarray = self.decoder.run(None, {"z": self.encoder.run(None, {"x": x})[0]})[0]
        scores = np.square(x - x_hat).reshape(len(x), -1).mean(axis=1).astype(np.float64)
        return x_hat, scores


class Image(Model):
    """``/reconstruct``: ``{"inputs": [[784 floats], ...]}`` -> outputs [N, 28, 28] and scores."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self.shape = tuple(self.manifest.input.shape)

    def parse(self, body: bytes) -> np.ndarray:
        return np.asarray(orjson.loads(body)["inputs"], dtype=np.float32).reshape(-1, *self.shape)

    def answers(self, x: np.ndarray, bounds: list[tuple[int, int]]) -> list[bytes]:
        x_hat, scores = self.forward(x)
        head = {"model": self.name, "version": self.version}
        return [
            orjson.dumps({**head, "outputs": x_hat[i:j], "scores": scores[i:j]}, option=DUMPS)
            for i, j in bounds
        ]


class Table(Model):
    """``/anomaly-score``: ``{"records": [{f0..f8: float}, ...]}`` -> scores and is_anomaly."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        spec = self.manifest.input
        assert spec.features is not None and spec.scaler is not None
        self.features = spec.features
        self.mean = np.asarray(spec.scaler.mean, dtype=np.float32)
        self.std = np.asarray(spec.scaler.std, dtype=np.float32)
        self.threshold = self.manifest.score.threshold

    def parse(self, body: bytes) -> np.ndarray:
        records = orjson.loads(body)["records"]
        raw = np.asarray([[r[f] for f in self.features] for r in records], dtype=np.float32)
        out: np.ndarray = (raw - self.mean) / self.std
        return out

    def answers(self, x: np.ndarray, bounds: list[tuple[int, int]]) -> list[bytes]:
        _, scores = self.forward(x)
        anomaly = scores > self.threshold
        head = {"model": self.name, "version": self.version}
        return [
            orjson.dumps({**head, "scores": scores[i:j], "is_anomaly": anomaly[i:j]}, option=DUMPS)
            for i, j in bounds
        ]


class Endpoint:
    """A model and its queue of parsed requests: (connection, sequence number, rows)."""

    def __init__(self, model: Image | Table) -> None:
        self.model = model
        self.queue: list[tuple[Connection, int, np.ndarray]] = []

    def flush(self) -> None:
        queue, self.queue = self.queue, []
        start = 0
        while start < len(queue):  # batches of consecutive requests, at most MAX_ROWS rows
            end, rows = start + 1, len(queue[start][2])
            while end < len(queue) and rows + len(queue[end][2]) <= MAX_ROWS:
                rows += len(queue[end][2])
                end += 1
            group = queue[start:end]
            arrays = [x for _, _, x in group]
            x = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            bounds, at = [], 0
            for a in arrays:
                bounds.append((at, at + len(a)))
                at += len(a)
            for (conn, seq, _), body in zip(group, self.model.answers(x, bounds), strict=True):
                conn.answer(seq, HEAD % len(body) + body)
            start = end


class Server:
    """The two endpoints and the one pending flush of the event loop."""

    def __init__(self, model_dir: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.routes = {
            b"/reconstruct": Endpoint(Image(model_dir / IMAGE_MODEL)),
            b"/anomaly-score": Endpoint(Table(model_dir / TABULAR_MODEL)),
        }
        self.endpoints = list(self.routes.values())
        self.scheduled = False

    def submit(self, endpoint: Endpoint, conn: Connection, seq: int, x: np.ndarray) -> None:
        endpoint.queue.append((conn, seq, x))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        for endpoint in self.endpoints:
            if endpoint.queue:
                endpoint.flush()

    def protocol(self) -> Connection:
        return Connection(self)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection parsed by httptools."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.seq_in = 0  # sequence number of the next request
        self.seq_out = 0  # sequence number of the next answer to write
        self.held: dict[int, bytes] = {}  # answers ready before an earlier one
        self.close_at = -1  # sequence number of a request that asked to close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        seq = self.seq_in
        self.seq_in += 1
        if not self.parser.should_keep_alive():
            self.close_at = seq
        path = self.url.split(b"?", 1)[0]
        endpoint = self.server.routes.get(path)
        if endpoint is not None:
            x = endpoint.model.parse(b"".join(self.body))
            self.server.submit(endpoint, self, seq, x)
        elif path == b"/readyz":
            self.answer(seq, HEAD % len(READY) + READY)
        else:
            self.answer(seq, NOT_FOUND)

    def answer(self, seq: int, data: bytes) -> None:
        if seq != self.seq_out:
            self.held[seq] = data
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        self.seq_out += 1
        if seq == self.close_at:
            transport.close()
        elif self.held and self.seq_out in self.held:
            self.answer(self.seq_out, self.held.pop(self.seq_out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(model_dir: Path, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = Server(model_dir, loop)
    factory: Callable[[], Connection] = server.protocol
    listener = await loop.create_server(factory, host, port, backlog=1024)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("BENCH_MODEL_DIR", "."))
    )
    args = parser.parse_args(argv)
    uvloop.run(serve(args.model_dir, args.host, args.port))


if __name__ == "__main__":
    main()
