"""Evidence for the presentation-attack stage, one module per signal.

Each signal is a `Signal`: a name and `score(image, box) -> float`, where `image` is the
frame as the stage normalises it (see `normalise`) and `box` the face as YuNet found it
in that frame's pixels. No signal is trained on attack data: each is a fixed measurement
(a network shipped as is, a histogram, a spectrum, a count of pixels or lines), and the
stage's fusion (facesvc.engine.pipeline.attack_fusion) weighs them with a handful of
fitted numbers.
"""

from __future__ import annotations

from typing import Protocol

import cv2

from facesvc.engine.types import Box, Image

#: Long side, in pixels, of the frame every signal but MiniFASNet measures: the same scale
#: whatever the upload (a 13 MP selfie or a 640 px webcam frame), and a bounded cost.
SIGNAL_FRAME_PX = 640


class Signal(Protocol):
    """One piece of evidence: higher means more like a live face unless the name says otherwise."""

    name: str

    def score(self, image: Image, box: Box) -> float: ...


def normalise(image: Image, box: Box) -> tuple[Image, Box]:
    """The frame in colour with its long side at most SIGNAL_FRAME_PX, and the box in it."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    long_side = max(image.shape[:2])
    if long_side <= SIGNAL_FRAME_PX:
        return image, box
    factor = SIGNAL_FRAME_PX / long_side
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, box.scaled(factor)


def face_patch(image: Image, box: Box, grow: float = 1.0) -> Image:
    """The face box (grown about its centre by `grow`), cut to the frame."""
    height, width = image.shape[:2]
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    half_w, half_h = box.width * grow / 2, box.height * grow / 2
    x0, y0 = max(0, int(centre_x - half_w)), max(0, int(centre_y - half_h))
    x1, y1 = min(width, int(centre_x + half_w)), min(height, int(centre_y + half_h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return image
    return image[y0:y1, x0:x1]
