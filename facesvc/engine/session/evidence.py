"""Evidence before a pass: a liveness session may end PASSED only once enough distinct
frames were judged live, over enough capture time.

Prompts can be met in a handful of frames (two blinks at 15 fps: under a second), and
the presentation-attack stage's share rule needs frames to see a replay it mostly refuses:
a held-out phone replay met a blink session's prompts in 7 frames, 6 of them judged live
by luck. The session asks `LiveEvidence.enough()` before it passes and keeps taking frames
(the prompt shown as met) until it is. Thresholds: docs/LIVENESS.md, "Evidence before a pass".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LiveEvidence:
    """Counts the frames that speak for a live person: judged live by the stage (when it
    enforces), else frames with a usable face; a frame byte-identical to the one before
    counts once."""

    min_frames: int
    min_seconds: float
    frames: int = 0
    first: float | None = None
    last: float | None = None

    def record(self, capture_time: float, live: bool, repeated: bool) -> None:
        """One usable frame: `live` when it counts as evidence, `repeated` when its bytes
        are the previous frame's."""
        if not live or repeated:
            return
        self.frames += 1
        if self.first is None:
            self.first = capture_time
        self.last = capture_time

    @property
    def seconds(self) -> float:
        """Capture time from the first live frame to the last."""
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    def enough(self) -> bool:
        return self.frames >= self.min_frames and self.seconds >= self.min_seconds

    def shortfall(self) -> str:
        """What is missing, for a failure's detail."""
        return (
            f"{self.frames} frames judged live over {self.seconds:.1f} s; a pass needs "
            f"{self.min_frames} over {self.min_seconds:g} s"
        )
