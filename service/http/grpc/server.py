"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` on its own port.

A thin transport on the same event loop as the HTTP server (``grpc.aio``): each call passes
the request policy (``service/http/policy.py``: request id, admission and request hooks, with
the call's metadata as the headers and ``/inference.GRPCInferenceService/<Method>`` as the
path; metrics and the access log), then the data plane (``service/dataplane/v2.py``). Domain
errors map to gRPC status codes here once; the request id goes back in the trailing metadata
(``x-request-id``), ``retry-after`` with UNAVAILABLE.

The handlers are registered from the generated messages (``proto/oip_pb2.py``) with grpcio's
generic handler API, so no generated service stubs are needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from grpc import aio

import service
from service.dataplane import v2
from service.dataplane.plane import DataPlane
from service.http.grpc import messages
from service.http.grpc import proto as pb
from service.http.policy import Policy, RequestHead
from service.http.problems import STATUS
from service.runtime.errors import Kind, ServiceError

logger = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
EXTENSIONS = ["binary_tensor_data", "model_repository"]

CODES: Mapping[Kind, grpc.StatusCode] = {
    "malformed": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "media_type": grpc.StatusCode.INVALID_ARGUMENT,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unsupported": grpc.StatusCode.INVALID_ARGUMENT,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
}

# A method: the request message -> (the answer, the model it concerned or "").
Method = Callable[[Any], Awaitable[tuple[Any, str]]]


class InferenceService:
    """The servicer: one method per rpc, on the data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def ServerLive(self, request: Any) -> tuple[Any, str]:
        return pb.ServerLiveResponse(live=True), ""

    async def ServerReady(self, request: Any) -> tuple[Any, str]:
        return pb.ServerReadyResponse(ready=self.plane.load.repository is not None), ""

    async def ServerMetadata(self, request: Any) -> tuple[Any, str]:
        answer = pb.ServerMetadataResponse(
            name="aeserve", version=service.__version__, extensions=EXTENSIONS
        )
        return answer, ""

    async def ModelReady(self, request: Any) -> tuple[Any, str]:
        repository = self.plane.load.repository
        if repository is None:
            return pb.ModelReadyResponse(ready=False), request.name
        try:
            runtime = v2.model(repository, request.name, request.version or None)
        except ServiceError:
            return pb.ModelReadyResponse(ready=False), ""
        return pb.ModelReadyResponse(ready=True), runtime.name

    async def ModelMetadata(self, request: Any) -> tuple[Any, str]:
        repository = self.plane.repository
        runtime = v2.model(repository, request.name, request.version or None)
        answer = pb.ModelMetadataResponse(
            name=runtime.name,
            versions=v2.versions(repository, runtime.name),
            platform=v2.PLATFORM,
            inputs=messages.tensor_metadata(v2.inputs_of(runtime)),
            outputs=messages.tensor_metadata(v2.outputs_of(runtime)),
        )
        return answer, runtime.name

    async def ModelInfer(self, request: Any) -> tuple[Any, str]:
        read = messages.read(request)
        runtime = v2.model(self.plane.repository, read.model, read.version)
        answer = await v2.infer(self.plane, runtime, read)
        return messages.write(answer), runtime.name

    async def RepositoryIndex(self, request: Any) -> tuple[Any, str]:
        rows = v2.index(self.plane.repository)
        if request.ready:
            rows = [r for r in rows if r["state"] == "READY"]
        answer = pb.RepositoryIndexResponse()
        for row in rows:
            answer.models.add(**row)
        return answer, ""


_MESSAGES = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
}


def _client(peer: str) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` -> (host, port)."""
    _, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _headers(context: Any) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in context.invocation_metadata() or ():
        name = key.lower().encode("latin-1")
        out.append((name, value if isinstance(value, bytes) else value.encode("latin-1")))
    return out


def with_policy(name: str, method: Method, policy: Policy) -> Callable[[Any, Any], Any]:
    """The rpc ``name`` behind the policy: request id, admission (hooks see the call's
    metadata as headers), metrics, the access log; domain errors as gRPC status codes."""
    path = f"/{SERVICE}/{name}"

    async def call(request: Any, context: Any) -> Any:
        start = time.perf_counter()
        head: RequestHead = policy.head("POST", path, _headers(context), _client(context.peer()))
        model, status = "", 200
        trailing: list[tuple[str, str]] = [("x-request-id", head.request_id)]
        try:
            policy.admit(head)
            answer, model = await method(request)
            context.set_trailing_metadata(trailing)
            return answer
        except ServiceError as exc:
            status = STATUS[exc.kind]
            if exc.retry_after is not None:
                trailing.append(("retry-after", str(exc.retry_after)))
            context.set_trailing_metadata(trailing)
            await context.abort(CODES[exc.kind], exc.detail)
        except aio.AbortError:
            raise
        except Exception:
            status = 500
            logger.exception("internal error on %s (request id %s)", path, head.request_id)
            context.set_trailing_metadata(trailing)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"internal error; quote request id {head.request_id} when reporting it",
            )
        finally:
            policy.finish(head, path, model, status, time.perf_counter() - start)

    return call


def handler(servicer: InferenceService, policy: Policy) -> Any:
    """The generic handler of every rpc of the service."""
    methods = {}
    for name, (request_type, response_type) in _MESSAGES.items():
        methods[name] = grpc.unary_unary_rpc_method_handler(
            with_policy(name, getattr(servicer, name), policy),
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, methods)


class GrpcServer:
    """The gRPC server of one app: started and stopped by the app's lifespan, on its loop
    (grpc.aio binds a server to the loop it is made on: made in :meth:`start`)."""

    def __init__(
        self,
        plane: DataPlane,
        policy: Policy,
        *,
        host: str,
        port: int,
        max_message: int,
        reuse_port: bool = False,
    ) -> None:
        self.handler = handler(InferenceService(plane), policy)
        self.address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.options = [
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", -1),
            # Several uvicorn workers each serve the port; one process alone must own it.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
        self.server: Any = None
        self.port = 0

    async def start(self) -> None:
        server = aio.server(options=self.options)
        server.add_generic_rpc_handlers((self.handler,))
        self.port = server.add_insecure_port(self.address)
        if self.port == 0:
            raise OSError(f"gRPC cannot listen on {self.address}")
        await server.start()
        self.server = server
        logger.info("gRPC (Open Inference Protocol) on %s", self.address)

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the calls in flight (at most ``grace`` seconds), refuse new ones."""
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace)
