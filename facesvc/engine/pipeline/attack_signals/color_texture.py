"""Colour texture: LBP histograms of the face in HSV and YCbCr (Boulkenafet, Komulainen,
Hadid, "Face anti-spoofing based on color texture analysis", ICIP 2015).

A print or a screen re-renders the face through a second device's colour gamut and
pixel structure; the local binary patterns of the chroma channels show it, and, unlike a
network's features, they transfer across databases. The histogram here is the rotation-
invariant uniform LBP (P=8, R=1: 10 bins) of each of the six channels of a 64x64 face
crop, 60 numbers; the signal is its chi-square distance to the mean histogram of live
development faces, less its distance to the mean of attack faces (both references are
the calibration, shipped in the fusion file).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from facesvc.engine.pipeline.attack_signals import face_patch
from facesvc.engine.types import Box, Image

PATCH_PX = 64
BINS = 10
CHANNELS = 6
#: Neighbours of the 3x3 LBP in circular order, (dy, dx).
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _riu2_table() -> npt.NDArray[np.int64]:
    """Code (0-255) -> rotation-invariant uniform bin: the count of ones when the pattern
    has at most two 0/1 transitions around the ring, else 9."""
    table = np.zeros(256, dtype=np.int64)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        table[code] = sum(bits) if transitions <= 2 else 9
    return table


_TABLE = _riu2_table()


def lbp_histogram(channel: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Normalised riu2 LBP(8,1) histogram of one channel."""
    centre = channel[1:-1, 1:-1].astype(np.int16)
    height, width = channel.shape
    code = np.zeros(centre.shape, dtype=np.int64)
    for bit, (dy, dx) in enumerate(_RING):
        neighbour = channel[1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx].astype(np.int16)
        code |= (neighbour >= centre).astype(np.int64) << bit
    counts = np.bincount(_TABLE[code].ravel(), minlength=BINS).astype(np.float64)
    normalised: npt.NDArray[np.float64] = counts / counts.sum()
    return normalised


def histograms(image: Image, box: Box) -> npt.NDArray[np.float64]:
    """The 60-number descriptor: H, S, V, Y, Cr, Cb histograms of the face crop."""
    patch = cv2.resize(face_patch(image, box), (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)
    ycrcb = cv2.cvtColor(patch, cv2.COLOR_BGR2YCrCb)
    planes = [hsv[:, :, i] for i in range(3)] + [ycrcb[:, :, i] for i in range(3)]
    return np.concatenate([lbp_histogram(np.ascontiguousarray(p)) for p in planes])


def chi_square(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.sum((a - b) ** 2 / (a + b + 1e-9)))


class ColorTextureSignal:
    """Distance to the attack reference minus distance to the live reference: > 0 live-like."""

    name = "color_texture"
    reach: float | None = 1.0

    def __init__(
        self, live_reference: npt.NDArray[np.float64], attack_reference: npt.NDArray[np.float64]
    ) -> None:
        self.live_reference = live_reference
        self.attack_reference = attack_reference

    def score(self, image: Image, box: Box) -> float:
        descriptor = histograms(image, box)
        return chi_square(descriptor, self.attack_reference) - chi_square(descriptor, self.live_reference)
