"""Identify's request parser (facesvc.rpc.wire): a Candidate gallery read as one matrix,
exactly what the real message says, whatever encoding the caller's library chose."""

from __future__ import annotations

import struct
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from facesvc.engine import Gallery
from facesvc.rpc import converters, wire
from facesvc.v1 import face_service_pb2 as pb
from tests.conftest import photo


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def unpacked_embedding(values: np.ndarray, model: str) -> bytes:
    """repeated float written element by element (wire type 5): legal, and what a proto2
    or hand-rolled encoder may send."""
    floats = b"".join(varint(1 << 3 | 5) + struct.pack("<f", v) for v in values)
    return floats + field(2, model.encode())


def model_first_embedding(values: np.ndarray, model: str) -> bytes:
    return field(2, model.encode()) + field(1, values.astype("<f4").tobytes())


def candidate(identity: str, embedding: bytes) -> bytes:
    return field(1, identity.encode()) + field(2, embedding)


def rows(count: int, dimension: int = 128, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dimension)).astype("<f4")


def listed(matrix: np.ndarray, models: list[str] | None = None) -> pb.IdentifyRequest:
    models = models or ["SFace"] * len(matrix)
    return pb.IdentifyRequest(
        image=b"\xff\xd8 not parsed here",
        candidates=[
            pb.Candidate(id=f"id-{i}", embedding=pb.Embedding(values=row.tolist(), model=models[i]))
            for i, row in enumerate(matrix)
        ],
        top_k=3,
        threshold=0.25,
        face_selection=pb.FACE_SELECTION_LARGEST,
        packed_candidates=pb.PackedGallery(ids=["p"], values=matrix[0].tobytes(), model="SFace"),
    )


def as_gallery(call: wire.IdentifyCall) -> Gallery:
    return converters.gallery(call, 128)


def reference(request: pb.IdentifyRequest) -> Gallery:
    """What the real message gives, field by field."""
    return converters.gallery(wire.IdentifyCall(request, None), 128)


def same(a: Gallery, b: Gallery) -> bool:
    return outcome(lambda: a) == outcome(lambda: b)


def test_a_canonical_gallery_becomes_one_matrix_with_every_other_field_intact() -> None:
    matrix = rows(1000)
    request = listed(matrix)
    call = wire.parse_identify(request.SerializeToString())
    assert call.rows is not None and call.rows.model == "SFace"
    assert call.rows.matrix.dtype == np.float32 and np.array_equal(call.rows.matrix, matrix)
    assert same(as_gallery(call), reference(request))
    message = call.message
    assert message.image == request.image and message.top_k == 3
    assert message.HasField("threshold") and message.threshold == pytest.approx(0.25)
    assert message.face_selection == pb.FACE_SELECTION_LARGEST
    assert list(message.packed_candidates.ids) == ["p"]
    assert not wire.parse_identify(pb.IdentifyRequest(image=b"x").SerializeToString()).message.HasField(
        "threshold"
    )


@pytest.mark.parametrize(
    "variant",
    [
        "unpacked floats",
        "model before values",
        "mixed models",
        "mixed lengths",
        "one longer, one shorter",
        "one row empty",
        "no model",
    ],
)
def test_any_other_encoding_is_read_by_the_real_message(variant: str) -> None:
    matrix = rows(50)
    request = listed(matrix)
    if variant in ("unpacked floats", "model before values"):
        encode = unpacked_embedding if variant == "unpacked floats" else model_first_embedding
        body = b"".join(field(2, candidate(f"id-{i}", encode(row, "SFace"))) for i, row in enumerate(matrix))
        data = field(1, b"img") + body
        call = wire.parse_identify(data)
        assert call.rows is None and isinstance(call.message, pb.IdentifyRequest)
        assert same(as_gallery(call), reference(pb.IdentifyRequest.FromString(data)))
        assert np.array_equal(as_gallery(call).matrix, matrix)
        return
    if variant == "mixed models":
        request = listed(matrix, ["SFace"] * 49 + ["Dlib"])
    elif variant == "mixed lengths":
        request.candidates[7].embedding.values.append(1.0)
    elif variant == "one longer, one shorter":  # the same total size as a canonical gallery
        request.candidates[7].embedding.values.append(1.0)
        del request.candidates[8].embedding.values[-1]
    elif variant == "one row empty":
        del request.candidates[3].embedding.values[:]
    elif variant == "no model":
        request = listed(matrix, [""] * 50)
    call = wire.parse_identify(request.SerializeToString())
    if variant == "no model":  # canonical too: every row lacks the model field alike
        assert call.rows is not None and call.rows.model == ""
    else:
        assert call.rows is None
    assert outcome(lambda: as_gallery(call)) == outcome(lambda: reference(request))


def outcome(make: Callable[[], Gallery]) -> tuple[str, object]:
    """A gallery's content, or the error it raised (type and text)."""
    try:
        gallery = make()
    except Exception as error:
        return type(error).__name__, str(error)
    models = [gallery.models] * len(gallery.ids) if isinstance(gallery.models, str) else list(gallery.models)
    return "ok", (list(gallery.ids), gallery.matrix.tobytes(), models)


def test_a_nameless_candidate_is_refused_on_the_fast_path_too() -> None:
    request = listed(rows(10))
    request.candidates[4].id = ""
    call = wire.parse_identify(request.SerializeToString())
    assert call.rows is not None
    with pytest.raises(Exception, match="id"):
        as_gallery(call)


def test_the_service_answers_alike_for_every_encoding(server, enrolled) -> None:  # type: ignore[no-untyped-def]
    """Over the wire: a gallery sent as unpacked floats ranks exactly like the canonical one."""
    names = ["img2.jpg", "img17.jpg", "img20.jpg"]
    vectors = [np.asarray(enrolled[n].values, dtype="<f4") for n in names if n in enrolled]
    image = photo("img1.jpg")
    canonical = pb.IdentifyRequest(
        image=image,
        candidates=[
            pb.Candidate(id=f"c{i}", embedding=pb.Embedding(values=v.tolist(), model="SFace"))
            for i, v in enumerate(vectors)
        ],
        top_k=10,
    ).SerializeToString()
    unpacked = (
        field(1, image)
        + b"".join(
            field(2, candidate(f"c{i}", unpacked_embedding(v, "SFace"))) for i, v in enumerate(vectors)
        )
        + varint(3 << 3)
        + varint(10)
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/facesvc.v1.FaceService/Identify")
        answers = [pb.IdentifyResponse.FromString(call(data, timeout=30)) for data in (canonical, unpacked)]
    assert len(answers[0].matches) == len(vectors) >= 2
    assert [(m.id, m.distance) for m in answers[0].matches] == [
        (m.id, m.distance) for m in answers[1].matches
    ]
