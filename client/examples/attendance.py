"""Attendance with facesvc: enroll employees into SQLite, then mark who a camera frame shows.

The seed design verified each frame against every employee in turn: N calls, N face
detections and N embeddings per frame. Here each frame costs one Identify call: the
service detects and embeds the face once and compares it with the whole gallery.

    python attendance.py --db office.db enroll alice ../../../shared/faces/celebs/img1.jpg
    python attendance.py --db office.db mark frame-0001.jpg frame-0002.jpg
    python attendance.py --db office.db mark --burst 3 f1.jpg f2.jpg f3.jpg   # one decision
    python attendance.py --db office.db mark --group class.jpg   # everyone in a group photo
    python attendance.py --db office.db report
    python attendance.py --db office.db reseal     # after the service's key was rotated

Templates are stored sealed: the service (with FACESVC_TEMPLATE_KEYS_FILE) returns each
embedding as an AES-256-GCM blob only it can open, so a stolen copy of this database
holds no usable face data. enroll refuses to store a plain embedding unless given
--allow-plain. Each template is stored as JSON with its model name and key id
(SealedTemplate.to_json); `reseal` moves every row to the service's current key in
batches, without any photo.

Model upgrades need no re-enrolment: while the service runs a next model
(FACESVC_MODEL_NEXT), each confident check-in returns the next model's template of the
face (IdentifyResult.upgrade), which `mark` stores beside the employee's old ones; once a
person holds a new template, their old-model templates are dropped. The gallery holds
every model the service serves (Health.models), each compared by its own model; `report`
ends with the share of employees migrated. Templates of a model the service no longer
serves are skipped (with a warning); sending them would be refused as
EMBEDDING_MODEL_MISMATCH.

Identify's open-set rule keeps visitors from being clocked in: the service's threshold
follows the number of employees so that a stranger is taken for one of them at most at
the published rate (--fpir, default the service's 1%). A kiosk that grabs a burst of 2-5
frames of the person in front of it (--burst) sends them in one call, decided together:
fewer employees are turned away at the same stranger rate (docs/IDENTIFY.md).

A group photo (--group: a class, a meeting room) takes one IdentifyFaces call: every face
is identified at once, each employee given to at most one face of the photo, and a face
the service cannot judge (too small, cut off, ...) is reported with its reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from facesvc_client import (
    Candidate,
    Embedding,
    FaceClient,
    FaceServiceError,
    ImageRejectedError,
    PackedGallery,
    SealedGallery,
    SealedTemplate,
    Template,
    template_from_json,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    id          TEXT PRIMARY KEY,
    enrolled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id          INTEGER PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    model       TEXT NOT NULL,   -- repeated from the JSON so a query can pick one model
    key_id      TEXT NOT NULL,   -- the key that sealed it ('' for a plain embedding)
    embedding   TEXT NOT NULL,   -- SealedTemplate.to_json(): {"model", "sealed", "key_id"}
    source      TEXT NOT NULL,   -- the photo it came from
    quality     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attendance (
    employee_id TEXT NOT NULL REFERENCES employees(id),
    day         TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    frame       TEXT NOT NULL,
    confidence  REAL NOT NULL,
    PRIMARY KEY (employee_id, day)
);
"""


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(SCHEMA)
    return db


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def enroll(
    db: sqlite3.Connection,
    client: FaceClient,
    employee: str,
    photos: Sequence[Path],
    allow_plain: bool = False,
) -> int:
    """Enroll one employee from all its photos in one call (several templates, chosen by
    the service for quality and diversity); a refused photo is reported and left out."""
    stored = 0
    remaining = list(photos)
    outcome: dict[Path, dict[str, object]] = {}
    result = None
    while remaining and result is None:
        try:
            result = client.enroll(remaining[0], more_images=remaining[1:5])
        except ImageRejectedError as error:
            bad = remaining[int(error.metadata.get("image_index", "0"))]
            outcome[bad] = {"status": "rejected", "reason": error.reason, "detail": error.message}
            remaining.remove(bad)
    for template in result.templates if result is not None else ():
        photo = remaining[template.image_index]
        embedding = template.embedding
        if not isinstance(embedding, SealedTemplate) and not allow_plain:
            raise SystemExit(
                "the service returned a plain embedding: give it a template key "
                "(FACESVC_TEMPLATE_KEYS_FILE) so that this database holds sealed templates only, "
                "or pass --allow-plain"
            )
        with db:
            db.execute(
                "INSERT OR IGNORE INTO employees (id, enrolled_at) VALUES (?, ?)",
                (employee, now().isoformat()),
            )
            db.execute(
                "INSERT INTO templates (employee_id, model, key_id, embedding, source, quality) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    employee,
                    embedding.model,
                    embedding.key_id if isinstance(embedding, SealedTemplate) else "",
                    embedding.to_json(),
                    str(photo),
                    template.quality.score,
                ),
            )
        stored += 1
        outcome[photo] = {"status": "enrolled", "quality": template.quality.score}
    for photo in photos:  # in the order given; a usable photo the service did not keep says so
        emit(photo=str(photo), employee=employee, **outcome.get(photo, {"status": "not_kept"}))
    return stored


def gallery(db: sqlite3.Connection, model: str, *also: str) -> list[Candidate]:
    """Every template made by `model` or the models in `also` (a migration's next and
    previous); an employee with several templates appears several times."""
    models = [model, *(m for m in also if m)]
    marks = ", ".join("?" * len(models))
    candidates = [
        Candidate(employee, template_from_json(text))
        for employee, text in db.execute(
            f"SELECT employee_id, embedding FROM templates WHERE model IN ({marks})", models
        )
    ]
    (stale,) = db.execute(f"SELECT COUNT(*) FROM templates WHERE model NOT IN ({marks})", models).fetchone()
    if stale:
        print(
            f"warning: {stale} template(s) of another model skipped; re-enroll them with {model}",
            file=sys.stderr,
        )
    return candidates


def served_models(client: FaceClient) -> tuple[str, ...]:
    """The models the service compares: its current one, then a migration's next and previous."""
    health = client.health()
    roles = health.models
    return (health.model, roles.next, roles.previous) if roles else (health.model,)


def store_upgrade(
    db: sqlite3.Connection, employee: str, template: Template, frame: Path, quality: float
) -> None:
    """Keep a check-in's upgraded template and drop the employee's templates of other models."""
    with db:
        db.execute(
            "INSERT INTO templates (employee_id, model, key_id, embedding, source, quality) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                employee,
                template.model,
                template.key_id if isinstance(template, SealedTemplate) else "",
                template.to_json(),
                f"upgrade:{frame}",
                quality,
            ),
        )
        db.execute("DELETE FROM templates WHERE employee_id = ? AND model != ?", (employee, template.model))


def mark(
    db: sqlite3.Connection,
    client: FaceClient,
    frames: Sequence[Path],
    burst: int = 1,
    fpir: float | None = None,
) -> dict[str, int]:
    """One Identify call per `burst` consecutive frames (frames of one person, decided
    together); the first sighting of an employee each day is recorded. With sealed
    templates the gallery is sealed once as a whole (seal_gallery), which the service
    opens with one decryption per call instead of one per template; plain ones are packed
    once (PackedGallery)."""
    candidates = _candidates(db, client)
    counts: dict[str, int] = {}
    for start in range(0, len(frames), burst):
        frame, *more = frames[start : start + burst]
        extra: dict[str, object] = {"frames": 1 + len(more)} if more else {}
        try:
            result = client.identify(frame, candidates, top_k=1, fpir=fpir, more_images=more)
        except ImageRejectedError as error:  # no face, two people, a print, too close...: next frame
            status, extra = "rejected", {**extra, "reason": error.reason}
        else:
            best = result.best
            if best is None:
                nearest = result.matches[0]
                status, extra = "unknown", {**extra, "nearest": nearest.id, "confidence": nearest.confidence}
            else:
                status = "marked" if _record(db, best.id, frame, best.confidence) else "already_marked"
                extra = {**extra, "employee": best.id, "confidence": best.confidence}
                if result.upgrade is not None and result.upgrade.id == best.id:
                    store_upgrade(db, best.id, result.upgrade.template, frame, result.quality.score)
                    extra = {**extra, "upgraded_to": result.upgrade.template.model}
        counts[status] = counts.get(status, 0) + 1
        emit(frame=str(frame), status=status, **extra)
    return counts


def _candidates(
    db: sqlite3.Connection, client: FaceClient
) -> list[Candidate] | SealedGallery | PackedGallery:
    templates = gallery(db, *served_models(client))
    if not templates:
        raise SystemExit("nobody is enrolled yet: run the enroll command first")
    if len({c.embedding.model for c in templates}) > 1:
        return templates  # a migration's mixed gallery goes as Candidates (each row names its model)
    if all(isinstance(c.embedding, SealedTemplate) for c in templates):
        return client.seal_gallery(templates)
    if all(isinstance(c.embedding, Embedding) for c in templates):
        return PackedGallery.of(templates)  # packed once, not on every call
    return templates


def _record(db: sqlite3.Connection, employee: str, frame: Path, confidence: float) -> bool:
    """The first sighting of `employee` today; False when already marked."""
    seen = now()
    with db:
        inserted: int = db.execute(
            "INSERT OR IGNORE INTO attendance (employee_id, day, first_seen, frame, confidence) "
            "VALUES (?, ?, ?, ?, ?)",
            (employee, seen.date().isoformat(), seen.isoformat(), str(frame), confidence),
        ).rowcount
    return bool(inserted)


def mark_group(
    db: sqlite3.Connection, client: FaceClient, photos: Sequence[Path], fpir: float | None = None
) -> dict[str, int]:
    """One IdentifyFaces call per group photo: everyone found is marked present."""
    candidates = _candidates(db, client)
    counts: dict[str, int] = {}
    for photo in photos:
        try:
            result = client.identify_faces(photo, candidates, fpir=fpir)
        except ImageRejectedError as error:  # no face at all, an unreadable file
            counts["rejected"] = counts.get("rejected", 0) + 1
            emit(frame=str(photo), status="rejected", reason=error.reason)
            continue
        for face in result.faces:
            box = face.face.box
            extra: dict[str, object] = {"box": [box.x, box.y, box.width, box.height]}
            best = face.best
            if face.refusal is not None:
                status, extra = "refused", {**extra, "reason": face.refusal.value}
            elif best is None:
                status = "unknown"
            else:
                status = "marked" if _record(db, best.id, photo, best.confidence) else "already_marked"
                extra = {**extra, "employee": best.id, "confidence": best.confidence}
            counts[status] = counts.get(status, 0) + 1
            emit(frame=str(photo), status=status, **extra)
        if result.faces_not_returned:
            emit(frame=str(photo), status="faces_not_returned", faces=result.faces_not_returned)
    return counts


def reseal(db: sqlite3.Connection, client: FaceClient, batch: int = 1000) -> int:
    """Move every template not under the service's current key (or still plain) to it,
    `batch` rows per Reseal call; each batch commits on its own, so it can be rerun."""
    current = client.health().template_key_id
    rows = db.execute(
        "SELECT id, embedding FROM templates WHERE key_id != ? ORDER BY id", (current,)
    ).fetchall()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        resealed = client.reseal([template_from_json(text) for _, text in chunk])
        with db:
            db.executemany(
                "UPDATE templates SET embedding = ?, key_id = ? WHERE id = ?",
                [(t.to_json(), t.key_id, row_id) for (row_id, _), t in zip(chunk, resealed, strict=True)],
            )
    emit(status="resealed", templates=len(rows), key_id=current)
    return len(rows)


def report(db: sqlite3.Connection, day: str, newest: str = "") -> list[dict[str, object]]:
    """Who was present on `day`; with `newest` (a migration's next model, else the current
    one), a last line with the share of employees holding a template of it."""
    rows = db.execute(
        "SELECT e.id, a.first_seen, a.confidence FROM employees e "
        "LEFT JOIN attendance a ON a.employee_id = e.id AND a.day = ? ORDER BY e.id",
        (day,),
    )
    result: list[dict[str, object]] = [
        {
            "employee": employee,
            "present": first_seen is not None,
            "first_seen": first_seen,
            "confidence": confidence,
        }
        for employee, first_seen, confidence in rows
    ]
    for row in result:
        emit(**row)
    if newest:
        (employees,) = db.execute("SELECT COUNT(*) FROM employees").fetchone()
        (migrated,) = db.execute(
            "SELECT COUNT(DISTINCT employee_id) FROM templates WHERE model = ?", (newest,)
        ).fetchone()
        share = migrated / employees if employees else 0.0
        emit(status="migration", model=newest, migrated=migrated, employees=employees, share=round(share, 4))
    return result


def emit(**fields: object) -> None:
    """One JSON line per event, for logs and for `jq`."""
    print(json.dumps(fields), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--db", type=Path, default=Path("attendance.db"), help="SQLite file (created if missing)"
    )
    parser.add_argument("--target", default="localhost:50051", help="facesvc address")
    commands = parser.add_subparsers(dest="command", required=True)
    enroll_cmd = commands.add_parser("enroll", help="enroll one employee from one or more photos")
    enroll_cmd.add_argument("employee")
    enroll_cmd.add_argument("photos", nargs="+", type=Path)
    enroll_cmd.add_argument(
        "--allow-plain",
        action="store_true",
        help="store plain embeddings from a service without a template key",
    )
    mark_cmd = commands.add_parser("mark", help="mark attendance from camera frames")
    mark_cmd.add_argument("frames", nargs="*", type=Path)
    mark_cmd.add_argument(
        "--group",
        action="append",
        default=[],
        type=Path,
        metavar="PHOTO",
        help="a group photo (a class, a meeting): mark everyone found in it (repeat)",
    )
    mark_cmd.add_argument(
        "--burst",
        type=int,
        default=1,
        choices=range(1, 6),
        metavar="K",
        help="decide each K consecutive frames (one person) together in one call (1-5, default 1)",
    )
    mark_cmd.add_argument(
        "--fpir", type=float, help="share of strangers allowed to match (a published point, e.g. 0.001)"
    )
    report_cmd = commands.add_parser("report", help="who was present on a day")
    report_cmd.add_argument(
        "--day", default=now().date().isoformat(), help="YYYY-MM-DD (default: today, UTC)"
    )
    commands.add_parser("reseal", help="move every template to the service's current key")
    args = parser.parse_args(argv)

    db = connect(args.db)
    try:
        with FaceClient(args.target) as client:
            if args.command == "enroll":
                return 0 if enroll(db, client, args.employee, args.photos, args.allow_plain) else 1
            if args.command == "mark":
                if not args.frames and not args.group:
                    parser.error("mark needs frames or --group PHOTO")
                if args.group:
                    mark_group(db, client, args.group, args.fpir)
                if args.frames:
                    mark(db, client, args.frames, args.burst, args.fpir)
                return 0
            if args.command == "reseal":
                reseal(db, client)
                return 0
            models = served_models(client)
            report(db, args.day, (models[1] or models[0]) if len(models) > 1 else "")
            return 0
    except FaceServiceError as error:  # the service is down, a stored embedding is bad...
        print(f"attendance: {error}", file=sys.stderr)
        return 1
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
