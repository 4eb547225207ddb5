"""The presentation-attack stage's cost: Verify with the stage enforced over Verify with
it off, on the same images, through one service, the two taking turns in blocks.

`python -m bench.presentation_attack` alone, or as part of `make bench`. The service lets
callers lower the mode (FACESVC_PRESENTATION_ATTACK_RELAX_ANYONE), so one process serves
both variants and they see the same machine. Images: NUAA's live 640x480 webcam frames
(what a kiosk sends; every one passes) and the celebs press photos, for which the stage
runs in REPORT (a photo of a photo often scores as an attack: enforced, it would be
refused before the embedding and look cheaper than it is).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

from bench import harness
from facesvc.v1 import face_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACESVC_FACES_DIR", ROOT.parent / "shared" / "faces"))
PAD = FACES.parent / "pad"
LIVE_FRAMES = sorted((PAD / "nuaa" / "ClientRaw").glob("*/*.jpg"))[::70]  # 8 frames, 7 people
LARGEST = pb.FACE_SELECTION_LARGEST


def measure(rounds: int) -> list[tuple[str, float, float, float]]:
    """(label, ratio, p50 with the stage, p50 without) per image set."""
    service = harness.start_service(
        {"FACESVC_PRESENTATION_ATTACK_RELAX_ANYONE": "true", "FACESVC_PRESENTATION_ATTACK_ENROLL": "report"}
    )
    results = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            enroll, verify = harness.raw_call(channel, "Enroll"), harness.raw_call(channel, "Verify")
            sets = {
                "640x480 live webcam frames, ENFORCE": (
                    [p.read_bytes() for p in LIVE_FRAMES],
                    pb.PRESENTATION_ATTACK_MODE_ENFORCE,
                ),
                "press photos (465-2500 px), REPORT": (
                    [(FACES / "celebs" / name).read_bytes() for name in harness.PHOTOS],
                    pb.PRESENTATION_ATTACK_MODE_REPORT,
                ),
            }
            for label, (images, mode) in sets.items():
                stored = pb.EnrollResponse.FromString(
                    enroll(pb.EnrollRequest(image=images[0], face_selection=LARGEST).SerializeToString())
                ).embedding
                payloads = {
                    variant: [
                        pb.VerifyRequest(
                            image=image,
                            stored_embeddings=[stored],
                            face_selection=LARGEST,
                            presentation_attack=m,
                        ).SerializeToString()
                        for image in images
                    ]
                    for variant, m in (("on", mode), ("off", pb.PRESENTATION_ATTACK_MODE_OFF))
                }
                turns = harness.in_blocks(
                    {v: (lambda i, p=p: verify(p[i % len(p)])) for v, p in payloads.items()},
                    block=4,
                    rounds=rounds,
                )
                results.append((label, turns.ratio("on", "off"), turns.p50("on"), turns.p50("off")))
    finally:
        harness.stop_service(service)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16)
    for label, ratio, on, off in measure(parser.parse_args().rounds):
        print(f"{label}: {ratio:.3f} ({1000 * on:.1f} vs {1000 * off:.1f} ms)")


if __name__ == "__main__":
    main()
