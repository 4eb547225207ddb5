"""docs/CONFIGURATION.md's table, generated from Settings' field docstrings.

python -m facesvc.tools.settings_table          # print it
python -m facesvc.tools.settings_table --write  # replace it in docs/CONFIGURATION.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from facesvc.config import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, tuple):  # comma-separated in the environment
            default = ",".join(map(str, default))
        shown = "unset" if default is None or default == "" else f"`{default}`"
        description = " ".join((field.description or "").split())
        rows.append(f"| `FACESVC_{name.upper()}` | {shown} | {description} |")
    return "\n".join(rows)


def replaced(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        PAGE.write_text(replaced(PAGE.read_text()))
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
