"""Basic liveness checks (the original design's): blur, lighting, face size and a
plausible detection. They catch a blurred replay, a dark or washed-out print held
up to the camera, a tiny face in the distance and detector false positives; they
are no defence against a good print or screen (that takes a trained model)."""

from __future__ import annotations

from dataclasses import dataclass

from facesvc.engine.types import Detection, LivenessCheck, Quality


@dataclass(frozen=True, slots=True)
class LivenessLimits:
    """The limits the checks compare with (from Settings)."""

    min_sharpness: float
    min_brightness: float
    max_brightness: float
    min_face_size: float


def run_checks(
    detection: Detection, quality: Quality, face_size_px: float, limits: LivenessLimits
) -> tuple[LivenessCheck, ...]:
    """Every check, passed or not, in a fixed order."""
    mean = quality.mean_intensity
    lit = limits.min_brightness <= mean <= limits.max_brightness
    # The limit the value is nearer to (the one it broke, when it failed).
    middle = (limits.min_brightness + limits.max_brightness) / 2
    bound = limits.min_brightness if mean < middle else limits.max_brightness
    return (
        LivenessCheck(
            "sharpness",
            quality.sharpness >= limits.min_sharpness,
            quality.sharpness,
            limits.min_sharpness,
            "face is in focus" if quality.sharpness >= limits.min_sharpness else "face is blurred",
        ),
        LivenessCheck(
            "illumination",
            lit,
            mean,
            bound,
            "face is evenly lit"
            if lit
            else ("face is too dark" if mean < limits.min_brightness else "face is washed out"),
        ),
        LivenessCheck(
            "face_size",
            face_size_px >= limits.min_face_size,
            face_size_px,
            limits.min_face_size,
            "face is close enough" if face_size_px >= limits.min_face_size else "face is too far away",
        ),
        _geometry(detection),
    )


def _geometry(detection: Detection) -> LivenessCheck:
    """Landmarks must sit where a face's do: eyes above the nose above the mouth, inside
    the box, eyes at most 75% of the box width apart. Value: the eye distance over box width.

    There is no lower bound on the eye distance: a head turned away from the camera brings
    the eyes together (LFW's press photos: 0.15-0.24 of the box width), and refusing it
    protected nobody (lfw-devtrain: 8 of 3,443 real photos refused, docs/MODELS.md);
    attacks are the presentation-attack stage's business."""
    box, marks = detection.box, detection.landmarks
    eye_distance = (
        (marks.right_eye.x - marks.left_eye.x) ** 2 + (marks.right_eye.y - marks.left_eye.y) ** 2
    ) ** 0.5
    ratio = eye_distance / box.width if box.width > 0 else 0.0
    eye_y = (marks.left_eye.y + marks.right_eye.y) / 2
    mouth_y = (marks.mouth_left.y + marks.mouth_right.y) / 2
    margin_x, margin_y = 0.15 * box.width, 0.15 * box.height
    inside = all(
        box.x - margin_x <= p.x <= box.x + box.width + margin_x
        and box.y - margin_y <= p.y <= box.y + box.height + margin_y
        for p in marks.as_tuple()
    )
    ordered = eye_y < marks.nose.y < mouth_y
    aspect = box.height / box.width if box.width > 0 else 0.0
    plausible = inside and ordered and ratio <= MAX_EYE_RATIO and 0.7 <= aspect <= 2.0
    return LivenessCheck(
        "plausible_geometry",
        plausible,
        round(ratio, 3),
        MAX_EYE_RATIO,
        "landmarks are where a face's are" if plausible else "detection does not look like a face",
    )


#: Eyes further apart than this share of the box width are not a face's.
MAX_EYE_RATIO = 0.75
