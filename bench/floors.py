"""`python -m bench.floors`: what the libraries cost on this machine, below any facesvc
code (the floors under the two targets `make bench` misses; see bench.floors.floors)."""

from __future__ import annotations

import sys

import cv2
import numpy as np

from bench import minimal_server
from bench.harness import CELEBS, WIDE, first_scan_only, frame_640, median_ms


def floors() -> list[tuple[str, float]]:
    """What the libraries cost here below any facesvc code, medians of 25 calls: libjpeg
    decoding img4.jpg (progressive) at 1/4 scale, its DC scan alone, the same pixels as a
    baseline JPEG and as a 640 px frame; a bare grpcio round trip back to back and after
    40 ms of idle (what each facesvc call pays before any handler runs)."""
    photo = (CELEBS / WIDE).read_bytes()
    pixels = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    baseline = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    variants = {
        f"{WIDE} as shot (progressive), 1/4 scale": (photo, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE}, its DC scan only, 1/4 scale": (first_scan_only(photo), cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} re-encoded as baseline, 1/4 scale": (baseline, cv2.IMREAD_REDUCED_COLOR_4),
        f"{WIDE} as a 640 px frame, full scale": (frame_640(photo), cv2.IMREAD_COLOR),
    }
    result = [
        (f"decode {name}", median_ms(lambda d=data, f=flags: cv2.imdecode(np.frombuffer(d, np.uint8), f)))
        for name, (data, flags) in variants.items()
    ]
    with minimal_server.running(engine=False) as channel:
        echo = channel.unary_unary(minimal_server.ECHO)
        payload = bytes(50_000)  # about a 640 px JPEG
        echo(payload)
        result.append(("bare grpcio round trip, 50 kB, back to back", median_ms(lambda: echo(payload))))
        result.append(
            ("bare grpcio round trip, 50 kB, after 40 ms idle", median_ms(lambda: echo(payload), idle=0.04))
        )
    return result


# ---- DeepFace's REST API ----------------------------------------------------------------


def main() -> int:
    print("| floor | median ms |\n|---|---|")
    for name, ms in floors():
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
