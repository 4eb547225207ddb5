"""The base of facesvc's server interceptors: wrap each unary call, and tell how it ended."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.rpc import status_pb2

from facesvc.rpc.status import error_info

#: Where grpc-status (rpc_status.to_status) carries the google.rpc.Status with our ErrorInfo.
STATUS_DETAILS_KEY = "grpc-status-details-bin"

#: Codes that mean the server failed, not that the caller asked for something refusable.
SERVER_FAULTS = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


@dataclass(frozen=True, slots=True)
class Call:
    """Which RPC a call is: `/facesvc.v1.FaceService/Enroll` -> service and method."""

    service: str
    method: str

    @staticmethod
    def of(full_method: str) -> Call:
        service, _, method = full_method.lstrip("/").rpartition("/")
        return Call(service, method)

    @property
    def rpc(self) -> str:
        return f"{self.service}/{self.method}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended, as the caller sees it."""

    code: grpc.StatusCode
    #: google.rpc.ErrorInfo.reason of a refused call (NO_FACE, ENGINE_NOT_READY, ...); "" if none.
    reason: str
    seconds: float


def outcome_of(context: grpc.ServicerContext, raised: bool, seconds: float) -> Outcome:
    """Read the status the server is about to send: the code set by abort (or set_code),
    and the ErrorInfo reason from the trailing google.rpc.Status."""
    code = context.code()
    if code is None:
        if raised:
            code = grpc.StatusCode.UNKNOWN  # what grpc sends for an exception it did not expect
        elif not context.is_active():
            remaining = context.time_remaining()
            gone = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if gone else grpc.StatusCode.CANCELLED
        else:
            code = grpc.StatusCode.OK
    reason = "" if code is grpc.StatusCode.OK else _reason(context.trailing_metadata() or ())
    return Outcome(code, reason, seconds)


def _reason(trailing_metadata: Any) -> str:
    for key, value in trailing_metadata:
        if key != STATUS_DETAILS_KEY:
            continue
        info = error_info(status_pb2.Status.FromString(value))
        return str(info.reason) if info is not None else ""
    return ""


State = TypeVar("State")


class UnaryInterceptor(grpc.ServerInterceptor, Generic[State]):  # type: ignore[misc]  # grpc is untyped
    """Runs `before` and `after` around every unary-unary call. Streaming calls (health
    Watch, reflection) pass through untouched: their duration means nothing.

    `after` runs before the status leaves the server, so it may add trailing metadata;
    it must not raise."""

    def before(self, call: Call, context: grpc.ServicerContext) -> State:
        raise NotImplementedError

    def after(self, call: Call, context: grpc.ServicerContext, state: State, outcome: Outcome) -> None:
        raise NotImplementedError

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        call = Call.of(handler_call_details.method)
        behavior = handler.unary_unary

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            state = self.before(call, context)
            raised = True
            try:
                response = behavior(request, context)
                raised = False
                return response
            finally:
                self.after(call, context, state, outcome_of(context, raised, time.perf_counter() - started))

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
