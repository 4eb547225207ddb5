"""GuardedProtocol: uvicorn's httptools protocol with the limits uvicorn has no option for.

uvicorn bounds idle keep-alive connections (timeout_keep_alive) and WebSocket messages
(ws_max_size), but not the size or number of a request's headers, nor how long the
headers or the body may take to arrive, nor how many connections are open. This
subclass adds those at the connection, where they cost nothing per request: each check
is a counter or a timer beside httptools' own callbacks, the parsing stays httptools'.

- Headers: the request line and headers are counted as httptools hands them over, and
  the bytes received while they are still incomplete (a header httptools is still
  buffering); over `max_header_bytes` or `max_headers`: 431, closed.
- Time: a timer from the connection's opening, or a request's first byte, to its last
  header (`header_timeout`), then one to the body's end (`body_timeout`); when one fires,
  408 (when nothing was answered yet) and the connection is closed. The application's
  read of the body then ends as a disconnect.
- Connections: one more than `max_connections` is answered 429 OVERLOADED with
  Retry-After when its first bytes arrive, and closed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from facesvc import errors
from facesvc.http.context import to_proto
from facesvc.http.status import RETRY_AFTER_SECONDS, status_json
from facesvc.rpc.status import status_for


@dataclass(frozen=True)
class Limits:
    """The connection-level limits (facesvc.config's http_* settings)."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int


def _canned(status: str, body: dict[str, Any] | None = None, *extra: str) -> bytes:
    """A complete response that closes the connection."""
    content = json.dumps(body).encode() if body is not None else b""
    head = [f"HTTP/1.1 {status}", "connection: close", f"content-length: {len(content)}", *extra]
    if body is not None:
        head.append("content-type: application/json")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content


def _status_body(code: int, message: str) -> dict[str, Any]:
    """A google.rpc.Status without details, in its JSON mapping."""
    return {"code": code, "message": message, "details": []}


HEADERS_TOO_LARGE = _canned(
    "431 Request Header Fields Too Large",
    _status_body(3, "The request's headers are too large or too many."),
)
TIMED_OUT = _canned("408 Request Timeout", _status_body(3, "The request did not arrive in time."))
OVERLOADED = _canned(
    "429 Too Many Requests",
    status_json(
        to_proto(
            status_for(
                errors.OverloadedError(
                    "The HTTP door is at its limit of open connections; retry with backoff.",
                    max_connections="http_max_connections",
                )
            )
        )
    ),
    f"retry-after: {RETRY_AFTER_SECONDS}",
)


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header, time and connection limits (module docstring)."""

    limits: Limits  # set on a subclass by protocol_class()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0
        self._header_count = 0
        self._raw_bytes = 0
        self._refused = False
        self._failed = False

    # -- the connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._refused = len(self.connections) > self.limits.max_connections
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        if self._refused:
            self._fail(OVERLOADED)
            return
        self._unset_keepalive_if_required()
        waiting = self._in_headers
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadersTooLarge):
                self._fail(HEADERS_TOO_LARGE)
                return
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        if waiting and self._in_headers:
            # A whole read of header bytes, none completed: what httptools buffers for a
            # header it has not finished is bounded too.
            self._raw_bytes += len(data)
            if self._raw_bytes > self.limits.max_header_bytes:
                self._fail(HEADERS_TOO_LARGE)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket's own limits take over (facesvc.http.liveness)
        super().handle_websocket_upgrade()

    # -- httptools' callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._raw_bytes = 0
        if self._timer is None:
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.body_timeout)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        if (
            self.cycle is not None
            and self.cycle.response_complete
            and self.timeout_keep_alive_task is None
            and not self.pipeline
            and not self.transport.is_closing()
        ):
            # Answered before its body had arrived (413): uvicorn's keep-alive timer, armed
            # at the answer, was cancelled by the body's later bytes; arm it again.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    # -- the limits
    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes or self._header_count > self.limits.max_headers:
            raise _HeadersTooLarge

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        started = self._in_headers or (self.cycle is not None and not self.cycle.response_complete)
        if started and not answered and not self._refused:
            self.transport.write(TIMED_OUT)
        self.transport.close()

    def _invalid(self) -> None:
        self.logger.debug("Invalid HTTP request received.")
        self._fail(_canned("400 Bad Request", _status_body(3, "The request is not valid HTTP/1.1.")))

    def _fail(self, response: bytes) -> None:
        """Answer `response` unless a response is under way, and close."""
        self._failed = True
        self._disarm()
        if not (self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete):
            self.transport.write(response)
        self.transport.close()


class _HeadersTooLarge(Exception):
    """Raised in a parser callback to stop httptools at the header limit."""


def protocol_class(limits: Limits) -> type[GuardedProtocol]:
    """GuardedProtocol bound to `limits` (uvicorn builds one protocol per connection)."""
    return type("FacesvcHttpProtocol", (GuardedProtocol,), {"limits": limits})
