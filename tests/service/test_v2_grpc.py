"""The gRPC transport in process: the request policy sees every call (hooks, request ids,
metrics), the committed descriptor set matches the .proto, KServe mode's settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from service.http.app import create_app
from service.http.grpc.proto import DESCRIPTOR_SET
from service.http.policy import RequestHead
from service.runtime.errors import Forbidden, Unauthenticated
from service.settings import Settings
from tests.live_server import free_port

from .conftest import glyphs, wait_ready

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hooked(zoo_dir: Path) -> Iterator[tuple[TestClient, str, list[RequestHead]]]:
    seen: list[RequestHead] = []

    def hook(head: RequestHead) -> None:
        seen.append(head)
        if head.path.endswith("/ModelInfer") and head.header(b"authorization") is None:
            raise Unauthenticated("send Authorization: Bearer KEY")
        if head.header(b"x-deny") is not None:
            raise Forbidden("denied by the test hook")

    port = free_port()
    settings = Settings(model_dir=zoo_dir, grpc_port=port, grpc_host="127.0.0.1")
    app = create_app(settings, hooks=[hook], grpc=True)
    with TestClient(app) as client:
        wait_ready(client)
        yield client, f"127.0.0.1:{port}", seen


def test_request_hooks_see_grpc_calls(hooked: tuple[TestClient, str, list[RequestHead]]) -> None:
    http, address, seen = hooked
    client = grpcclient.InferenceServerClient(address)
    try:
        assert client.is_server_live()
        assert seen[-1].path == "/inference.GRPCInferenceService/ServerLive"
        x = glyphs(1)
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as info:
            client.infer("glyph", [inp])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        assert info.value.message() == "send Authorization: Bearer KEY"
        key = {"authorization": "Bearer k", "x-request-id": "grpc-id-1"}
        result = client.infer("glyph", [inp], headers=key)
        assert result.as_numpy("x_hat").shape == (1, 7, 5)
        head = seen[-1]
        assert head.path == "/inference.GRPCInferenceService/ModelInfer"
        assert head.header(b"authorization") == b"Bearer k" and head.request_id == "grpc-id-1"
        assert head.client is not None and head.client[0] == "127.0.0.1"
        with pytest.raises(InferenceServerException) as info:
            client.get_model_metadata("glyph", headers={"x-deny": "1"})
        assert info.value.status() == "StatusCode.PERMISSION_DENIED"
    finally:
        client.close()
    metrics = http.get("/metrics").text
    assert (
        'endpoint="/inference.GRPCInferenceService/ModelInfer",model="glyph",status="200"'
        in metrics
    )
    assert 'endpoint="/inference.GRPCInferenceService/ModelInfer",model="",status="401"' in metrics


def test_grpc_health_is_open_and_inference_needs_the_key(zoo_dir: Path) -> None:
    """With API keys on, ServerLive and ServerReady answer without a key (like /v2/health/*,
    for probes and load balancers); model metadata and inference need one."""
    port = free_port()
    settings = Settings(
        model_dir=zoo_dir, grpc_port=port, grpc_host="127.0.0.1", api_keys=["k1:infer"]
    )
    with TestClient(create_app(settings, grpc=True)) as http:
        wait_ready(http)
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            assert client.is_server_live() and client.is_server_ready()
            x = glyphs(1)
            inp = grpcclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            for call in (
                lambda: client.get_model_metadata("glyph"),
                lambda: client.is_model_ready("glyph"),
                lambda: client.infer("glyph", [inp]),
            ):
                with pytest.raises(InferenceServerException) as info:
                    call()
                assert info.value.status() == "StatusCode.UNAUTHENTICATED"
            result = client.infer("glyph", [inp], headers={"authorization": "Bearer k1"})
            assert result.as_numpy("x_hat").shape == (1, 7, 5)
        finally:
            client.close()


def test_request_id_comes_back_in_trailing_metadata(
    hooked: tuple[TestClient, str, list[RequestHead]],
) -> None:
    from service.http.grpc import proto as pb

    _, address, _ = hooked
    with grpc.insecure_channel(address) as channel:
        live = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerLive",
            request_serializer=pb.ServerLiveRequest.SerializeToString,
            response_deserializer=pb.ServerLiveResponse.FromString,
        )
        answer, call = live.with_call(pb.ServerLiveRequest(), metadata=[("x-request-id", "abc")])
        assert answer.live
        assert ("x-request-id", "abc") in list(call.trailing_metadata())
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        # Typed contents instead of raw bytes; a raw/inputs mismatch is INVALID_ARGUMENT.
        request = pb.ModelInferRequest(model_name="glyph")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 35])
        tensor.contents.fp32_contents.extend(glyphs(1).ravel().tolist())
        request.outputs.add(name="z")
        answer = infer(request, metadata=[("authorization", "Bearer k")])
        assert np.frombuffer(answer.raw_output_contents[0], np.float32).shape == (35,)
        request.raw_input_contents.extend([b"", b""])
        with pytest.raises(grpc.RpcError) as info:
            infer(request, metadata=[("authorization", "Bearer k")])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents has 2 entries for 1 inputs" in str(info.value.details())


def test_the_committed_descriptor_set_is_compiled_from_the_proto(tmp_path: Path) -> None:
    proto = DESCRIPTOR_SET.with_name("oip.proto")
    out = tmp_path / "oip.binpb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto.parent}",
            f"--descriptor_set_out={out}",
            proto.name,
        ],
        check=True,
    )
    assert out.read_bytes() == DESCRIPTOR_SET.read_bytes(), "run scripts/gen-grpc.sh"


def test_kserve_mode_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "m"
    models.mkdir()
    settings = Settings(kserve=True, model_dir=models)
    assert (settings.port, settings.grpc_port) == (8080, 9000)
    monkeypatch.setenv("AESERVE_KSERVE", "true")
    monkeypatch.setenv("AESERVE_MODEL_DIR", str(models))
    monkeypatch.setenv("AESERVE_GRPC_PORT", "9100")
    settings = Settings()
    assert (settings.port, settings.grpc_port, settings.model_dir) == (8080, 9100, models)
    monkeypatch.delenv("AESERVE_MODEL_DIR")
    if not Path("/mnt/models").is_dir():
        with pytest.raises(ValueError, match="/mnt/models"):
            Settings()
    monkeypatch.delenv("AESERVE_GRPC_PORT")
    default: Any = Settings(model_dir=models, kserve=False)
    assert (default.port, default.grpc_port) == (8000, 8001)
