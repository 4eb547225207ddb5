"""One call through the HTTP door: the gRPC server's servicer method, inside the same
checks the gRPC server puts around it (request log and metrics outermost, then the API
key and the message size limit), with a context that records how the call ended."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.rpc import status_pb2

from facesvc import errors
from facesvc.http.context import Aborted, HttpContext, Metadata
from facesvc.rpc.auth import key_is_known
from facesvc.rpc.guard import presented_key
from facesvc.rpc.interceptors import Call, UnaryInterceptor, outcome_of
from facesvc.rpc.request_log import REQUEST_ID_KEY
from facesvc.rpc.servicer import SERVICE, FaceServiceServicer
from facesvc.rpc.status import status_for

security_log = logging.getLogger("facesvc.security")


@dataclass
class Answer:
    """How a call ended: the response message, or the status it was refused with."""

    response: Any
    status: status_pb2.Status | None
    request_id: str | None


class Door:
    """The gRPC server's servicer and checks, for calls that arrive over HTTP."""

    def __init__(
        self,
        servicer: FaceServiceServicer,
        observers: Sequence[UnaryInterceptor[Any]],
        keys: Sequence[str],
        max_message_bytes: int,
        open_probes: bool,
    ) -> None:
        self.servicer = servicer
        self._observers = list(observers)
        self._keys = [key.encode() for key in keys]
        self.max_message_bytes = max_message_bytes
        #: The original design's GET /health stays open to probes, as grpc.health.v1 does.
        self.open_probes = open_probes

    def describe(self) -> Any:
        """FaceService.Health's answer (pb.HealthResponse), asked in-process."""
        from facesvc.v1 import face_service_pb2 as pb

        return self.servicer.Health(pb.HealthRequest(), HttpContext((), "in-process"))

    @property
    def needs_key(self) -> bool:
        return bool(self._keys)

    def key_error(self, metadata: Metadata, method: str, peer: str) -> errors.UnauthenticatedError | None:
        """UNAUTHENTICATED unless a configured key is presented (or none is configured)."""
        if not self._keys:
            return None
        presented = presented_key(metadata)
        if key_is_known(presented, self._keys):
            return None
        error = errors.UnauthenticatedError(
            "A valid API key is required (authorization: Bearer <key>, or x-api-key).",
            key="missing" if not presented else "unknown",
        )
        security_log.warning(
            "unauthenticated call",
            extra={
                "event": "unauthenticated",
                "method": f"/{SERVICE.full_name}/{method}",
                "peer": peer,
                "reason": error.reason,
                "details": dict(error.metadata),
            },
        )
        return error

    def call(
        self,
        method: str,
        request: Callable[[], Any] | None,
        metadata: Metadata,
        peer: str,
        *,
        size: int = 0,
        refusal: errors.FaceServiceError | None = None,
        check_key: bool = True,
    ) -> Answer:
        """Run `method` of FaceService on the request `request()` builds (in this thread).

        `size`: the body's length, checked against the message limit; `refusal`: an error
        the HTTP layer found while converting (a body that is not the message), which
        ends the call inside the log and metrics like any refusal."""
        context = HttpContext(metadata, peer)
        call = Call(SERVICE.full_name, method)
        started = time.perf_counter()
        states = [observer.before(call, context) for observer in self._observers]
        response = None
        raised = True
        try:
            error: errors.FaceServiceError | None = (
                self.key_error(metadata, method, peer) if check_key else None
            )
            if error is None and size > self.max_message_bytes:
                error = errors.MessageTooLargeError(
                    f"The request is {size} bytes; the service accepts at most {self.max_message_bytes}.",
                    size_bytes=size,
                    max_message_bytes=self.max_message_bytes,
                )
            error = error or refusal
            if error is not None:
                context.abort_with_status(status_for(error))
            message = request() if request is not None else None
            response = getattr(self.servicer, method)(message, context)
            raised = False
        except Aborted:
            pass
        finally:
            seconds = time.perf_counter() - started
            for observer, state in reversed(list(zip(self._observers, states, strict=True))):
                observer.after(call, context, state, outcome_of(context, raised, seconds))
        return Answer(response, context.status, context.trailing_value(REQUEST_ID_KEY))
