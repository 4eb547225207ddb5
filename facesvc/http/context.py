"""A grpc.ServicerContext for a call that arrived over HTTP, so the servicer, its guards
and the request-log and metrics interceptors run unchanged for both doors.

The servicer ends a refused call with `context.abort_with_status(status)`; here that
records the status (as grpc would send it) and raises Aborted, which the HTTP layer
turns into its response.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
from google.rpc import status_pb2

from facesvc.rpc.interceptors import STATUS_DETAILS_KEY

Metadata = tuple[tuple[str, str], ...]


def to_proto(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status a grpc.Status (facesvc.rpc.status.status_for's) carries."""
    details = dict(status.trailing_metadata or ()).get(STATUS_DETAILS_KEY)
    message = status_pb2.Status.FromString(details) if details else status_pb2.Status()
    message.code = status.code.value[0]
    message.message = message.message or status.details or ""
    return message


class Aborted(Exception):
    """The servicer ended the call with a status (the HTTP layer answers with it)."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class HttpContext:
    """The parts of grpc.ServicerContext facesvc's servicer and interceptors use."""

    def __init__(self, metadata: Metadata, peer: str, timeout: float | None = None) -> None:
        self._metadata = metadata
        self._peer = peer
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._active = threading.Event()
        self._active.set()
        self._code: grpc.StatusCode | None = None
        self._trailing: tuple[tuple[str, str | bytes], ...] = ()
        self.status: status_pb2.Status | None = None

    # -- what the servicer reads
    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def is_active(self) -> bool:
        return self._active.is_set()

    def cancel(self) -> None:
        """The caller went away (a closed WebSocket): the engine stops at its next stage."""
        self._active.clear()

    # -- how it ends a call
    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self._end(status.code, to_proto(status), tuple(status.trailing_metadata or ()))

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._end(code, status_pb2.Status(code=code.value[0], message=details), ())

    def _end(
        self, code: grpc.StatusCode, status: status_pb2.Status, trailing: tuple[tuple[str, Any], ...]
    ) -> NoReturn:
        self._code = code
        self.status = status
        self._trailing = (*trailing, (STATUS_DETAILS_KEY, status.SerializeToString()))
        raise Aborted(status)

    # -- what the interceptors read and write afterwards
    def code(self) -> grpc.StatusCode | None:
        return self._code

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = tuple(metadata)

    def trailing_value(self, key: str) -> str | None:
        for name, value in self._trailing:
            if name == key and isinstance(value, str):
                return value
        return None
