"""create_app: the Starlette application of the HTTP door.

Every handler reads the request, converts it to the RPC's request message, runs the
servicer method on a worker thread through the Door (the gRPC server's own servicer and
checks), and converts the answer back. Nothing here decides a status or touches an image.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from facesvc import errors
from facesvc.http import legacy, liveness, openapi
from facesvc.http.calls import Calls, answer_headers, parse_json, read_body, status_response, to_json
from facesvc.http.door import Door
from facesvc.http.failures import Failures
from facesvc.http.limits import HttpLimits, check_json
from facesvc.http.routes import Route as RpcRoute
from facesvc.http.routes import routes
from facesvc.rpc.wire import parse_identify


class App(Calls):
    """The handlers, over one Door."""

    def __init__(self, door: Door, worker_threads: int, limits: HttpLimits) -> None:
        super().__init__(door, worker_threads, limits)
        self.routes = routes()
        self.openapi = openapi.document(self.routes)

    def rpc_endpoint(self, route: RpcRoute) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            refusal = None
            message = route.request_type()
            body, size = b"", 0
            if route.body == "*":
                body, size = await read_body(request, self.door.max_message_bytes)
                if size <= self.door.max_message_bytes:
                    try:
                        check_json(body, self.limits)
                        parse_json(body, message)
                    except errors.RequestInvalidError as error:
                        refusal = error
                    except (json_format.ParseError, UnicodeDecodeError, RecursionError) as error:
                        refusal = errors.RequestInvalidError(
                            f"The body is not a {route.request_type.DESCRIPTOR.full_name} in JSON: {error}"[
                                :300
                            ]
                        )
            build: Callable[[], Any] = (
                (lambda: parse_identify(message.SerializeToString()))
                if route.method == "Identify"
                else (lambda: message)
            )
            answer = await self.run(route.method, build, request, size=size, refusal=refusal)
            if answer.status is not None:
                return status_response(answer)
            return JSONResponse(to_json(answer.response), headers=answer_headers(answer))

        return endpoint

    async def openapi_json(self, _request: Request) -> Response:
        return JSONResponse(self.openapi)

    def page(self, name: str) -> Callable[[Request], Any]:
        text = resources.files("facesvc.http").joinpath("static", name).read_text()

        async def endpoint(_request: Request) -> Response:
            return HTMLResponse(text, headers={"cache-control": "no-store"})

        return endpoint

    def starlette_routes(self) -> list[BaseRoute]:
        table: list[BaseRoute] = []
        for route in self.routes:
            if route.websocket:
                table.append(WebSocketRoute(route.path, liveness.endpoint(self, route)))
            else:
                table.append(Route(route.path, self.rpc_endpoint(route), methods=[route.verb]))
        table += [
            Route("/enroll", legacy.enroll(self), methods=["POST"]),
            Route("/verify", legacy.verify(self), methods=["POST"]),
            Route("/identify", legacy.identify(self), methods=["POST"]),
            Route("/health", legacy.health(self), methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            Route("/docs", self.page("docs.html"), methods=["GET"]),
            Route("/kiosk", self.page("kiosk.html"), methods=["GET"]),
        ]
        return table


def create_app(door: Door, worker_threads: int, limits: HttpLimits) -> Starlette:
    """The ASGI application serving `door`; an unexpected failure anywhere in it is a
    bare 500, logged once (facesvc.http.failures)."""
    return Starlette(
        routes=App(door, worker_threads, limits).starlette_routes(), middleware=[Middleware(Failures)]
    )
