"""Device edges or a hand around the face: the bezel of a phone or tablet and the edge of
a sheet of paper are long straight lines that frame the face, where a live person's
background rarely draws a rectangle around them. The signal is the total length of long
straight lines (Canny, then probabilistic Hough) in a band around the face that do not
cross the face itself, in face widths (higher: more like a device or a sheet held up)."""

from __future__ import annotations

import cv2
import numpy as np

from facesvc.engine.types import Box, Image

WORK_PX = 320
#: The band around the face searched for edges, in face sizes from its centre.
BAND = 2.5


class DeviceEdgeSignal:
    name = "device_edges"
    reach: float | None = None  # the whole frame: a device's edge lies anywhere in it

    def score(self, image: Image, box: Box) -> float:
        factor = WORK_PX / max(image.shape[:2])
        small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        face = box.scaled(factor)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 60, 160)
        size = max(face.width, face.height)
        min_length = max(0.6 * size, 20.0)
        lines = cv2.HoughLinesP(edges, 1, np.pi / 180, 30, minLineLength=min_length, maxLineGap=4)
        if lines is None:
            return 0.0
        centre_x, centre_y = face.x + face.width / 2, face.y + face.height / 2
        total = 0.0
        for x0, y0, x1, y1 in lines.reshape(-1, 4).astype(np.float64):
            mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
            if abs(mid_x - centre_x) > BAND * size or abs(mid_y - centre_y) > BAND * size:
                continue
            if _crosses(face, x0, y0, x1, y1):
                continue
            total += float(np.hypot(x1 - x0, y1 - y0))
        return total / size


def _crosses(face: Box, x0: float, y0: float, x1: float, y1: float) -> bool:
    """Whether the segment passes through the inner 80% of the face box."""
    inset_x, inset_y = 0.1 * face.width, 0.1 * face.height
    left, right = face.x + inset_x, face.x + face.width - inset_x
    top, bottom = face.y + inset_y, face.y + face.height - inset_y
    for t in np.linspace(0.0, 1.0, 9):
        x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        if left <= x <= right and top <= y <= bottom:
            return True
    return False
