"""Presentation-attack stage: is the chosen face a live person, or a print or a screen?

Several pieces of evidence (facesvc.engine.pipeline.attack_signals), one module each:
MiniFASNetV2 and MiniFASNetV1SE on wide context crops (shrunk to what the frame holds when
a selfie leaves no room), colour texture (LBP in HSV and YCbCr), the face's spectrum (a
recapture's lost detail, a screen's peaks), glare, and long straight edges around the face
(a bezel, a sheet of paper). The fusion (facesvc.engine.pipeline.attack_fusion, chosen
leave-one-source-out by `python -m facesvc.tools.calibrate_pad`) weighs the ones that held
up on sources they were not fitted on: today MiniFASNet and the spectral peaks, as a
logistic score capped by MiniFASNet's own probability. Each fused signal's value comes
back in `liveness_checks` after the verdict, so a caller can see why. Every framing is
judged; only a face under the size floor or cut by the frame's edge is not.

The stage judges the capture, not the person: a live camera frame passes, a photo of a
photo often does not (press photos, scans, greyscale captures), which is why Enroll
only reports it by default (see docs/PRESENTATION_ATTACK_SIGNALS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import cv2

from facesvc.engine.pipeline.attack_fusion import Fusion, load_fusion
from facesvc.engine.pipeline.attack_signals import Signal, normalise, reach_of
from facesvc.engine.pipeline.attack_signals.color_texture import ColorTextureSignal
from facesvc.engine.pipeline.attack_signals.device_edges import DeviceEdgeSignal
from facesvc.engine.pipeline.attack_signals.frequency import HighFrequencySignal, SpectralPeakSignal
from facesvc.engine.pipeline.attack_signals.minifasnet import (
    INPUT_SIZE,
    NETWORKS,
    WEIGHTS_DIR,
    MiniFASNetSignal,
    context_box,
    trained_box,
)
from facesvc.engine.pipeline.attack_signals.specular import GlareSignal
from facesvc.engine.types import Box, Image, LivenessCheck

__all__ = [
    "CHECK_NAME",
    "INPUT_SIZE",
    "MODEL_NAME",
    "NETWORKS",
    "WEIGHTS_DIR",
    "AttackMode",
    "AttackScore",
    "PresentationAttackDetector",
    "Unscorable",
    "context_box",
    "trained_box",
]

MODEL_NAME = "MiniFASNetV2+MiniFASNetV1SE+signals"
CHECK_NAME = "presentation_attack"


class AttackMode(Enum):
    """What the stage does with a face: skip it, score it, or refuse an attack."""

    OFF = "off"
    REPORT = "report"
    ENFORCE = "enforce"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {AttackMode.OFF: 0, AttackMode.REPORT: 1, AttackMode.ENFORCE: 2}


@dataclass(frozen=True, slots=True)
class Unscorable:
    """Why a face cannot be scored: `cause` is too_small or cut_off."""

    cause: str
    detail: str


@dataclass(frozen=True, slots=True)
class SignalValue:
    """One signal's raw value, the value at which it tips neither way, and its share of
    the fused logit (positive: towards live)."""

    name: str
    value: float
    neutral: float
    contribution: float
    #: The signal's probability also caps the live score: it passes at `neutral` (0.5) or over.
    caps: bool = False

    def as_check(self) -> LivenessCheck:
        passed = self.value >= self.neutral if self.caps else self.contribution >= 0
        detail = f"{self.contribution:+.2f} to the fused live logit"
        if self.caps:
            detail += "; caps the live score"
        return LivenessCheck(
            f"{CHECK_NAME}.{self.name}", passed, round(self.value, 4), round(self.neutral, 4), detail
        )


@dataclass(frozen=True, slots=True)
class AttackScore:
    """The stage's verdict on one face."""

    live_score: float
    threshold: float
    #: Set when the face could not be judged; then live_score is 0 and `live` is False.
    unscorable: Unscorable | None = None
    signals: tuple[SignalValue, ...] = ()

    @property
    def live(self) -> bool:
        return self.unscorable is None and self.live_score >= self.threshold

    def as_check(self) -> LivenessCheck:
        if self.unscorable is not None:
            detail = f"cannot judge: {self.unscorable.detail}"
        elif self.live:
            detail = "a live face"
        else:
            detail = "looks like a print or a screen"
        return LivenessCheck(CHECK_NAME, self.live, round(self.live_score, 4), self.threshold, detail)

    def as_checks(self) -> tuple[LivenessCheck, ...]:
        """The verdict, then each signal's value."""
        return (self.as_check(), *(signal.as_check() for signal in self.signals))


def _neutral(fusion: Fusion, index: int) -> float:
    """The raw value whose standardised feature is 0 (the feature transform inverted)."""
    name, value = fusion.features[index], float(fusion.mean[index])
    if name.startswith("minifasnet"):
        return 1.0 / (1.0 + math.exp(-value))
    if name in {"glare", "device_edges", "high_frequency"}:
        return math.exp(value) - 1e-3
    return value


class PresentationAttackDetector:
    """Scores faces with every signal and fuses them; one copy of each network per slot."""

    name = MODEL_NAME

    def __init__(
        self,
        threshold: float,
        min_face_size: float,
        slots: int,
        weights_dir: Path | None = None,
        fusion: Fusion | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_face_size = min_face_size
        self.fusion = fusion or load_fusion()
        self._minifasnet = MiniFASNetSignal(slots, weights_dir, self.fusion.framing)
        available: dict[str, Signal] = {
            signal.name: signal
            for signal in (
                ColorTextureSignal(self.fusion.live_reference, self.fusion.attack_reference),
                HighFrequencySignal(),
                SpectralPeakSignal(),
                GlareSignal(),
                DeviceEdgeSignal(),
            )
        }
        self._signals = [available[name] for name in self.fusion.features if name in available]
        self._reach = reach_of(self._signals)
        self._neutral = {name: _neutral(self.fusion, i) for i, name in enumerate(self.fusion.features)}

    def judge(self, image: Image, box: Box, face_size_px: float) -> AttackScore:
        """The verdict on the face in `box` (pixels of `image`, the full frame);
        `face_size_px` is its size in pixels of the original upload."""
        reason = self._unscorable(image, box, face_size_px)
        if reason is not None:
            return AttackScore(0.0, self.threshold, reason)
        raw = self.signal_values(image, box)
        contributions = self.fusion.contributions(raw)
        signals = tuple(
            SignalValue(name, raw[name], self._neutral[name], contributions[name])
            for name in self.fusion.features
        )
        return AttackScore(self.fusion.live_score(raw), self.threshold, None, signals)

    def signal_values(self, image: Image, box: Box) -> dict[str, float]:
        """Every fused signal's raw value for the face in `box` (a YuNet box)."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        raw = {"minifasnet": self._minifasnet.score(image, box)}
        frame, frame_box = normalise(image, box, self._reach)
        for signal in self._signals:
            raw[signal.name] = signal.score(frame, frame_box)
        return raw

    def live_score(self, image: Image, box: Box) -> float:
        """MiniFASNet alone, as the original pipeline cuts its crops (shrunk to fit the
        frame), for a box drawn as the networks' detector draws it (see trained_box)."""
        return self._minifasnet.score_trained_box(image, box, "clamped")

    def _unscorable(self, image: Image, box: Box, face_size_px: float) -> Unscorable | None:
        height, width = image.shape[:2]
        if face_size_px < self.min_face_size:
            return Unscorable(
                "too_small", f"the face is {face_size_px:.0f} px, under {self.min_face_size:g}: move closer"
            )
        # More than a tenth of the face outside the frame: no signal sees the whole face.
        outside_x = max(0.0, -box.x) + max(0.0, box.x + box.width - width)
        outside_y = max(0.0, -box.y) + max(0.0, box.y + box.height - height)
        if outside_x > 0.1 * box.width or outside_y > 0.1 * box.height:
            return Unscorable("cut_off", "the face is cut by the edge of the frame: centre it")
        return None
