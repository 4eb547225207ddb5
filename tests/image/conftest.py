"""The image tests' measured figures (start-up, size, memory, stop), printed at the end."""

from __future__ import annotations

from typing import Any

#: Lines the tests add; shown in pytest's terminal summary whatever the capture mode.
FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("image figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
