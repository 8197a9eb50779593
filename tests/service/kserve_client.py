"""KServe's Python SDK (its v2 REST client) against a served zoo: ``python kserve_client.py URL``
with ``pixels28`` inputs [N, 28, 28] as JSON on stdin; prints what it saw as JSON.

Run by tests/service/test_v2_clients.py in a process of its own (see there why).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
import orjson
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(url: str, x: np.ndarray) -> dict[str, Any]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
    try:
        checks = [
            await client.is_server_live(url),
            await client.is_server_ready(url),
            await client.is_model_ready(url, "pixels28"),
        ]
        inp = InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        request = InferRequest(model_name="pixels28", infer_inputs=[inp], request_id="k-1")
        answer = await client.infer(url, request, model_name="pixels28")
        got = {o.name: o.as_numpy() for o in answer.outputs}
        return {
            "checks": checks,
            "id": answer.id,
            "x_hat": got["x_hat"].tolist(),
            "score": got["score"].tolist(),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    inputs = np.asarray(orjson.loads(sys.stdin.buffer.read()), dtype=np.float32)
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(main(sys.argv[1], inputs))))
