"""`make bench`: facesvc measured against its own engine and against DeepFace's REST API.

One run on this machine, every figure side by side (bench/full.py):
- the service started as a user starts it (`make run`), cold start to SERVING;
- the engine alone, in this process, on the same images: the baseline;
- Enroll, Verify and Identify (1, 1,000 and 10,000 candidates) at concurrency 1, 2, 4
  and 8, on real photos from ../shared/faces/celebs (465-2500 px) and on the same
  photos scaled to a 640 px camera frame;
- DeepFace's own REST API (deepface.api under gunicorn, one worker per core) with the
  same model and detector (Dlib + dlib) against facesvc configured the same way;
- Identify with 10,000 sealed templates against 10,000 plain ones (bench/sealed.py);
- Enroll over HTTP (JSON and the original design's form) against gRPC (bench/http.py);
- a replica stopped and killed under load, through the SDK and behind HAProxy
  (bench/failover.py): failed calls, and p99 in the second after against steady p99.
Writes bench/RESULTS.md. Requests are serialised before the clock starts and responses
are not parsed inside it, so the load generator's own cost stays out of the figures.
This module only reads the command line and hands over to the piece asked for.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench import accuracy, allocator, enroll_cost, failover, full, sealed
from bench import http as http_bench
from bench import identify as identify_bench
from bench import identify_faces as identify_faces_bench
from bench import liveness as liveness_bench
from bench import migration as migration_bench
from bench.harness import CELEBS, PHOTOS, ROOT, WIDE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="facesvc benchmark")
    parser.add_argument("--requests", type=int, default=16, help="requests per thread for each load")
    parser.add_argument("--skip-deepface", action="store_true", help="leave out DeepFace's REST API")
    parser.add_argument(
        "--output", type=Path, default=None, help="default bench/RESULTS.md (bench/SEALED.md)"
    )
    parser.add_argument(
        "--only",
        choices=[
            "sealed",
            "accuracy",
            "liveness",
            "http",
            "identify",
            "identify_faces",
            "failover",
            "migration",
            "enroll_cost",
            "allocator",
        ],
        help="run one piece alone: sealed (Identify with sealed templates, bench/SEALED.md), accuracy "
        "(24 MP photo, fused model), liveness (concurrent sessions), http (Enroll over HTTP against "
        "gRPC), identify (10,000 packed and a 3-frame burst against Verify), identify_faces (a 20-face "
        "photo against 20 Identify calls), failover (a replica stopped and killed under load, "
        "bench/failover.py), migration (Verify with a next model, memory of two models), enroll_cost (Enroll's stages, "
        "against DeepFace's REST API side by side, several photos, templates per identity) or allocator (malloc arenas: peak RSS against "
        "throughput, bench/allocator.py), printed; "
        "RESULTS.md is left as is",
    )
    args = parser.parse_args(argv)
    if args.only == "liveness":
        return liveness_bench.main([])
    if args.only == "failover":
        return failover.main([])
    if args.only == "sealed":
        return sealed.main(args.output or ROOT / "bench" / "SEALED.md", args.requests)
    # The celebs photos are press photos, which the presentation-attack stage often takes
    # for prints: the service and the engine below run it in REPORT (the same work as an
    # enforced pass); its own cost is measured apart (bench/presentation_attack.py).
    os.environ["FACESVC_PRESENTATION_ATTACK"] = "report"
    if args.only == "http":
        return http_bench.main(args.requests)
    if args.only == "identify":
        return identify_bench.main(args.requests)
    if args.only == "identify_faces":
        return identify_faces_bench.main(args.requests)
    if args.only == "migration":
        return migration_bench.main(args.requests)
    if args.only == "enroll_cost":
        return enroll_cost.main(args.requests)
    if args.only == "allocator":
        return allocator.main(args.requests)
    if args.only == "accuracy":
        photos = {name: (CELEBS / name).read_bytes() for name in PHOTOS}
        accuracy.run(
            lambda text="": print(text, flush=True),
            lambda name, value, goal, ok: print(f"| {name} | {value:.2f} | {goal} | {ok} |", flush=True),
            photos,
            WIDE,
            args.requests,
        )
        return 0
    return full.run(args.output or ROOT / "bench" / "RESULTS.md", args.requests, args.skip_deepface)


if __name__ == "__main__":
    sys.exit(main())
