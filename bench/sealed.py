"""Identify with 10,000 sealed templates against 10,000 plain ones (`--only sealed`,
bench/SEALED.md)."""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from bench.harness import (
    CORES,
    Report,
    celebs_photos,
    gallery,
    in_blocks,
    raw_call,
    start_service,
    stop_service,
)
from facesvc.engine.templates import KeyRing
from facesvc.v1 import face_service_pb2 as pb


def sealed_identify(
    photos: dict[str, bytes], frames: dict[str, bytes], rounds: int
) -> list[tuple[str, float, str, bool]]:
    """Identify with 10,000 sealed templates (one sealed gallery made by Reseal with ids; a
    SealedGallery of 10,000 blobs; sealed Candidate messages) against the same 10,000 rows
    plain and packed, on one service in mode `both`, taking turns in blocks of 4 as the
    other ratios do. The rows are sealed here with the service's own key ring, as Enroll or
    Reseal would have sealed them."""
    targets = []
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder) / "template-keys"
        keys.write_text(KeyRing.generate_line("bench") + "\n")
        keys.chmod(0o600)
        ring = KeyRing.load(keys)
        service = start_service({"FACESVC_TEMPLATE_KEYS_FILE": str(keys), "FACESVC_TEMPLATES": "both"})
        try:
            with grpc.insecure_channel(
                f"127.0.0.1:{service.port}",
                options=[
                    ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.max_receive_message_length", 64 << 20),
                ],
            ) as channel:
                enroll, verify, identify = (raw_call(channel, m) for m in ("Enroll", "Verify", "Identify"))
                sealed = pb.EnrollResponse.FromString(
                    enroll(pb.EnrollRequest(image=photos["img1.jpg"]).SerializeToString())
                ).embedding
                values = ring.open(sealed.sealed).values
                plain = pb.Embedding(values=values.tolist(), model=sealed.model)
                packed = gallery(plain, 10_000, packed=True)
                rows = np.frombuffer(packed.packed_candidates.values, "<f4").reshape(10_000, -1)
                blobs = [ring.seal(row, sealed.model) for row in rows]
                ids = list(packed.packed_candidates.ids)
                reseal = raw_call(channel, "Reseal")
                whole = pb.ResealResponse.FromString(
                    reseal(
                        pb.ResealRequest(
                            templates=[pb.Embedding(sealed=b, model=sealed.model) for b in blobs], ids=ids
                        ).SerializeToString()
                    )
                ).packed_gallery
                bases = {
                    "Verify": None,
                    "plain packed": packed,
                    "sealed gallery": pb.IdentifyRequest(sealed_candidates=pb.SealedGallery(packed=[whole])),
                    "sealed": pb.IdentifyRequest(
                        sealed_candidates=pb.SealedGallery(ids=ids, templates=blobs)
                    ),
                    "sealed Candidates": pb.IdentifyRequest(
                        candidates=[
                            pb.Candidate(
                                id=i, embedding=pb.Embedding(sealed=b, model=sealed.model, key_id="bench")
                            )
                            for i, b in zip(ids, blobs, strict=True)
                        ]
                    ),
                }
                for set_name, images in (("photos", list(photos.values())), ("640px", list(frames.values()))):
                    payloads: dict[str, list[bytes]] = {}
                    for label, base in bases.items():
                        payloads[label] = []
                        for image in images:
                            if base is None:
                                message = pb.VerifyRequest(image=image, stored_embeddings=[sealed])
                            else:
                                message = pb.IdentifyRequest()
                                message.CopyFrom(base)
                                message.image = image
                            payloads[label].append(message.SerializeToString())
                    for label, data in payloads.items():  # each answers, and alike
                        call = verify if label == "Verify" else identify
                        call(data[0])
                    answers = {
                        label: pb.IdentifyResponse.FromString(identify(payloads[label][0])).matches[0].id
                        for label in ("plain packed", "sealed gallery", "sealed", "sealed Candidates")
                    }
                    assert len(set(answers.values())) == 1, answers
                    turns = in_blocks(
                        {
                            label: (
                                lambda i, c=(verify if label == "Verify" else identify), p=data: c(
                                    p[i % len(p)]
                                )
                            )
                            for label, data in payloads.items()
                        },
                        block=4,
                        rounds=rounds,
                    )
                    plain_ms = 1000 * turns.p50("plain packed")
                    for label, goal in (
                        ("sealed gallery", "<= 1.2"),
                        ("sealed", "<= 1.2"),
                        ("sealed Candidates", "(report)"),
                    ):
                        ratio = turns.ratio(label, "plain packed")
                        targets.append(
                            (
                                f"Identify 10,000 {label} ({1000 * turns.p50(label):.0f} ms) / 10,000 plain packed "
                                f"({plain_ms:.0f} ms), same photos ({set_name})",
                                ratio,
                                goal,
                                ratio <= 1.2 or goal == "(report)",
                            )
                        )
                    targets.append(
                        (
                            f"Identify 10,000 plain packed / Verify of one sealed template ({set_name}; "
                            f"Verify {1000 * turns.p50('Verify'):.0f} ms)",
                            turns.ratio("plain packed", "Verify"),
                            "(report)",
                            True,
                        )
                    )
        finally:
            stop_service(service)
    return targets


def main(output: Path, requests: int) -> int:
    """`--only sealed`: the table of bench/SEALED.md."""
    per_thread = requests
    out = Report()
    photos, frames = celebs_photos()
    out("# facesvc benchmark: sealed templates")
    out()
    out(
        f"Command: `make bench BENCH_ARGS='--only sealed'`. Machine: {CORES} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Concurrency 1, the variants taking turns "
        f"in blocks of 4 calls for {per_thread} rounds; each ratio the median of the per-round ratios."
    )
    out()
    out("| figure | measured | target | met |")
    out("|---|---|---|---|")
    for name, value, goal, ok in sealed_identify(photos, frames, per_thread):
        out(f"| {name} | {value:.2f} | {goal} | {'yes' if ok else 'NO'} |")
    out.write(output)
    return 0
