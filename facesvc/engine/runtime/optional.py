"""Packages only some settings need: when one is missing, a start-up error names it.

The default pipeline (SFace + YuNet) needs OpenCV alone; DeepFace's models and
detectors, and dlib's, need packages that the slim image leaves out (Dockerfile
VARIANT=slim). Asking such an installation for them fails at start-up with the
package's name and the way out, never with a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib.util

from facesvc.errors import ModelUnavailableError


def require(package: str, wanted: str) -> None:
    """Raise ModelUnavailableError unless `package` can be imported; `wanted` is the
    setting that needs it, e.g. "FACESVC_MODEL=Facenet512"."""
    if importlib.util.find_spec(package) is None:
        raise ModelUnavailableError(
            f"{wanted} needs the Python package {package!r}, which is not installed here "
            "(the slim image leaves out DeepFace, TensorFlow, dlib and MTCNN): use the full "
            "image, or install facesvc with its dependencies."
        )
