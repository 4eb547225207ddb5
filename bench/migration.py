"""The cost of a model migration (`--only migration`, docs/MODELS.md "Migrating"): Verify
without a next model against the same engine's networks with one (SFace -> SFace+Dlib),
a Verify that returns an upgrade against Verify plus the next model's embedding alone,
and the memory of both models against each loaded alone (three child processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from bench.harness import CELEBS, CORES
from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.types import StoredEmbedding

NEXT = "SFace+Dlib"
# Resident memory from /proc (ru_maxrss would carry the parent's high-water mark over the fork).
_MEMORY = """
import json, sys
from facesvc.config import Settings
from facesvc.engine import FaceEngine
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
before = rss()
FaceEngine(Settings(port=0, model=sys.argv[1], model_next=sys.argv[2], presentation_attack="off")).load()
print(json.dumps((rss() - before) / 1024))
"""


def _memory_mb(model: str, next_model: str = "") -> float:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY, model, next_model], capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def _median_ms(call: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main(requests: int) -> int:
    settings = Settings(
        port=0, model_next=NEXT, presentation_attack="report", model_upgrade_requires_live=False
    )
    migrating = FaceEngine(settings)
    migrating.load()
    plain = migrating.sharing_models(settings.model_copy(update={"model_next": ""}))
    assert migrating.migration is not None and migrating.migration.next is not None
    reference, probe = (CELEBS / "img1.jpg").read_bytes(), (CELEBS / "img2.jpg").read_bytes()
    stored = [StoredEmbedding(plain.enroll(reference).face.embedding, "SFace")]
    assert migrating.verify(probe, stored).upgrade is not None
    face = migrating.analyse(probe)
    assert face.pixels is not None and face.source is not None
    next_model, pixels, source = migrating.migration.next, face.pixels, face.source
    rows: dict[str, list[float]] = {"plain": [], "migrating": [], "next_embedding": [], "sface_embedding": []}
    for _ in range(max(requests // 4, 1)):  # taking turns, 4 calls each per round
        rows["plain"].append(_median_ms(lambda: plain.verify(probe, stored), 4))
        rows["migrating"].append(_median_ms(lambda: migrating.verify(probe, stored), 4))
        rows["next_embedding"].append(_median_ms(lambda: next_model.embed(pixels, source), 4))
    plain_ms, upgrade_ms, next_ms = (
        float(np.median(rows[k])) for k in ("plain", "migrating", "next_embedding")
    )
    print(f"Verify (celebs img2 vs img1, {requests} calls each, {CORES} cores, taking turns):")
    print("| call | median ms |")
    print("|---|---|")
    print(f"| Verify, no next model | {plain_ms:.1f} |")
    print(f"| Verify returning an upgrade (next {NEXT}) | {upgrade_ms:.1f} |")
    print(f"| the next model's embedding alone | {next_ms:.1f} |")
    bound = plain_ms + next_ms
    print(f"upgrade / (Verify + next embedding) = {upgrade_ms / bound:.3f} (target <= 1.10)")
    sface, fused, both = _memory_mb("SFace"), _memory_mb(NEXT), _memory_mb("SFace", NEXT)
    print(f"memory after load (resident growth, MB): SFace {sface:.0f}, {NEXT} {fused:.0f}, both {both:.0f}")
    print(f"both / (sum alone) = {both / (sface + fused):.3f} (target <= 1.00)")
    return 0
