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


def normalise(image: Image, box: Box, reach: float | None = None) -> tuple[Image, Box]:
    """The frame in colour with its long side at most SIGNAL_FRAME_PX, and the box in it.

    With a `reach` (a grow factor of the box), only the part of a large frame within it
    (and a margin) is scaled, at the scale the whole frame would have: the signals see the
    same pixels around the face, and a 2,500 px photo costs a crop's resize, not its own
    (2.9 -> 0.1 ms on the bench's press photos)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= SIGNAL_FRAME_PX:
        return image, box
    factor = SIGNAL_FRAME_PX / long_side
    if reach is None:
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return small, box.scaled(factor)
    # Crop on the whole-frame resampling's own grid: a crop corner at a source pixel that
    # is a whole number of output pixels from the origin (output pixel k starts at source
    # k * long_side / SIGNAL_FRAME_PX, whole when k is a multiple of `grid`), resized by the
    # same factor, gives the very pixels the whole frame's resize would have there.
    grid = SIGNAL_FRAME_PX // math.gcd(long_side, SIGNAL_FRAME_PX)
    step = long_side // math.gcd(long_side, SIGNAL_FRAME_PX)  # source pixels per grid cell
    half_w, half_h = box.width * (reach / 2 + CROP_MARGIN), box.height * (reach / 2 + CROP_MARGIN)
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2

    def span(low: float, high: float, size: int) -> tuple[int, int]:
        first = max(0, math.floor(low * factor / grid)) * step
        last = math.ceil(high * factor / grid) * step
        return first, (size if last >= size else last)

    x0, x1 = span(centre_x - half_w, centre_x + half_w, width)
    y0, y1 = span(centre_y - half_h, centre_y + half_h, height)
    if (x1 - x0) * (y1 - y0) >= width * height // 2:
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        return small, box.scaled(factor)
    part = cv2.resize(image[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    moved = Box(box.x - x0, box.y - y0, box.width, box.height)
    return part, moved.scaled(factor)


#: Extra room around a signal's reach, as a share of the box, so its patch is never clipped
#: by the crop where the whole frame would not have clipped it.
CROP_MARGIN = 0.1


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
