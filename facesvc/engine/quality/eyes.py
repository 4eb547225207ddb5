"""Eyes open: how open the less open eye is, from MediaPipe's Face Mesh eyelids.

The measure is the eye aspect ratio (Soukupova and Cech, 2016: the two eyelid distances
over the eye's width) of each eye, from the liveness session's Face Mesh
(facesvc.engine.session.face_state), and the lower of the two, as ISO/IEC 29794-5's eyes-open
component takes the less open eye: a wink or a squint costs the comparison one eye's
detail. Open eyes read about 0.18-0.3; shut or screwed-up eyes under 0.12, the EYES_CLOSED
limit (facesvc.engine.quality.fusion). The mesh's lids close less than a person's, so a
natural blink reads narrower, not shut: docs/QUALITY.md has the figures on lfw-devtrain,
Yale's conditions and the labelled blink clips. About 2-3 ms a face on one core.
"""

from __future__ import annotations

from typing import Protocol

from facesvc.engine.session.face_state import MESH_EYES, MeshFaceState, eye_aspect_ratio
from facesvc.engine.types import Detection, Image


class EyeOpenness(Protocol):
    """The less open eye's aspect ratio of the face `detection` in `image`."""

    def __call__(self, image: Image, detection: Detection) -> float: ...


class MeshEyeOpenness:
    """EyeOpenness from the Face Mesh's eyelid points (`mesh`: the engine's, which the
    liveness sessions share)."""

    def __init__(self, mesh: MeshFaceState) -> None:
        self._mesh = mesh

    def __call__(self, image: Image, detection: Detection) -> float:
        points = self._mesh.landmarks(image, detection.box, detection.landmarks)[:, :2]
        return round(min(eye_aspect_ratio(points[list(eye)]) for eye in MESH_EYES), 4)
