"""Face-state stage: how open the eyes are and which way the head is turned, from
MediaPipe's Face Mesh (468 landmarks, Apache-2.0); what the liveness session's BLINK and
TURN challenges watch.

Eye openness is the eye aspect ratio (Soukupova and Cech, 2016): the two eyelid
distances over the eye's width, averaged over both eyes. Yaw is where the nose tip sits
between the two sides of the face: 0 facing the camera, towards +1 when the nose moves to
the image's right (the person turning to their own left, seen by a camera that does not
mirror), towards -1 the other way. Both are measured in the model's crop, which is turned
so the eyes lie level: tilting the head sideways moves neither.
Thresholds: facesvc/tools/calibrate_liveness.py measures them on ../shared/liveness/
(figures in docs/LIVENESS.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from facesvc.engine.runtime import weights
from facesvc.engine.runtime.pool import InstancePool
from facesvc.engine.session.eye_texture import eye_texture
from facesvc.engine.types import Box, Image, Landmarks

#: The single-signal blink rule sessions used before facesvc.engine.session.blinks (kept
#: for calibrate_liveness's comparison). Eye aspect ratio below which one frame's eyes
#: count as closed, and above which as open again: a blink is open -> closed -> open. Relative to the person's own open-eye level
#: (the session's median), so that glasses and eye shape matter less. The mesh's eyelids
#: close less than a person's do (a closed eye reads about 0.77-0.89 of the open level),
#: hence thresholds near 1.
EYE_CLOSED_RATIO = 0.88
EYE_OPEN_RATIO = 0.93
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
    #: The eyes' edge energy (facesvc.engine.session.eye_texture); 0 when not measured.
    eye_texture: float = 0.0


class FaceStateEstimator(Protocol):
    """Measures one face (its box in `image`'s pixels; its five landmarks when known)."""

    def measure(self, image: Image, box: Box, landmarks: Landmarks | None = None) -> FaceState: ...


#: Face Mesh indices: per eye, corner, two upper-lid points, corner, two lower-lid points
#: (the order of the eye aspect ratio's p1..p6); the image's left eye first.
MESH_EYES = ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380))
#: Nose tip, and the face's two sides at the cheekbones (image left, image right).
MESH_NOSE_TIP, MESH_SIDE_LEFT, MESH_SIDE_RIGHT = 1, 234, 454
MESH_POINTS = 468
MESH_INPUT = 192
#: The crop the mesh sees: a square of this many times the face box's longer side, around
#: its centre (MediaPipe's own crop is 1.5 times its detector's box).
MESH_CROP_SCALE = 1.5


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Six points around one eye: corner, two upper, corner, two lower."""
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def state_from_mesh(points: np.ndarray) -> FaceState:
    """A FaceState from Face Mesh's points, (468, 2 or 3), in a crop whose eyes lie level."""
    flat = points[:, :2]
    openness = sum(eye_aspect_ratio(flat[list(eye)]) for eye in MESH_EYES) / len(MESH_EYES)
    left_side, right_side = flat[MESH_SIDE_LEFT, 0], flat[MESH_SIDE_RIGHT, 0]
    width = right_side - left_side
    yaw = (
        float(np.clip(2.0 * (flat[MESH_NOSE_TIP, 0] - left_side) / width - 1.0, -1.0, 1.0))
        if width > 0
        else 0.0
    )
    return FaceState(eye_openness=round(openness, 4), yaw=round(yaw, 4))


def mesh_crop(image: Image, box: Box, landmarks: Landmarks | None) -> Image:
    """The 192 px square the mesh sees: the face box's centre, MESH_CROP_SCALE times its
    longer side, turned so the eyes (when known) lie level."""
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    angle = 0.0
    if landmarks is not None:
        left, right = landmarks.left_eye, landmarks.right_eye
        angle = math.degrees(math.atan2(right.y - left.y, right.x - left.x))
    side = max(box.width, box.height) * MESH_CROP_SCALE
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), angle, MESH_INPUT / max(side, 1.0))
    matrix[0, 2] += MESH_INPUT / 2 - centre_x
    matrix[1, 2] += MESH_INPUT / 2 - centre_y
    colour = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.warpAffine(colour, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR)


class MeshFaceState:
    """MediaPipe's Face Mesh landmark model (face_landmark.tflite, 1.2 MB, shipped in
    facesvc/models/ and checked by SHA-256) run by OpenCV's DNN module: about 3 ms a face
    on one core. An OpenCV network keeps per-call state, so each slot has its own copy."""

    def __init__(self, slots: int | None = None) -> None:
        model = np.frombuffer(weights.shipped_model_bytes(weights.FACE_MESH_FILE), dtype=np.uint8)
        self._pool: InstancePool[Any] = InstancePool(
            lambda: cv2.dnn.readNetFromTFLite(model), slots or os.cpu_count() or 1
        )
        # Load one copy now: a broken model fails at start-up, not in a session.
        with self._pool.borrow():
            pass

    def landmarks(self, image: Image, box: Box, landmarks: Landmarks | None = None) -> np.ndarray:
        """The mesh's 468 points (x, y, z) in its 192 px crop."""
        return self._points(mesh_crop(image, box, landmarks))

    def _points(self, crop: Image) -> np.ndarray:
        blob = cv2.dnn.blobFromImage(crop, 1.0 / 255.0, swapRB=True)  # RGB, 0..1
        with self._pool.borrow() as net:
            net.setInput(blob)
            output = net.forward()
        return np.asarray(output, dtype=np.float32).reshape(MESH_POINTS, 3)

    def measure(self, image: Image, box: Box, landmarks: Landmarks | None = None) -> FaceState:
        crop = mesh_crop(image, box, landmarks)
        points = self._points(crop)
        return dataclasses.replace(state_from_mesh(points), eye_texture=eye_texture(crop, points))
