"""Specular reflection and glare: a screen or glossy print held to a camera reflects the
room's lights as clipped, colourless patches over the face; skin's highlights are small.
The signal is the share of the face crop that is near-white and unsaturated (higher:
more glare)."""

from __future__ import annotations

import cv2
import numpy as np

from facesvc.engine.pipeline.attack_signals import face_patch
from facesvc.engine.types import Box, Image

MIN_VALUE, MAX_SATURATION = 235, 40
#: The face box grown by this: the crop the glare is counted over.
PATCH_GROW = 1.2


class GlareSignal:
    name = "glare"
    reach: float | None = PATCH_GROW

    def score(self, image: Image, box: Box) -> float:
        hsv = cv2.cvtColor(face_patch(image, box, PATCH_GROW), cv2.COLOR_BGR2HSV)
        glare = (hsv[:, :, 2] >= MIN_VALUE) & (hsv[:, :, 1] <= MAX_SATURATION)
        return float(np.mean(glare))
