"""The values the SDK takes and returns: frozen dataclasses and enums, never protobuf messages."""

from __future__ import annotations

import array
import base64
import binascii
import dataclasses
import enum
import itertools
import json
import math
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class FaceSelection(enum.StrEnum):
    """Which face the service takes when a photo shows several (None: the server's default)."""

    REJECT_MULTIPLE = "reject_multiple"
    """Refuse with MULTIPLE_FACES when two comparable faces are present (kiosks, doors)."""
    LARGEST = "largest"
    """Take the largest face (portrait and ID photo archives)."""
    CENTRAL = "central"
    """Take the face nearest the centre of the image (press photos)."""


class PresentationAttackMode(enum.StrEnum):
    """What the presentation-attack stage (a live person, or a print or a screen held to the
    camera?) does for one call (None: the server's default for that RPC, see
    Health.presentation_attack)."""

    OFF = "off"
    """Skip the stage: no presentation_attack check, nothing refused by it."""
    REPORT = "report"
    """Run it and return its check in liveness_checks; refuse nothing."""
    ENFORCE = "enforce"
    """Refuse an attack (PresentationAttackError) and a face it cannot judge
    (FaceNotScorableError)."""


class ServingStatus(enum.StrEnum):
    """Whether the service serves requests now."""

    UNKNOWN = "unknown"
    SERVING = "serving"
    NOT_SERVING = "not_serving"


@dataclass(frozen=True, slots=True)
class Embedding:
    """A face template and the model that made it.

    Store it whole: embeddings of different models cannot be compared, and the service
    refuses them with EMBEDDING_MODEL_MISMATCH. `to_json()` / `from_json()` round-trip
    exactly, so any database that holds text can hold one.
    """

    values: tuple[float, ...]
    model: str

    def __post_init__(self) -> None:
        # Accept any sequence of numbers; store an immutable tuple of floats so that
        # equality and hashing work and a stored embedding cannot be changed in place.
        object.__setattr__(self, "values", tuple(float(value) for value in self.values))
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("an Embedding needs the name of the model that made it")

    @property
    def dimension(self) -> int:
        """The number of values (128 for SFace and Dlib, 512 for Facenet512)."""
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        """`{"model": ..., "values": [...]}`: the form `from_dict` and the CLI read."""
        return {"model": self.model, "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Embedding:
        """The inverse of `to_dict`; raises ValueError on anything else."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an embedding is an object with model and values, not {type(data).__name__}")
        model, values = data.get("model"), data.get("values")
        if not isinstance(model, str) or not model:
            raise ValueError("an embedding needs a non-empty 'model' string")
        if not isinstance(values, list) or not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in values
        ):
            raise ValueError("an embedding needs 'values', a list of numbers")
        return cls(tuple(values), model)

    def to_json(self) -> str:
        """Compact JSON text; floats are written so that `from_json` restores them exactly."""
        if not all(math.isfinite(value) for value in self.values):
            raise ValueError("an embedding with NaN or infinite values cannot be stored as JSON")
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Embedding:
        """The inverse of `to_json`."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class SealedTemplate:
    """A face template sealed by the service (AES-256-GCM under its template key): opaque
    bytes that only a service holding the key can open. Enroll returns one instead of an
    Embedding when the service seals; store it and pass it back unchanged wherever an
    Embedding goes. `to_json()` / `from_json()` round-trip it (the bytes as base64)."""

    sealed: bytes
    model: str
    key_id: str = ""
    """The key that sealed it, for bookkeeping: which rows `reseal` still has to move."""

    def __post_init__(self) -> None:
        if not isinstance(self.sealed, bytes) or not self.sealed:
            raise ValueError("a SealedTemplate needs the sealed bytes the service returned")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError("a SealedTemplate needs the name of the model that made it")

    def to_dict(self) -> dict[str, Any]:
        """`{"model": ..., "sealed": base64, "key_id": ...}`: what `from_dict` and the CLI read."""
        return {"model": self.model, "sealed": base64.b64encode(self.sealed).decode(), "key_id": self.key_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SealedTemplate:
        """The inverse of `to_dict`; raises ValueError on anything else."""
        model, sealed, key_id = data.get("model"), data.get("sealed"), data.get("key_id", "")
        if not isinstance(model, str) or not model or not isinstance(key_id, str):
            raise ValueError("a sealed template needs a non-empty 'model' string")
        try:
            blob = base64.b64decode(sealed, validate=True) if isinstance(sealed, str) else b""
        except (binascii.Error, ValueError):
            blob = b""
        if not blob:
            raise ValueError("a sealed template needs 'sealed', base64 text")
        return cls(blob, model, key_id)

    def to_json(self) -> str:
        """Compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SealedTemplate:
        """The inverse of `to_json`."""
        return cls.from_dict(json.loads(text))


#: A stored template: plain values, or sealed by the service.
Template = Embedding | SealedTemplate


@dataclass(frozen=True, slots=True)
class SealedGallery:
    """A whole gallery, templates and ids, sealed by the service as one blob
    (`FaceClient.seal_gallery`): the cheapest form for `identify` to open (one decryption
    instead of one per template). Store its bytes; rebuild it when the gallery changes or
    the service's key rotates."""

    sealed: bytes


@dataclass(frozen=True, slots=True)
class PackedGallery:
    """A gallery of plain embeddings of one model, packed once for many `identify` calls
    (a kiosk searching the same staff on every frame): the ids and one block of
    little-endian float32 rows, or float16 rows with `half` (half the bytes on the wire;
    SFace's distances move by at most 1e-4). `identify` otherwise packs a mapping on every
    call (about 25 ms of Python for 10,000 templates). Build it with `PackedGallery.of`;
    rebuild it when the gallery changes. A float16 gallery needs a service that knows
    PackedGallery.encoding; an older one refuses it (EMBEDDING_INVALID)."""

    ids: tuple[str, ...]
    values: bytes
    model: str
    half: bool = False

    @staticmethod
    def of(
        gallery: Mapping[str, Template | Iterable[Template]] | Iterable[Candidate], *, half: bool = False
    ) -> PackedGallery:
        """Pack a mapping of id to one or more embeddings (or Candidate values), all plain
        embeddings of one model and one length; ValueError otherwise."""
        candidates = candidates_from(gallery)
        if not candidates:
            raise ValueError("the gallery is empty")
        embeddings = [c.embedding for c in candidates]
        if not all(isinstance(e, Embedding) for e in embeddings):
            raise ValueError(
                "only plain embeddings can be packed; seal a gallery with FaceClient.seal_gallery"
            )
        shapes = {(e.model, e.dimension) for e in embeddings if isinstance(e, Embedding)}
        if len(shapes) != 1:
            raise ValueError(f"a packed gallery holds one model and one length, not {sorted(shapes)}")
        rows = array.array(
            "f", itertools.chain.from_iterable(e.values for e in embeddings if isinstance(e, Embedding))
        )
        if half:
            values = struct.pack(f"<{len(rows)}e", *rows)
        else:
            if sys.byteorder == "big":
                rows.byteswap()  # the wire format is little-endian
            values = rows.tobytes()
        ((model, _),) = shapes
        return PackedGallery(tuple(c.id for c in candidates), values, model, half)


def template_from_dict(data: Mapping[str, Any]) -> Template:
    """An Embedding or a SealedTemplate, whichever `data` holds (their `to_dict` forms)."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"a template is an object with model and values or sealed, not {type(data).__name__}"
        )
    return SealedTemplate.from_dict(data) if "sealed" in data else Embedding.from_dict(data)


def template_from_json(text: str | bytes) -> Template:
    """An Embedding or a SealedTemplate from its `to_json` text."""
    return template_from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery entry for `identify`: a person's id and one of their templates.
    An id may repeat for several templates of the same person."""

    id: str
    embedding: Template


@dataclass(frozen=True, slots=True)
class Quality:
    """The chosen face's quality; every figure runs from 0 (worst) to 100."""

    score: float
    """50% sharpness, 30% brightness, 20% face size (the original gate's score)."""
    sharpness: float
    brightness: float
    face_size: float
    unified: float = 0.0
    """The unified score that predicts recognition failure: 75 for a typical photo, lower
    the likelier its comparisons fail (100 * 3 / (3 + relative risk)); 0 if not measured."""
    components: tuple[QualityComponent, ...] = ()
    """What the unified score is made of: head pose, blur, exposure, face size, ..."""

    def weakest(self) -> QualityComponent | None:
        """The component to act on: one with a reason first, else the lowest scoring."""
        flagged = [c for c in self.components if c.reason != "OK"] or list(self.components)
        return min(flagged, key=lambda c: c.score, default=None)


@dataclass(frozen=True, slots=True)
class QualityComponent:
    """One measure of the face's quality."""

    name: str
    """yaw, pitch, roll, sharpness, brightness, saturation, unevenness, face_size,
    detector_confidence, embedding_norm or eyes_open (the service's docs/QUALITY.md)."""
    value: float
    """The measure in its unit (degrees, grey level, pixels, a share)."""
    score: float
    """The unified score were every other component typical (75: typical)."""
    reason: str
    """"OK", or what is wrong: EXTREME_YAW, LOW_SHARPNESS, TOO_DARK, SMALL_FACE, ..."""


@dataclass(frozen=True, slots=True)
class Point:
    """A position in pixels of the original (upright) image."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A box in pixels of the original image, after its EXIF orientation is applied."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five facial landmarks; "left" and "right" as seen in the image."""

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point


@dataclass(frozen=True, slots=True)
class Face:
    """The face the service chose and measured."""

    box: BoundingBox
    confidence: float
    """The detector's confidence, 0 to 1."""
    landmarks: Landmarks
    face_count: int
    """How many faces the detector found, the chosen one included."""


#: The name of the presentation-attack stage's entry in `liveness_checks`.
PRESENTATION_ATTACK_CHECK = "presentation_attack"


@dataclass(frozen=True, slots=True)
class LivenessCheck:
    """The outcome of one liveness check: "sharpness", "illumination", "face_size",
    "plausible_geometry", or "presentation_attack" (value: the live score 0-1, threshold:
    the score a live face reaches; present unless the call's mode is OFF)."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


def _check_named(checks: tuple[LivenessCheck, ...], name: str) -> LivenessCheck | None:
    return next((check for check in checks if check.name == name), None)


@dataclass(frozen=True, slots=True)
class EnrollResult:
    """What `enroll` returns: the template to store (a SealedTemplate when the service
    seals), and what the service saw."""

    embedding: Template
    quality: Quality
    face: Face
    liveness_checks: tuple[LivenessCheck, ...]
    templates: tuple[EnrolledTemplate, ...] = ()
    """Every template chosen (the first is `embedding`): store them all for the person."""

    @property
    def presentation_attack(self) -> LivenessCheck | None:
        """The presentation-attack check (value: the live score); None when the stage was off."""
        return _check_named(self.liveness_checks, PRESENTATION_ATTACK_CHECK)

    @property
    def embeddings(self) -> tuple[Template, ...]:
        """The templates to store, best first (`embedding` alone from an older service)."""
        return tuple(t.embedding for t in self.templates) or (self.embedding,)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


@dataclass(frozen=True, slots=True)
class EnrolledTemplate:
    """One template of an enrolment, from one photo (image_index: 0 the first photo)."""

    embedding: Template
    quality: Quality
    face: Face
    image_index: int


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What `verify` returns."""

    match: bool
    confidence: float
    """0-100, at or above 50 exactly when `match`."""
    distance: float
    """To the closest stored template, in the model's metric."""
    threshold: float
    model: str
    quality: Quality
    face: Face
    best_template_index: int
    """Which of the stored embeddings was closest."""
    liveness_checks: tuple[LivenessCheck, ...]
    upgrade: TemplateUpgrade | None = None
    """During a model migration, the next model's template of this face (a confident
    match only): store it beside the person's templates (docs/MODELS.md)."""

    @property
    def presentation_attack(self) -> LivenessCheck | None:
        """The presentation-attack check (value: the live score); None when the stage was off."""
        return _check_named(self.liveness_checks, PRESENTATION_ATTACK_CHECK)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


@dataclass(frozen=True, slots=True)
class IdentityMatch:
    """One identity of the gallery, scored by its closest template."""

    id: str
    distance: float
    confidence: float
    match: bool
    model: str = ""
    """The model of the template that decided, when the gallery mixes models."""


@dataclass(frozen=True, slots=True)
class TemplateUpgrade:
    """A template of the next model for a face an older model just matched with confidence."""

    template: Template
    """Store it beside the person's templates; it is sealed when the service seals."""
    id: str
    """The identity it belongs to (Identify); "" for Verify."""
    from_model: str
    distance: float
    threshold: float
    """The confident line `distance` was inside (stricter than the match's)."""


@dataclass(frozen=True, slots=True)
class ModelRoles:
    """The models a service holds during a migration, and its upgrade rule."""

    current: str
    next: str
    previous: str
    upgrade_threshold: float
    upgrade_far: float
    upgrade_fpir: float
    upgrade_min_quality: float
    upgrade_requires_live: bool


@dataclass(frozen=True, slots=True)
class IdentifyResult:
    """What `identify` returns: at most top_k identities, closest first, matching or not."""

    matches: tuple[IdentityMatch, ...]
    threshold: float
    model: str
    quality: Quality
    face: Face
    liveness_checks: tuple[LivenessCheck, ...]
    gallery_identities: int = 0
    """The number of distinct identities searched: the N the open-set threshold was chosen
    for (0 from a service older than the open-set rule)."""
    fpir: float = 0.0
    """The false-positive identification rate the threshold holds at that N (0: the call
    set threshold or far, or the service has no open-set rule)."""
    frames: int = 1
    """How many frames were decided together (1 + more_images)."""
    upgrade: TemplateUpgrade | None = None
    """During a model migration, the next model's template of the matched identity."""

    @property
    def best(self) -> IdentityMatch | None:
        """The closest identity when it matches; None when nobody in the gallery does."""
        return self.matches[0] if self.matches and self.matches[0].match else None

    @property
    def presentation_attack(self) -> LivenessCheck | None:
        """The presentation-attack check (value: the live score); None when the stage was off."""
        return _check_named(self.liveness_checks, PRESENTATION_ATTACK_CHECK)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


class FaceRefusal(enum.StrEnum):
    """Why one face of a group photo was not identified (identify_faces)."""

    TOO_SMALL = "too_small"
    """Under the service's minimum face size for naming (IdentifyFaces' own, 40 px by default)."""
    CUT_OFF = "cut_off"
    """Cut by the edge of the photo."""
    LOW_QUALITY = "low_quality"
    """Its quality score is below the service's threshold."""
    NOT_SCORABLE = "not_scorable"
    """The presentation-attack stage is enforced and cannot judge it (too small, cut off)."""
    PRESENTATION_ATTACK = "presentation_attack"
    """The presentation-attack stage is enforced and takes it for a print or a screen."""
    OUT_OF_TIME = "out_of_time"
    """The service's time budget for the call ran out before this face."""


@dataclass(frozen=True, slots=True)
class FaceIdentification:
    """One face of a group photo and who it is."""

    face: Face
    quality: Quality | None
    """None when the face was refused before it was measured."""
    liveness_checks: tuple[LivenessCheck, ...]
    matches: tuple[IdentityMatch, ...]
    """The identity given to this face first (match True) when any, then the closest others."""
    refusal: FaceRefusal | None = None
    detail: str = ""

    @property
    def best(self) -> IdentityMatch | None:
        """The identity given to this face; None when nobody (or when refused)."""
        return self.matches[0] if self.matches and self.matches[0].match else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return _fields(self)


@dataclass(frozen=True, slots=True)
class IdentifyFacesResult:
    """What `identify_faces` returns: every face, largest first; each identity given to at
    most one face of the photo."""

    faces: tuple[FaceIdentification, ...]
    face_count: int
    """How many faces the service found in the photo."""
    faces_not_returned: int
    """How many of them were beyond max_faces."""
    threshold: float
    model: str
    gallery_identities: int
    fpir: float
    max_faces: int

    @property
    def named(self) -> dict[str, FaceIdentification]:
        """Each identity found in the photo, with its face."""
        return {face.best.id: face for face in self.faces if face.best is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


@dataclass(frozen=True, slots=True)
class PresentationAttackInfo:
    """How the service runs its presentation-attack stage (Health.presentation_attack)."""

    mode: PresentationAttackMode | None
    """The default of Verify and Identify (live camera frames); ENFORCE unless configured."""
    enroll_mode: PresentationAttackMode | None
    """The default of Enroll (often an existing photo); REPORT unless configured."""
    threshold: float
    """The live score (0-1) a face must reach to be taken for a live person."""
    model: str
    """The models that score faces; empty when the stage is off on the server."""
    min_face_size: float
    """The smallest face, in pixels, the stage judges (smaller: FACE_NOT_SCORABLE)."""
    relaxable: bool
    """Whether some or all callers may ask for a weaker mode than the default per call
    (others get PresentationAttackRelaxDeniedError)."""


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold of the serving model with the error rates measured at it."""

    far: float
    """False-accept rate, e.g. 0.001 for 0.1%; pass it as `far=` to verify or identify."""
    threshold: float
    frr: float
    """False-reject rate measured at the threshold."""


@dataclass(frozen=True, slots=True)
class OpenSetRule:
    """How Identify's default threshold follows the gallery's number of identities."""

    default_fpir: float
    """The FPIR a call gets when it names none of fpir, threshold, far."""
    thresholds: dict[float, dict[int, float]]
    """Per published FPIR target, gallery size (distinct identities) -> threshold."""
    measured_max: int
    """Gallery sizes up to this were measured; above, extrapolated."""
    extrapolated_max: int
    """Above this gallery size the figure is not supported by data."""
    template_weights: tuple[float, ...] = (1.0,)
    """What an identity with k templates counts for in the gallery size (entry k - 1)."""

    @property
    def fpirs(self) -> tuple[float, ...]:
        return tuple(self.thresholds)


@dataclass(frozen=True, slots=True)
class Health:
    """What `health` returns: the serving model and configuration."""

    status: ServingStatus
    model: str
    embedding_dim: int
    detector: str
    threshold: float
    """The default distance threshold."""
    distance_metric: str
    """"cosine" or "euclidean"."""
    default_face_selection: FaceSelection | None
    quality_threshold: float
    version: str
    uptime_seconds: float
    presentation_attack: PresentationAttackInfo | None = None
    """The presentation-attack stage; None from a service too old to have one."""
    templates: str = ""
    """Which templates it hands out and accepts: "plain", "sealed" or "both" ("" when the
    service does not say)."""
    template_key_id: str = ""
    """The key new templates are sealed with ("" without one)."""
    operating_points: tuple[OperatingPoint, ...] = ()
    """The model's measured operating points, strictest last (empty: not measured)."""
    default_far: float = 0.0
    """The false-accept rate the default threshold was chosen for (0: unknown)."""
    open_set: OpenSetRule | None = None
    """Identify's open-set rule (None: off, or a service older than it)."""
    liveness_replayable: str = ""
    """Why the service's liveness prompts can be passed by a pre-recorded video ("" when
    they resist one, or the service does not say)."""
    enroll_min_quality: float = 0.0
    """The unified quality Enroll requires by default (0: none)."""
    probe_min_quality: float = 0.0
    """The unified quality Verify and Identify require of a probe by default (0: none)."""
    models: ModelRoles | None = None
    """The models held for a migration (None: no migration, or an older service)."""

    @property
    def serving(self) -> bool:
        return self.status is ServingStatus.SERVING

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what the CLI prints)."""
        return _fields(self)


def _fields(value: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}


def _plain(value: Any) -> Any:
    """JSON-ready data: dataclasses become dicts, tuples lists, enums their string value."""
    if isinstance(value, Embedding | SealedTemplate):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def candidates_from(
    gallery: Mapping[str, Template | Iterable[Template]] | Iterable[Candidate],
) -> list[Candidate]:
    """Normalise a gallery: Candidates as they are, or a mapping of id to one or more templates."""
    if isinstance(gallery, Mapping):
        result: list[Candidate] = []
        for identity, stored in gallery.items():
            templates = [stored] if isinstance(stored, Embedding | SealedTemplate) else list(stored)
            result.extend(Candidate(identity, template) for template in templates)
        return result
    return list(gallery)
