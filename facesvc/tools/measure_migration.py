"""Measure a model migration on lfw-devtrain (issue 28; docs/MODELS.md "Migrating"):
employees = people with at least two photos, enrolled from their first with the current
model; each second photo is a check-in (Identify against every employee); then the gallery
is mixed (a migrated employee holds only the next model's template) and the further photos
(mated) and single-photo people (strangers) measure FNIR and FPIR, against the same probes
on the current-model-only gallery. Runs the engine in process with the importer settings.

    python -m facesvc.tools.measure_migration [--strangers 400] [--sizes 100,804]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import random
from collections import defaultdict
from pathlib import Path

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.matching.gallery import Candidate, Gallery
from facesvc.engine.types import StoredEmbedding
from facesvc.errors import FaceServiceError

LFW = Path(__file__).resolve().parents[2].parent / "shared" / "lfw-devtrain"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="SFace")
    parser.add_argument("--next", default="SFace+Dlib")
    parser.add_argument("--strangers", type=int, default=400)
    parser.add_argument("--sizes", default="100,0")
    args = parser.parse_args(argv)
    settings = Settings(
        port=0,
        model=args.model,
        model_next=args.next,
        presentation_attack="off",
        model_upgrade_requires_live=False,
        min_face_size=64,
        face_selection="central",
    )
    engine = FaceEngine(settings)
    engine.load()
    people: dict[str, list[str]] = defaultdict(list)
    with (LFW / "IDENTITIES.tsv").open() as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if row:
                people[row[1]].append(row[0])
    employees = {p: sorted(f) for p, f in people.items() if len(f) >= 2}
    strangers = sorted(p for p, f in people.items() if len(f) == 1)
    random.Random(28).shuffle(strangers)
    strangers = strangers[: args.strangers]
    enrolled: dict[str, StoredEmbedding] = {}
    for person, files in sorted(employees.items()):
        with contextlib.suppress(FaceServiceError):
            enrolled[person] = StoredEmbedding(
                engine.enroll((LFW / files[0]).read_bytes()).face.embedding, args.model
            )
    gallery = Gallery.of([Candidate(p, e) for p, e in enrolled.items()])
    found = upgraded = wrong = refused = 0
    upgrades: dict[str, StoredEmbedding] = {}
    for person in enrolled:
        try:
            result = engine.identify((LFW / employees[person][1]).read_bytes(), gallery)
        except FaceServiceError:
            refused += 1
            continue
        top = result.matches[0]
        if top.match and top.id == person:
            found += 1
        if result.upgrade is not None:
            if result.upgrade.id != person:
                wrong += 1
            else:
                upgraded += top.id == person
                upgrades[person] = StoredEmbedding(result.upgrade.values, result.upgrade.model)
    print(f"employees {len(employees)}, enrolled {len(enrolled)}, check-ins refused {refused}")
    print(
        f"check-in: found {found}, upgraded {upgraded} ({upgraded / max(found, 1):.1%} of found), wrong-id upgrades {wrong}"
    )
    mixed = {p: upgrades.get(p, e) for p, e in enrolled.items()}
    mated = [(p, f) for p in enrolled for f in employees[p][2:]]
    sizes = [int(s) or len(enrolled) for s in args.sizes.split(",")]
    for size in sizes:
        chosen = set(random.Random(size).sample(sorted(enrolled), min(size, len(enrolled))))
        for name, templates in (("current only", enrolled), ("mixed", mixed)):
            g = Gallery.of([Candidate(p, templates[p]) for p in sorted(chosen)])
            misses = hits = false_pos = n_mated = n_str = 0
            for person, photo in [m for m in mated if m[0] in chosen]:
                try:
                    result = engine.identify((LFW / photo).read_bytes(), g)
                except FaceServiceError:
                    continue
                n_mated += 1
                top = result.matches[0]
                hits += top.match and top.id == person
                wrong += result.upgrade is not None and result.upgrade.id != person
            misses = n_mated - hits
            for person in strangers:
                try:
                    result = engine.identify((LFW / people[person][0]).read_bytes(), g)
                except FaceServiceError:
                    continue
                n_str += 1
                false_pos += result.matches[0].match
                wrong += result.upgrade is not None
            print(
                f"size {len(chosen)} {name}: FNIR {misses}/{n_mated} = {misses / max(n_mated, 1):.2%}, "
                f"FPIR {false_pos}/{n_str} = {false_pos / max(n_str, 1):.2%}, wrong-id upgrades so far {wrong}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
