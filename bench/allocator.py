"""glibc's malloc arenas against peak memory and throughput (`--only allocator`).

glibc gives a threaded process up to 8 malloc arenas per core; each thread that meets a
locked arena takes another, and memory freed in one arena is not reused by the others, so a
server whose gRPC and engine threads handle 5 MB requests keeps a high-water mark well over
what it holds at any one time. `MALLOC_ARENA_MAX` caps the arenas; fewer arenas mean more
threads sharing a lock.

The same service (`make run`, the presentation-attack stage in report mode as in the full
run) is started once per setting, all side by side, and the settings take turns round by
round on the same load (Enroll at concurrency 4 and 8, Identify of 10,000 plain candidates at
4: the loads that set the full run's peak), so that every setting sees the same machine. The
throughput ratio is the median over rounds of each round's ratio to glibc's default; peak RSS
is each service's VmHWM at the end. The service caps the arenas itself (facesvc.allocator)
unless MALLOC_ARENA_MAX is set, so its own default is started with the variable unset.
"""

from __future__ import annotations

import os
import statistics

import grpc

from bench.harness import (
    CORES,
    Run,
    celebs_photos,
    drive,
    gallery,
    identify_payloads,
    peak_rss_mb,
    raw_call,
    server_pid,
    start_service,
    stop_service,
)
from facesvc.allocator import ARENAS_PER_CORE
from facesvc.v1 import face_service_pb2 as pb

#: MALLOC_ARENA_MAX by setting: glibc's own default on this machine (8 per core), the
#: service's own cap (facesvc.allocator: the variable unset) and a tighter one.
ARENAS = {
    f"{8 * CORES} (glibc's default)": str(8 * CORES),
    f"{ARENAS_PER_CORE * CORES} (facesvc's default: unset, {ARENAS_PER_CORE} per core)": None,
    "1 per core": str(CORES),
}
SETTINGS = tuple(ARENAS)
DEFAULT = SETTINGS[0]
LOADS = (("Enroll", 4), ("Enroll", 8), ("Identify 10,000", 4))


def main(requests: int, rounds: int = 4) -> int:
    photos = list(celebs_photos()[0].values())
    os.environ.pop("MALLOC_ARENA_MAX", None)  # start_service passes this process's environment on
    services = {
        arenas: start_service({} if value is None else {"MALLOC_ARENA_MAX": value})
        for arenas, value in ARENAS.items()
    }
    options = [("grpc.max_send_message_length", 64 << 20)]
    channels = {
        arenas: grpc.insecure_channel(f"127.0.0.1:{s.port}", options=options)
        for arenas, s in services.items()
    }
    runs: dict[tuple[str, str, int], list[Run]] = {}
    try:
        enroll = {arenas: raw_call(channel, "Enroll") for arenas, channel in channels.items()}
        identify = {arenas: raw_call(channel, "Identify") for arenas, channel in channels.items()}
        template = pb.EnrollResponse.FromString(
            enroll[DEFAULT](pb.EnrollRequest(image=photos[0]).SerializeToString())
        ).embedding
        payloads = {"Enroll": [pb.EnrollRequest(image=p).SerializeToString() for p in photos]}
        payloads["Identify 10,000"] = identify_payloads(gallery(template, 10_000, packed=False), photos)
        for arenas in SETTINGS:  # warm: the first calls load lazily
            for payload in payloads["Enroll"][:2]:
                enroll[arenas](payload)
        for round_ in range(rounds):
            # A different setting goes first each round.
            order = SETTINGS[round_ % len(SETTINGS) :] + SETTINGS[: round_ % len(SETTINGS)]
            for arenas in order:
                pid = server_pid(services[arenas])
                for label, concurrency in LOADS:
                    call = enroll[arenas] if label == "Enroll" else identify[arenas]
                    sent = payloads[label]
                    run = drive(
                        label, concurrency, requests * concurrency,
                        lambda i, c=call, p=sent: c(p[i % len(p)]), pid,
                    )  # fmt: skip
                    if run.errors:
                        raise RuntimeError(f"MALLOC_ARENA_MAX={arenas}: {run.errors} errors in {label}")
                    runs.setdefault((arenas, label, concurrency), []).append(run)
        peaks = {arenas: max(peak_rss_mb(server_pid(s)).values()) for arenas, s in services.items()}
    finally:
        for channel in channels.values():
            channel.close()
        for service in services.values():
            stop_service(service)
    print(f"# malloc arenas: peak memory against throughput (bench/allocator.py), {rounds} rounds\n")
    header = " | ".join(f"{label} c{c} req/s (ratio)" for label, c in LOADS)
    print(f"| MALLOC_ARENA_MAX | peak RSS MB | {header} | Enroll c4 CPU ms/req |")
    print("|---|---|" + "---|" * len(LOADS) + "---|")
    for arenas in SETTINGS:
        cells = []
        for label, concurrency in LOADS:
            mine, base = runs[(arenas, label, concurrency)], runs[(DEFAULT, label, concurrency)]
            ratios = [a.rps / b.rps for a, b in zip(mine, base, strict=True)]
            cells.append(
                f"{statistics.median(r.rps for r in mine):.1f} "
                f"({statistics.median(ratios):.2f}x, {min(ratios):.2f}-{max(ratios):.2f})"
            )
        cpu = statistics.median(1000 * r.cpu_per_request for r in runs[(arenas, "Enroll", 4)])
        print(f"| {arenas} | {peaks[arenas]:.0f} | {' | '.join(cells)} | {cpu:.0f} |")
    print()
    return 0
