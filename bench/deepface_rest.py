"""DeepFace's own REST API under gunicorn: the baseline `make bench` measures facesvc against."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import CORES, free_port
from facesvc.engine.runtime import weights


@contextlib.contextmanager
def deepface_rest() -> Iterator[int]:
    """deepface.api under gunicorn, one worker per core, Dlib + dlib preloaded. Its weights
    are the very files face-recognition-models ships (DeepFace would download them)."""

    home = Path(tempfile.mkdtemp(prefix="bench-deepface-"))
    weights_dir = home / ".deepface" / "weights"
    weights_dir.mkdir(parents=True)
    for name in (weights.DLIB_RESNET_FILE, weights.DLIB_SHAPE_5_FILE):
        (weights_dir / name).symlink_to(weights.dlib_model(name))
    port = free_port()
    env = {
        **os.environ,
        "DEEPFACE_HOME": str(home),
        "DEEPFACE_FACE_RECOGNITION_MODELS": "Dlib",
        "DEEPFACE_FACE_DETECTION_MODELS": "dlib",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [
            str(gunicorn),
            "--workers",
            str(CORES),
            "--timeout",
            "600",
            "--bind",
            f"127.0.0.1:{port}",
            "deepface.api.src.app:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("DeepFace REST API did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def rest_post(port: int, path: str, body: bytes) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {payload[:200]!r}")


def data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()
