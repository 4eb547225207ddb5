"""Every face of a group photo (a class, a meeting) identified in one call: IdentifyFaces.

decode -> detect once -> each face, largest first and up to max_faces: size, edge, quality,
presentation attack, embedding from the full-resolution image -> every embedding against
the gallery in one pass -> one person to one face (facesvc.engine.matching.assignment).

A face that cannot be judged is returned with its refusal instead of failing the call;
only a photo without any face is refused (NO_FACE). The cost is bounded: the photo is
decoded at most twice and detected once at FACESVC_IDENTIFY_FACES_DETECTION_SIZE, a face
below the minimum size costs nothing more, at most FACESVC_IDENTIFY_FACES_MAX_FACES faces
are embedded, and faces not reached within FACESVC_IDENTIFY_FACES_MAX_SECONDS are
returned OUT_OF_TIME.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import islice

import cv2
import numpy as np

from facesvc.config import Settings
from facesvc.engine.matching import assignment, scores
from facesvc.engine.matching.gallery import Checked
from facesvc.engine.pipeline import decode, quality
from facesvc.engine.pipeline.checks import LivenessLimits, run_checks
from facesvc.engine.pipeline.detectors import FaceDetector
from facesvc.engine.pipeline.presentation_attack import AttackMode, PresentationAttackDetector
from facesvc.engine.pipeline.recognizers import FaceRecognizer
from facesvc.engine.stages import StageClock
from facesvc.engine.types import Detection, FloatArray, IdentityMatch, Image, LivenessCheck, Quality
from facesvc.errors import EmbeddingInvalidError, NoFaceError

#: More than this share of a face's box outside the photo: the face is cut off.
CUT_OFF_SHARE = 0.1
#: A box within this share of its width of a side edge touches it.
EDGE_SHARE = 0.02
#: At an edge, the outer eye's margin under this share of the other's: the face is cut off
#: (measured on celebs img1.jpg cut by 0-50% of its box: whole 1.2, cut by a tenth 0.93,
#: by a fifth 0.47, by 30% 0.30).
MARGIN_RATIO = 0.6


class Refusal(Enum):
    """Why one face of the photo was not identified."""

    TOO_SMALL = "too_small"
    CUT_OFF = "cut_off"
    LOW_QUALITY = "low_quality"
    NOT_SCORABLE = "not_scorable"
    PRESENTATION_ATTACK = "presentation_attack"
    OUT_OF_TIME = "out_of_time"


@dataclass(frozen=True, slots=True)
class GroupFace:
    """One face of the photo: where it is, what was measured, and who it is."""

    detection: Detection  # in pixels of the original, upright image
    quality: Quality | None
    checks: tuple[LivenessCheck, ...] = ()
    #: The identity given to the face first (match True), then the closest others.
    matches: tuple[IdentityMatch, ...] = ()
    refusal: Refusal | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GroupIdentification:
    """The result of IdentifyFaces."""

    faces: tuple[GroupFace, ...]
    face_count: int
    not_returned: int
    model: str
    threshold: float
    identities: int
    fpir: float
    max_faces: int


@dataclass(frozen=True, slots=True)
class GroupModels:
    """The engine's loaded models an IdentifyFaces call uses."""

    detector: FaceDetector
    recognizer: FaceRecognizer
    attack: PresentationAttackDetector | None


@dataclass(frozen=True, slots=True)
class GroupRequest:
    """One IdentifyFaces call, its gallery validated and its threshold chosen."""

    image: bytes
    ids: Sequence[str]
    gallery: Checked
    top_k: int
    threshold: float
    identities: int
    fpir: float
    max_faces: int  # as asked; 0: the server's cap
    mode: AttackMode


def face_cap(requested: int, settings: Settings) -> int:
    """The max_faces applied: the request's, never above the server's cap."""
    if requested < 0:
        raise EmbeddingInvalidError("max_faces must not be negative.", max_faces=requested)
    cap = settings.identify_faces_max_faces
    return min(requested, cap) if requested else cap


def identify_faces(
    models: GroupModels, settings: Settings, request: GroupRequest, clock: StageClock
) -> GroupIdentification:
    """Every face of `request.image`, each judged on its own, named jointly."""
    started = time.monotonic()
    cap = face_cap(request.max_faces, settings)
    header = decode.read_header(
        request.image,
        min_size=settings.min_image_size,
        max_size=settings.max_image_size,
        max_pixels=settings.max_image_pixels,
    )
    detect_at = settings.identify_faces_detection_size
    reduction = decode.reduction_for(header, detect_at)
    pixels = decode.decode(request.image, header, reduction)
    small, det_scale = decode.resize_long_side(pixels, detect_at)
    if settings.detect_small_images_upscaled and 2 * max(small.shape[:2]) <= detect_at:
        small = cv2.resize(small, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)  # as analyse()
        det_scale *= 2.0
    clock.lap("decode")
    found = [d for d in models.detector.detect(small) if d.confidence >= settings.detector_min_confidence]
    clock.lap("detect")
    if not found:
        raise NoFaceError("No face found in the image.", face_count=0)
    found.sort(key=lambda d: d.box.area, reverse=True)
    taken = found[:cap]
    to_original = reduction / det_scale
    sizes = [d.box.size * to_original for d in taken]
    # Judge every face big enough at full detail: decode the full image once when libjpeg's
    # reduction left any of them smaller than the crop the model needs.
    source, source_scale = pixels, float(reduction)
    min_size = settings.identify_faces_min_face_size
    if reduction > 1 and any(min_size <= s < reduction * models.recognizer.crop_size for s in sizes):
        source, source_scale = decode.decode(request.image, header, 1), 1.0
        clock.lap("decode")
    judge = _FaceJudge(models, settings, source, request.mode)
    faces: list[GroupFace] = []
    embeddings: list[FloatArray] = []
    deadline = started + settings.identify_faces_max_seconds
    for detection, face_px in zip(taken, sizes, strict=True):
        face = detection.scaled(to_original / source_scale)
        original = face.scaled(source_scale)
        if time.monotonic() > deadline:
            faces.append(
                GroupFace(original, None, refusal=Refusal.OUT_OF_TIME, detail="the call ran out of time")
            )
            continue
        judged, embedding = judge.face(face, face_px)
        faces.append(GroupFace(original, judged.quality, judged.checks, (), judged.refusal, judged.detail))
        if embedding is not None:
            embeddings.append(embedding)
        clock.lap("embed")
    named = _name(faces, embeddings, request, models.recognizer.metric)
    return GroupIdentification(
        faces=tuple(named),
        face_count=len(found),
        not_returned=len(found) - len(taken),
        model=models.recognizer.name,
        threshold=request.threshold,
        identities=request.identities,
        fpir=request.fpir,
        max_faces=cap,
    )


class _FaceJudge:
    """The per-face checks, in order, each refusing the face rather than the call."""

    def __init__(self, models: GroupModels, settings: Settings, source: Image, mode: AttackMode) -> None:
        self._models = models
        self._settings = settings
        self._source = source
        self._mode = mode
        self._limits = LivenessLimits(
            settings.liveness_min_sharpness,
            settings.liveness_min_brightness,
            settings.liveness_max_brightness,
            settings.identify_faces_min_face_size,
        )

    def face(self, face: Detection, face_px: float) -> tuple[GroupFace, FloatArray | None]:
        """The face (in source pixels) judged, and its embedding when it was not refused."""
        settings, source = self._settings, self._source
        if face_px < settings.identify_faces_min_face_size:
            return _refused(
                face,
                Refusal.TOO_SMALL,
                f"the face is {face_px:.0f} px, under {settings.identify_faces_min_face_size}",
            ), None
        box = face.box
        if cut_off(face, source.shape[1], source.shape[0]):
            return _refused(face, Refusal.CUT_OFF, "the face is cut by the edge of the photo"), None
        measured = quality.measure(source, box, face_px)
        checks = run_checks(face, measured, face_px, self._limits) if settings.liveness_checks else ()
        if measured.score < settings.quality_threshold:
            detail = f"quality {measured.score:.1f} is below {settings.quality_threshold:g}"
            return _refused(face, Refusal.LOW_QUALITY, detail, measured, checks), None
        attack = self._models.attack
        if self._mode is not AttackMode.OFF and attack is not None:
            verdict = attack.judge(source, box, face_px)
            checks = (*checks, *verdict.as_checks())
            if self._mode is AttackMode.ENFORCE and verdict.unscorable is not None:
                detail = f"the presentation-attack stage cannot judge it: {verdict.unscorable.detail}"
                return _refused(face, Refusal.NOT_SCORABLE, detail, measured, checks), None
            if self._mode is AttackMode.ENFORCE and not verdict.live:
                detail = f"it looks like a print or a screen (live score {verdict.live_score:.3f})"
                return _refused(face, Refusal.PRESENTATION_ATTACK, detail, measured, checks), None
        embedding = self._models.recognizer.embed(source, face)
        return GroupFace(face, measured, checks), embedding


def cut_off(face: Detection, width: float, height: float) -> bool:
    """More than a tenth of the box outside the photo; or the box at a side edge with the
    eye on that side much nearer the box's edge than the other eye is to its own: the
    detector clips its box to what it sees (YuNet: a face cut by a fifth still gets a box
    inside the photo), but a cut face has lost the margin beside its outer eye."""
    box, marks = face.box, face.landmarks
    outside_x = max(0.0, -box.x) + max(0.0, box.x + box.width - width)
    outside_y = max(0.0, -box.y) + max(0.0, box.y + box.height - height)
    if outside_x > CUT_OFF_SHARE * box.width or outside_y > CUT_OFF_SHARE * box.height:
        return True
    touch = EDGE_SHARE * box.width
    left_margin = marks.left_eye.x - box.x
    right_margin = box.x + box.width - marks.right_eye.x
    if box.x <= touch and left_margin < MARGIN_RATIO * right_margin:
        return True
    return box.x + box.width >= width - touch and right_margin < MARGIN_RATIO * left_margin


def _refused(
    face: Detection,
    refusal: Refusal,
    detail: str,
    measured: Quality | None = None,
    checks: tuple[LivenessCheck, ...] = (),
) -> GroupFace:
    return GroupFace(face, measured, checks, (), refusal, detail)


def _name(
    faces: list[GroupFace], embeddings: list[FloatArray], request: GroupRequest, metric: str
) -> list[GroupFace]:
    """The judged faces' matches: each identity to at most one face, assigned jointly."""
    if not embeddings:
        return faces
    every = scores.distances_of(np.stack(embeddings), request.gallery.matrix, metric, request.gallery.norms)
    table = assignment.per_identity(request.ids, every)
    given = assignment.assign(table.distances, request.threshold)
    wanted = max(request.top_k, 1)
    named, judged = [], 0
    for face in faces:
        if face.refusal is not None:
            named.append(face)
            continue
        row = table.distances[judged]
        mine = given[judged]
        judged += 1
        order = [mine] if mine is not None else []
        others = (int(c) for c in scores.nearest_first(row, wanted + 1) if c != mine)
        order += islice(others, wanted - len(order))
        matches = tuple(
            IdentityMatch(
                table.ids[c],
                float(row[c]),
                scores.confidence(float(row[c]), request.threshold),
                c == mine,
            )
            for c in order
        )
        named.append(GroupFace(face.detection, face.quality, face.checks, matches))
    return named
