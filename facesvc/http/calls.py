"""What every HTTP handler shares: headers as gRPC metadata, the bounded body, JSON of
messages, and Calls, which runs a servicer method through the Door on a worker thread."""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any

import anyio
from google.protobuf import json_format
from starlette.formparsers import MultiPartParser
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from facesvc.http.context import Metadata
from facesvc.http.door import Answer, Door
from facesvc.http.limits import HttpLimits
from facesvc.http.status import http_code, refusal_headers, status_json
from facesvc.rpc.request_log import REQUEST_ID_KEY

# Parsed forms stay in memory: a photo must never reach a temporary file. The body is
# read (and bounded by FACESVC_MAX_MESSAGE_BYTES) before the form is parsed.
MultiPartParser.spool_max_size = 2**62


def metadata_of(connection: HTTPConnection) -> Metadata:
    """The request headers as gRPC metadata (lower-case names, as both already are)."""
    return tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in connection.headers.raw)


def peer_of(connection: HTTPConnection) -> str:
    """The caller in gRPC's peer format (ipv4:host:port), for the logs and failure counts."""
    client = connection.client
    if client is None:
        return "unknown"
    host, port = client.host, client.port
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


async def read_body(request: Request, limit: int) -> tuple[bytes, int]:
    """The body, and its size; a body over `limit` is not read beyond it (its size is the
    declared Content-Length, or limit + 1)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"", int(declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return b"", size
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # request.form() parses this instead of reading the stream again
    return body, size


def parse_json(body: bytes, message: Any) -> None:
    """`body` (protobuf's JSON mapping) into `message`. Top-level bytes fields (the photo)
    are decoded here with binascii, in C: json_format's own path costs 30-90 ms for a
    2 MB photo, gRPC's parser about nothing. Anything else is json_format's."""
    try:
        value = json.loads(body or b"{}")
    except ValueError as error:
        raise json_format.ParseError(f"Failed to load JSON: {error}") from error
    if not isinstance(value, dict):
        raise json_format.ParseError("The body is not a JSON object.")
    raw: dict[str, bytes] = {}
    for field in message.DESCRIPTOR.fields:
        if field.type != field.TYPE_BYTES or field.is_repeated:
            continue
        for key in (field.json_name, field.name):
            text = value.get(key)
            if isinstance(text, str):
                del value[key]
                if "-" in text or "_" in text:  # the URL-safe alphabet, which the mapping accepts
                    text = text.replace("-", "+").replace("_", "/")
                try:
                    raw[field.name] = binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=False)
                except binascii.Error as error:
                    raise json_format.ParseError(f"{key} is not base64: {error}") from error
    json_format.ParseDict(value, message)
    for name, data in raw.items():
        setattr(message, name, data)


def answer_headers(answer: Answer) -> dict[str, str]:
    headers = {REQUEST_ID_KEY: answer.request_id} if answer.request_id else {}
    if answer.status is not None:
        headers.update(refusal_headers(answer.status))
    return headers


def to_json(message: Any) -> dict[str, Any]:
    """A message in protobuf's JSON mapping, every field shown (false, 0 and [] too)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def status_response(answer: Answer) -> JSONResponse:
    assert answer.status is not None
    return JSONResponse(status_json(answer.status), http_code(answer.status), answer_headers(answer))


class Calls:
    """Servicer calls through one Door, on at most `worker_threads` threads at once."""

    def __init__(self, door: Door, worker_threads: int, limits: HttpLimits) -> None:
        self.door = door
        self.limits = limits
        self.limiter = anyio.CapacityLimiter(worker_threads)

    async def run(
        self, method: str, build: Callable[[], Any] | None, connection: HTTPConnection, **kw: Any
    ) -> Answer:
        metadata, peer = metadata_of(connection), peer_of(connection)
        return await anyio.to_thread.run_sync(
            lambda: self.door.call(method, build, metadata, peer, **kw), limiter=self.limiter
        )
