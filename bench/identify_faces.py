"""IdentifyFaces against single Identify calls (`--only identify_faces`, printed): a 20-face
photo (a 5x4 contact sheet of real lfw-devtrain photos, built in memory at run time) against
1,000 packed identities, and the same 20 faces as 20 Identify calls, one per tile cut from
the sheet (what a caller without IdentifyFaces sends). Calls take turns in blocks, as the
other ratios (bench/harness.Turns); the tiles are scaled so every face is above Identify's
80 px floor and every single call answers."""

from __future__ import annotations

import random
from collections.abc import Callable

import cv2
import grpc
import numpy as np

from bench.harness import CELEBS, gallery, in_blocks, raw_call, start_service, stop_service
from facesvc.tools import evaluate_group
from facesvc.tools.evaluate import SHARED
from facesvc.v1 import face_service_pb2 as pb

FACES = 20
IDENTITIES = 1_000
GOAL = 1.1


def twenty_face_photo() -> evaluate_group.Sheet:
    """20 lfw-devtrain photos of different people, scaled so their faces are ~125 px (LFW's
    own are 70-110 px: under Identify's 80 px floor for some)."""
    people = evaluate_group.plan()
    chosen = sorted(people.enrol)
    random.Random(evaluate_group.SEED).shuffle(chosen)
    photos = [(SHARED / "lfw-devtrain" / people.enrol[p], p, True) for p in chosen[:FACES]]
    return evaluate_group.contact_sheet(photos, [1.25 * evaluate_group.LFW_FACE_PX] * FACES, columns=5)


def tiles_of(sheet: evaluate_group.Sheet) -> list[bytes]:
    pixels = cv2.imdecode(np.frombuffer(sheet.image, np.uint8), cv2.IMREAD_COLOR)
    return [
        cv2.imencode(
            ".jpg", pixels[t.y : t.y + t.height, t.x : t.x + t.width], [cv2.IMWRITE_JPEG_QUALITY, 92]
        )[1].tobytes()
        for t in sheet.tiles
    ]


def run(out: Callable[[str], None], rounds: int) -> list[tuple[str, float, str, bool]]:
    """Prints the table; returns (name, ratio, goal, met) rows."""
    sheet = twenty_face_photo()
    crops = tiles_of(sheet)
    service = start_service({})
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{service.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            enroll, identify, identify_faces = (
                raw_call(channel, m) for m in ("Enroll", "Identify", "IdentifyFaces")
            )
            template = pb.EnrollResponse.FromString(
                enroll(pb.EnrollRequest(image=(CELEBS / "img1.jpg").read_bytes()).SerializeToString())
            ).embedding
            packed = gallery(template, IDENTITIES, packed=True).packed_candidates
            singles = [
                pb.IdentifyRequest(
                    image=crop, packed_candidates=packed, face_selection=pb.FACE_SELECTION_LARGEST
                ).SerializeToString()
                for crop in crops
            ]
            whole = pb.IdentifyFacesRequest(image=sheet.image, packed_candidates=packed).SerializeToString()
            answer = pb.IdentifyFacesResponse.FromString(identify_faces(whole))
            judged = sum(1 for face in answer.faces if not face.refusal)
            assert answer.face_count >= FACES and judged >= FACES, answer.face_count

            def twenty_identify(_: int) -> None:
                for payload in singles:
                    identify(payload)

            calls: dict[str, Callable[[int], object]] = {
                f"{FACES} x Identify": twenty_identify,
                "IdentifyFaces": lambda _: identify_faces(whole),
            }
            turns = in_blocks(calls, block=2, rounds=rounds)
            ratio = turns.ratio("IdentifyFaces", f"{FACES} x Identify")
            met = ratio <= GOAL
            out("\n| call | p50 ms | ratio | goal | met |\n|---|---|---|---|---|")
            out(
                f"| {FACES} x Identify ({IDENTITIES:,} packed, one tile each) | "
                f"{1000 * turns.p50(f'{FACES} x Identify'):.1f} | | | |"
            )
            out(
                f"| IdentifyFaces, {FACES}-face photo ({answer.face_count} faces found, {judged} judged) | "
                f"{1000 * turns.p50('IdentifyFaces'):.1f} | {ratio:.2f} | <= {GOAL} x | {'yes' if met else 'NO'} |"
            )
            out("")
    finally:
        stop_service(service)
    return [(f"IdentifyFaces {FACES} faces / {FACES} x Identify", ratio, f"<= {GOAL}", met)]


def main(rounds: int) -> int:
    targets = run(lambda text: print(text, flush=True), rounds)
    return 0 if all(met for *_, met in targets) else 1
