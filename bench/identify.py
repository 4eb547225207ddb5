"""Identify's open-set rule and bursts against Verify (`--only identify`, printed):
Identify of a 10,000-identity packed gallery at the default rule, and a 3-frame burst
(more_images) against three Verify calls, on the celebs photos and on 640 px frames.
Calls take turns in blocks of 4, as the other ratios (bench/harness.Turns)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from bench.harness import (
    CELEBS,
    PHOTOS,
    Turns,
    frame_640,
    gallery,
    in_blocks,
    raw_call,
    start_service,
    stop_service,
)
from facesvc.v1 import face_service_pb2 as pb


def run(out: Callable[[str], None], rounds: int) -> list[tuple[str, float, str, bool]]:
    """Prints the table; returns (name, ratio, goal, met) rows."""
    photos = [(CELEBS / name).read_bytes() for name in PHOTOS]
    frames = [frame_640(data) for data in photos]
    targets = []
    service = start_service({})
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            enroll, verify, identify = (raw_call(channel, m) for m in ("Enroll", "Verify", "Identify"))
            template = pb.EnrollResponse.FromString(
                enroll(pb.EnrollRequest(image=photos[0]).SerializeToString())
            ).embedding
            packed = gallery(template, 10_000, packed=True)
            out("\n| images | call | p50 ms | ratio | goal | met |\n|---|---|---|---|---|---|")
            for set_name, images in (("photos", photos), ("640px", frames)):
                turns = _turns(images, template, packed, verify, identify, rounds)
                for label, base, goal, limit in (
                    ("Verify", "Verify", "", 0.0),
                    ("Identify 10,000 packed", "Verify", "<= 1.2 x Verify", 1.2),
                    ("3 x Verify", "Verify", "", 0.0),
                    ("Identify 10,000 packed, 3-frame burst", "3 x Verify", "<= 1.0 x (3 x Verify)", 1.0),
                ):
                    ratio = turns.ratio(label, base)
                    met = not limit or ratio <= limit
                    out(
                        f"| {set_name} | {label} | {1000 * turns.p50(label):.1f} | {ratio:.2f} vs {base} "
                        f"| {goal} | {'yes' if met else 'NO'} |"
                    )
                    if limit:
                        targets.append((f"{label} / {base} ({set_name})", ratio, goal, met))
    finally:
        stop_service(service)
    return targets


def _turns(
    images: list[bytes],
    template: pb.Embedding,
    packed: pb.IdentifyRequest,
    verify: Callable[[bytes], bytes],
    identify: Callable[[bytes], bytes],
    rounds: int,
) -> Turns:
    """Verify, Identify 10,000 packed, the same with a 3-frame burst, and three Verify calls
    back to back, taking turns."""
    count = len(images)
    verify_payloads = [
        pb.VerifyRequest(image=image, stored_embeddings=[template]).SerializeToString() for image in images
    ]
    single, burst = [], []
    for i in range(count):
        message = pb.IdentifyRequest()
        message.CopyFrom(packed)
        message.image = images[i]
        single.append(message.SerializeToString())
        message.more_images.extend([images[(i + 1) % count], images[(i + 2) % count]])
        burst.append(message.SerializeToString())
    answer = pb.IdentifyResponse.FromString(identify(burst[0]))
    assert answer.frames == 3 and answer.gallery_identities == 10_000, answer

    def three_verifies(i: int) -> None:
        for k in range(3):
            verify(verify_payloads[(i + k) % count])

    return in_blocks(
        {
            "Verify": lambda i: verify(verify_payloads[i % count]),
            "Identify 10,000 packed": lambda i: identify(single[i % count]),
            "Identify 10,000 packed, 3-frame burst": lambda i: identify(burst[i % count]),
            "3 x Verify": three_verifies,
        },
        block=4,
        rounds=rounds,
    )


def main(rounds: int) -> int:
    targets = run(lambda text: print(text, flush=True), rounds)
    return 0 if all(met for *_, met in targets) else 1
