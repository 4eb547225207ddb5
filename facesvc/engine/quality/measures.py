"""The raw quality measures of one face: what each component of the unified score is made of.

Every measure is cheap: a few statistics of the 128 px grey face patch the quality stage
already makes, the five landmarks' geometry, the detector's confidence, the embedding's
magnitude before normalisation (the recognizer's own output, so it costs nothing) and the
eyelids' opening (the Face Mesh, about 3 ms). Values
are in the units a person can act on (degrees, grey levels, pixels); the fusion
(facesvc.engine.quality.fusion) turns them into the 0-100 scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facesvc.engine.pipeline import quality as patch_quality
from facesvc.engine.quality.eyes import EyeOpenness
from facesvc.engine.types import Detection, FloatArray, Image

#: A grey level at or above this counts as washed out (clipped highlights).
SATURATED = 250


@dataclass(frozen=True, slots=True)
class Measures:
    """One face's raw measures (see docs/QUALITY.md for each)."""

    #: Head turned left/right: estimated degrees from the nose's offset between the eyes.
    yaw: float
    #: Head tilted up/down: estimated degrees from where the nose sits between eyes and mouth.
    pitch: float
    #: In-plane rotation of the eye line, degrees.
    roll: float
    #: Variance of the Laplacian of the 128 px face patch (higher: sharper).
    sharpness: float
    #: Mean grey level of the face patch, 0-255.
    brightness: float
    #: Share of the face patch's pixels at or above SATURATED grey, 0-1.
    saturation: float
    #: Difference between the face's left and right halves' mean grey, over their mean.
    unevenness: float
    #: Shorter side of the face box, original pixels.
    face_size: float
    #: The detector's confidence, 0-1.
    detector_confidence: float
    #: The embedding's L2 norm before normalisation (0: the model has none to report).
    embedding_norm: float
    #: The less open eye's aspect ratio (facesvc.engine.quality.eyes); NaN: not measured.
    eyes_open: float = math.nan


def pose(detection: Detection) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in estimated degrees from the five landmarks.

    Yaw: the nose's horizontal offset from the eyes' midpoint in the eye line's frame, as a
    share of half the eye distance, read as the sine of the angle (a nose ~half an eye
    distance in front of the eyes). Pitch: the nose's height between the eye line and the
    mouth (about 0.5 of the way for a level head here), its offset read the same way. Rough
    (5 points carry no depth), but monotonic in the head's turn, which is what the score needs.
    """
    marks = detection.landmarks
    left = np.array([marks.left_eye.x, marks.left_eye.y])
    right = np.array([marks.right_eye.x, marks.right_eye.y])
    nose = np.array([marks.nose.x, marks.nose.y])
    mouth = np.array(
        [(marks.mouth_left.x + marks.mouth_right.x) / 2, (marks.mouth_left.y + marks.mouth_right.y) / 2]
    )
    eye_line = right - left
    eye_distance = float(np.hypot(*eye_line))
    if eye_distance <= 1e-6:
        return 90.0, 90.0, 0.0
    along = eye_line / eye_distance
    across = np.array([-along[1], along[0]])
    middle = (left + right) / 2
    offset = nose - middle
    yaw_sine = float(np.clip(float(offset @ along) / (eye_distance / 2), -1.0, 1.0))
    down = float(offset @ across)
    mouth_down = float((mouth - middle) @ across)
    ratio = down / mouth_down if mouth_down > 1e-6 else 0.0
    pitch_sine = float(np.clip((ratio - PITCH_LEVEL) / PITCH_LEVEL, -1.0, 1.0))
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    return math.degrees(math.asin(yaw_sine)), math.degrees(math.asin(pitch_sine)), roll


#: Where the nose sits between eye line and mouth (0-1) on a level head: lfw-devtrain's median.
PITCH_LEVEL = 0.5


def measure(
    image: Image,
    detection: Detection,
    face_size_px: float,
    embedding: FloatArray | None = None,
    eyes: EyeOpenness | None = None,
) -> Measures:
    """The measures of the face `detection` in `image` (its pixels); `face_size_px` in the
    original image; `embedding` the recognizer's output before any normalisation; `eyes`
    what reads the eyelids (none: eyes_open is not measured)."""
    patch = patch_quality.face_patch(image, detection.box)
    half = patch.shape[1] // 2
    left, right = float(patch[:, :half].mean()), float(patch[:, half:].mean())
    mean = (left + right) / 2
    yaw, pitch, roll = pose(detection)
    return Measures(
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        sharpness=patch_quality.laplacian_variance(patch),
        brightness=mean,
        saturation=float(np.count_nonzero(patch >= SATURATED)) / patch.size,
        unevenness=abs(left - right) / max(mean, 1.0),
        face_size=float(face_size_px),
        detector_confidence=float(detection.confidence),
        embedding_norm=float(np.linalg.norm(embedding)) if embedding is not None and embedding.size else 0.0,
        eyes_open=eyes(image, detection) if eyes is not None else math.nan,
    )
