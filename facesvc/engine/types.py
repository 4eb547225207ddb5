"""Typed values passed between the engine's stages and out to its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
#: Pixels as OpenCV hands them over: after decoding, 8-bit BGR (height, width, 3).
Image = npt.NDArray[Any]


class FaceSelection(Enum):
    """Which face to take when a photo shows several."""

    REJECT_MULTIPLE = "reject_multiple"
    LARGEST = "largest"
    CENTRAL = "central"


@dataclass(frozen=True, slots=True)
class Point:
    """A position in pixels."""

    x: float
    y: float

    def scaled(self, factor: float) -> Point:
        return Point(self.x * factor, self.y * factor)


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five facial landmarks; left and right as seen in the image."""

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point

    def scaled(self, factor: float) -> Landmarks:
        return Landmarks(*(p.scaled(factor) for p in self.as_tuple()))

    def as_tuple(self) -> tuple[Point, Point, Point, Point, Point]:
        return (self.left_eye, self.right_eye, self.nose, self.mouth_left, self.mouth_right)

    def as_array(self) -> FloatArray:
        return np.array([[p.x, p.y] for p in self.as_tuple()], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels."""

    x: float
    y: float
    width: float
    height: float

    @property
    def size(self) -> float:
        """The shorter side: what MIN_FACE_SIZE is compared with."""
        return min(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> Point:
        return Point(self.x + self.width / 2, self.y + self.height / 2)

    def scaled(self, factor: float) -> Box:
        return Box(self.x * factor, self.y * factor, self.width * factor, self.height * factor)


@dataclass(frozen=True, slots=True)
class Detection:
    """One face as a detector reports it."""

    box: Box
    confidence: float
    landmarks: Landmarks

    def scaled(self, factor: float) -> Detection:
        return Detection(self.box.scaled(factor), self.confidence, self.landmarks.scaled(factor))


@dataclass(frozen=True, slots=True)
class QualityComponent:
    """One measure of a face's quality (facesvc.engine.quality): its value in its unit, the
    unified score the face would have were every other measure typical, and "OK" or what
    is wrong (EXTREME_YAW, LOW_SHARPNESS, ...)."""

    name: str
    value: float
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Quality:
    """Quality of a face, each figure 0-100."""

    score: float
    sharpness: float
    brightness: float
    face_size: float
    #: Mean intensity of the face region, 0-255 (used by the liveness checks).
    mean_intensity: float
    #: The unified score (facesvc.engine.quality): 75 for a typical photo, lower the likelier
    #: its comparisons fail at the default threshold; 0 when not measured.
    unified: float = 0.0
    components: tuple[QualityComponent, ...] = ()


@dataclass(frozen=True, slots=True)
class LivenessCheck:
    """The outcome of one basic liveness check."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True, slots=True)
class AnalysedFace:
    """A face chosen in a photo, measured and embedded."""

    detection: Detection  # in pixels of the original, upright image
    face_count: int
    quality: Quality
    liveness: tuple[LivenessCheck, ...]
    embedding: FloatArray
    #: The pixels the embedding was made from and the face in them, kept only while a
    #: further model may need the same face (facesvc.engine.migration); never stored.
    pixels: Image | None = field(default=None, repr=False, compare=False)
    source: Detection | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class StoredEmbedding:
    """An embedding the caller stored, with the model that made it."""

    values: FloatArray
    model: str


@dataclass(frozen=True, slots=True)
class Enrollment:
    """The result of Enroll."""

    face: AnalysedFace
    model: str
    #: The templates chosen (the first is `face`), each with the index of its photo.
    templates: tuple[EnrolledTemplate, ...] = ()


@dataclass(frozen=True, slots=True)
class EnrolledTemplate:
    """One template of a person: the face analysed in one photo or frame."""

    face: AnalysedFace
    #: Enroll: 0 for the request's image, i for more_images[i - 1]; a session: the frame.
    image_index: int


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of Verify."""

    face: AnalysedFace
    model: str
    match: bool
    confidence: float
    distance: float
    threshold: float
    best_template_index: int
    #: The next model's template of this face, returned with a confident match only.
    upgrade: TemplateUpgrade | None = None


@dataclass(frozen=True, slots=True)
class IdentityMatch:
    """One identity of a gallery, scored by its closest template."""

    id: str
    distance: float
    confidence: float
    match: bool
    #: The model whose template decided, when the gallery mixes models ("" otherwise).
    model: str = ""


@dataclass(frozen=True, slots=True)
class TemplateUpgrade:
    """A template of another model for the face a confident match confirmed
    (facesvc.engine.migration): the caller stores it beside the person's old ones."""

    values: FloatArray
    model: str
    #: The identity it belongs to (Identify); "" for Verify.
    id: str
    #: The model that confirmed the match, its distance and the confident line it was inside.
    from_model: str
    distance: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Identification:
    """The result of Identify."""

    face: AnalysedFace
    model: str
    threshold: float
    matches: tuple[IdentityMatch, ...] = field(default_factory=tuple)
    #: The number of distinct identities searched (N of the open-set rule).
    identities: int = 0
    #: The FPIR target the threshold was chosen for; 0 when the caller set threshold or far.
    fpir: float = 0.0
    #: How many frames of the person were decided together (1 without a burst).
    frames: int = 1
    #: The gallery's N as the open-set rule counts it (identities weighted by templates).
    weight: int = 0
    #: The next model's template of the matched identity, with a confident match only.
    upgrade: TemplateUpgrade | None = None


@dataclass(frozen=True, slots=True)
class OpenSetInfo:
    """Identify's open-set rule as served, for Health: per FPIR target, N -> threshold."""

    default_fpir: float
    fpirs: tuple[float, ...]
    sizes: tuple[int, ...]
    thresholds: tuple[tuple[float, ...], ...]  # per fpir, per size
    measured_max: int
    extrapolated_max: int
    #: What an identity with k templates counts for (entry k - 1).
    template_weights: tuple[float, ...] = (1.0,)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold with the error rates measured at it (docs/MODELS.md)."""

    far: float
    threshold: float
    frr: float


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What the engine serves, for Health."""

    model: str
    detector: str
    embedding_dim: int
    threshold: float
    distance_metric: str
    #: The presentation-attack models, or "" when that stage is off.
    attack_model: str = ""
    operating_points: tuple[OperatingPoint, ...] = ()
    #: The false-accept rate `threshold` was chosen for; 0 when set by hand or unknown.
    default_far: float = 0.0
    #: Identify's open-set rule; None when off or the model is not calibrated.
    open_set: OpenSetInfo | None = None
    #: The models loaded for a migration (facesvc.engine.migration); None without one.
    models: ModelRoles | None = None


@dataclass(frozen=True, slots=True)
class ModelRoles:
    """Which models a server holds during a migration, and when it hands out upgrades."""

    current: str
    next: str
    previous: str
    #: Verify's confident line at the serving default (the current model's distance).
    upgrade_threshold: float
    #: The false-accept rate that line was measured at on lfw-devtrain.
    upgrade_far: float
    #: Identify's confident line holds this FPIR (the open-set table's point), at most.
    upgrade_fpir: float
    upgrade_min_quality: float
    upgrade_requires_live: bool
