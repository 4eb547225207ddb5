"""Failures: the outermost ASGI middleware of the HTTP door.

An exception that escapes a handler is a bug: the caller gets a bare 500 (a
google.rpc.Status INTERNAL with no detail, and the request's x-request-id), and it is
logged once, with its traceback and that request id, on `facesvc.http` (neither
Starlette's error page nor uvicorn's own "Exception in ASGI application" line). A caller
that went away, or was cut off by a time limit (facesvc.http.protocol), is not one: the
handler's read of the body ends in ClientDisconnect, and nothing is answered or logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from facesvc.rpc.request_log import REQUEST_ID_KEY, request_id_from

log = logging.getLogger("facesvc.http")

INTERNAL_BODY = json.dumps({"code": 13, "message": "Internal error.", "details": []}).encode()


class Failures:
    """ASGI middleware: unexpected exceptions to a bare, logged 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except (ClientDisconnect, WebSocketDisconnect):
            return
        except Exception as error:
            request_id = request_id_from(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers", ())
            )
            log.error(
                "unexpected failure",
                exc_info=error,
                extra={
                    "event": "http_internal",
                    "request_id": request_id,
                    "method": scope.get("method", "WEBSOCKET"),
                    "path": scope.get("path", ""),
                },
            )
            with contextlib.suppress(Exception):  # the caller may have gone meanwhile
                await _answer(scope, send, started, request_id)


async def _answer(scope: Scope, send: Send, started: bool, request_id: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1011})
        return
    if started:
        return  # a response is under way: uvicorn closes the connection when we return
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(INTERNAL_BODY)).encode()),
        (REQUEST_ID_KEY.encode(), request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": INTERNAL_BODY})
