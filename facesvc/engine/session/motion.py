"""Still-face watch: frames whose face patch does not change at all (a photo, a frozen
feed). A live camera's noise alone moves a 32 px grey patch by 1-3 grey levels a frame."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facesvc.engine.types import Box

#: Mean difference (grey levels, 32x32 patch) under which two frames show the same face.
STILL_DIFFERENCE = 0.4


class StillWatch:
    """Counts consecutive frames whose face patch is the previous frame's."""

    def __init__(self) -> None:
        self._last: Any = None
        self.still = 0

    def frame(self, pixels: Any, box: Box) -> int:
        """This frame's face (`box` in `pixels`); the still frames in a row so far."""
        height, width = pixels.shape[:2]
        x0, y0 = max(0, int(box.x)), max(0, int(box.y))
        x1, y1 = min(width, int(box.x + box.width) + 1), min(height, int(box.y + box.height) + 1)
        grey = cv2.cvtColor(pixels[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        patch = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._last is not None:
            difference = float(np.abs(patch - self._last).mean())
            self.still = self.still + 1 if difference < STILL_DIFFERENCE else 0
        self._last = patch
        return self.still
