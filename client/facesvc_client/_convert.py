"""Between the SDK's dataclasses and the generated messages; nothing else lives here."""

from __future__ import annotations

import array
import itertools
import os
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

from facesvc_client._proto import face_service_pb2 as pb
from facesvc_client.types import (
    BoundingBox,
    Candidate,
    Embedding,
    EnrolledTemplate,
    EnrollResult,
    Face,
    FaceIdentification,
    FaceRefusal,
    FaceSelection,
    Health,
    IdentifyFacesResult,
    IdentifyResult,
    IdentityMatch,
    Landmarks,
    LivenessCheck,
    ModelRoles,
    OpenSetRule,
    OperatingPoint,
    PackedGallery,
    Point,
    PresentationAttackInfo,
    PresentationAttackMode,
    Quality,
    QualityComponent,
    SealedGallery,
    SealedTemplate,
    ServingStatus,
    Template,
    TemplateUpgrade,
    VerifyResult,
    candidates_from,
)

#: A photo: a path, its bytes, or a file object opened in binary mode.
ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
#: Stored templates for `verify`: one (plain or sealed) or several of the same person.
StoredInput = Template | Iterable[Template]
#: A gallery for `identify`: Candidates, or a mapping of id to one or more templates.
GalleryInput = (
    Mapping[str, Template | Iterable[Template]] | Iterable[Candidate] | SealedGallery | PackedGallery
)
_TEMPLATE_MODES = {1: "plain", 2: "sealed", 3: "both"}

_SELECTIONS: Mapping[FaceSelection | None, pb.FaceSelection] = {
    None: pb.FACE_SELECTION_UNSPECIFIED,
    FaceSelection.REJECT_MULTIPLE: pb.FACE_SELECTION_REJECT_MULTIPLE,
    FaceSelection.LARGEST: pb.FACE_SELECTION_LARGEST,
    FaceSelection.CENTRAL: pb.FACE_SELECTION_CENTRAL,
}
_SELECTIONS_BACK = {value: key for key, value in _SELECTIONS.items()}
_ATTACK_MODES: Mapping[PresentationAttackMode | None, pb.PresentationAttackMode] = {
    None: pb.PRESENTATION_ATTACK_MODE_UNSPECIFIED,
    PresentationAttackMode.OFF: pb.PRESENTATION_ATTACK_MODE_OFF,
    PresentationAttackMode.REPORT: pb.PRESENTATION_ATTACK_MODE_REPORT,
    PresentationAttackMode.ENFORCE: pb.PRESENTATION_ATTACK_MODE_ENFORCE,
}
_ATTACK_MODES_BACK = {value: key for key, value in _ATTACK_MODES.items()}
_FLOAT32 = struct.Struct("<f")
_STATUSES = {
    pb.SERVING_STATUS_SERVING: ServingStatus.SERVING,
    pb.SERVING_STATUS_NOT_SERVING: ServingStatus.NOT_SERVING,
}


def read_image(image: ImageInput) -> bytes:
    """The photo's bytes, as uploaded; the service decodes them."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    data = image.read()
    if not isinstance(data, bytes):
        raise TypeError("open the photo in binary mode ('rb')")
    return data


def _f32(value: float) -> float:
    """The shortest decimal that is the same float32 on the wire: 0.55, not 0.550000011920929.
    Sending it back (a stored embedding, a threshold) gives the service the same value."""
    for digits in (6, 7, 8):
        short = float(f"{value:.{digits}g}")
        if _FLOAT32.unpack(_FLOAT32.pack(short))[0] == value:
            return short
    return value


def _selection(value: FaceSelection | str | None) -> pb.FaceSelection:
    return _SELECTIONS[None if value is None else FaceSelection(value)]


def _attack_mode(value: PresentationAttackMode | str | None) -> pb.PresentationAttackMode:
    return _ATTACK_MODES[None if value is None else PresentationAttackMode(value)]


def embedding_to_proto(embedding: Template) -> pb.Embedding:
    if isinstance(embedding, SealedTemplate):  # passed through unchanged
        return pb.Embedding(sealed=embedding.sealed, model=embedding.model, key_id=embedding.key_id)
    if not isinstance(embedding, Embedding):
        raise TypeError(f"expected an Embedding or a SealedTemplate, got {type(embedding).__name__}")
    return pb.Embedding(values=embedding.values, model=embedding.model)


def enroll_request(
    image: bytes,
    face_selection: FaceSelection | str | None,
    presentation_attack: PresentationAttackMode | str | None = None,
    min_quality: float | None = None,
    more_images: Sequence[bytes] = (),
    max_templates: int = 0,
) -> pb.EnrollRequest:
    request = pb.EnrollRequest(
        image=image,
        face_selection=_selection(face_selection),
        presentation_attack=_attack_mode(presentation_attack),
        more_images=list(more_images),
        max_templates=max_templates,
    )
    if min_quality is not None:
        request.min_quality = min_quality
    return request


def verify_request(
    image: bytes,
    stored: StoredInput,
    threshold: float | None,
    face_selection: FaceSelection | str | None,
    presentation_attack: PresentationAttackMode | str | None = None,
    far: float | None = None,
    min_quality: float | None = None,
) -> pb.VerifyRequest:
    templates = [stored] if isinstance(stored, Embedding | SealedTemplate) else list(stored)
    request = pb.VerifyRequest(
        image=image,
        stored_embeddings=[embedding_to_proto(e) for e in templates],
        face_selection=_selection(face_selection),
        presentation_attack=_attack_mode(presentation_attack),
    )
    if threshold is not None:
        request.threshold = threshold
    if far is not None:
        request.far = far
    if min_quality is not None:
        request.min_quality = min_quality
    return request


def identify_request(
    image: bytes,
    gallery: GalleryInput,
    top_k: int,
    threshold: float | None,
    face_selection: FaceSelection | str | None,
    presentation_attack: PresentationAttackMode | str | None = None,
    far: float | None = None,
    fpir: float | None = None,
    more_images: Sequence[bytes] = (),
    min_quality: float | None = None,
) -> pb.IdentifyRequest:
    """A gallery of one model and one length (the usual case) travels as one packed block
    of float32 rows, far cheaper for the service to parse than a message per candidate,
    and a gallery of sealed templates as one SealedGallery; anything else (mixed) as
    Candidate messages, so the service can say which entry is wrong."""
    request = pb.IdentifyRequest(
        image=image,
        more_images=list(more_images),
        top_k=top_k,
        face_selection=_selection(face_selection),
        presentation_attack=_attack_mode(presentation_attack),
    )
    if threshold is not None:
        request.threshold = threshold
    if far is not None:
        request.far = far
    if fpir is not None:
        request.fpir = fpir
    if min_quality is not None:
        request.min_quality = min_quality
    if isinstance(gallery, SealedGallery):
        request.sealed_candidates.packed.append(gallery.sealed)
        return request
    if isinstance(gallery, PackedGallery):
        request.packed_candidates.CopyFrom(
            pb.PackedGallery(
                ids=gallery.ids,
                values=gallery.values,
                model=gallery.model,
                encoding=pb.PACKED_ENCODING_FLOAT16 if gallery.half else pb.PACKED_ENCODING_UNSPECIFIED,
            )
        )
        return request
    candidates = candidates_from(gallery)
    for candidate in candidates:
        if not isinstance(candidate, Candidate):
            raise TypeError(f"expected a Candidate, got {type(candidate).__name__}")
    shapes = {
        (c.embedding.model, c.embedding.dimension if isinstance(c.embedding, Embedding) else -1)
        for c in candidates
    }
    if candidates and all(isinstance(c.embedding, SealedTemplate) for c in candidates):
        request.sealed_candidates.CopyFrom(
            pb.SealedGallery(
                ids=[c.id for c in candidates],
                templates=[c.embedding.sealed for c in candidates if isinstance(c.embedding, SealedTemplate)],
            )
        )
    elif len(shapes) == 1:
        ((model, _),) = shapes
        rows = array.array(
            "f",
            itertools.chain.from_iterable(
                c.embedding.values for c in candidates if isinstance(c.embedding, Embedding)
            ),
        )
        if sys.byteorder == "big":
            rows.byteswap()  # the wire format is little-endian
        request.packed_candidates.CopyFrom(
            pb.PackedGallery(ids=[c.id for c in candidates], values=rows.tobytes(), model=model)
        )
    else:
        request.candidates.extend(
            pb.Candidate(id=c.id, embedding=embedding_to_proto(c.embedding)) for c in candidates
        )
    return request


def _embedding(message: pb.Embedding) -> Template:
    if message.sealed:
        return SealedTemplate(message.sealed, message.model, message.key_id)
    return Embedding(tuple(_f32(v) for v in message.values), message.model)


def reseal_request(templates: Iterable[Template], ids: Iterable[str] = ()) -> pb.ResealRequest:
    return pb.ResealRequest(templates=[embedding_to_proto(t) for t in templates], ids=list(ids))


def seal_gallery_request(gallery: GalleryInput) -> pb.ResealRequest:
    if isinstance(gallery, SealedGallery):
        raise TypeError("the gallery is sealed already")
    if isinstance(gallery, PackedGallery):
        raise TypeError("seal the gallery it was packed from")
    candidates = candidates_from(gallery)
    return reseal_request([c.embedding for c in candidates], [c.id for c in candidates])


def reseal_result(message: pb.ResealResponse) -> list[SealedTemplate]:
    return [SealedTemplate(t.sealed, t.model, t.key_id) for t in message.templates]


def _quality(message: pb.Quality) -> Quality:
    return Quality(
        _f32(message.score),
        _f32(message.sharpness),
        _f32(message.brightness),
        _f32(message.face_size),
        unified=_f32(message.unified),
        components=tuple(
            QualityComponent(c.name, _f32(c.value), _f32(c.score), c.reason) for c in message.components
        ),
    )


def _point(message: pb.Point) -> Point:
    return Point(_f32(message.x), _f32(message.y))


def _face(message: pb.Face) -> Face:
    box, marks = message.box, message.landmarks
    return Face(
        box=BoundingBox(box.x, box.y, box.width, box.height),
        confidence=_f32(message.confidence),
        landmarks=Landmarks(
            _point(marks.left_eye),
            _point(marks.right_eye),
            _point(marks.nose),
            _point(marks.mouth_left),
            _point(marks.mouth_right),
        ),
        face_count=message.face_count,
    )


def _liveness(messages: Iterable[pb.LivenessCheck]) -> tuple[LivenessCheck, ...]:
    return tuple(
        LivenessCheck(m.name, m.passed, _f32(m.value), _f32(m.threshold), m.detail) for m in messages
    )


def enroll_result(message: pb.EnrollResponse) -> EnrollResult:
    return EnrollResult(
        embedding=_embedding(message.embedding),
        quality=_quality(message.quality),
        face=_face(message.face),
        liveness_checks=_liveness(message.liveness_checks),
        templates=enrolled_templates(message.templates),
    )


def enrolled_templates(messages: Iterable[pb.EnrolledTemplate]) -> tuple[EnrolledTemplate, ...]:
    return tuple(
        EnrolledTemplate(_embedding(t.embedding), _quality(t.quality), _face(t.face), t.image_index)
        for t in messages
    )


def verify_result(message: pb.VerifyResponse) -> VerifyResult:
    return VerifyResult(
        match=message.match,
        confidence=_f32(message.confidence),
        distance=_f32(message.distance),
        threshold=_f32(message.threshold),
        model=message.model,
        quality=_quality(message.quality),
        face=_face(message.face),
        best_template_index=message.best_template_index,
        liveness_checks=_liveness(message.liveness_checks),
        upgrade=_upgrade(message.upgrade) if message.HasField("upgrade") else None,
    )


def _upgrade(message: pb.TemplateUpgrade) -> TemplateUpgrade:
    return TemplateUpgrade(
        template=_embedding(message.template),
        id=message.id,
        from_model=message.from_model,
        distance=_f32(message.distance),
        threshold=_f32(message.threshold),
    )


def _models(message: pb.ModelRoles) -> ModelRoles:
    return ModelRoles(
        current=message.current,
        next=message.next,
        previous=message.previous,
        upgrade_threshold=_f32(message.upgrade_threshold),
        upgrade_far=_f32(message.upgrade_far),
        upgrade_fpir=_f32(message.upgrade_fpir),
        upgrade_min_quality=_f32(message.upgrade_min_quality),
        upgrade_requires_live=message.upgrade_requires_live,
    )


def identify_result(message: pb.IdentifyResponse) -> IdentifyResult:
    return IdentifyResult(
        matches=tuple(
            IdentityMatch(m.id, _f32(m.distance), _f32(m.confidence), m.match, m.model)
            for m in message.matches
        ),
        threshold=_f32(message.threshold),
        model=message.model,
        quality=_quality(message.quality),
        face=_face(message.face),
        liveness_checks=_liveness(message.liveness_checks),
        gallery_identities=message.gallery_identities,
        fpir=_f32(message.fpir),
        frames=message.frames or 1,
        upgrade=_upgrade(message.upgrade) if message.HasField("upgrade") else None,
    )


def _open_set(message: pb.OpenSetRule) -> OpenSetRule:
    return OpenSetRule(
        default_fpir=_f32(message.default_fpir),
        thresholds={
            _f32(row.fpir): {
                size: _f32(value) for size, value in zip(message.gallery_sizes, row.thresholds, strict=True)
            }
            for row in message.thresholds
        },
        measured_max=message.measured_max,
        extrapolated_max=message.extrapolated_max,
        template_weights=tuple(_f32(w) for w in message.template_weights) or (1.0,),
    )


def health_result(message: pb.HealthResponse) -> Health:
    return Health(
        status=_STATUSES.get(message.status, ServingStatus.UNKNOWN),
        model=message.model,
        embedding_dim=message.embedding_dim,
        detector=message.detector,
        threshold=_f32(message.threshold),
        distance_metric=message.distance_metric,
        default_face_selection=_SELECTIONS_BACK.get(message.default_face_selection),
        quality_threshold=_f32(message.quality_threshold),
        version=message.version,
        uptime_seconds=message.uptime_seconds,
        presentation_attack=_attack_info(message.presentation_attack)
        if message.HasField("presentation_attack")
        else None,
        templates=_TEMPLATE_MODES.get(message.templates, ""),
        template_key_id=message.template_key_id,
        operating_points=tuple(
            OperatingPoint(_f32(p.far), _f32(p.threshold), _f32(p.frr)) for p in message.operating_points
        ),
        default_far=_f32(message.default_far),
        open_set=_open_set(message.open_set) if message.HasField("open_set") else None,
        liveness_replayable=message.liveness_replayable,
        enroll_min_quality=_f32(message.enroll_min_quality),
        probe_min_quality=_f32(message.probe_min_quality),
        models=_models(message.models) if message.HasField("models") else None,
    )


def _attack_info(message: pb.PresentationAttackInfo) -> PresentationAttackInfo:
    return PresentationAttackInfo(
        mode=_ATTACK_MODES_BACK.get(message.mode),
        enroll_mode=_ATTACK_MODES_BACK.get(message.enroll_mode),
        threshold=_f32(message.threshold),
        model=message.model,
        min_face_size=_f32(message.min_face_size),
        relaxable=message.relaxable,
    )


def identify_faces_request(
    image: bytes,
    gallery: GalleryInput,
    top_k: int,
    presentation_attack: PresentationAttackMode | str | None,
    fpir: float | None,
    max_faces: int,
) -> pb.IdentifyFacesRequest:
    """The gallery in the form identify_request picks, in IdentifyFaces' fields."""
    like = identify_request(image, gallery, top_k, None, None, presentation_attack, None, fpir)
    request = pb.IdentifyFacesRequest(
        image=image,
        top_k=top_k,
        presentation_attack=like.presentation_attack,
        max_faces=max_faces,
        candidates=like.candidates,
    )
    if like.HasField("packed_candidates"):
        request.packed_candidates.CopyFrom(like.packed_candidates)
    if like.HasField("sealed_candidates"):
        request.sealed_candidates.CopyFrom(like.sealed_candidates)
    if fpir is not None:
        request.fpir = fpir
    return request


def identify_faces_result(message: pb.IdentifyFacesResponse) -> IdentifyFacesResult:
    return IdentifyFacesResult(
        faces=tuple(
            FaceIdentification(
                face=_face(face.face),
                quality=_quality(face.quality) if face.HasField("quality") else None,
                liveness_checks=_liveness(face.liveness_checks),
                matches=tuple(
                    IdentityMatch(m.id, _f32(m.distance), _f32(m.confidence), m.match) for m in face.matches
                ),
                refusal=(
                    FaceRefusal(pb.FaceRefusal.Name(face.refusal).removeprefix("FACE_REFUSAL_").lower())
                    if face.refusal
                    else None
                ),
                detail=face.detail,
            )
            for face in message.faces
        ),
        face_count=message.face_count,
        faces_not_returned=message.faces_not_returned,
        threshold=_f32(message.threshold),
        model=message.model,
        gallery_identities=message.gallery_identities,
        fpir=_f32(message.fpir),
        max_faces=message.max_faces,
    )
