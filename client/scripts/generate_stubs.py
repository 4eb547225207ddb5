"""Regenerate (or, with --check, verify) the SDK's stubs from the one contract in ../protos.

The stubs land in facesvc_client/_proto/ as plain modules. protoc writes them under
facesvc/v1/ and the gRPC module imports `facesvc.v1.face_service_pb2`, the server's
package; that one import is rewritten to the SDK's copy so the SDK never needs the
server installed. The protobuf file name (facesvc/v1/face_service.proto) is unchanged,
so the server's and the SDK's modules share one descriptor when both are imported.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

CLIENT = Path(__file__).resolve().parents[1]
PROTOS = CLIENT.parent / "protos"
PROTO = "facesvc/v1/face_service.proto"
OUTPUT = CLIENT / "facesvc_client" / "_proto"
GENERATED = ("face_service_pb2.py", "face_service_pb2.pyi", "face_service_pb2_grpc.py")
SERVER_IMPORT = "from facesvc.v1 import face_service_pb2 as"
SDK_IMPORT = "from facesvc_client._proto import face_service_pb2 as"


def generate(into: Path) -> None:
    """Run protoc on the contract and write the SDK's three modules into `into`."""
    with tempfile.TemporaryDirectory() as scratch:
        well_known = resources.files("grpc_tools") / "_proto"
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"-I{well_known}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                str(PROTOS / PROTO),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTOS / PROTO} (exit {status})")
        produced = Path(scratch) / "facesvc" / "v1"
        for name in GENERATED:
            text = (produced / name).read_text()
            if name.endswith("_grpc.py"):
                if SERVER_IMPORT not in text:
                    raise SystemExit(f"{name}: expected import not found; update {Path(__file__).name}")
                text = text.replace(SERVER_IMPORT, SDK_IMPORT)
            (into / name).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed stubs are stale")
    check = parser.parse_args(argv).check
    if not check:
        generate(OUTPUT)
        return 0
    with tempfile.TemporaryDirectory() as fresh:
        generate(Path(fresh))
        stale = [
            name
            for name in GENERATED
            if not (OUTPUT / name).exists()
            or not filecmp.cmp(Path(fresh) / name, OUTPUT / name, shallow=False)
        ]
    for name in stale:
        print(f"client/facesvc_client/_proto/{name} is stale: run 'make proto'", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
