"""Choose the face: which of the detected faces a request is about.

The rule for reject_multiple: the primary face is the largest one. Another face
counts as a rival only when it is comparable to it: detector confidence at least
`min_confidence`, size (square root of box area) at least `size_ratio` of the
primary's, and sharpness at least `sharpness_ratio` of the primary's. A small,
blurred or uncertain face in the background therefore never blocks a clear
foreground face, while two people side by side are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from facesvc.engine.types import Detection, FaceSelection
from facesvc.errors import MultipleFacesError


@dataclass(frozen=True, slots=True)
class MultiFaceRule:
    """When a second face counts as comparable (from Settings)."""

    size_ratio: float
    min_confidence: float
    sharpness_ratio: float


def _size(detection: Detection) -> float:
    return math.sqrt(max(detection.box.area, 0.0))


def choose_face(
    detections: Sequence[Detection],
    selection: FaceSelection,
    image_size: tuple[int, int],
    rule: MultiFaceRule,
    sharpness_of: Callable[[Detection], float],
) -> Detection:
    """The face to use; raises MultipleFacesError under reject_multiple when a rival exists.
    `image_size` is (width, height) in the detections' pixels."""
    if selection is FaceSelection.CENTRAL:
        centre_x, centre_y = image_size[0] / 2, image_size[1] / 2
        return min(
            detections,
            key=lambda d: math.hypot(d.box.centre.x - centre_x, d.box.centre.y - centre_y),
        )
    primary = max(detections, key=_size)
    if selection is FaceSelection.LARGEST or len(detections) == 1:
        return primary
    primary_sharpness = sharpness_of(primary)
    rivals = [
        d
        for d in detections
        if d is not primary
        and d.confidence >= rule.min_confidence
        and _size(d) >= rule.size_ratio * _size(primary)
        and sharpness_of(d) >= rule.sharpness_ratio * primary_sharpness
    ]
    if rivals:
        raise MultipleFacesError(
            f"{len(rivals) + 1} comparable faces found; send a photo of one person, or ask "
            "for face_selection LARGEST or CENTRAL.",
            face_count=len(rivals) + 1,
            detected_faces=len(detections),
        )
    return primary
