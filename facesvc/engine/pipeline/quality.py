"""Quality stage: the 0-100 score of the original design, with its parts.

score = 50% sharpness + 30% brightness + 20% face size. Each part is measured on
the face region resampled to a fixed 128x128 grey patch, so that a face's score
does not depend on the resolution it was photographed at.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facesvc.engine.types import Box, Image, Quality

PATCH = 128
#: Laplacian variance (on the 128 px patch) scoring 0 and 100, on a log scale between.
#: Sharp press photos measure 100-1200, Yale's side-lit greyscale scans 50-180, blurred
#: background faces 2-25.
SHARPNESS_ZERO = 5.0
SHARPNESS_FULL = 300.0
#: Mean grey level band that scores 100; the score falls linearly to 0 at black or white.
BRIGHTNESS_BAND = (90.0, 170.0)
#: Face size (shorter box side, original pixels) that scores 100.
FACE_SIZE_FULL = 160.0

WEIGHTS = (0.5, 0.3, 0.2)


def face_patch(image: Image, box: Box) -> Image:
    """The face region as a PATCH x PATCH grey image (clipped to the image)."""
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(box.x), 0, width - 1))
    y0 = int(np.clip(np.floor(box.y), 0, height - 1))
    x1 = int(np.clip(np.ceil(box.x + box.width), x0 + 1, width))
    y1 = int(np.clip(np.ceil(box.y + box.height), y0 + 1, height))
    region = image[y0:y1, x0:x1]
    grey = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    interpolation = cv2.INTER_AREA if min(grey.shape) >= PATCH else cv2.INTER_LINEAR
    return cv2.resize(grey, (PATCH, PATCH), interpolation=interpolation)


def laplacian_variance(patch: Image) -> float:
    """The variance of the Laplacian: high for crisp edges, near 0 for a blurred face."""
    return float(cv2.Laplacian(patch, cv2.CV_64F).var())


def sharpness_score(variance: float) -> float:
    if variance <= SHARPNESS_ZERO:
        return 0.0
    fraction = math.log(variance / SHARPNESS_ZERO) / math.log(SHARPNESS_FULL / SHARPNESS_ZERO)
    return 100.0 * min(1.0, fraction)


def measure(image: Image, box: Box, face_size_px: float) -> Quality:
    """Score the face at `box` in `image`; `face_size_px` is its size in the original image."""
    patch = face_patch(image, box)
    sharpness = sharpness_score(laplacian_variance(patch))
    mean = float(patch.mean())
    low, high = BRIGHTNESS_BAND
    if mean < low:
        brightness = 100.0 * mean / low
    elif mean > high:
        brightness = 100.0 * (255.0 - mean) / (255.0 - high)
    else:
        brightness = 100.0
    face_size = 100.0 * min(1.0, face_size_px / FACE_SIZE_FULL)
    score = WEIGHTS[0] * sharpness + WEIGHTS[1] * brightness + WEIGHTS[2] * face_size
    return Quality(
        score=round(score, 2),
        sharpness=round(sharpness, 2),
        brightness=round(brightness, 2),
        face_size=round(face_size, 2),
        mean_intensity=round(mean, 2),
    )
