"""Conversions between protobuf messages and the engine's typed values; no logic beyond that."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from facesvc.engine import Candidate, FaceSelection, Gallery, StoredEmbedding
from facesvc.engine.group import GroupIdentification, Refusal
from facesvc.engine.pipeline.presentation_attack import AttackMode
from facesvc.engine.session.session import (
    Challenge,
    Feedback,
    Prompt,
    SessionResult,
    SessionTemplates,
    Started,
)
from facesvc.engine.templates import Exported, SealedTemplate, Template, Templates
from facesvc.engine.types import (
    AnalysedFace,
    Detection,
    EnrolledTemplate,
    Enrollment,
    Identification,
    IdentityMatch,
    LivenessCheck,
    ModelRoles,
    OpenSetInfo,
    OperatingPoint,
    Point,
    Quality,
    TemplateUpgrade,
    Verification,
)
from facesvc.errors import EmbeddingInvalidError
from facesvc.rpc.wire import IdentifyCall
from facesvc.v1 import face_service_pb2 as pb

_SELECTIONS: dict[int, FaceSelection | None] = {
    pb.FACE_SELECTION_UNSPECIFIED: None,
    pb.FACE_SELECTION_REJECT_MULTIPLE: FaceSelection.REJECT_MULTIPLE,
    pb.FACE_SELECTION_LARGEST: FaceSelection.LARGEST,
    pb.FACE_SELECTION_CENTRAL: FaceSelection.CENTRAL,
}
_SELECTION_VALUES = {value: key for key, value in _SELECTIONS.items() if value is not None}


_ATTACK_MODES: dict[int, AttackMode | None] = {
    pb.PRESENTATION_ATTACK_MODE_UNSPECIFIED: None,
    pb.PRESENTATION_ATTACK_MODE_OFF: AttackMode.OFF,
    pb.PRESENTATION_ATTACK_MODE_REPORT: AttackMode.REPORT,
    pb.PRESENTATION_ATTACK_MODE_ENFORCE: AttackMode.ENFORCE,
}
_ATTACK_MODE_VALUES = {value: key for key, value in _ATTACK_MODES.items() if value is not None}


def attack_mode(value: int) -> AttackMode | None:
    """The request's presentation-attack mode; an unknown enum value means the default."""
    return _ATTACK_MODES.get(value)


def attack_mode_to_proto(mode: AttackMode) -> str:
    """The enum value's name (protobuf accepts names for enum fields)."""
    return pb.PresentationAttackMode.Name(_ATTACK_MODE_VALUES[mode])


def face_selection(value: int) -> FaceSelection | None:
    """The request's face selection; an unknown enum value means the server default."""
    return _SELECTIONS.get(value)


def face_selection_to_proto(name: str) -> str:
    """The enum value's name (protobuf accepts names for enum fields)."""
    return pb.FaceSelection.Name(_SELECTION_VALUES[FaceSelection(name)])


def stored_embedding(message: pb.Embedding) -> StoredEmbedding:
    return StoredEmbedding(np.asarray(message.values, dtype=np.float32), message.model)


def stored_embeddings(messages: Iterable[pb.Embedding]) -> list[StoredEmbedding]:
    return [stored_embedding(m) for m in messages]


def stored_template(message: pb.Embedding) -> Template:
    """A plain embedding, or a sealed template (opened by facesvc.engine.templates.sealing)."""
    if message.sealed:
        return SealedTemplate(message.sealed, message.model, len(message.values))
    return stored_embedding(message)


def stored_templates(messages: Iterable[pb.Embedding]) -> list[Template]:
    return [stored_template(m) for m in messages]


def gallery(
    call: IdentifyCall, dimension: int | Mapping[str, int], templates: Templates | None = None
) -> Gallery:
    """The Candidate messages, the packed and the sealed gallery of a request, as one matrix."""
    request = call.message
    if call.rows is not None:
        if templates:
            templates.allow_plain("candidates", len(call.rows.ids))
        listed = Gallery.rows(call.rows.ids, call.rows.matrix, call.rows.model)
    elif call.sealed is not None and templates:
        listed = templates.sealed_rows(call.sealed.ids, call.sealed.blobs, "candidates", call.sealed.model)
    elif templates:
        listed = templates.gallery(
            [(m.id, stored_template(m.embedding)) for m in request.candidates], "candidates"
        )
    else:
        listed = Gallery.of([Candidate(m.id, stored_embedding(m.embedding)) for m in request.candidates])
    if request.HasField("packed_candidates"):
        packed = request.packed_candidates
        if templates:
            templates.allow_plain("packed_candidates", len(packed.ids) or len(packed.values))
        listed += packed_gallery(packed, dimension)
    if templates and request.HasField("sealed_candidates"):
        sealed = request.sealed_candidates
        listed += templates.sealed_rows(list(sealed.ids), list(sealed.templates), "sealed_candidates")
        listed += templates.packed_galleries(list(sealed.packed), "sealed_candidates.packed")
    return listed


_PACKED_ENCODINGS = {
    pb.PACKED_ENCODING_UNSPECIFIED: "float32",
    pb.PACKED_ENCODING_FLOAT32: "float32",
    pb.PACKED_ENCODING_FLOAT16: "float16",
}


def packed_gallery(packed: pb.PackedGallery, dimension: int | Mapping[str, int]) -> Gallery:
    """`dimension`: the serving model's, or each served model's (a migration's)."""
    if not isinstance(dimension, int):
        dimension = dimension.get(packed.model, next(iter(dimension.values())))
    encoding = _PACKED_ENCODINGS.get(packed.encoding)
    if encoding is None:
        raise EmbeddingInvalidError(
            f"packed_candidates.encoding {packed.encoding} is not known to this service.",
            encoding=packed.encoding,
        )
    return Gallery.packed(list(packed.ids), packed.values, packed.model, dimension, encoding)


def optional_float(message: object, field: str) -> float | None:
    return float(getattr(message, field)) if message.HasField(field) else None  # type: ignore[attr-defined]


def embedding_to_proto(values: np.ndarray, model: str) -> pb.Embedding:
    return pb.Embedding(values=values.tolist(), model=model)


def template_to_proto(template: Exported) -> pb.Embedding:
    if template.values is not None:
        return embedding_to_proto(template.values, template.model)
    return pb.Embedding(model=template.model, sealed=template.sealed, key_id=template.key_id)


def quality_to_proto(quality: Quality) -> pb.Quality:
    return pb.Quality(
        score=quality.score,
        sharpness=quality.sharpness,
        brightness=quality.brightness,
        face_size=quality.face_size,
        unified=quality.unified,
        components=[
            pb.QualityComponent(name=c.name, value=c.value, score=c.score, reason=c.reason)
            for c in quality.components
        ],
    )


def _point(point: Point) -> pb.Point:
    return pb.Point(x=point.x, y=point.y)


def face_to_proto(face: AnalysedFace) -> pb.Face:
    return detection_to_proto(face.detection, face.face_count)


def detection_to_proto(detection: Detection, face_count: int) -> pb.Face:
    box, marks = detection.box, detection.landmarks
    return pb.Face(
        box=pb.BoundingBox(x=round(box.x), y=round(box.y), width=round(box.width), height=round(box.height)),
        confidence=detection.confidence,
        landmarks=pb.Landmarks(
            left_eye=_point(marks.left_eye),
            right_eye=_point(marks.right_eye),
            nose=_point(marks.nose),
            mouth_left=_point(marks.mouth_left),
            mouth_right=_point(marks.mouth_right),
        ),
        face_count=face_count,
    )


def liveness_to_proto(checks: Sequence[LivenessCheck]) -> list[pb.LivenessCheck]:
    return [
        pb.LivenessCheck(name=c.name, passed=c.passed, value=c.value, threshold=c.threshold, detail=c.detail)
        for c in checks
    ]


def matches_to_proto(matches: Sequence[IdentityMatch]) -> list[pb.IdentityMatch]:
    return [
        pb.IdentityMatch(id=m.id, distance=m.distance, confidence=m.confidence, match=m.match, model=m.model)
        for m in matches
    ]


# ---- CheckLiveness ------------------------------------------------------------------------

_CHALLENGES = {
    Challenge.BLINK: pb.LIVENESS_CHALLENGE_BLINK,
    Challenge.TURN_LEFT: pb.LIVENESS_CHALLENGE_TURN_LEFT,
    Challenge.TURN_RIGHT: pb.LIVENESS_CHALLENGE_TURN_RIGHT,
}


def liveness_templates(
    start: pb.LivenessStart, dimension: int | Mapping[str, int], templates: Templates
) -> SessionTemplates:
    """The templates of a LivenessStart (plain or sealed, as `templates` allows): stored
    embeddings, a gallery, or none."""
    gallery = None
    if len(start.candidates) or start.HasField("packed_candidates"):
        listed = templates.gallery(
            [(m.id, stored_template(m.embedding)) for m in start.candidates], "candidates"
        )
        if start.HasField("packed_candidates"):
            packed = start.packed_candidates
            templates.allow_plain("packed_candidates", len(packed.ids) or len(packed.values))
            listed = listed + packed_gallery(packed, dimension)
        gallery = listed
    return SessionTemplates(
        stored=templates.stored(stored_templates(start.stored_embeddings), "stored_embeddings"),
        gallery=gallery,
        top_k=start.top_k,
        threshold=optional_float(start, "threshold"),
        max_templates=start.max_templates,
    )


def prompt_to_proto(prompt: Prompt) -> pb.LivenessPrompt:
    return pb.LivenessPrompt(
        challenge=_CHALLENGES[prompt.challenge],
        index=prompt.index,
        count=prompt.count,
        timeout_seconds=prompt.timeout_seconds,
    )


def started_to_proto(started: Started) -> pb.CheckLivenessResponse:
    policy = started.policy
    return pb.CheckLivenessResponse(
        started=pb.LivenessStarted(
            session_id=started.session_id,
            prompt=prompt_to_proto(started.prompt),
            max_frames=policy.max_frames,
            max_frame_bytes=policy.max_frame_bytes,
            max_session_seconds=policy.max_session_seconds,
            min_frame_rate=policy.min_frame_rate,
            max_frame_rate=policy.max_frame_rate,
        )
    )


def feedback_to_proto(feedback: Feedback) -> pb.CheckLivenessResponse:
    return pb.CheckLivenessResponse(
        feedback=pb.LivenessFeedback(
            advice=f"LIVENESS_ADVICE_{feedback.advice.value}",
            face=face_to_proto(feedback.face) if feedback.face is not None else None,
            prompt=prompt_to_proto(feedback.prompt),
            progress=feedback.progress,
            prompts_met=feedback.prompts_met,
            frame_index=feedback.frame_index,
        )
    )


def result_to_proto(result: SessionResult, templates: Templates) -> pb.CheckLivenessResponse:
    """A session's result; its best frame's embedding as Enroll hands it out (sealed under
    the current key unless the service runs plain templates)."""
    message = pb.LivenessResult(
        outcome=pb.LIVENESS_OUTCOME_PASSED if result.passed else pb.LIVENESS_OUTCOME_FAILED,
        failure=f"LIVENESS_FAILURE_{result.failure.value}"
        if result.failure
        else pb.LIVENESS_FAILURE_UNSPECIFIED,
        detail=result.detail,
        score=result.score,
        session_id=result.session_id,
        frames=result.frames,
        prompts_met=result.prompts_met,
        token=result.token,
    )
    best = result.best
    if best is not None:
        message.embedding.CopyFrom(template_to_proto(templates.export(best.embedding, result.model)))
        message.quality.CopyFrom(quality_to_proto(best.quality))
        message.face.CopyFrom(face_to_proto(best))
        message.liveness_checks.extend(liveness_to_proto(best.liveness))
    message.templates.extend(templates_to_proto(result.templates, result.model, templates))
    if result.verification is not None:
        message.verify.CopyFrom(verification_to_proto(result.verification, templates))
    if result.identification is not None:
        message.identify.CopyFrom(identification_to_proto(result.identification, templates))
    return pb.CheckLivenessResponse(result=message)


def upgrade_to_proto(
    upgrade: TemplateUpgrade | None, templates: Templates | None
) -> pb.TemplateUpgrade | None:
    """An upgraded template, sealed as Enroll's are (plain without `templates`)."""
    if upgrade is None:
        return None
    template = (
        template_to_proto(templates.export(upgrade.values, upgrade.model))
        if templates
        else embedding_to_proto(upgrade.values, upgrade.model)
    )
    return pb.TemplateUpgrade(
        template=template,
        id=upgrade.id,
        from_model=upgrade.from_model,
        distance=upgrade.distance,
        threshold=upgrade.threshold,
    )


def models_to_proto(roles: ModelRoles | None) -> pb.ModelRoles | None:
    if roles is None:
        return None
    return pb.ModelRoles(
        current=roles.current,
        next=roles.next,
        previous=roles.previous,
        upgrade_threshold=roles.upgrade_threshold,
        upgrade_far=roles.upgrade_far,
        upgrade_fpir=roles.upgrade_fpir,
        upgrade_min_quality=roles.upgrade_min_quality,
        upgrade_requires_live=roles.upgrade_requires_live,
    )


def verification_to_proto(result: Verification, templates: Templates | None = None) -> pb.VerifyResponse:
    return pb.VerifyResponse(
        match=result.match,
        confidence=result.confidence,
        distance=result.distance,
        threshold=result.threshold,
        model=result.model,
        quality=quality_to_proto(result.face.quality),
        face=face_to_proto(result.face),
        best_template_index=result.best_template_index,
        liveness_checks=liveness_to_proto(result.face.liveness),
        upgrade=upgrade_to_proto(result.upgrade, templates),
    )


def identification_to_proto(
    result: Identification, templates: Templates | None = None
) -> pb.IdentifyResponse:
    return pb.IdentifyResponse(
        matches=matches_to_proto(result.matches),
        threshold=result.threshold,
        model=result.model,
        quality=quality_to_proto(result.face.quality),
        face=face_to_proto(result.face),
        liveness_checks=liveness_to_proto(result.face.liveness),
        gallery_identities=result.identities,
        fpir=result.fpir,
        frames=result.frames,
        gallery_weight=result.weight,
        upgrade=upgrade_to_proto(result.upgrade, templates),
    )


def open_set_to_proto(info: OpenSetInfo | None) -> pb.OpenSetRule | None:
    if info is None:
        return None
    return pb.OpenSetRule(
        default_fpir=info.default_fpir,
        fpirs=info.fpirs,
        gallery_sizes=info.sizes,
        thresholds=[
            pb.OpenSetThresholds(fpir=fpir, thresholds=row)
            for fpir, row in zip(info.fpirs, info.thresholds, strict=True)
        ],
        measured_max=info.measured_max,
        extrapolated_max=info.extrapolated_max,
        template_weights=info.template_weights,
    )


def failure_of(response: pb.CheckLivenessResponse) -> tuple[str, dict[str, str]]:
    """The failure reason a FAILED result carries, else ''."""
    if response.HasField("result") and response.result.outcome == pb.LIVENESS_OUTCOME_FAILED:
        result = response.result
        reason = pb.LivenessFailure.Name(result.failure).removeprefix("LIVENESS_FAILURE_")
        return reason, {
            "detail": result.detail,
            "frames": str(result.frames),
            "session_id": result.session_id,
        }
    return "", {}


def operating_points_to_proto(points: Sequence[OperatingPoint]) -> list[pb.OperatingPoint]:
    return [pb.OperatingPoint(far=p.far, threshold=p.threshold, frr=p.frr) for p in points]


# ---- IdentifyFaces ------------------------------------------------------------------------

_REFUSALS = {
    None: pb.FACE_REFUSAL_UNSPECIFIED,
    Refusal.TOO_SMALL: pb.FACE_REFUSAL_TOO_SMALL,
    Refusal.CUT_OFF: pb.FACE_REFUSAL_CUT_OFF,
    Refusal.LOW_QUALITY: pb.FACE_REFUSAL_LOW_QUALITY,
    Refusal.NOT_SCORABLE: pb.FACE_REFUSAL_NOT_SCORABLE,
    Refusal.PRESENTATION_ATTACK: pb.FACE_REFUSAL_PRESENTATION_ATTACK,
    Refusal.OUT_OF_TIME: pb.FACE_REFUSAL_OUT_OF_TIME,
}


def group_gallery(request: pb.IdentifyFacesRequest, dimension: int, templates: Templates) -> Gallery:
    """IdentifyFaces' gallery: the fields of IdentifyRequest's, read the same way."""
    return gallery(IdentifyCall(request, None), dimension, templates)


def group_to_proto(result: GroupIdentification) -> pb.IdentifyFacesResponse:
    return pb.IdentifyFacesResponse(
        faces=[
            pb.FaceIdentification(
                face=detection_to_proto(face.detection, result.face_count),
                quality=quality_to_proto(face.quality) if face.quality is not None else None,
                liveness_checks=liveness_to_proto(face.checks),
                matches=matches_to_proto(face.matches),
                refusal=_REFUSALS[face.refusal],
                detail=face.detail,
            )
            for face in result.faces
        ],
        face_count=result.face_count,
        faces_not_returned=result.not_returned,
        threshold=result.threshold,
        model=result.model,
        gallery_identities=result.identities,
        fpir=result.fpir,
        max_faces=result.max_faces,
    )


def group_audit(response: pb.IdentifyFacesResponse) -> dict[str, object] | None:
    """What the security log keeps of an IdentifyFaces answer in which a face was taken for
    a print or a screen: the photo's face count and its refusals by reason, never a face."""
    refusals: dict[str, int] = {}
    for face in response.faces:
        if face.refusal != pb.FACE_REFUSAL_UNSPECIFIED:
            name = pb.FaceRefusal.Name(face.refusal).removeprefix("FACE_REFUSAL_")
            refusals[name] = refusals.get(name, 0) + 1
    if "PRESENTATION_ATTACK" not in refusals:
        return None
    return {"face_count": response.face_count, "faces_returned": len(response.faces), "refusals": refusals}


def templates_to_proto(
    chosen: Sequence[EnrolledTemplate], model: str, templates: Templates
) -> list[pb.EnrolledTemplate]:
    """Enroll's (or a session's) templates, each sealed as Enroll's embedding is."""
    return [
        pb.EnrolledTemplate(
            embedding=template_to_proto(templates.export(t.face.embedding, model)),
            quality=quality_to_proto(t.face.quality),
            face=face_to_proto(t.face),
            image_index=t.image_index,
        )
        for t in chosen
    ]


def enrollment_to_proto(result: Enrollment, templates: Templates) -> pb.EnrollResponse:
    """Enroll's answer: the first template in the single-embedding fields, as before
    several photos, and every template (the first again) in `templates`."""
    chosen = templates_to_proto(result.templates, result.model, templates)
    face = result.face
    return pb.EnrollResponse(
        embedding=chosen[0].embedding
        if chosen
        else template_to_proto(templates.export(face.embedding, result.model)),
        quality=quality_to_proto(face.quality),
        face=face_to_proto(face),
        liveness_checks=liveness_to_proto(face.liveness),
        templates=chosen,
    )
