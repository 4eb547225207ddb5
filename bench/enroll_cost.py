"""What Enroll costs (`--only enroll_cost`, issue 25 part 4), every figure side by side:

1. In process, the bench's press photos: each stage's share of an Enroll (the engine's stage
   clock), and the presentation-attack stage's report-mode signals with the frame scaled
   whole (as before) against only the part around the face (attack_signals.normalise).
2. Through gRPC at concurrency 4: the default service's Enroll against DeepFace's REST
   `/represent` (bench/deepface_rest.py: Dlib + dlib, the model whose weights ship
   offline), in alternating rounds, so both see the same machine; the ratio of their
   requests/s, median over rounds.
3. A three-photo Enroll (`more_images`) against three one-photo Enrolls, taking turns.
4. Identify over 1,000 identities with 1, 3 and 5 templates each (packed, ids repeated)
   against 1,000, 3,000 and 5,000 one-template identities: linear in templates means the
   two columns agree.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import cv2
import grpc
import numpy as np

from bench.deepface_rest import data_uri, deepface_rest, rest_post
from bench.harness import (
    celebs_photos,
    drive,
    gallery,
    in_blocks,
    raw_call,
    server_pid,
    start_service,
    stop_service,
)
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.pipeline.attack_signals import normalise
from facesvc.v1 import face_service_pb2 as pb

#: Each round: facesvc's requests (per thread) and DeepFace's (per thread: ~1.5 s each).
ROUNDS, OURS_PER_THREAD, THEIRS_PER_THREAD = 3, 12, 2
CONCURRENCY = 4


def stages(photos: list[bytes], rounds: int) -> None:
    times: dict[str, list[float]] = defaultdict(list)
    engine = FaceEngine(
        Settings(port=0, presentation_attack="report"),
        observer=lambda stage, seconds: times[stage].append(1000 * seconds),
    )
    engine.load()
    for image in photos:
        engine.enroll(image)
    times.clear()
    totals = []
    for _ in range(rounds):
        for image in photos:
            started = time.perf_counter()
            engine.enroll(image)
            totals.append(1000 * (time.perf_counter() - started))
    count = len(totals)
    print(
        f"In process, {len(photos)} press photos x {rounds}: Enroll median {statistics.median(totals):.1f} ms\n"
    )
    print("| stage | ms per Enroll (mean) |\n|---|---|")
    for stage, values in times.items():
        print(f"| {stage} | {sum(values) / count:.2f} |")
    attack = engine._attack
    assert attack is not None
    decoded = [engine.analyse(image) for image in photos]
    frames = [cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR) for image in photos]
    whole, cropped = [], []
    for _ in range(rounds):
        for frame, face in zip(frames, decoded, strict=True):
            box = face.detection.box
            for reach, sink in ((None, whole), (attack._reach, cropped)):
                started = time.perf_counter()
                small, small_box = normalise(frame, box, reach)
                for signal in attack._signals:
                    signal.score(small, small_box)
                sink.append(1000 * (time.perf_counter() - started))
    print(
        f"\nReport-mode signals after MiniFASNet (median ms): frame scaled whole {statistics.median(whole):.2f}, "
        f"only around the face {statistics.median(cropped):.2f} "
        f"({statistics.median(cropped) / statistics.median(whole):.2f}x; the same values: "
        "tests/test_presentation_attack.py)\n"
    )


def against_deepface(photos: list[bytes]) -> None:
    service = start_service({"FACESVC_PRESENTATION_ATTACK": "report"})
    pid = server_pid(service)
    ratios, ours_rps, theirs_rps = [], [], []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel, deepface_rest() as port:
            enroll = raw_call(channel, "Enroll")
            payloads = [pb.EnrollRequest(image=p).SerializeToString() for p in photos]
            bodies = [
                json.dumps({"img": data_uri(p), "model_name": "Dlib", "detector_backend": "dlib"}).encode()
                for p in photos
            ]
            rest_post(port, "/represent", bodies[0])  # DeepFace loads its model lazily
            for payload in payloads:
                enroll(payload)
            for round_ in range(ROUNDS):
                ours = drive(
                    "Enroll", CONCURRENCY, CONCURRENCY * OURS_PER_THREAD,
                    lambda i: enroll(payloads[i % len(payloads)]), pid,
                )  # fmt: skip
                theirs = drive(
                    "/represent", CONCURRENCY, CONCURRENCY * THEIRS_PER_THREAD,
                    lambda i, r=round_: rest_post(port, "/represent", bodies[(i + r) % len(bodies)]), None,
                )  # fmt: skip
                if ours.errors or theirs.errors:
                    raise RuntimeError(f"errors: facesvc {ours.errors}, DeepFace {theirs.errors}")
                ours_rps.append(ours.rps)
                theirs_rps.append(theirs.rps)
                ratios.append(ours.rps / theirs.rps)
    finally:
        stop_service(service)
    print(
        f"| round | facesvc Enroll req/s (c{CONCURRENCY}) | DeepFace /represent req/s | ratio |\n|---|---|---|---|"
    )
    for i, (a, b, r) in enumerate(zip(ours_rps, theirs_rps, ratios, strict=True)):
        print(f"| {i + 1} | {a:.1f} | {b:.2f} | {r:.1f}x |")
    print(
        f"\n**Default Enroll / DeepFace /represent at c{CONCURRENCY}: {statistics.median(ratios):.1f}x** "
        f"(median of {ROUNDS} rounds, range {min(ratios):.1f}-{max(ratios):.1f}; goal >= 40)\n"
    )


def several_and_gallery(photos: list[bytes], requests: int) -> None:
    service = start_service({"FACESVC_PRESENTATION_ATTACK": "report"})
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            enroll, identify = raw_call(channel, "Enroll"), raw_call(channel, "Identify")
            # Three photos of one person: the celebs set's first three of img1's subject are
            # not known here, so one photo three times (the same work: each is analysed).
            three = pb.EnrollRequest(image=photos[0], more_images=[photos[0], photos[0]]).SerializeToString()
            one = pb.EnrollRequest(image=photos[0]).SerializeToString()

            def singles(_: int) -> None:
                for _ in range(3):
                    enroll(one)

            turns = in_blocks(
                {"3 photos": lambda _: enroll(three), "3 x 1": singles}, block=3, rounds=requests
            )
            print(
                f"Enroll of 3 photos in one call: {1000 * turns.p50('3 photos'):.0f} ms p50, "
                f"3 one-photo Enrolls {1000 * turns.p50('3 x 1'):.0f} ms: "
                f"**{turns.ratio('3 photos', '3 x 1'):.2f}x** (goal: about 1; median over {requests} rounds)\n"
            )
            template = pb.EnrollResponse.FromString(enroll(one)).embedding
            calls: dict[str, Callable[[int], object]] = {}
            for k in (1, 3, 5):
                for label, ids in ((f"1,000 x {k} templates", 1000), (f"{1000 * k:,} x 1", 1000 * k)):
                    request = gallery(template, 1000 * k, packed=True, identities=ids)
                    request.image = photos[1]
                    payload = request.SerializeToString()
                    calls[label] = lambda _, payload=payload: identify(payload)
            turns = in_blocks(calls, block=3, rounds=requests)
            print("| gallery | Identify p50 ms | same entries, one template each |\n|---|---|---|")
            for k in (1, 3, 5):
                label, flat = f"1,000 x {k} templates", f"{1000 * k:,} x 1"
                print(
                    f"| {label} | {1000 * turns.p50(label):.1f} | {1000 * turns.p50(flat):.1f} "
                    f"({turns.ratio(label, flat):.2f}x) |"
                )
            print()
    finally:
        stop_service(service)


def main(requests: int) -> int:
    photos = list(celebs_photos()[0].values())
    print("# Enroll's cost (bench/enroll_cost.py)\n")
    stages(photos, max(4, requests // 2))
    against_deepface(photos)
    several_and_gallery(photos, max(6, requests // 2))
    return 0
