"""The model licence table of docs/LICENCES.md and facesvc/models/NOTICE, generated from
facesvc.engine.runtime.licences (tests/test_licences.py checks both are current).

python -m facesvc.tools.licence_table          # print the Markdown table
python -m facesvc.tools.licence_table --write  # replace it in docs/LICENCES.md and NOTICE
"""

from __future__ import annotations

import sys
from pathlib import Path

from facesvc.engine.runtime import licences

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "LICENCES.md"
NOTICE = ROOT / "facesvc" / "models" / "NOTICE"
START, END = "<!-- licences:start -->", "<!-- licences:end -->"
NOTICE_START, NOTICE_END = "-- models:start --", "-- models:end --"


def _entries() -> tuple[licences.ModelLicence, ...]:
    return (*licences.MODELS, licences.DEEPFACE_ZOO)


def table() -> str:
    rows = [
        "| file | source | version | SHA-256 | licence of the weights | training data and its terms "
        "| commercial use | loaded by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in _entries():
        digest = f"`{model.sha256}`" if model.sha256 else "not pinned"
        verdict = "yes" if model.commercial_use else "**no**"
        rows.append(
            f"| `{model.file_name}` | {model.source} | {model.version} | {digest} | {model.licence} "
            f"| {model.training_data} | {verdict} | {model.loaded_by} |"
        )
    return "\n".join(rows)


def notice_list() -> str:
    blocks = []
    for model in _entries():
        blocks.append(
            "\n".join(
                (
                    model.file_name,
                    f"  source: {model.source}",
                    f"  version: {model.version}",
                    f"  SHA-256: {model.sha256 or 'not pinned'}",
                    f"  licence: {model.licence}",
                    f"  training data: {model.training_data}",
                    f"  commercial use: {'yes' if model.commercial_use else 'NO'}",
                    f"  loaded by: {model.loaded_by}",
                )
            )
        )
    return "\n\n".join(blocks)


def _replace(text: str, start: str, end: str, body: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def replaced_doc(text: str) -> str:
    return _replace(text, START, END, table())


def replaced_notice(text: str) -> str:
    return _replace(text, NOTICE_START, NOTICE_END, notice_list())


def main(argv: list[str]) -> int:
    if "--write" in argv:
        DOC.write_text(replaced_doc(DOC.read_text()))
        NOTICE.write_text(replaced_notice(NOTICE.read_text()))
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
