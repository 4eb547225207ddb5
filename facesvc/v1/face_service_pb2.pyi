from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaceSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_SELECTION_UNSPECIFIED: _ClassVar[FaceSelection]
    FACE_SELECTION_REJECT_MULTIPLE: _ClassVar[FaceSelection]
    FACE_SELECTION_LARGEST: _ClassVar[FaceSelection]
    FACE_SELECTION_CENTRAL: _ClassVar[FaceSelection]

class PresentationAttackMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENTATION_ATTACK_MODE_UNSPECIFIED: _ClassVar[PresentationAttackMode]
    PRESENTATION_ATTACK_MODE_OFF: _ClassVar[PresentationAttackMode]
    PRESENTATION_ATTACK_MODE_REPORT: _ClassVar[PresentationAttackMode]
    PRESENTATION_ATTACK_MODE_ENFORCE: _ClassVar[PresentationAttackMode]

class PackedEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKED_ENCODING_UNSPECIFIED: _ClassVar[PackedEncoding]
    PACKED_ENCODING_FLOAT32: _ClassVar[PackedEncoding]
    PACKED_ENCODING_FLOAT16: _ClassVar[PackedEncoding]

class FaceRefusal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACE_REFUSAL_UNSPECIFIED: _ClassVar[FaceRefusal]
    FACE_REFUSAL_TOO_SMALL: _ClassVar[FaceRefusal]
    FACE_REFUSAL_CUT_OFF: _ClassVar[FaceRefusal]
    FACE_REFUSAL_LOW_QUALITY: _ClassVar[FaceRefusal]
    FACE_REFUSAL_NOT_SCORABLE: _ClassVar[FaceRefusal]
    FACE_REFUSAL_PRESENTATION_ATTACK: _ClassVar[FaceRefusal]
    FACE_REFUSAL_OUT_OF_TIME: _ClassVar[FaceRefusal]

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]

class TemplateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEMPLATE_MODE_UNSPECIFIED: _ClassVar[TemplateMode]
    TEMPLATE_MODE_PLAIN: _ClassVar[TemplateMode]
    TEMPLATE_MODE_SEALED: _ClassVar[TemplateMode]
    TEMPLATE_MODE_BOTH: _ClassVar[TemplateMode]

class LivenessChallenge(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_CHALLENGE_UNSPECIFIED: _ClassVar[LivenessChallenge]
    LIVENESS_CHALLENGE_BLINK: _ClassVar[LivenessChallenge]
    LIVENESS_CHALLENGE_TURN_LEFT: _ClassVar[LivenessChallenge]
    LIVENESS_CHALLENGE_TURN_RIGHT: _ClassVar[LivenessChallenge]

class LivenessOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_OUTCOME_UNSPECIFIED: _ClassVar[LivenessOutcome]
    LIVENESS_OUTCOME_PASSED: _ClassVar[LivenessOutcome]
    LIVENESS_OUTCOME_FAILED: _ClassVar[LivenessOutcome]

class LivenessFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_FAILURE_UNSPECIFIED: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_PROMPT_TIMEOUT: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_WRONG_RESPONSE: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_FACE_LOST: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_MULTIPLE_FACES: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_IDENTITY_CHANGED: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_NO_MOTION: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_PRESENTATION_ATTACK: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_FRAME_TIMING: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_TOO_MANY_FRAMES: _ClassVar[LivenessFailure]
    LIVENESS_FAILURE_SESSION_EXPIRED: _ClassVar[LivenessFailure]

class LivenessAdvice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIVENESS_ADVICE_UNSPECIFIED: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_OK: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_NO_FACE: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_MOVE_CLOSER: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_CENTRE_FACE: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_IMPROVE_CAPTURE: _ClassVar[LivenessAdvice]
    LIVENESS_ADVICE_ONE_PERSON_ONLY: _ClassVar[LivenessAdvice]
FACE_SELECTION_UNSPECIFIED: FaceSelection
FACE_SELECTION_REJECT_MULTIPLE: FaceSelection
FACE_SELECTION_LARGEST: FaceSelection
FACE_SELECTION_CENTRAL: FaceSelection
PRESENTATION_ATTACK_MODE_UNSPECIFIED: PresentationAttackMode
PRESENTATION_ATTACK_MODE_OFF: PresentationAttackMode
PRESENTATION_ATTACK_MODE_REPORT: PresentationAttackMode
PRESENTATION_ATTACK_MODE_ENFORCE: PresentationAttackMode
PACKED_ENCODING_UNSPECIFIED: PackedEncoding
PACKED_ENCODING_FLOAT32: PackedEncoding
PACKED_ENCODING_FLOAT16: PackedEncoding
FACE_REFUSAL_UNSPECIFIED: FaceRefusal
FACE_REFUSAL_TOO_SMALL: FaceRefusal
FACE_REFUSAL_CUT_OFF: FaceRefusal
FACE_REFUSAL_LOW_QUALITY: FaceRefusal
FACE_REFUSAL_NOT_SCORABLE: FaceRefusal
FACE_REFUSAL_PRESENTATION_ATTACK: FaceRefusal
FACE_REFUSAL_OUT_OF_TIME: FaceRefusal
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus
TEMPLATE_MODE_UNSPECIFIED: TemplateMode
TEMPLATE_MODE_PLAIN: TemplateMode
TEMPLATE_MODE_SEALED: TemplateMode
TEMPLATE_MODE_BOTH: TemplateMode
LIVENESS_CHALLENGE_UNSPECIFIED: LivenessChallenge
LIVENESS_CHALLENGE_BLINK: LivenessChallenge
LIVENESS_CHALLENGE_TURN_LEFT: LivenessChallenge
LIVENESS_CHALLENGE_TURN_RIGHT: LivenessChallenge
LIVENESS_OUTCOME_UNSPECIFIED: LivenessOutcome
LIVENESS_OUTCOME_PASSED: LivenessOutcome
LIVENESS_OUTCOME_FAILED: LivenessOutcome
LIVENESS_FAILURE_UNSPECIFIED: LivenessFailure
LIVENESS_FAILURE_PROMPT_TIMEOUT: LivenessFailure
LIVENESS_FAILURE_WRONG_RESPONSE: LivenessFailure
LIVENESS_FAILURE_FACE_LOST: LivenessFailure
LIVENESS_FAILURE_MULTIPLE_FACES: LivenessFailure
LIVENESS_FAILURE_IDENTITY_CHANGED: LivenessFailure
LIVENESS_FAILURE_NO_MOTION: LivenessFailure
LIVENESS_FAILURE_PRESENTATION_ATTACK: LivenessFailure
LIVENESS_FAILURE_FRAME_TIMING: LivenessFailure
LIVENESS_FAILURE_TOO_MANY_FRAMES: LivenessFailure
LIVENESS_FAILURE_SESSION_EXPIRED: LivenessFailure
LIVENESS_ADVICE_UNSPECIFIED: LivenessAdvice
LIVENESS_ADVICE_OK: LivenessAdvice
LIVENESS_ADVICE_NO_FACE: LivenessAdvice
LIVENESS_ADVICE_MOVE_CLOSER: LivenessAdvice
LIVENESS_ADVICE_CENTRE_FACE: LivenessAdvice
LIVENESS_ADVICE_IMPROVE_CAPTURE: LivenessAdvice
LIVENESS_ADVICE_ONE_PERSON_ONLY: LivenessAdvice

class Embedding(_message.Message):
    __slots__ = ("values", "model", "sealed", "key_id")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model: str
    sealed: bytes
    key_id: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ..., sealed: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class Quality(_message.Message):
    __slots__ = ("score", "sharpness", "brightness", "face_size", "unified", "components")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    BRIGHTNESS_FIELD_NUMBER: _ClassVar[int]
    FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    UNIFIED_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    score: float
    sharpness: float
    brightness: float
    face_size: float
    unified: float
    components: _containers.RepeatedCompositeFieldContainer[QualityComponent]
    def __init__(self, score: _Optional[float] = ..., sharpness: _Optional[float] = ..., brightness: _Optional[float] = ..., face_size: _Optional[float] = ..., unified: _Optional[float] = ..., components: _Optional[_Iterable[_Union[QualityComponent, _Mapping]]] = ...) -> None: ...

class QualityComponent(_message.Message):
    __slots__ = ("name", "value", "score", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    score: float
    reason: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Landmarks(_message.Message):
    __slots__ = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    LEFT_EYE_FIELD_NUMBER: _ClassVar[int]
    RIGHT_EYE_FIELD_NUMBER: _ClassVar[int]
    NOSE_FIELD_NUMBER: _ClassVar[int]
    MOUTH_LEFT_FIELD_NUMBER: _ClassVar[int]
    MOUTH_RIGHT_FIELD_NUMBER: _ClassVar[int]
    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point
    def __init__(self, left_eye: _Optional[_Union[Point, _Mapping]] = ..., right_eye: _Optional[_Union[Point, _Mapping]] = ..., nose: _Optional[_Union[Point, _Mapping]] = ..., mouth_left: _Optional[_Union[Point, _Mapping]] = ..., mouth_right: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("box", "confidence", "landmarks", "face_count")
    BOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    box: BoundingBox
    confidence: float
    landmarks: Landmarks
    face_count: int
    def __init__(self, box: _Optional[_Union[BoundingBox, _Mapping]] = ..., confidence: _Optional[float] = ..., landmarks: _Optional[_Union[Landmarks, _Mapping]] = ..., face_count: _Optional[int] = ...) -> None: ...

class LivenessCheck(_message.Message):
    __slots__ = ("name", "passed", "value", "threshold", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    value: float
    threshold: float
    detail: str
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("image", "face_selection", "presentation_attack", "min_quality", "more_images", "max_templates")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FACE_SELECTION_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_ATTACK_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    MORE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    face_selection: FaceSelection
    presentation_attack: PresentationAttackMode
    min_quality: float
    more_images: _containers.RepeatedScalarFieldContainer[bytes]
    max_templates: int
    def __init__(self, image: _Optional[bytes] = ..., face_selection: _Optional[_Union[FaceSelection, str]] = ..., presentation_attack: _Optional[_Union[PresentationAttackMode, str]] = ..., min_quality: _Optional[float] = ..., more_images: _Optional[_Iterable[bytes]] = ..., max_templates: _Optional[int] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("embedding", "quality", "face", "liveness_checks", "templates")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    embedding: Embedding
    quality: Quality
    face: Face
    liveness_checks: _containers.RepeatedCompositeFieldContainer[LivenessCheck]
    templates: _containers.RepeatedCompositeFieldContainer[EnrolledTemplate]
    def __init__(self, embedding: _Optional[_Union[Embedding, _Mapping]] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., liveness_checks: _Optional[_Iterable[_Union[LivenessCheck, _Mapping]]] = ..., templates: _Optional[_Iterable[_Union[EnrolledTemplate, _Mapping]]] = ...) -> None: ...

class EnrolledTemplate(_message.Message):
    __slots__ = ("embedding", "quality", "face", "image_index")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    embedding: Embedding
    quality: Quality
    face: Face
    image_index: int
    def __init__(self, embedding: _Optional[_Union[Embedding, _Mapping]] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., image_index: _Optional[int] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("image", "stored_embeddings", "threshold", "face_selection", "presentation_attack", "far", "min_quality")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STORED_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FACE_SELECTION_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_ATTACK_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    stored_embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    threshold: float
    face_selection: FaceSelection
    presentation_attack: PresentationAttackMode
    far: float
    min_quality: float
    def __init__(self, image: _Optional[bytes] = ..., stored_embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., threshold: _Optional[float] = ..., face_selection: _Optional[_Union[FaceSelection, str]] = ..., presentation_attack: _Optional[_Union[PresentationAttackMode, str]] = ..., far: _Optional[float] = ..., min_quality: _Optional[float] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("match", "confidence", "distance", "threshold", "model", "quality", "face", "best_template_index", "liveness_checks", "upgrade")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    BEST_TEMPLATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FIELD_NUMBER: _ClassVar[int]
    match: bool
    confidence: float
    distance: float
    threshold: float
    model: str
    quality: Quality
    face: Face
    best_template_index: int
    liveness_checks: _containers.RepeatedCompositeFieldContainer[LivenessCheck]
    upgrade: TemplateUpgrade
    def __init__(self, match: _Optional[bool] = ..., confidence: _Optional[float] = ..., distance: _Optional[float] = ..., threshold: _Optional[float] = ..., model: _Optional[str] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., best_template_index: _Optional[int] = ..., liveness_checks: _Optional[_Iterable[_Union[LivenessCheck, _Mapping]]] = ..., upgrade: _Optional[_Union[TemplateUpgrade, _Mapping]] = ...) -> None: ...

class TemplateUpgrade(_message.Message):
    __slots__ = ("template", "id", "from_model", "distance", "threshold")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    template: Embedding
    id: str
    from_model: str
    distance: float
    threshold: float
    def __init__(self, template: _Optional[_Union[Embedding, _Mapping]] = ..., id: _Optional[str] = ..., from_model: _Optional[str] = ..., distance: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...

class ModelRoles(_message.Message):
    __slots__ = ("current", "next", "previous", "upgrade_threshold", "upgrade_far", "upgrade_fpir", "upgrade_min_quality", "upgrade_requires_live")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FAR_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FPIR_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_REQUIRES_LIVE_FIELD_NUMBER: _ClassVar[int]
    current: str
    next: str
    previous: str
    upgrade_threshold: float
    upgrade_far: float
    upgrade_fpir: float
    upgrade_min_quality: float
    upgrade_requires_live: bool
    def __init__(self, current: _Optional[str] = ..., next: _Optional[str] = ..., previous: _Optional[str] = ..., upgrade_threshold: _Optional[float] = ..., upgrade_far: _Optional[float] = ..., upgrade_fpir: _Optional[float] = ..., upgrade_min_quality: _Optional[float] = ..., upgrade_requires_live: _Optional[bool] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("id", "embedding")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    embedding: Embedding
    def __init__(self, id: _Optional[str] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("image", "candidates", "top_k", "threshold", "face_selection", "packed_candidates", "presentation_attack", "sealed_candidates", "far", "fpir", "more_images", "min_quality")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FACE_SELECTION_FIELD_NUMBER: _ClassVar[int]
    PACKED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_ATTACK_FIELD_NUMBER: _ClassVar[int]
    SEALED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    FAR_FIELD_NUMBER: _ClassVar[int]
    FPIR_FIELD_NUMBER: _ClassVar[int]
    MORE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    top_k: int
    threshold: float
    face_selection: FaceSelection
    packed_candidates: PackedGallery
    presentation_attack: PresentationAttackMode
    sealed_candidates: SealedGallery
    far: float
    fpir: float
    more_images: _containers.RepeatedScalarFieldContainer[bytes]
    min_quality: float
    def __init__(self, image: _Optional[bytes] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., face_selection: _Optional[_Union[FaceSelection, str]] = ..., packed_candidates: _Optional[_Union[PackedGallery, _Mapping]] = ..., presentation_attack: _Optional[_Union[PresentationAttackMode, str]] = ..., sealed_candidates: _Optional[_Union[SealedGallery, _Mapping]] = ..., far: _Optional[float] = ..., fpir: _Optional[float] = ..., more_images: _Optional[_Iterable[bytes]] = ..., min_quality: _Optional[float] = ...) -> None: ...

class SealedGallery(_message.Message):
    __slots__ = ("ids", "templates", "packed")
    IDS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    templates: _containers.RepeatedScalarFieldContainer[bytes]
    packed: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., templates: _Optional[_Iterable[bytes]] = ..., packed: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PackedGallery(_message.Message):
    __slots__ = ("ids", "values", "model", "encoding")
    IDS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    values: bytes
    model: str
    encoding: PackedEncoding
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., values: _Optional[bytes] = ..., model: _Optional[str] = ..., encoding: _Optional[_Union[PackedEncoding, str]] = ...) -> None: ...

class IdentityMatch(_message.Message):
    __slots__ = ("id", "distance", "confidence", "match", "model")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    distance: float
    confidence: float
    match: bool
    model: str
    def __init__(self, id: _Optional[str] = ..., distance: _Optional[float] = ..., confidence: _Optional[float] = ..., match: _Optional[bool] = ..., model: _Optional[str] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("matches", "threshold", "model", "quality", "face", "liveness_checks", "gallery_identities", "fpir", "frames", "gallery_weight", "upgrade")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    GALLERY_IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    FPIR_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    GALLERY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    UPGRADE_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[IdentityMatch]
    threshold: float
    model: str
    quality: Quality
    face: Face
    liveness_checks: _containers.RepeatedCompositeFieldContainer[LivenessCheck]
    gallery_identities: int
    fpir: float
    frames: int
    gallery_weight: int
    upgrade: TemplateUpgrade
    def __init__(self, matches: _Optional[_Iterable[_Union[IdentityMatch, _Mapping]]] = ..., threshold: _Optional[float] = ..., model: _Optional[str] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., liveness_checks: _Optional[_Iterable[_Union[LivenessCheck, _Mapping]]] = ..., gallery_identities: _Optional[int] = ..., fpir: _Optional[float] = ..., frames: _Optional[int] = ..., gallery_weight: _Optional[int] = ..., upgrade: _Optional[_Union[TemplateUpgrade, _Mapping]] = ...) -> None: ...

class IdentifyFacesRequest(_message.Message):
    __slots__ = ("image", "candidates", "top_k", "packed_candidates", "presentation_attack", "sealed_candidates", "fpir", "max_faces")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    PACKED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_ATTACK_FIELD_NUMBER: _ClassVar[int]
    SEALED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    FPIR_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    top_k: int
    packed_candidates: PackedGallery
    presentation_attack: PresentationAttackMode
    sealed_candidates: SealedGallery
    fpir: float
    max_faces: int
    def __init__(self, image: _Optional[bytes] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., top_k: _Optional[int] = ..., packed_candidates: _Optional[_Union[PackedGallery, _Mapping]] = ..., presentation_attack: _Optional[_Union[PresentationAttackMode, str]] = ..., sealed_candidates: _Optional[_Union[SealedGallery, _Mapping]] = ..., fpir: _Optional[float] = ..., max_faces: _Optional[int] = ...) -> None: ...

class FaceIdentification(_message.Message):
    __slots__ = ("face", "quality", "liveness_checks", "matches", "refusal", "detail")
    FACE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    face: Face
    quality: Quality
    liveness_checks: _containers.RepeatedCompositeFieldContainer[LivenessCheck]
    matches: _containers.RepeatedCompositeFieldContainer[IdentityMatch]
    refusal: FaceRefusal
    detail: str
    def __init__(self, face: _Optional[_Union[Face, _Mapping]] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., liveness_checks: _Optional[_Iterable[_Union[LivenessCheck, _Mapping]]] = ..., matches: _Optional[_Iterable[_Union[IdentityMatch, _Mapping]]] = ..., refusal: _Optional[_Union[FaceRefusal, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class IdentifyFacesResponse(_message.Message):
    __slots__ = ("faces", "face_count", "faces_not_returned", "threshold", "model", "gallery_identities", "fpir", "max_faces")
    FACES_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACES_NOT_RETURNED_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GALLERY_IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    FPIR_FIELD_NUMBER: _ClassVar[int]
    MAX_FACES_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceIdentification]
    face_count: int
    faces_not_returned: int
    threshold: float
    model: str
    gallery_identities: int
    fpir: float
    max_faces: int
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceIdentification, _Mapping]]] = ..., face_count: _Optional[int] = ..., faces_not_returned: _Optional[int] = ..., threshold: _Optional[float] = ..., model: _Optional[str] = ..., gallery_identities: _Optional[int] = ..., fpir: _Optional[float] = ..., max_faces: _Optional[int] = ...) -> None: ...

class OpenSetRule(_message.Message):
    __slots__ = ("default_fpir", "fpirs", "gallery_sizes", "thresholds", "measured_max", "extrapolated_max", "template_weights")
    DEFAULT_FPIR_FIELD_NUMBER: _ClassVar[int]
    FPIRS_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MEASURED_MAX_FIELD_NUMBER: _ClassVar[int]
    EXTRAPOLATED_MAX_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    default_fpir: float
    fpirs: _containers.RepeatedScalarFieldContainer[float]
    gallery_sizes: _containers.RepeatedScalarFieldContainer[int]
    thresholds: _containers.RepeatedCompositeFieldContainer[OpenSetThresholds]
    measured_max: int
    extrapolated_max: int
    template_weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, default_fpir: _Optional[float] = ..., fpirs: _Optional[_Iterable[float]] = ..., gallery_sizes: _Optional[_Iterable[int]] = ..., thresholds: _Optional[_Iterable[_Union[OpenSetThresholds, _Mapping]]] = ..., measured_max: _Optional[int] = ..., extrapolated_max: _Optional[int] = ..., template_weights: _Optional[_Iterable[float]] = ...) -> None: ...

class OpenSetThresholds(_message.Message):
    __slots__ = ("fpir", "thresholds")
    FPIR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    fpir: float
    thresholds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, fpir: _Optional[float] = ..., thresholds: _Optional[_Iterable[float]] = ...) -> None: ...

class OperatingPoint(_message.Message):
    __slots__ = ("far", "threshold", "frr")
    FAR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FRR_FIELD_NUMBER: _ClassVar[int]
    far: float
    threshold: float
    frr: float
    def __init__(self, far: _Optional[float] = ..., threshold: _Optional[float] = ..., frr: _Optional[float] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "model", "embedding_dim", "detector", "threshold", "version", "uptime_seconds", "distance_metric", "default_face_selection", "quality_threshold", "presentation_attack", "templates", "template_key_id", "operating_points", "default_far", "open_set", "liveness_replayable", "enroll_min_quality", "probe_min_quality", "enroll_max_images", "enroll_max_templates", "models")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_METRIC_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FACE_SELECTION_FIELD_NUMBER: _ClassVar[int]
    QUALITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRESENTATION_ATTACK_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FAR_FIELD_NUMBER: _ClassVar[int]
    OPEN_SET_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_REPLAYABLE_FIELD_NUMBER: _ClassVar[int]
    ENROLL_MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    PROBE_MIN_QUALITY_FIELD_NUMBER: _ClassVar[int]
    ENROLL_MAX_IMAGES_FIELD_NUMBER: _ClassVar[int]
    ENROLL_MAX_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    status: ServingStatus
    model: str
    embedding_dim: int
    detector: str
    threshold: float
    version: str
    uptime_seconds: float
    distance_metric: str
    default_face_selection: FaceSelection
    quality_threshold: float
    presentation_attack: PresentationAttackInfo
    templates: TemplateMode
    template_key_id: str
    operating_points: _containers.RepeatedCompositeFieldContainer[OperatingPoint]
    default_far: float
    open_set: OpenSetRule
    liveness_replayable: str
    enroll_min_quality: float
    probe_min_quality: float
    enroll_max_images: int
    enroll_max_templates: int
    models: ModelRoles
    def __init__(self, status: _Optional[_Union[ServingStatus, str]] = ..., model: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., detector: _Optional[str] = ..., threshold: _Optional[float] = ..., version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., distance_metric: _Optional[str] = ..., default_face_selection: _Optional[_Union[FaceSelection, str]] = ..., quality_threshold: _Optional[float] = ..., presentation_attack: _Optional[_Union[PresentationAttackInfo, _Mapping]] = ..., templates: _Optional[_Union[TemplateMode, str]] = ..., template_key_id: _Optional[str] = ..., operating_points: _Optional[_Iterable[_Union[OperatingPoint, _Mapping]]] = ..., default_far: _Optional[float] = ..., open_set: _Optional[_Union[OpenSetRule, _Mapping]] = ..., liveness_replayable: _Optional[str] = ..., enroll_min_quality: _Optional[float] = ..., probe_min_quality: _Optional[float] = ..., enroll_max_images: _Optional[int] = ..., enroll_max_templates: _Optional[int] = ..., models: _Optional[_Union[ModelRoles, _Mapping]] = ...) -> None: ...

class PresentationAttackInfo(_message.Message):
    __slots__ = ("mode", "enroll_mode", "threshold", "model", "min_face_size", "relaxable")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ENROLL_MODE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RELAXABLE_FIELD_NUMBER: _ClassVar[int]
    mode: PresentationAttackMode
    enroll_mode: PresentationAttackMode
    threshold: float
    model: str
    min_face_size: float
    relaxable: bool
    def __init__(self, mode: _Optional[_Union[PresentationAttackMode, str]] = ..., enroll_mode: _Optional[_Union[PresentationAttackMode, str]] = ..., threshold: _Optional[float] = ..., model: _Optional[str] = ..., min_face_size: _Optional[float] = ..., relaxable: _Optional[bool] = ...) -> None: ...

class ResealRequest(_message.Message):
    __slots__ = ("templates", "ids")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[Embedding]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, templates: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ResealResponse(_message.Message):
    __slots__ = ("templates", "packed_gallery")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    PACKED_GALLERY_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[Embedding]
    packed_gallery: bytes
    def __init__(self, templates: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., packed_gallery: _Optional[bytes] = ...) -> None: ...

class CheckLivenessRequest(_message.Message):
    __slots__ = ("start", "frame")
    START_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    start: LivenessStart
    frame: LivenessFrame
    def __init__(self, start: _Optional[_Union[LivenessStart, _Mapping]] = ..., frame: _Optional[_Union[LivenessFrame, _Mapping]] = ...) -> None: ...

class LivenessStart(_message.Message):
    __slots__ = ("stored_embeddings", "candidates", "packed_candidates", "top_k", "threshold", "face_selection", "frame_rate", "max_templates")
    STORED_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    PACKED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FACE_SELECTION_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    stored_embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    packed_candidates: PackedGallery
    top_k: int
    threshold: float
    face_selection: FaceSelection
    frame_rate: float
    max_templates: int
    def __init__(self, stored_embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., packed_candidates: _Optional[_Union[PackedGallery, _Mapping]] = ..., top_k: _Optional[int] = ..., threshold: _Optional[float] = ..., face_selection: _Optional[_Union[FaceSelection, str]] = ..., frame_rate: _Optional[float] = ..., max_templates: _Optional[int] = ...) -> None: ...

class LivenessFrame(_message.Message):
    __slots__ = ("image", "capture_time")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    capture_time: float
    def __init__(self, image: _Optional[bytes] = ..., capture_time: _Optional[float] = ...) -> None: ...

class LivenessPrompt(_message.Message):
    __slots__ = ("challenge", "index", "count", "timeout_seconds")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    challenge: LivenessChallenge
    index: int
    count: int
    timeout_seconds: float
    def __init__(self, challenge: _Optional[_Union[LivenessChallenge, str]] = ..., index: _Optional[int] = ..., count: _Optional[int] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class LivenessStarted(_message.Message):
    __slots__ = ("session_id", "prompt", "max_frames", "max_frame_bytes", "max_session_seconds", "min_frame_rate", "max_frame_rate")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    prompt: LivenessPrompt
    max_frames: int
    max_frame_bytes: int
    max_session_seconds: float
    min_frame_rate: float
    max_frame_rate: float
    def __init__(self, session_id: _Optional[str] = ..., prompt: _Optional[_Union[LivenessPrompt, _Mapping]] = ..., max_frames: _Optional[int] = ..., max_frame_bytes: _Optional[int] = ..., max_session_seconds: _Optional[float] = ..., min_frame_rate: _Optional[float] = ..., max_frame_rate: _Optional[float] = ...) -> None: ...

class LivenessFeedback(_message.Message):
    __slots__ = ("advice", "face", "prompt", "progress", "prompts_met", "frame_index")
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_MET_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    advice: LivenessAdvice
    face: Face
    prompt: LivenessPrompt
    progress: float
    prompts_met: int
    frame_index: int
    def __init__(self, advice: _Optional[_Union[LivenessAdvice, str]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., prompt: _Optional[_Union[LivenessPrompt, _Mapping]] = ..., progress: _Optional[float] = ..., prompts_met: _Optional[int] = ..., frame_index: _Optional[int] = ...) -> None: ...

class LivenessResult(_message.Message):
    __slots__ = ("outcome", "failure", "detail", "score", "session_id", "frames", "prompts_met", "embedding", "quality", "face", "liveness_checks", "verify", "identify", "token", "templates")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_MET_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    outcome: LivenessOutcome
    failure: LivenessFailure
    detail: str
    score: float
    session_id: str
    frames: int
    prompts_met: int
    embedding: Embedding
    quality: Quality
    face: Face
    liveness_checks: _containers.RepeatedCompositeFieldContainer[LivenessCheck]
    verify: VerifyResponse
    identify: IdentifyResponse
    token: str
    templates: _containers.RepeatedCompositeFieldContainer[EnrolledTemplate]
    def __init__(self, outcome: _Optional[_Union[LivenessOutcome, str]] = ..., failure: _Optional[_Union[LivenessFailure, str]] = ..., detail: _Optional[str] = ..., score: _Optional[float] = ..., session_id: _Optional[str] = ..., frames: _Optional[int] = ..., prompts_met: _Optional[int] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ..., quality: _Optional[_Union[Quality, _Mapping]] = ..., face: _Optional[_Union[Face, _Mapping]] = ..., liveness_checks: _Optional[_Iterable[_Union[LivenessCheck, _Mapping]]] = ..., verify: _Optional[_Union[VerifyResponse, _Mapping]] = ..., identify: _Optional[_Union[IdentifyResponse, _Mapping]] = ..., token: _Optional[str] = ..., templates: _Optional[_Iterable[_Union[EnrolledTemplate, _Mapping]]] = ...) -> None: ...

class CheckLivenessResponse(_message.Message):
    __slots__ = ("started", "feedback", "result")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    started: LivenessStarted
    feedback: LivenessFeedback
    result: LivenessResult
    def __init__(self, started: _Optional[_Union[LivenessStarted, _Mapping]] = ..., feedback: _Optional[_Union[LivenessFeedback, _Mapping]] = ..., result: _Optional[_Union[LivenessResult, _Mapping]] = ...) -> None: ...
