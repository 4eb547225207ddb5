"""The route table, read at start-up from the contract's google.api.http options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2
from google.protobuf.descriptor import MethodDescriptor

from facesvc.rpc.servicer import SERVICE
from facesvc.v1 import face_service_pb2 as pb

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class Route:
    """One RPC's HTTP binding. A client-streaming RPC is served as a WebSocket at `path`."""

    method: str  # FaceService method name
    verb: str  # "GET", "POST", ...
    path: str
    body: str  # "*": the whole request message is the body; "": no body
    request_type: Any
    response_type: Any
    websocket: bool


def route_of(method: MethodDescriptor) -> Route | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule = options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb not in _VERBS:
        raise ValueError(f"{method.full_name}: unsupported google.api.http pattern {verb!r}")
    path = getattr(rule, verb)
    if "{" in path or rule.body not in ("", "*") or rule.additional_bindings:
        # Every facesvc request is one message sent whole; path variables and field
        # bodies would need a fuller transcoder than this one.
        raise ValueError(f"{method.full_name}: only whole-message bindings are supported ({path})")
    return Route(
        method=method.name,
        verb=verb.upper(),
        path=path,
        body=rule.body,
        request_type=getattr(pb, method.input_type.name),
        response_type=getattr(pb, method.output_type.name),
        websocket=method.client_streaming,
    )


def routes() -> list[Route]:
    """Every FaceService RPC that carries a google.api.http option."""
    return [route for method in SERVICE.methods if (route := route_of(method)) is not None]
