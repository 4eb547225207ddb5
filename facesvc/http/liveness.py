"""CheckLiveness as a WebSocket: the servicer's own session, one JSON text message per
stream message each way (protobuf's JSON mapping of CheckLivenessRequest and
CheckLivenessResponse). A refusal is sent as `{"error": <google.rpc.Status>}` before
the socket closes (code 1000 after a result, 1008 after a refusal). A browser cannot set
headers on a WebSocket, so the API key may also come as the `access_token` query
parameter here. A session whose caller sends nothing for http_websocket_idle_seconds
ends LIVENESS_SESSION_INVALID."""

from __future__ import annotations

import contextlib
import json
import queue
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, cast

import anyio
from google.protobuf import json_format
from starlette.websockets import WebSocket, WebSocketDisconnect

from facesvc.http.calls import Calls, metadata_of, peer_of
from facesvc.http.context import Aborted, HttpContext, to_proto
from facesvc.http.status import status_json
from facesvc.rpc.status import status_for
from facesvc.v1 import face_service_pb2 as pb

if TYPE_CHECKING:
    from facesvc.http.routes import Route

_END: Any = object()
#: A WebSocket close code for a refused session (policy violation).
CLOSE_REFUSED = 1008


def _requests(incoming: queue.Queue[Any]) -> Iterator[pb.CheckLivenessRequest]:
    """The stream of requests the servicer reads (it reads on a thread of its own)."""
    while True:
        item = incoming.get()
        if item is _END:
            return
        yield item


def endpoint(app: Calls, route: Route) -> Callable[[WebSocket], Any]:

    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        metadata = metadata_of(websocket)
        token = websocket.query_params.get("access_token")
        if token:
            metadata = (*metadata, ("x-api-key", token))
        context = HttpContext(metadata, peer_of(websocket))
        error = app.door.key_error(metadata, route.method, context.peer())
        if error is not None:
            await websocket.send_text(json.dumps({"error": status_json(to_proto(status_for(error)))}))
            await websocket.close(CLOSE_REFUSED)
            return
        incoming: queue.Queue[Any] = queue.Queue()
        # The servicer method is a generator function (guarded_stream keeps it one).
        responses = cast(
            Generator[Any, None, None], app.door.servicer.CheckLiveness(_requests(incoming), context)
        )

        async def receive() -> None:
            try:
                while True:
                    with anyio.move_on_after(app.limits.websocket_idle_seconds) as idle:
                        text = await websocket.receive_text()
                    if idle.cancelled_caught:
                        # A caller that sends nothing holds a worker thread: the session
                        # ends as one whose next message was not a frame.
                        incoming.put(_broken("idle"))
                        return
                    message = pb.CheckLivenessRequest()
                    try:
                        json_format.Parse(text, message)
                    except json_format.ParseError as parse_error:
                        # The session ends as a stream that broke the protocol would.
                        incoming.put(_broken(str(parse_error)))
                        return
                    incoming.put(message)
            except (WebSocketDisconnect, RuntimeError):
                context.cancel()
            finally:
                incoming.put(_END)

        def next_response() -> Any:
            try:
                return next(responses)
            except StopIteration:
                return _END
            except Aborted as aborted:
                return aborted

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            code = 1000
            while True:
                item = await anyio.to_thread.run_sync(next_response, limiter=app.limiter)
                if item is _END:
                    break
                try:
                    if isinstance(item, Aborted):
                        code = CLOSE_REFUSED
                        await websocket.send_text(json.dumps({"error": status_json(item.status)}))
                        break
                    await websocket.send_text(json.dumps(json_format.MessageToDict(item)))
                except (WebSocketDisconnect, RuntimeError):
                    context.cancel()
                    break
            responses.close()
            tasks.cancel_scope.cancel()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # closed by the caller
            await websocket.close(code)

    return session


def _broken(detail: str) -> pb.CheckLivenessRequest:
    """A request the session refuses as LIVENESS_SESSION_INVALID (neither start nor frame
    where one is due): what a message that is not JSON of the right shape becomes."""
    del detail  # the parse error may quote the caller's bytes: never echoed or logged
    return pb.CheckLivenessRequest()
