"""The /kiosk page in headless Chromium (Debian's `chromium`), its camera a fake device
fed from a real clip of ../shared/liveness: enroll, identify, and a liveness session
that ends PASSED for a person who blinks and FAILED for a still picture.

Chromium is driven over its DevTools protocol with the websockets client (no
chromedriver). The fake camera plays a .y4m file, made here into a temporary folder from
the clip (never kept), in a loop at the clip's frame rate.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.sync.client import connect

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.http.server import HttpServer
from tests import images
from tests.conftest import ROOT, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BLINK_CLIP = ROOT.parent / "shared" / "liveness" / "blink" / "mahie_test_1.avi"  # 30 fps
#: The clip's first 100 frames (two labelled blinks, at frames 5 and 56), looped by Chromium
#: at half speed: never more than about 6 s without a blink.
CLIP_FRAMES = 200

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")


def write_y4m(path: Path, frames: list[Any], fps: int) -> None:
    """Frames (BGR) as a YUV4MPEG2 4:2:0 file, the format Chromium's fake camera plays."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


@pytest.fixture(scope="module")
def camera_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("kiosk-camera")
    frames, clip_fps = images.blinking_person(BLINK_CLIP, CLIP_FRAMES, before=12, after=12)
    fps = round(clip_fps)
    files = {"blinking": folder / "blinking.y4m", "still": folder / "still.y4m"}
    # At half its pace: a blink then spans twice the time, so a page that gets ~8 frames a
    # second through two busy cores still sees the closed eyes (the person blinks slowly).
    write_y4m(files["blinking"], frames, fps // 2)
    write_y4m(files["still"], [np.ascontiguousarray(frames[60])] * fps, fps)
    return files


@pytest.fixture(scope="module")
def kiosk_url(engine: FaceEngine) -> Iterator[str]:
    settings = Settings(
        port=0,
        host="127.0.0.1",
        http_port=-1,
        liveness_challenges=("blink",),
        liveness_allow_replayable_prompts=True,
        liveness_prompts=2,
        liveness_prompt_seconds=12,
        # Two cores shared with the browser: the page's pace may dip below the default 5 fps.
        liveness_min_frame_rate=2,
    )
    face_server = start_server(settings, engine.sharing_models(settings))
    http = HttpServer(settings, face_server)
    http.start()
    yield f"http://127.0.0.1:{http.port}/kiosk"
    http.stop().wait(10)
    face_server.stop(None).wait()


class Browser:
    """One headless Chromium page, over the DevTools protocol."""

    def __init__(self, camera: Path, profile: Path) -> None:
        assert CHROMIUM is not None
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not active.is_file() or not active.read_text().strip():
            assert time.monotonic() < deadline and self.process.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = active.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self._next_id = 0

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                return dict(message["result"])

    def evaluate(self, expression: str) -> Any:
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(
            f"{expression} stayed empty; the page's log: {self.evaluate('$(`log`).textContent')}"
        )

    def close(self) -> None:
        self._socket.close()
        self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def open_kiosk(kiosk_url: str, tmp_path: Path) -> Iterator[Any]:
    browsers: list[Browser] = []

    def open_with(camera: Path) -> Browser:
        browser = Browser(camera, tmp_path / f"profile-{len(browsers)}")
        browsers.append(browser)
        browser.command("Page.navigate", url=kiosk_url)
        assert browser.wait_for("document.body && document.body.dataset.camera", 30) == "ready"
        browser.wait_for("document.getElementById('camera').videoWidth > 0", 30)
        return browser

    yield open_with
    for browser in browsers:
        browser.close()


def test_a_person_who_blinks_enrolls_is_identified_and_passes_the_liveness_session(
    open_kiosk: Any, camera_files: dict[str, Path]
) -> None:
    kiosk = open_kiosk(camera_files["blinking"])
    # Enroll runs a liveness session by default and stores the templates it chose.
    kiosk.evaluate(
        "document.getElementById('name').value = 'mahie'; document.getElementById('enroll').click()"
    )
    enrolled = kiosk.wait_for("document.getElementById('outcome').textContent", 90)
    assert enrolled.startswith("Enrolled mahie from a live session"), enrolled
    assert 1 <= int(kiosk.evaluate("document.body.dataset.templates")) <= 3
    kiosk.evaluate(
        "document.getElementById('outcome').textContent = ''; document.getElementById('identify').click()"
    )
    assert kiosk.wait_for("document.getElementById('outcome').textContent", 30).startswith("Hello mahie")
    kiosk.evaluate("document.getElementById('liveness').click()")
    result = kiosk.wait_for("document.body.dataset.result", 90)
    reason = kiosk.evaluate("document.body.dataset.reason")
    frames = kiosk.evaluate("document.body.dataset.frames")
    assert result == "PASSED", (
        reason,
        frames,
        kiosk.evaluate("document.getElementById('outcome').textContent"),
    )
    # The session's identify result named the enrolled person.
    assert "mahie" in kiosk.evaluate("document.getElementById('outcome').textContent")


def test_a_still_picture_fails_the_liveness_session(open_kiosk: Any, camera_files: dict[str, Path]) -> None:
    kiosk = open_kiosk(camera_files["still"])
    # Enrolling runs the same session by default: a still picture is not enrolled...
    kiosk.evaluate("document.getElementById('enroll').click()")
    refused = kiosk.wait_for("document.getElementById('outcome').textContent", 90)
    assert refused.startswith("Not enrolled: NO_MOTION") or refused.startswith("Not enrolled: PROMPT_TIMEOUT")
    assert kiosk.evaluate("document.body.dataset.templates") is None
    # ...unless the operator unticks it, for one photo.
    kiosk.evaluate(
        "document.getElementById('live-enroll').checked = false; document.getElementById('enroll').click()"
    )
    assert kiosk.wait_for("document.body.dataset.templates", 30) == "1"
    assert kiosk.evaluate("document.getElementById('outcome').textContent").startswith(
        "Enrolled visitor from one photo"
    )
    kiosk.evaluate("document.getElementById('liveness').click()")
    assert kiosk.wait_for("document.body.dataset.result", 90) == "FAILED"
    assert kiosk.evaluate("document.body.dataset.reason") in {"NO_MOTION", "PROMPT_TIMEOUT"}


def test_the_docs_page_renders_the_openapi_document_offline(
    kiosk_url: str, camera_files: dict[str, Path], tmp_path: Path
) -> None:
    browser = Browser(camera_files["still"], tmp_path / "profile-docs")
    try:
        browser.command("Page.navigate", url=kiosk_url.replace("/kiosk", "/docs"))
        assert browser.wait_for("document.body && document.body.dataset.rendered", 30) == "true"
        text = browser.evaluate("document.body.innerText")
        for path in (
            "/v1/faces:enroll",
            "/v1/faces:identify",
            "/v1/liveness",
            "/enroll",
            "/verify",
            "/health",
        ):
            assert path in text
        assert "facesvc.v1.EnrollRequest" in text
    finally:
        browser.close()
