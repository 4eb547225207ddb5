"""Face-state stage: how open the eyes are and which way the head is turned, from dlib's
68-point landmarks; what the liveness session's BLINK and TURN challenges watch.

Eye openness is the eye aspect ratio (Soukupova and Cech, 2016): the two eyelid
distances over the eye's width, averaged over both eyes; about 0.3 open, under 0.2
closed. Yaw is where the nose tip sits between the two sides of the jaw line: 0 facing
the camera, towards +1 when the nose moves to the image's right (the person turning to
their own left, seen by a camera that does not mirror), towards -1 the other way.
Thresholds: facesvc/tools/calibrate_liveness.py measures them on ../shared/liveness/
(figures in docs/LIVENESS.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from facesvc.engine.runtime import weights
from facesvc.engine.types import Box, Image

#: Eye aspect ratio below which one frame's eyes count as closed, and above which as open
#: again: a blink is open -> closed -> open. Relative to the person's own open-eye level
#: (the session's median), so that glasses and eye shape matter less.
EYE_CLOSED_RATIO = 0.75
EYE_OPEN_RATIO = 0.88
#: Yaw (see the module docstring) beyond which the head counts as turned, measured from
#: the session's frontal yaw.
TURN_YAW = 0.40


@dataclass(frozen=True, slots=True)
class FaceState:
    """One frame's eye openness and head yaw."""

    #: Mean eye aspect ratio of both eyes.
    eye_openness: float
    #: -1..1; positive: nose towards the image's right.
    yaw: float


class FaceStateEstimator(Protocol):
    """Measures one face (its box in `image`'s pixels)."""

    def measure(self, image: Image, box: Box) -> FaceState: ...


def _eye_aspect_ratio(eye: np.ndarray) -> float:
    """Six points around one eye, dlib's order: corner, two upper, corner, two lower."""
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def state_from_landmarks(points: np.ndarray) -> FaceState:
    """A FaceState from dlib's 68 points, (68, 2)."""
    openness = (_eye_aspect_ratio(points[36:42]) + _eye_aspect_ratio(points[42:48])) / 2
    left_side = points[0:3, 0].mean()
    right_side = points[14:17, 0].mean()
    width = right_side - left_side
    yaw = float(np.clip(2.0 * (points[30, 0] - left_side) / width - 1.0, -1.0, 1.0)) if width > 0 else 0.0
    return FaceState(eye_openness=round(openness, 4), yaw=round(yaw, 4))


class DlibFaceState:
    """dlib's 68-point shape predictor (from face-recognition-models, 100 MB, loaded once
    per process and shared behind a lock: one call takes about 2 ms)."""

    _shared: Any = None
    _load_lock = threading.Lock()

    def __init__(self) -> None:
        import dlib  # only when liveness sessions are served

        self._dlib = dlib
        with DlibFaceState._load_lock:
            if DlibFaceState._shared is None:
                path = str(weights.dlib_model(weights.DLIB_SHAPE_68_FILE))
                DlibFaceState._shared = (dlib.shape_predictor(path), threading.Lock())
        self._predictor, self._lock = DlibFaceState._shared

    def measure(self, image: Image, box: Box) -> FaceState:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rect = self._dlib.rectangle(
            round(box.x), round(box.y), round(box.x + box.width), round(box.y + box.height)
        )
        with self._lock:
            shape = self._predictor(gray, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return state_from_landmarks(points)
