"""The gRPC transport in process: every operation and model family gives the REST API's
numbers bit for bit, model versions, errors with the REST messages; the request policy sees
every call (hooks, request ids, metrics), the committed descriptor set matches the .proto,
KServe mode's settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils as tritonclient_utils
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from service.http.app import create_app
from service.http.grpc.proto import DESCRIPTOR_SET
from service.http.policy import RequestHead
from service.runtime.errors import Forbidden, Unauthenticated
from service.settings import Settings
from tests.live_server import free_port

from .conftest import glyphs, wait_ready
from .test_lifecycle import add_version
from .test_v2 import (
    MODELS,
    assert_every_output_equals_rest,
    inputs_for,
    outputs_of,
    rest,
    same,
    x_input,
)

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


# -- gRPC answers are the REST API's, bit for bit ------------------------------------------------


@contextmanager
def grpc_app(model_dir: Path) -> Iterator[tuple[TestClient, grpcclient.InferenceServerClient]]:
    """The app with gRPC (in process): its HTTP test client and a tritonclient gRPC client."""
    port = free_port()
    settings = Settings(
        model_dir=model_dir, grpc_port=port, grpc_host="127.0.0.1", default_model=None
    )
    with TestClient(create_app(settings, grpc=True)) as http:
        wait_ready(http)
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            yield http, client
        finally:
            client.close()


@pytest.fixture(scope="module")
def zoo_grpc(zoo_dir: Path) -> Iterator[tuple[TestClient, grpcclient.InferenceServerClient]]:
    with grpc_app(zoo_dir) as pair:
        yield pair


def tensor(name: str, array: np.ndarray) -> Any:
    inp = grpcclient.InferInput(
        name, list(array.shape), tritonclient_utils.np_to_triton_dtype(array.dtype)
    )
    inp.set_data_from_numpy(array)
    return inp


def outputs(result: Any) -> dict[str, np.ndarray]:
    return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}


@pytest.mark.parametrize("model", MODELS)
def test_grpc_every_operation_equals_rest_bit_for_bit(
    zoo_grpc: tuple[TestClient, grpcclient.InferenceServerClient], model: str
) -> None:
    http, client = zoo_grpc
    x = inputs_for(model)
    got = outputs(client.infer(model, [tensor("x", x)]))  # every output
    z = assert_every_output_equals_rest(http, model, x, got)
    dec = outputs(client.infer(model, [tensor("z", z)]))
    same(dec["x_hat"], rest(http, "/decode", {"model": model, "latents": z})["outputs"])
    drawn = client.infer(model, [], parameters={"n": 3, "seed": 11, "scale": 0.5})
    smp = rest(http, "/sample", {"model": model, "n": 3, "seed": 11, "scale": 0.5})
    same(drawn.as_numpy("z"), smp["latents"])
    same(drawn.as_numpy("x_hat"), smp["outputs"])
    assert drawn.get_response().parameters["seed"].int64_param == 11
    # The options as parameters: binarize, threshold.
    if model.startswith("glyph"):  # the binary models
        binary = client.infer(model, [tensor("x", x)], parameters={"binarize": True})
        rec = rest(http, "/reconstruct", {"model": model, "inputs": x, "binarize": True})
        same(binary.as_numpy("x_hat"), rec["outputs"])
    flagged = client.infer(
        model,
        [tensor("x", x)],
        outputs=[grpcclient.InferRequestedOutput("is_anomaly")],
        parameters={"threshold": 0.001},
    )
    ano = rest(http, "/anomaly-score", {"model": model, "inputs": x, "threshold": 0.001})
    same(flagged.as_numpy("is_anomaly"), ano["is_anomaly"])


def test_grpc_errors_are_the_rest_messages(
    zoo_grpc: tuple[TestClient, grpcclient.InferenceServerClient],
) -> None:
    http, client = zoo_grpc
    x = glyphs(1)
    wanted = [grpcclient.InferRequestedOutput("score", class_count=2)]
    with pytest.raises(InferenceServerException) as info:
        client.infer("glyph", [tensor("x", x)], outputs=wanted)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "asks for classification (Triton's extension)" in info.value.message()
    r = http.post(
        "/v2/models/glyph/infer",
        json={
            "inputs": [x_input(x)],
            "outputs": [{"name": "score", "parameters": {"classification": 2}}],
        },
    )
    assert r.status_code == 422 and info.value.message() == r.json()["error"]
    words = grpcclient.InferInput("x", [1], "BYTES")  # a datatype no model takes
    words.set_data_from_numpy(np.array([b"a"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        client.infer("glyph", [words])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message().startswith("input 'x' has datatype 'BYTES'; send one of BOOL,")
    with pytest.raises(InferenceServerException) as info:
        client.infer("glyph", [], parameters={"n": 0})
    r = http.post("/sample", json={"model": "glyph", "n": 0})
    detail = r.json()["detail"]  # "invalid request: n: ..." (gRPC: "invalid parameters: n: ...")
    assert info.value.message() == detail.replace("invalid request", "invalid parameters")


def test_model_versions_side_by_side(tmp_path: Path) -> None:
    """Every loaded version is listed (metadata, index) and can be asked for by path or
    model_version, over REST and gRPC: the REST API's answers for that version, bit for bit;
    an unknown version is the REST API's 404."""
    v1 = add_version(tmp_path / "multi", "1.0.0", "2026-01-01T00:00:00Z", 20.0)
    v2 = add_version(tmp_path / "multi", "2.0.0", "2026-02-01T00:00:00Z", 4.0)
    x = glyphs(2)
    with grpc_app(tmp_path) as (http, client):
        meta = http.get("/v2/models/multi").json()
        assert meta["versions"] == [v1, v2]
        assert http.get(f"/v2/models/multi/versions/{v1}").json()["versions"] == [v1, v2]
        assert client.get_model_metadata("multi", as_json=True)["versions"] == [v1, v2]
        index = http.post("/v2/repository/index").json()
        assert [(r["name"], r["version"], r["state"]) for r in index] == [
            ("multi", v1, "READY"),
            ("multi", v2, "READY"),
        ]
        grpc_index = client.get_model_repository_index(as_json=True)["models"]
        assert [(r["name"], r["version"]) for r in grpc_index] == [("multi", v1), ("multi", v2)]
        for version in (v1, v2, None):
            pinned = {"version": version} if version else {}
            rec = rest(http, "/reconstruct", {"model": "multi", "inputs": x, **pinned})
            assert rec["version"] == (version or v2)
            path = f"/v2/models/multi/versions/{version}" if version else "/v2/models/multi"
            r = http.post(path + "/infer", json={"inputs": [x_input(x)]})
            assert r.json()["model_version"] == rec["version"]
            same(outputs_of(r)["x_hat"], rec["outputs"])
            got = client.infer("multi", [tensor("x", x)], model_version=version or "")
            assert got.get_response().model_version == rec["version"]
            same(got.as_numpy("x_hat"), rec["outputs"])
            assert http.get(path + "/ready").json() == {"name": "multi", "ready": True}
            assert client.is_model_ready("multi", model_version=version or "")
        # The first answers differ: the versions really are different models.
        old = rest(http, "/reconstruct", {"model": "multi", "inputs": x, "version": v1})
        new = rest(http, "/reconstruct", {"model": "multi", "inputs": x})
        assert old["outputs"] != new["outputs"]
        detail = http.post(
            "/reconstruct", json={"model": "multi", "inputs": x.tolist(), "version": "9"}
        ).json()["detail"]
        assert f"versions: {v1}, {v2}" in detail
        r = http.post("/v2/models/multi/versions/9/infer", json={"inputs": [x_input(x)]})
        assert r.status_code == 404 and r.json() == {"error": detail}
        assert http.get("/v2/models/multi/versions/9").json() == {"error": detail}
        with pytest.raises(InferenceServerException) as info:
            client.infer("multi", [tensor("x", x)], model_version="9")
        assert info.value.status() == "StatusCode.NOT_FOUND" and info.value.message() == detail
        assert not client.is_model_ready("multi", model_version="9")
