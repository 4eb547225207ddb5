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
import numpy as np
import numpy.typing as npt

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


def normalise_around(image: Image, box: Box, reach: float) -> tuple[Image, Box]:
    """What `normalise` gives around the face, computed for that region only: the pixels of
    the reduced frame that the box grown by `reach` (and a margin) covers, each averaged
    from the same input pixels with the same weights as cv2.resize's INTER_AREA on the
    whole frame, and the box in that region. A local signal then reads the same pixels
    (to a rounding of the last grey level) for the cost of the face's region, not the frame's."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    long_side = max(height, width)
    if long_side <= SIGNAL_FRAME_PX:
        return image, box
    factor = SIGNAL_FRAME_PX / long_side
    grow = (reach + REACH_MARGIN) / 2
    centre_x, centre_y = (box.x + box.width / 2) * factor, (box.y + box.height / 2) * factor
    out_w, out_h = round(width * factor), round(height * factor)
    j0 = max(0, int(centre_x - box.width * factor * grow))
    j1 = min(out_w, int(centre_x + box.width * factor * grow) + 2)
    i0 = max(0, int(centre_y - box.height * factor * grow))
    i1 = min(out_h, int(centre_y + box.height * factor * grow) + 2)
    if j1 - j0 < 8 or i1 - i0 < 8:
        return normalise(image, box)
    rows, (r0, r1) = _area_weights(height, 1.0 / factor, i0, i1)
    cols, (c0, c1) = _area_weights(width, 1.0 / factor, j0, j1)
    region = image[r0:r1, c0:c1].astype(np.float32)
    reduced = _reduce(_reduce(region, rows).transpose(1, 0, 2), cols).transpose(1, 0, 2)
    rounded = np.floor(reduced + 0.5) if float(1.0 / factor).is_integer() else np.rint(reduced)
    frame = np.clip(rounded, 0, 255).astype(np.uint8)
    return frame, Box(box.x * factor - j0, box.y * factor - i0, box.width * factor, box.height * factor)


def _area_weights(
    size: int, scale: float, start: int, stop: int
) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
    """INTER_AREA's weights (OpenCV's computeResizeAreaTab: each output pixel averages the
    input span [out * scale, (out + 1) * scale), partial pixels by their overlap, shares
    under 1e-3 dropped) of output pixels start..stop-1, and the input span they read."""
    first = int(np.floor(start * scale))
    last = min(size, int(np.ceil(stop * scale)) + 1)
    low = np.arange(start, stop, dtype=np.float64)[:, None] * scale
    high = low + scale
    pixels = np.arange(first, last, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(pixels + 1, high) - np.maximum(pixels, low), 0.0, None)
    overlap[overlap <= 1e-3] = 0.0
    return (overlap / np.minimum(scale, size - low)).astype(np.float32), (first, last)


def _reduce(region: npt.NDArray[np.float32], weights: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows of `region` (axis 0) combined by the band matrix `weights`: each output row
    reads only the few input rows its weights cover, so the cost is the region's size."""
    reads = max(1, int(np.count_nonzero(weights, axis=1).max()))
    begin = np.argmax(weights > 0, axis=1)
    out = np.zeros((weights.shape[0], *region.shape[1:]), dtype=np.float32)
    limit = region.shape[0] - 1
    for k in range(reads):
        index = np.minimum(begin + k, limit)
        share = weights[np.arange(weights.shape[0]), index] * (begin + k <= limit)
        out += share[:, None, None] * region[index]
    return out


#: Extra growth (in box sizes) of the region normalise_around keeps beyond a signal's reach.
REACH_MARGIN = 0.2


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
