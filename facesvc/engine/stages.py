"""The pipeline's stage clock: each stage's time to an observer, and the caller's
departure checked at every stage boundary (moved out of engine.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from facesvc.errors import RequestAbandonedError

#: The pipeline stages analyse() reports to a StageObserver, in order.
STAGES = ("decode", "detect", "select", "quality", "presentation_attack", "embed")


class StageObserver(Protocol):
    """Told how long each stage of one analyse() took, on the thread that ran it; the rpc
    layer turns this into metrics, so the engine stays free of any transport."""

    def __call__(self, stage: str, seconds: float) -> None: ...


#: Asked between stages whether the caller has gone (cancelled, or its deadline passed).
StopCheck = Callable[[], bool]


class StageClock:
    """Laps of one analyse() call; a stage that raises reports nothing. Each lap is a
    stage boundary: when `should_stop` says the caller has gone, the work ends there."""

    __slots__ = ("_last", "_observer", "_should_stop")

    def __init__(self, observer: StageObserver | None, should_stop: StopCheck | None) -> None:
        self._observer = observer
        self._should_stop = should_stop
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self._observer is not None:
            now = time.perf_counter()
            self._observer(stage, now - self._last)
            self._last = now
        if self._should_stop is not None and self._should_stop():
            raise RequestAbandonedError(f"the caller went away; stopped after {stage}")
