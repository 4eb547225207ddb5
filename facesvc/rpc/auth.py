"""API keys: a server interceptor that refuses calls without a known key (UNAUTHENTICATED).

Keys arrive as `authorization: Bearer <key>` or `x-api-key: <key>` metadata and are
compared with every configured key in constant time. Health checking and reflection
stay open for probes unless FACESVC_AUTH_PROBES is set.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from facesvc.errors import UnauthenticatedError
from facesvc.rpc.guard import presented_key
from facesvc.rpc.status import status_for

security_log = logging.getLogger("facesvc.security")

PROBE_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class RelaxPolicy:
    """Who may ask for a weaker presentation-attack mode than the server's: callers
    presenting one of FACESVC_PRESENTATION_ATTACK_RELAX_KEYS (an archive importer's key),
    or everyone with FACESVC_PRESENTATION_ATTACK_RELAX_ANYONE."""

    def __init__(self, keys: Sequence[str], anyone: bool) -> None:
        self._keys = [key.encode() for key in keys]
        self._anyone = anyone

    @property
    def relaxable(self) -> bool:
        return self._anyone or bool(self._keys)

    def allows(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        if self._anyone:
            return True
        return bool(self._keys) and key_is_known(presented_key(metadata), self._keys)


def key_is_known(presented: str | None, keys: Sequence[bytes]) -> bool:
    """Constant time in the key's content: every configured key is compared, always."""
    candidate = (presented or "").encode()
    known = False
    for key in keys:
        known |= hmac.compare_digest(candidate, key)
    return known and presented is not None


class ApiKeyInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    def __init__(self, keys: Sequence[str], open_services: frozenset[str] = PROBE_SERVICES) -> None:
        self._keys = [key.encode() for key in keys]
        self._open = open_services

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        service = handler_call_details.method.split("/")[1] if "/" in handler_call_details.method else ""
        handler = continuation(handler_call_details)
        if handler is None or service in self._open:
            return handler
        presented = presented_key(handler_call_details.invocation_metadata)
        if key_is_known(presented, self._keys):
            return handler
        error = UnauthenticatedError(
            "A valid API key is required (authorization: Bearer <key>, or x-api-key).",
            key="missing" if not presented else "unknown",
        )
        return _refusing(handler, error, handler_call_details.method)


def _refusing(handler: Any, error: UnauthenticatedError, method: str) -> Any:
    """A handler of the same shape as `handler` that refuses the call."""

    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        security_log.warning(
            "unauthenticated call",
            extra={
                "event": "unauthenticated",
                "method": method,
                "peer": context.peer(),
                "reason": error.reason,
                "details": dict(error.metadata),
            },
        )
        context.abort_with_status(status_for(error))

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
