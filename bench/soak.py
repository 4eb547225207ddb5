"""`make soak`: sustained load at saturation against the service as `make run` starts it,
with its memory sampled; reports growth. Minutes, not part of `make test`.

    make soak SOAK_ARGS="--minutes 10 --concurrency 8"
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import grpc

from bench.harness import (
    CELEBS,
    PHOTOS,
    frame_640,
    peak_rss_mb,
    raw_call,
    server_pid,
    start_service,
    stop_service,
)
from facesvc.v1 import face_service_pb2 as pb


def rss_mb(pid: int) -> float:
    total = 0.0
    for child in peak_rss_mb(pid):  # the serving Python processes
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("SOAK.md"))
    args = parser.parse_args(argv)

    service = start_service({})
    pid = server_pid(service)
    photos = [(CELEBS / name).read_bytes() for name in PHOTOS]
    images = photos + [frame_640(p) for p in photos]
    stop = threading.Event()
    counts = {"ok": 0, "refused": 0, "other": 0}
    lock = threading.Lock()
    samples: list[tuple[float, float]] = []
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        enroll, verify, identify = (raw_call(channel, m) for m in ("Enroll", "Verify", "Identify"))
        stored = pb.EnrollResponse.FromString(
            enroll(pb.EnrollRequest(image=photos[0]).SerializeToString())
        ).embedding
        calls = []
        for image in images:
            calls.append((enroll, pb.EnrollRequest(image=image).SerializeToString()))
            calls.append(
                (verify, pb.VerifyRequest(image=image, stored_embeddings=[stored]).SerializeToString())
            )
            gallery = [pb.Candidate(id=f"c{i}", embedding=stored) for i in range(100)]
            calls.append((identify, pb.IdentifyRequest(image=image, candidates=gallery).SerializeToString()))

        def worker(offset: int) -> None:
            i = offset
            while not stop.is_set():
                call, payload = calls[i % len(calls)]
                i += 1
                try:
                    call(payload, timeout=60)
                    outcome = "ok"
                except grpc.RpcError as error:
                    outcome = "refused" if error.code() == grpc.StatusCode.INVALID_ARGUMENT else "other"
                with lock:
                    counts[outcome] += 1

        threads = [threading.Thread(target=worker, args=(n * 7,)) for n in range(args.concurrency)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        deadline = started + args.minutes * 60
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - started, rss_mb(pid)))
            print(
                f"{samples[-1][0]:7.0f} s  RSS {samples[-1][1]:7.1f} MB  calls {sum(counts.values())}",
                flush=True,
            )
            time.sleep(min(args.sample_seconds, max(0.0, deadline - time.monotonic())))
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_mb(pid)))
    stop_service(service)

    first_minute = [rss for t, rss in samples if t <= 60] or [samples[0][1]]
    last_minute = [rss for t, rss in samples if t >= elapsed - 60]
    baseline, end = statistics.median(first_minute), statistics.median(last_minute)
    report = [
        "# Soak test",
        "",
        f"`make soak` ({args.minutes:g} min, concurrency {args.concurrency}, Enroll/Verify/Identify-100 on "
        f"{len(images)} photos and frames), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- calls: {sum(counts.values())} ({counts['ok']} OK, {counts['refused']} refused with a reason, "
        f"{counts['other']} other), {sum(counts.values()) / elapsed:.1f}/s",
        f"- RSS of the serving processes: median {baseline:.1f} MB in the first minute, {end:.1f} MB in the last; "
        f"growth {100 * (end - baseline) / baseline:+.1f}%; peak {max(r for _, r in samples):.1f} MB",
        "",
        "| seconds | RSS MB |",
        "|---|---|",
        *[f"| {t:.0f} | {r:.1f} |" for t, r in samples],
    ]
    args.output.write_text("\n".join(report) + "\n")
    print("\n".join(report[:6]))
    return 0 if counts["other"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
