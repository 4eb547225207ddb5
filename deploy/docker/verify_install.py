"""Check an installed facesvc: one OpenCV distribution, the configured models load, and so
does the liveness session's face landmark model (package data, checked by SHA-256).

Run by deploy/docker/install.sh with the new environment's Python, so `facesvc` is the
installed package, not a source tree. Loading downloads a DeepFace model's weights into
FACESVC_WEIGHTS_DIR when they are missing and a network is there (the Facenet512 build
argument); the default SFace + YuNet never touch the network.
"""

from __future__ import annotations

import sys
from importlib import metadata

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.session.face_state import MeshFaceState


def main() -> int:
    opencv = sorted(
        name
        for name in {(dist.metadata["Name"] or "").lower() for dist in metadata.distributions()}
        if name.startswith("opencv")
    )
    if len(opencv) != 1:
        print(f"expected exactly one OpenCV distribution, found {opencv}", file=sys.stderr)
        return 1
    settings = Settings()
    engine = FaceEngine(settings)
    engine.load()
    info = engine.info()
    MeshFaceState(1)
    print(
        f"facesvc installed: {info.model} + {info.detector}, {opencv[0]}, loaded in {engine.load_seconds:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
