"""Real photos from ../shared/faces, transformed the way broken cameras and attackers do."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facesvc.tools.calibrate_liveness import true_runs
from tests.conftest import CELEBS


def load(name: str) -> np.ndarray:
    pixels = cv2.imread(str(CELEBS / name))
    assert pixels is not None, name
    return pixels


def jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def encode(pixels: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, pixels)
    assert ok
    return data.tobytes()


def darkened(name: str, factor: float) -> bytes:
    return jpeg((load(name).astype(np.float32) * factor).astype(np.uint8))


def blurred(name: str, sigma: float, factor: float = 1.0) -> bytes:
    pixels = cv2.GaussianBlur(load(name), (0, 0), sigma)
    return jpeg((pixels.astype(np.float32) * factor).astype(np.uint8))


def shrunk(name: str, width: int) -> bytes:
    pixels = load(name)
    height = round(pixels.shape[0] * width / pixels.shape[1])
    return jpeg(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but carries almost no data: a
    decompression bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def exif_rotated(name: str) -> bytes:
    """The photo stored sideways (pixels turned 90 degrees) with EXIF orientation 6 saying
    'turn me clockwise', as a phone held in portrait writes it."""
    image = Image.open(CELEBS / name)
    sideways = image.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def blink_runs(path: Path) -> list[tuple[int, int]]:
    """[start, end) of each labelled eye-closed run."""
    labels = [line.strip() == "1" for line in path.with_suffix(".eyes_closed.csv").read_text().split()]
    return true_runs(labels)


def clip_frames(clip: Path, wanted: set[int]) -> tuple[dict[int, np.ndarray], float]:
    """The frames of `clip` at the indices `wanted` (those the clip has), and its frame rate."""
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames: dict[int, np.ndarray] = {}
    index, last = 0, max(wanted, default=-1)
    while index <= last:
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            frames[index] = frame
        index += 1
    capture.release()
    return frames, fps


def blinking_person(
    clip: Path, limit: int, before: int = 6, after: int = 6
) -> tuple[list[np.ndarray], float]:
    """A person who blinks every second or so, made of real frames: the clip's frames around
    each labelled blink (`<clip>.eyes_closed.csv`), `before` and `after` it, one blink after
    another, up to `limit` frames; and the clip's frame rate. A kiosk's camera that plays
    the clip straight through shows a blink only every 4-8 s, which leaves a blink that one
    eye estimator reads and another misses to decide a 10 s prompt."""
    wanted = [
        i for start, end in blink_runs(clip) if start >= before for i in range(start - before, end + after)
    ]
    frames, fps = clip_frames(clip, set(wanted[:limit]))
    chosen = [frames[i] for i in wanted[:limit] if i in frames]
    assert len(chosen) == min(limit, len(wanted)), clip
    return chosen, fps
