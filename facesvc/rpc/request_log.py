"""One JSON log line per request, and the request id that ties it to the caller's logs.

The line names the RPC, its status code and rejection reason, its duration and peer,
never a byte of the image nor a value of an embedding. The request id is the caller's
`x-request-id` metadata when it is a sane token, a fresh one otherwise, and goes back to
the caller in the trailing metadata, whatever the outcome.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Iterable

import grpc

from facesvc import logs
from facesvc.rpc.interceptors import SERVER_FAULTS, Call, Outcome, UnaryInterceptor

REQUEST_ID_KEY = "x-request-id"
#: A caller's id is kept when it looks like an id (a UUID, a trace id, ...), never when it
#: could smuggle something odd into the logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")
#: Probes call these every few seconds: their lines are DEBUG, below the default INFO.
QUIET_SERVICES = frozenset({"grpc.health.v1.Health"})
_WARNINGS = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)

request_log = logging.getLogger("facesvc.requests")

_State = tuple[str, contextvars.Token[str | None]]


def request_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id when it is a sane token, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def level_for(call: Call, outcome: Outcome) -> int:
    if outcome.code in SERVER_FAULTS:
        return logging.ERROR
    if call.service in QUIET_SERVICES:
        return logging.DEBUG
    if outcome.code in _WARNINGS:
        return logging.WARNING
    return logging.INFO


class RequestLogInterceptor(UnaryInterceptor[_State]):
    """Logs every unary call on `facesvc.requests` and returns its x-request-id."""

    def before(self, call: Call, context: grpc.ServicerContext) -> _State:
        request_id = request_id_from(context.invocation_metadata())
        return request_id, logs.request_id.set(request_id)

    def after(self, call: Call, context: grpc.ServicerContext, state: _State, outcome: Outcome) -> None:
        request_id, token = state
        logs.request_id.reset(token)
        # abort_with_status replaced the trailing metadata with the status: add to it.
        context.set_trailing_metadata((*(context.trailing_metadata() or ()), (REQUEST_ID_KEY, request_id)))
        level = level_for(call, outcome)
        if request_log.isEnabledFor(level):
            request_log.log(
                level,
                "request",
                extra={
                    "rpc": call.rpc,
                    "code": outcome.code.name,
                    "reason": outcome.reason,
                    "duration_ms": round(outcome.seconds * 1000, 2),
                    "peer": context.peer(),
                    "request_id": request_id,
                },
            )
