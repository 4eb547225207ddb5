"""The request size limit, enforced by facesvc so that every oversized call is logged and counted.

gRPC's own limit (grpc.max_receive_message_length) refuses a larger message before any
interceptor or handler runs, so the call shows in neither the request log nor the
metrics, and an operator cannot see a client sending 12 MB photos. So the transport's
limit is TRANSPORT_FACTOR times FACESVC_MAX_MESSAGE_BYTES, and this interceptor,
innermost, refuses a message above FACESVC_MAX_MESSAGE_BYTES without parsing it:
RESOURCE_EXHAUSTED with reason MESSAGE_TOO_LARGE, which the request log and the metrics
see like any other refusal. Beyond the transport's limit gRPC still refuses the call
itself, unseen, from the message's 5-byte header and without reading the rest (measured:
a 300 MB request cost the server 2 MiB); reading such messages in full to report them
would let any caller make the server buffer gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from facesvc import errors
from facesvc.rpc.status import status_for

#: How far above FACESVC_MAX_MESSAGE_BYTES a request is still read, to be refused with
#: its reason: 40 MiB by default, past a phone's largest JPEGs.
TRANSPORT_FACTOR = 4
#: gRPC's option is a C int.
_LARGEST_GRPC_LIMIT = 2**31 - 1


def transport_limit(max_message_bytes: int) -> int:
    """grpc.max_receive_message_length for a service limit of `max_message_bytes`."""
    return min(max_message_bytes * TRANSPORT_FACTOR, _LARGEST_GRPC_LIMIT)


@dataclass(frozen=True, slots=True)
class Oversized:
    """What the deserializer hands on instead of a request above the limit."""

    size: int


class MessageLimitInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Refuses any request message above `max_bytes` (RESOURCE_EXHAUSTED, MESSAGE_TOO_LARGE)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        limit = self._max_bytes
        parse: Callable[[bytes], Any] | None = handler.request_deserializer

        def deserialize(data: bytes) -> Any:
            if len(data) > limit:
                return Oversized(len(data))
            return parse(data) if parse is not None else data

        def refuse_if_oversized(request: Any, context: grpc.ServicerContext) -> None:
            if isinstance(request, Oversized):
                error = errors.MessageTooLargeError(
                    f"The request is {request.size} bytes; the service accepts at most {limit}.",
                    size_bytes=request.size,
                    max_message_bytes=limit,
                )
                context.abort_with_status(status_for(error))

        kwargs = {"request_deserializer": deserialize, "response_serializer": handler.response_serializer}
        if not handler.request_streaming:
            behavior = handler.unary_unary or handler.unary_stream

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                refuse_if_oversized(request, context)
                return behavior(request, context)

            if handler.unary_unary is not None:
                return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
            return grpc.unary_stream_rpc_method_handler(unary, **kwargs)

        # A request stream ends at its first oversized message, and whatever the handler
        # makes of that end (it may read on a thread of its own, and refuse the stream
        # for ending early), the call ends with MESSAGE_TOO_LARGE.
        streaming = handler.stream_unary or handler.stream_stream

        def checked(requests: Iterator[Any], refused: list[Oversized]) -> Iterator[Any]:
            for request in requests:
                if isinstance(request, Oversized):
                    refused.append(request)
                    return
                yield request

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            refused: list[Oversized] = []
            try:
                return streaming(checked(requests, refused), context)
            finally:
                if refused:
                    refuse_if_oversized(refused[0], context)

        def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            refused: list[Oversized] = []
            try:
                yield from streaming(checked(requests, refused), context)
            finally:
                if refused:
                    refuse_if_oversized(refused[0], context)

        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
        return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
