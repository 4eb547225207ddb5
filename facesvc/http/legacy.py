"""The original design's REST API (ORIGINAL_DESIGN.md): POST /enroll, POST /verify and
GET /health with its multipart forms and JSON fields, and POST /identify in their style.

The calls are Enroll, Verify, Identify and Health of the one servicer; only the shapes
differ. The design's field names map onto facesvc's figures (docs/HTTP.md):
`similarity_score` is the distance (the design's was a cosine distance too: lower is
closer), `threshold_used` the distance threshold, `confidence` facesvc's 0-100 figure
(50 at the threshold), `quality_score` Quality.score (0-100). A photo without a face is a
200 with `success: false` as the design has it; every other refusal keeps its status
code (several faces and low quality: 400) and carries facesvc's `reason`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from facesvc import errors
from facesvc.http.calls import Calls, peer_of, read_body, to_json
from facesvc.http.calls import metadata_of as headers_of
from facesvc.http.context import to_proto
from facesvc.http.door import Answer
from facesvc.http.limits import check_json
from facesvc.http.status import http_code, metadata_of, reason_of, refusal_headers, status_json
from facesvc.rpc.status import status_for
from facesvc.rpc.wire import parse_identify
from facesvc.v1 import face_service_pb2 as pb

NO_FACE = errors.NoFaceError.reason
SERVICE_NAME = "facesvc"


def timestamp() -> str:
    """The design's format (ISO 8601, microseconds, no offset); the time is UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


async def read_form(
    app: Calls, request: Request
) -> tuple[FormData | None, int, errors.FaceServiceError | None]:
    """The form, the body's size, and a refusal when the body is not a form."""

    limit = app.door.max_message_bytes
    _, size = await read_body(request, limit)
    if size > limit:
        return None, size, None
    try:
        form = await request.form(max_files=4, max_fields=16, max_part_size=limit)
    except Exception as error:  # starlette's MultiPartException, or a form-urlencoded oddity
        return None, size, errors.RequestInvalidError(f"The body is not a multipart form: {error}"[:200])
    return form, size, None


async def image_of(form: FormData | None) -> bytes:
    """The `image` field's bytes (b"" when absent: the engine says IMAGE_UNDECODABLE)."""
    field = form.get("image") if form is not None else None
    if isinstance(field, UploadFile):
        return await field.read()
    return field.encode() if isinstance(field, str) else b""


def embedding_of(text: str, what: str, model: str) -> pb.Embedding:
    """A stored embedding sent as the design sent it (a JSON list of floats: made by the
    serving `model`, the design's one model), or as facesvc's Embedding in JSON (a
    sealed template, say)."""
    try:
        value = json.loads(text)
        if isinstance(value, list):
            return pb.Embedding(values=[float(v) for v in value], model=model)
        if isinstance(value, dict):
            return json_format.ParseDict(value, pb.Embedding())
    except Exception as error:
        raise errors.EmbeddingInvalidError(f"{what} is not a JSON list of numbers: {error}"[:200]) from error
    raise errors.EmbeddingInvalidError(f"{what} is not a JSON list of numbers.")


def _refusal(answer: Answer, **fields: Any) -> Response:
    """A refused call in the design's shape: 200 with success false for no face, else
    the status code gRPC's HTTP mapping gives (400 for several faces or low quality)."""
    assert answer.status is not None
    reason = reason_of(answer.status)
    no_face = reason == NO_FACE
    body: dict[str, Any] = {"success": False, **(fields if no_face else {})}
    if no_face:
        body["face_detected"] = False
    body.update(
        message=answer.status.message,
        reason=reason,
        details=metadata_of(answer.status),
        timestamp=timestamp(),
    )
    headers = {"x-request-id": answer.request_id} if answer.request_id else {}
    headers.update(refusal_headers(answer.status))
    return JSONResponse(body, 200 if no_face else http_code(answer.status), headers)


def _threshold(app: Calls) -> float:
    return round(float(app.door.describe().threshold), 4)


def enroll(app: Calls) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        form, size, refusal = await read_form(app, request)
        image = await image_of(form)
        answer = await app.run(
            "Enroll", lambda: pb.EnrollRequest(image=image), request, size=size, refusal=refusal
        )
        if answer.status is not None:
            return _refusal(answer, embedding=None)
        response: pb.EnrollResponse = answer.response
        body: dict[str, Any] = {
            "success": True,
            "embedding": [float(v) for v in response.embedding.values] or None,
            "message": "Face enrolled successfully",
            "face_detected": True,
            "quality_score": round(float(response.quality.score), 2),
            "model": response.embedding.model,
            "timestamp": timestamp(),
        }
        if response.embedding.sealed:  # sealed templates: send the template back as it is
            body["template"] = to_json(response.embedding)
        return JSONResponse(body, headers={"x-request-id": answer.request_id or ""})

    return endpoint


def verify(app: Calls) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        form, size, refusal = await read_form(app, request)
        image = await image_of(form)
        stored = pb.Embedding()
        if form is not None and refusal is None:
            try:
                text = str(form.get("stored_embedding") or "")
                check_json(text, app.limits, "stored_embedding")
                stored = embedding_of(text, "stored_embedding", app.door.describe().model)
            except (errors.EmbeddingInvalidError, errors.RequestInvalidError) as error:
                refusal = error
        answer = await app.run(
            "Verify",
            lambda: pb.VerifyRequest(image=image, stored_embeddings=[stored]),
            request,
            size=size,
            refusal=refusal,
        )
        if answer.status is not None:
            return _refusal(answer, match=False, confidence=0.0, threshold_used=_threshold(app))
        response: pb.VerifyResponse = answer.response
        return JSONResponse(
            {
                "success": True,
                "match": response.match,
                "confidence": round(float(response.confidence), 2),
                "message": "Verification completed successfully",
                "similarity_score": round(float(response.distance), 4),
                "threshold_used": round(float(response.threshold), 4),
                "quality_score": round(float(response.quality.score), 2),
                "timestamp": timestamp(),
            },
            headers={"x-request-id": answer.request_id or ""},
        )

    return endpoint


def gallery_of(text: str, model: str) -> list[pb.Candidate]:
    """`{"id": [floats], ...}` or `[{"id": ..., "embedding": [floats]}, ...]`."""
    try:
        value = json.loads(text)
        pairs = value.items() if isinstance(value, dict) else [(c["id"], c["embedding"]) for c in value]
        return [
            pb.Candidate(id=str(key), embedding=embedding_of(json.dumps(vector), f"gallery[{key}]", model))
            for key, vector in pairs
        ]
    except errors.EmbeddingInvalidError:
        raise
    except Exception as error:
        raise errors.EmbeddingInvalidError(
            f'gallery is not a JSON object {{"id": [numbers], ...}}: {error}'[:200]
        ) from error


def identify(app: Calls) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:

        form, size, refusal = await read_form(app, request)
        image = await image_of(form)
        candidates: list[pb.Candidate] = []
        top_k = 0
        if form is not None and refusal is None:
            try:
                text = str(form.get("gallery") or "")
                check_json(text, app.limits, "gallery")
                candidates = gallery_of(text, app.door.describe().model)
                top_k = int(str(form.get("top_k") or 0))
            except (errors.EmbeddingInvalidError, errors.RequestInvalidError) as error:
                refusal = error
            except ValueError:
                refusal = errors.RequestInvalidError("top_k is not a whole number.")
        answer = await app.run(
            "Identify",
            lambda: parse_identify(
                pb.IdentifyRequest(image=image, candidates=candidates, top_k=top_k).SerializeToString()
            ),
            request,
            size=size,
            refusal=refusal,
        )
        if answer.status is not None:
            return _refusal(answer, match=False, identity=None, matches=[], threshold_used=_threshold(app))
        response: pb.IdentifyResponse = answer.response
        matches = [
            {
                "id": m.id,
                "match": m.match,
                "confidence": round(float(m.confidence), 2),
                "similarity_score": round(float(m.distance), 4),
            }
            for m in response.matches
        ]
        best = matches[0] if matches and matches[0]["match"] else None
        return JSONResponse(
            {
                "success": True,
                "match": best is not None,
                "identity": best["id"] if best else None,
                "confidence": best["confidence"] if best else (matches[0]["confidence"] if matches else 0.0),
                "message": "Identification completed successfully",
                "matches": matches,
                "threshold_used": round(float(response.threshold), 4),
                "quality_score": round(float(response.quality.score), 2),
                "timestamp": timestamp(),
            },
            headers={"x-request-id": answer.request_id or ""},
        )

    return endpoint


def health(app: Calls) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:

        if not app.door.open_probes:
            error = app.door.key_error(headers_of(request), "Health", peer_of(request))
            if error is not None:
                return JSONResponse(status_json(to_proto(status_for(error))), 401)
        info = app.door.describe()
        serving = info.status == pb.SERVING_STATUS_SERVING
        return JSONResponse(
            {
                "status": "healthy" if serving else "unavailable",
                "service": SERVICE_NAME,
                "version": info.version,
                "model": info.model,
                "timestamp": timestamp(),
            },
            200 if serving else 503,
        )

    return endpoint
