"""Evidence for the presentation-attack stage, one module per signal.

Each signal is a `Signal`: a name and `score(image, box) -> float`, where `image` is the
frame as the stage normalises it (see `normalise`) and `box` the face as YuNet found it
in that frame's pixels. No signal is trained on attack data: each is a fixed measurement
(a network shipped as is, a histogram, a spectrum, a count of pixels or lines), and the
stage's fusion (facesvc.engine.pipeline.attack_fusion) weighs them with a handful of
fitted numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import cv2

from facesvc.engine.types import Box, Image

#: Long side, in pixels, of the frame every signal but MiniFASNet measures: the same scale
#: whatever the upload (a 13 MP selfie or a 640 px webcam frame), and a bounded cost.
SIGNAL_FRAME_PX = 640


class Signal(Protocol):
    """One piece of evidence: higher means more like a live face unless the name says otherwise."""

    name: str
    #: How far around the face box the signal looks, as the box's grow factor (None: the
    #: whole frame); the stage scales only that part of a large frame (see normalise).
    reach: float | None

    def score(self, image: Image, box: Box) -> float: ...


def reach_of(signals: Iterable[Signal]) -> float | None:
    """The widest reach among `signals` (None when one needs the whole frame)."""
    reaches = [signal.reach for signal in signals]
    if any(r is None for r in reaches):
        return None
    return max((r for r in reaches if r is not None), default=1.0)


#: Extra room around a signal's reach, as a share of the box, so its patch is never clipped
#: by the crop where the whole frame would not have clipped it.
CROP_MARGIN = 0.1


def normalise(image: Image, box: Box, reach: float | None = None) -> tuple[Image, Box]:
    """The frame in colour with its long side at most SIGNAL_FRAME_PX, and the box in it.

    With a `reach` (a grow factor of the box), only the part of a large frame within it
    (and a margin) is scaled, at the scale the whole frame would have: the signals see the
    very same pixels around the face, and a large photo costs a crop's resize, not its own
    (the fused signals 3.75 -> 1.78 ms on the bench's press photos, bench/enroll_cost.py)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= SIGNAL_FRAME_PX:
        return image, box
    factor = SIGNAL_FRAME_PX / long_side
    x0, y0, x1, y1 = 0, 0, width, height
    if reach is not None:
        x0, y0, x1, y1 = _on_grid(box, reach, width, height, long_side)
        if (x1 - x0) * (y1 - y0) >= width * height // 2:  # not worth the crop
            x0, y0, x1, y1 = 0, 0, width, height
    part = cv2.resize(image[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return part, Box(box.x - x0, box.y - y0, box.width, box.height).scaled(factor)


def _on_grid(box: Box, reach: float, width: int, height: int, long_side: int) -> tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1) around `box` grown by `reach`, its corners on the whole-frame
    resampling's own grid: output pixel k starts at source pixel k * long_side /
    SIGNAL_FRAME_PX, a whole pixel when k is a multiple of `cells`, so the crop resized by
    the same factor gives the very pixels the whole frame's resize has there."""
    common = math.gcd(long_side, SIGNAL_FRAME_PX)
    cells, step = SIGNAL_FRAME_PX // common, long_side // common  # output, source pixels per cell
    factor = SIGNAL_FRAME_PX / long_side
    grow = reach / 2 + CROP_MARGIN

    def span(centre: float, half: float, size: int) -> tuple[int, int]:
        first = max(0, math.floor((centre - half) * factor / cells)) * step
        last = math.ceil((centre + half) * factor / cells) * step
        return first, min(size, last)

    x0, x1 = span(box.x + box.width / 2, box.width * grow, width)
    y0, y1 = span(box.y + box.height / 2, box.height * grow, height)
    return x0, y0, x1, y1


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
