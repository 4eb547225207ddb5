"""/openapi.json, generated from the same descriptors as the route table: a path per
google.api.http binding, a schema per message in protobuf's JSON mapping, and the
original design's form endpoints beside them."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from facesvc import __version__
from facesvc.http.routes import Route

_REF = "#/components/schemas/"
_F = FieldDescriptor
_SCALARS: dict[int, dict[str, str]] = {
    _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _F.TYPE_FLOAT: {"type": "number", "format": "float"},
    _F.TYPE_INT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _F.TYPE_UINT32: {"type": "integer", "format": "int64"},
    _F.TYPE_FIXED32: {"type": "integer", "format": "int64"},
    # 64-bit integers are strings in protobuf's JSON mapping.
    _F.TYPE_INT64: {"type": "string", "format": "int64"},
    _F.TYPE_SINT64: {"type": "string", "format": "int64"},
    _F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
#: Well-known types with a JSON form of their own.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string"},
}


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, schemas)}
    single = _single(field, schemas)
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == _F.TYPE_ENUM and field.enum_type is not None:
        return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    if field.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP) and field.message_type is not None:
        return {"$ref": _REF + add_schema(field.message_type, schemas)}
    return dict(_SCALARS[field.type])


def add_schema(message: Descriptor, schemas: dict[str, Any]) -> str:
    """Add `message` (and every message it holds) to `schemas`; returns its name there."""
    name = message.full_name
    if name in schemas:
        return name
    if name in _WELL_KNOWN:
        schemas[name] = _WELL_KNOWN[name]
        return name
    schemas[name] = {}  # a placeholder first: messages may refer to themselves
    properties = {field.json_name: _field_schema(field, schemas) for field in message.fields}
    schemas[name] = {"type": "object", "properties": properties}
    return name


def _json_operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    response = add_schema(route.response_type.DESCRIPTOR, schemas)
    operation: dict[str, Any] = {
        "operationId": route.method,
        "tags": ["FaceService"],
        "summary": f"facesvc.v1.FaceService/{route.method} (protos/facesvc/v1/face_service.proto)",
        "responses": {
            "200": {
                "description": route.response_type.DESCRIPTOR.name,
                "content": {"application/json": {"schema": {"$ref": _REF + response}}},
            },
            "default": {
                "description": "A refusal: the google.rpc.Status, its ErrorInfo reason in details",
                "content": {"application/json": {"schema": {"$ref": _REF + "google.rpc.Status"}}},
            },
        },
    }
    if route.body == "*":
        request = add_schema(route.request_type.DESCRIPTOR, schemas)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + request}}},
        }
    if route.websocket:
        request = add_schema(route.request_type.DESCRIPTOR, schemas)
        operation["summary"] += ": a WebSocket (GET with Upgrade)"
        operation["description"] = (
            f"Send {route.request_type.DESCRIPTOR.name} JSON text messages (a start, then frames); "
            f"each answer is a {route.response_type.DESCRIPTOR.name} JSON text message, or "
            '{"error": google.rpc.Status} before the socket closes. See docs/HTTP.md.'
        )
        operation["x-websocket"] = {"send": {"$ref": _REF + request}, "receive": {"$ref": _REF + response}}
        operation["responses"]["101"] = {"description": "Switching protocols to a WebSocket"}
    return operation


def _form_operation(summary: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "tags": ["Original design"],
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": fields, "required": required}
                }
            },
        },
        "responses": {
            "200": {"description": "success (or success false with face_detected false: no face)"},
            "400": {"description": "several faces, low quality, or another refusal (reason)"},
        },
    }


_IMAGE = {"type": "string", "format": "binary", "description": "the photo (JPEG, PNG, ...)"}


def document(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    from google.rpc import status_pb2

    schemas: dict[str, Any] = {}
    add_schema(status_pb2.Status.DESCRIPTOR, schemas)
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.verb.lower()] = _json_operation(route, schemas)
    paths["/enroll"] = {
        "post": _form_operation("Enroll a face (the original design)", {"image": _IMAGE}, ["image"])
    }
    paths["/verify"] = {
        "post": _form_operation(
            "Verify a face against a stored embedding (the original design)",
            {"image": _IMAGE, "stored_embedding": {"type": "string", "description": "a JSON list of floats"}},
            ["image", "stored_embedding"],
        )
    }
    paths["/identify"] = {
        "post": _form_operation(
            "Identify a face in a gallery (in the original design's style)",
            {
                "image": _IMAGE,
                "gallery": {"type": "string", "description": 'a JSON object {"id": [floats], ...}'},
                "top_k": {"type": "integer"},
            },
            ["image", "gallery"],
        )
    }
    paths["/health"] = {
        "get": {
            "tags": ["Original design"],
            "summary": "Liveness of the service (the original design)",
            "responses": {"200": {"description": "healthy"}, "503": {"description": "starting or stopping"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "facesvc",
            "version": __version__,
            "description": "facesvc.v1.FaceService as JSON over HTTP, and the original design's "
            "form endpoints. API keys: `x-api-key: <key>` or `authorization: Bearer <key>`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
