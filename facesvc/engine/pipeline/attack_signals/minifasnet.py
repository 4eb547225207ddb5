"""MiniFASNetV2 and MiniFASNetV1SE (Silent-Face-Anti-Spoofing, Apache-2.0; the models
DeepFace runs for `anti_spoofing=True`), as ONNX files shipped in facesvc/models/
minifasnet/ and checked against their SHA-256, run by OpenCV DNN. Each looks at the face
with wide context from the full frame (2.7x and 4.0x the face box), where paper edges,
screen bezels and the hands holding them show; the live score is the mean of their
class-1 ("live") probabilities, 0-1.

Where the frame has less context than a network was trained on (a selfie: the face fills
the frame), the original pipeline shrinks the crop to what fits. `MiniFASNetSignal` can
instead pad the frame by replicating its border so the crop keeps the trained scale
(`framing="replicate"`); `python -m facesvc.tools.calibrate_pad` measures both.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facesvc.engine.runtime import licences
from facesvc.engine.runtime.pool import InstancePool
from facesvc.engine.types import Box, Image
from facesvc.errors import ModelUnavailableError

MODEL_NAME = "MiniFASNetV2+MiniFASNetV1SE"
INPUT_SIZE = 80
WEIGHTS_DIR = Path(__file__).resolve().parents[3] / "models" / "minifasnet"

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
FRAMINGS = ("clamped", "replicate", "constant")


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


def context_available(image: Image, box: Box) -> float:
    """How many face boxes fit across the frame, the tighter of the two directions."""
    height, width = image.shape[:2]
    return float(min((height - 1) / box.height, (width - 1) / box.width))


@cache
def verified(name: str, expected: str, weights_dir: Path | None) -> str:
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


def _padded(image: Image, box: Box, scale: float, mode: int) -> tuple[Image, Box]:
    """The frame with enough border added (replicated or black) that the box grown by
    `scale` fits, and the box in the padded frame."""
    height, width = image.shape[:2]
    half_w, half_h = box.width * scale / 2, box.height * scale / 2
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    left = max(0, int(np.ceil(half_w - centre_x)) + 1)
    top = max(0, int(np.ceil(half_h - centre_y)) + 1)
    right = max(0, int(np.ceil(centre_x + half_w - width)) + 1)
    bottom = max(0, int(np.ceil(centre_y + half_h - height)) + 1)
    if not (left or top or right or bottom):
        return image, box
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, mode, value=(0, 0, 0))
    return padded, Box(box.x + left, box.y + top, box.width, box.height)


class MiniFASNetSignal:
    """Mean live probability of the two networks (0-1); one copy of each per engine slot."""

    name = "minifasnet"
    reach: float | None = None  # cuts its own context from the original frame

    def __init__(self, slots: int, weights_dir: Path | None = None, framing: str = "clamped") -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        self.framing = framing
        paths = [(verified(name, digest, weights_dir), scale) for name, digest, scale in NETWORKS]
        self._pool: InstancePool[list[tuple[Any, float]]] = InstancePool(
            lambda: [(cv2.dnn.readNetFromONNX(path), scale) for path, scale in paths], slots
        )

    def score(self, image: Image, box: Box) -> float:
        """For a YuNet box (the networks' own box is derived from it, see trained_box)."""
        return self.score_trained_box(image, trained_box(box), self.framing)

    def score_trained_box(self, image: Image, box: Box, framing: str = "clamped") -> float:
        """For a box drawn as the networks' detector draws it."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        total = 0.0
        with self._pool.borrow() as networks:
            for network, scale in networks:
                frame, frame_box = image, box
                if framing != "clamped":
                    mode = cv2.BORDER_REPLICATE if framing == "replicate" else cv2.BORDER_CONSTANT
                    frame, frame_box = _padded(image, box, scale, mode)
                height, width = frame.shape[:2]
                x0, y0, x1, y1 = context_box(frame_box, scale, width, height)
                patch = cv2.resize(frame[y0 : y1 + 1, x0 : x1 + 1], (INPUT_SIZE, INPUT_SIZE))
                network.setInput(cv2.dnn.blobFromImage(patch, 1.0, (INPUT_SIZE, INPUT_SIZE), 0, swapRB=False))
                total += float(np.asarray(network.forward()).reshape(-1)[LIVE_CLASS])
        return total / len(NETWORKS)
