"""Presentation-attack stage: is the chosen face a live person, or a print or a screen?

MiniFASNetV2 and MiniFASNetV1SE (Silent-Face-Anti-Spoofing, Apache-2.0; the models
DeepFace runs for `anti_spoofing=True`), as ONNX files shipped in facesvc/models/
minifasnet/ and checked against their SHA-256, run by OpenCV DNN. Each looks at the
face with wide context from the full frame (2.7x and 4.0x the face box), where paper
edges, screen bezels and the hands holding them show; the live score is the mean of
their class-1 ("live") probabilities, 0-1.

The model judges the capture, not the person: a live camera frame passes, a photo of a
photo often does not (press photos, scans, greyscale captures), which is why Enroll
only reports it by default (see README, "Presentation attacks").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facesvc.engine.runtime import licences
from facesvc.engine.runtime.pool import InstancePool
from facesvc.engine.types import Box, Image, LivenessCheck
from facesvc.errors import ModelUnavailableError

MODEL_NAME = "MiniFASNetV2+MiniFASNetV1SE"
CHECK_NAME = "presentation_attack"
INPUT_SIZE = 80
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "models" / "minifasnet"

#: File, SHA-256 and the crop scale (times the face box) each network was trained on.
NETWORKS: tuple[tuple[str, str, float], ...] = (
    ("2.7_80x80_MiniFASNetV2.onnx", licences.sha256_of("2.7_80x80_MiniFASNetV2.onnx"), 2.7),
    ("4_0_0_80x80_MiniFASNetV1SE.onnx", licences.sha256_of("4_0_0_80x80_MiniFASNetV1SE.onnx"), 4.0),
)
LIVE_CLASS = 1
#: The original pipeline's detector draws wider, shorter boxes than YuNet, lower on the
#: face; its networks were trained on those. Fitted on the 40 frames of the model's
#: reference_scores.tsv (medians of its box over YuNet's, interquartile ranges 2-5%):
#: centre moved down 6.2% of the height, width x1.162, height x0.895. With it NUAA's live
#: frames refused at 0.5 fell from 6.4% to 0.4% (`python -m facesvc.tools.evaluate`).
BOX_SHIFT_Y, BOX_SCALE_X, BOX_SCALE_Y = 0.062, 1.162, 0.895


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
    """Why a face cannot be scored: `cause` is too_small, cut_off or too_close."""

    cause: str
    detail: str


@dataclass(frozen=True, slots=True)
class AttackScore:
    """The stage's verdict on one face."""

    live_score: float
    threshold: float
    #: Set when the face could not be judged; then live_score is 0 and `live` is False.
    unscorable: Unscorable | None = None

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


def trained_box(box: Box) -> Box:
    """A YuNet face box as the networks' own detector would have drawn it."""
    width, height = box.width * BOX_SCALE_X, box.height * BOX_SCALE_Y
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height * (0.5 + BOX_SHIFT_Y)
    return Box(centre_x - width / 2, centre_y - height / 2, width, height)


def context_box(box: Box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The region each network sees, as the original pipeline cuts it: the face box
    scaled about its centre (no further than the image allows), shifted, not cut, to stay
    inside; returns x0, y0, x1, y1 inclusive."""
    scale = min(scale, (height - 1) / box.height, (width - 1) / box.width)
    new_w, new_h = box.width * scale, box.height * scale
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    left, top = centre_x - new_w / 2, centre_y - new_h / 2
    right, bottom = centre_x + new_w / 2, centre_y + new_h / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > width - 1:
        left -= right - width + 1
        right = width - 1
    if bottom > height - 1:
        top -= bottom - height + 1
        bottom = height - 1
    return int(left), int(top), int(right), int(bottom)


@cache
def _verified(name: str, expected: str, weights_dir: Path | None) -> str:
    """The file from `weights_dir` when it holds one (FACESVC_WEIGHTS_DIR), else the one
    shipped in the package; either way only if its SHA-256 is the pinned one."""
    path = WEIGHTS_DIR / name
    if weights_dir is not None and (weights_dir / name).is_file():
        path = weights_dir / name
    if not path.is_file():
        raise ModelUnavailableError(
            f"Presentation-attack model {path} is missing (expected SHA-256 {expected})."
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ModelUnavailableError(
            f"{path} has SHA-256 {digest}, expected {expected}: the presentation-attack "
            "model is corrupt or not the shipped file."
        )
    return str(path)


class PresentationAttackDetector:
    """Scores faces with both networks; one copy of each per engine slot."""

    name = MODEL_NAME

    def __init__(
        self,
        threshold: float,
        min_face_size: float,
        slots: int,
        weights_dir: Path | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_face_size = min_face_size
        paths = [(_verified(name, digest, weights_dir), scale) for name, digest, scale in NETWORKS]
        self._pool: InstancePool[list[tuple[Any, float]]] = InstancePool(
            lambda: [(cv2.dnn.readNetFromONNX(path), scale) for path, scale in paths], slots
        )

    def judge(self, image: Image, box: Box, face_size_px: float) -> AttackScore:
        """The verdict on the face in `box` (pixels of `image`, the full frame);
        `face_size_px` is its size in pixels of the original upload."""
        reason = self._unscorable(image, box, face_size_px)
        if reason is not None:
            return AttackScore(0.0, self.threshold, reason)
        return AttackScore(self.live_score(image, trained_box(box)), self.threshold)

    def live_score(self, image: Image, box: Box) -> float:
        """Mean class-1 probability of the two networks, 0-1, for a box drawn as the
        networks' detector draws it (see trained_box)."""
        height, width = image.shape[:2]
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        total = 0.0
        with self._pool.borrow() as networks:
            for network, scale in networks:
                x0, y0, x1, y1 = context_box(box, scale, width, height)
                patch = cv2.resize(image[y0 : y1 + 1, x0 : x1 + 1], (INPUT_SIZE, INPUT_SIZE))
                network.setInput(cv2.dnn.blobFromImage(patch, 1.0, (INPUT_SIZE, INPUT_SIZE), 0, swapRB=False))
                total += float(np.asarray(network.forward()).reshape(-1)[LIVE_CLASS])
        return total / len(NETWORKS)

    def _unscorable(self, image: Image, box: Box, face_size_px: float) -> Unscorable | None:
        height, width = image.shape[:2]
        if face_size_px < self.min_face_size:
            return Unscorable(
                "too_small", f"the face is {face_size_px:.0f} px, under {self.min_face_size:g}: move closer"
            )
        # More than a tenth of the face outside the frame: the networks never saw that.
        outside_x = max(0.0, -box.x) + max(0.0, box.x + box.width - width)
        outside_y = max(0.0, -box.y) + max(0.0, box.y + box.height - height)
        if outside_x > 0.1 * box.width or outside_y > 0.1 * box.height:
            return Unscorable("cut_off", "the face is cut by the edge of the frame: centre it")
        # The face fills the frame: no context left around it to judge (less than 1.5x).
        if min((height - 1) / box.height, (width - 1) / box.width) < 1.5:
            return Unscorable("too_close", "the face fills the frame: move back a little")
        return None
