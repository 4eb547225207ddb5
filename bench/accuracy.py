"""`make bench` piece for issue 12: what a 24 MP phone photo costs, and the fused model's
throughput beside SFace's. Run it alone with `make bench BENCH_ARGS="--only accuracy"`.

The 24 MP photo is made here, in memory, by upscaling a shared celebs photo to
5712x4284 (a recent iPhone's default) and encoding it as a baseline JPEG; no image
is written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import grpc
import numpy as np

from bench.harness import drive, frame_640, in_blocks, start_service, stop_service
from facesvc.v1 import face_service_pb2 as pb

PHONE = (5712, 4284)

Out = Callable[[str], None]
Target = Callable[[str, float, str, bool], None]


def phone_photo(data: bytes) -> bytes:
    """A shared photo, cropped to 4:3 and upscaled to a 24 MP phone camera's size."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    height, width = pixels.shape[:2]
    crop_width = min(width, round(height * 4 / 3))
    left = (width - crop_width) // 2
    pixels = pixels[:, left : left + crop_width]
    big = cv2.resize(pixels, PHONE, interpolation=cv2.INTER_CUBIC)
    return bytes(cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())


def run(out: Out, target: Target, photos: dict[str, bytes], wide: str, per_thread: int) -> None:
    """The section; `photos` are bench.harness's celebs photos, `wide` the one upscaled."""

    phone = phone_photo(photos[wide])
    frames = [frame_640(data) for data in photos.values()]
    out("## A 24 MP phone photo, and the fused model (SFace+Dlib) beside SFace")
    out("")
    out(
        f"{wide} upscaled in memory to {PHONE[0]}x{PHONE[1]} (baseline JPEG, {len(phone) / 1e6:.1f} MB), "
        "sent to Verify; throughput on the 640 px frames at concurrency 4."
    )
    out("")
    out("| model | call | concurrency | req/s | p50 | p95 | p99 | CPU ms/req | errors |")
    out("|---|---|---|---|---|---|---|---|---|")
    throughput: dict[str, float] = {}
    phone_ms = frame_ms = ratio = 0.0
    accepted = False
    for model in ("SFace", "SFace+Dlib"):
        service = start_service({"FACESVC_MODEL": model})
        try:
            with grpc.insecure_channel(
                f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
            ) as channel:
                enroll = channel.unary_unary("/facesvc.v1.FaceService/Enroll")
                verify = channel.unary_unary("/facesvc.v1.FaceService/Verify")
                stored = pb.EnrollResponse.FromString(
                    enroll(pb.EnrollRequest(image=photos[wide]).SerializeToString())
                ).embedding
                payloads = [
                    pb.VerifyRequest(image=f, stored_embeddings=[stored]).SerializeToString() for f in frames
                ]

                def call(
                    i: int, verify: Callable[[bytes], bytes] = verify, payloads: list[bytes] = payloads
                ) -> None:
                    verify(payloads[i % len(payloads)])

                measured = drive("Verify (640 px)", 4, per_thread * 4, call, service.process.pid)
                out(f"| {model} " + measured.row())
                throughput[model] = measured.rps
                if model == "SFace":
                    sizes = {
                        "24 MP": pb.VerifyRequest(
                            image=phone, stored_embeddings=[stored]
                        ).SerializeToString(),
                        "640 px": payloads[list(photos).index(wide)],
                    }
                    accepted = pb.VerifyResponse.FromString(verify(sizes["24 MP"])).match
                    turns = in_blocks(
                        {size: (lambda _i, p=p, v=verify: v(p)) for size, p in sizes.items()},
                        block=4,
                        rounds=per_thread,
                    )
                    phone_ms, frame_ms = 1000 * turns.p50("24 MP"), 1000 * turns.p50("640 px")
                    ratio = turns.ratio("24 MP", "640 px")
        finally:
            stop_service(service)
    out("")
    target(
        f"Verify latency, 24 MP phone photo ({phone_ms:.0f} ms, matched its own 2500 px photo: {accepted}) "
        f"/ its 640 px copy ({frame_ms:.0f} ms)",
        ratio,
        "(report)",
        accepted,
    )
    target(
        "Verify throughput at concurrency 4, SFace+Dlib / SFace (640 px)",
        throughput["SFace+Dlib"] / throughput["SFace"],
        "(report)",
        True,
    )
