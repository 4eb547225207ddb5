"""Blink detection: a closure with a blink's shape, confirmed by two signals.

A blink is counted when, relative to the person's open level just before it, the eyes
fall (from an open frame at most two frames earlier), stay down one to
MAX_CLOSED_FRAMES frames, and recover; the fall is read on a weighted geometric mean of
two ratios, the mesh's eye aspect ratio and the eye texture
(facesvc.engine.session.eye_texture, weight TEXTURE_WEIGHT), and the deepest frame's eye
aspect ratio must confirm it. One jittery frame in one signal, a slow drift (the head tilting down) or a long closure (looking down) is no blink.
The open level is the median of the last BASELINE_FRAMES open frames: a local level
follows slow changes of pose and light that a session-wide one mistakes for closures.
Thresholds, chosen leave one clip out: `python -m facesvc.tools.calibrate_liveness --only loo`
(docs/LIVENESS.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: The combined ratio under which a frame counts as closed, and over which as open again.
CLOSED_RATIO = 0.88
OPEN_RATIO = 0.89
#: The eye aspect ratio (over its open level) the closure's deepest frame must reach.
CONFIRM_RATIO = 0.92
#: The texture's weight in the combined ratio (the eye aspect ratio has the rest).
TEXTURE_WEIGHT = 0.3
#: Open frames whose median is the open level.
BASELINE_FRAMES = 6
#: Frames a closure may last (a blink is 100-400 ms: 3-12 frames at 30 fps).
MAX_CLOSED_FRAMES = 10
#: Frames between the last open frame and the fall: a blink falls fast.
MAX_FALL_FRAMES = 2


@dataclass
class BlinkDetector:
    """Fed one frontal face per frame (`observe`), or told the face was lost or turned
    (`interrupt`); `blinks` holds the capture time of each blink's fall."""

    closed_ratio: float = CLOSED_RATIO
    open_ratio: float = OPEN_RATIO
    confirm_ratio: float = CONFIRM_RATIO
    texture_weight: float = TEXTURE_WEIGHT
    blinks: list[float] = field(default_factory=list)
    _openness: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_FRAMES))
    _texture: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_FRAMES))
    _since_open: int = MAX_FALL_FRAMES + 1
    _closing: float | None = None  # capture time of the fall
    _closed_frames: int = 0
    _deepest: float = 1.0

    def observe(self, openness: float, texture: float, capture_time: float) -> None:
        if len(self._openness) < 3:
            self._open(openness, texture)
            return
        openness_ratio = openness / max(_median(self._openness), 1e-6)
        texture_ratio = texture / max(_median(self._texture), 1e-6) if texture > 0 else 1.0
        weight = self.texture_weight
        ratio = max(openness_ratio, 1e-9) ** (1 - weight) * max(texture_ratio, 1e-9) ** weight
        if self._closing is None:
            if ratio > self.open_ratio:
                self._open(openness, texture)
            elif ratio < self.closed_ratio and self._since_open <= MAX_FALL_FRAMES:
                self._closing, self._closed_frames, self._deepest = capture_time, 1, openness_ratio
            else:
                self._since_open += 1
            return
        if ratio > self.open_ratio:
            if self._deepest < self.confirm_ratio:
                self.blinks.append(self._closing)
            self._closing = None
            self._open(openness, texture)
            return
        self._closed_frames += 1
        self._deepest = min(self._deepest, openness_ratio)
        if self._closed_frames > MAX_CLOSED_FRAMES:
            # Down too long for a blink: a new pose or light. Learn the level afresh.
            self.interrupt()
            self._openness.clear()
            self._texture.clear()

    def interrupt(self) -> None:
        """No frontal face this frame: a closure in progress is no blink."""
        self._closing = None
        self._since_open = MAX_FALL_FRAMES + 1

    def closing(self) -> bool:
        """Whether the eyes are down now (a blink in progress)."""
        return self._closing is not None

    def blinked_since(self, capture_time: float) -> bool:
        """Whether a blink fell at or after `capture_time`."""
        return any(time >= capture_time for time in self.blinks)

    def _open(self, openness: float, texture: float) -> None:
        self._openness.append(openness)
        self._texture.append(texture)
        self._since_open = 0


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
