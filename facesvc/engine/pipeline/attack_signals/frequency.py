"""Screen evidence in the frequency domain: a screen's pixel grid and the moire it beats
with the camera's sensor put narrow peaks into the face's 2-D spectrum, and a print's
halftone or a re-captured frame loses fine detail; a live face's spectrum falls off
smoothly. Two numbers from the log-magnitude spectrum of the grey face crop (128x128,
Hann-windowed): the share of energy beyond a quarter of the Nyquist frequency, and how
far the strongest high-frequency bin stands above its ring's median (peaks).
"""

from __future__ import annotations

import cv2
import numpy as np

from facesvc.engine.pipeline.attack_signals import face_patch
from facesvc.engine.types import Box, Image

PATCH_PX = 128
#: The share of the face box the spectrum is taken over (its centre: no background).
PATCH_GROW = 0.8
_HALF = PATCH_PX // 2
_Y, _X = np.mgrid[-_HALF:_HALF, -_HALF:_HALF]
_RADIUS = np.hypot(_Y, _X)
_RING = _RADIUS.astype(np.int64)
_HIGH = _RADIUS > _HALF / 4
_WINDOW = np.outer(np.hanning(PATCH_PX), np.hanning(PATCH_PX))


def _spectrum(image: Image, box: Box) -> np.ndarray:
    grey = cv2.cvtColor(face_patch(image, box, PATCH_GROW), cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA).astype(np.float64)
    grey = (grey - grey.mean()) * _WINDOW
    return np.abs(np.fft.fftshift(np.fft.fft2(grey)))


class HighFrequencySignal:
    """Share of spectral energy beyond a quarter of Nyquist (0-1): detail a recapture loses."""

    name = "high_frequency"
    reach: float | None = PATCH_GROW

    def score(self, image: Image, box: Box) -> float:
        power = _spectrum(image, box) ** 2
        power[_HALF, _HALF] = 0.0
        return float(power[_HIGH].sum() / max(power.sum(), 1e-9))


class SpectralPeakSignal:
    """The strongest high-frequency bin over its ring's median, in log units: a pixel grid
    or moire shows as an isolated peak (higher: more like a screen)."""

    name = "spectral_peaks"
    reach: float | None = PATCH_GROW

    def score(self, image: Image, box: Box) -> float:
        log_magnitude = np.log1p(_spectrum(image, box))
        rings = np.bincount(_RING.ravel(), weights=log_magnitude.ravel()) / np.maximum(
            np.bincount(_RING.ravel()), 1
        )
        excess = log_magnitude - rings[_RING]
        return float(excess[_HIGH & (_RADIUS < _HALF)].max())
