"""Print pyproject.toml's pinned dependencies minus DeepFace's stack: the slim image's list.

The default pipeline (SFace + YuNet through OpenCV's DNN module) imports none of the
packages left out; facesvc imports each of them only when a setting asks for it, and
then says which image to use when it is missing (facesvc.engine.runtime.optional).

    python slim_requirements.py pyproject.toml > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib

#: What only DeepFace's models and detectors, dlib and MTCNN need (werkzeug: DeepFace's
#: image utilities import it).
LEFT_OUT = frozenset(
    {"deepface", "tensorflow", "tf-keras", "werkzeug", "dlib-bin", "face-recognition-models", "mtcnn"}
)


def name_of(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def slim(dependencies: list[str]) -> list[str]:
    names = {name_of(d) for d in dependencies}
    missing = LEFT_OUT - names
    if missing:
        # pyproject changed: this list must follow it, or the slim image keeps a heavy package.
        raise SystemExit(f"slim_requirements.py: not in pyproject's dependencies: {sorted(missing)}")
    return [d for d in dependencies if name_of(d) not in LEFT_OUT]


def main() -> int:
    with open(sys.argv[1], "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    print("\n".join(slim(dependencies)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
