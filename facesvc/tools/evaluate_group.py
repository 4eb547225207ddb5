"""IdentifyFaces on group photos, through the real API: LFW contact sheets and real groups.

Contact sheets (built at run time, never written to disk): 3x3 tiles of real lfw-devtrain
photos, six employees and three strangers per sheet in a seeded order, each tile scaled so
its face is about 55-100 px (LFW's faces are about 100 px in a 250 px photo). The gallery
is 500 identities: people of lfw-devtrain with two photos or more (seeded choice), each
enrolled with its first photo; an employee's tile is its last photo. Strangers are people
outside the gallery. A tile's face is the returned face nearest the tile's centre; any
other face inside the tile is a bystander (LFW's press photos often show a second person).

  employees named   the tile's face named, with the right identity
  false names       a stranger's or a bystander's face named as anyone
  twice             an identity named for two faces of one sheet (never, by construction)

--sizes: the same sheets with every tile at one nominal face size (30..100 px) and no
minimum face size on the server, binned by the size the detector measured: how accuracy
falls with face size (docs/IDENTIFY.md), which sets FACESVC_IDENTIFY_FACES_MIN_FACE_SIZE.

--groups: the 30 real photos of ../shared/faces/groups (six people, five enrolment photos
each, labels.tsv), the six enrolled beside 494 lfw-devtrain identities (500 in all):
labelled people found, and names given to someone not in the photo.

Enrolment goes through Enroll with the importer's settings (evaluate.IMPORTER); embeddings
are cached under --cache (outside the repository). Development data only.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
import numpy as np

from facesvc.config import Settings
from facesvc.tools.evaluate import IMPORTER, LFW, SHARED, embedding_key, serving, tsv
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

SEED = 27
GROUPS = SHARED / "faces" / "groups"
GALLERY_SIZE = 500
#: LFW's deep-funneled faces: about this many px (YuNet's box) in a 250 px photo.
LFW_FACE_PX = 100.0
TILE_GAP = 12


@dataclass(frozen=True)
class Tile:
    """One photo of a sheet: where it lies (sheet pixels) and who it shows."""

    x: int
    y: int
    width: int
    height: int
    identity: str
    employee: bool


@dataclass(frozen=True)
class Sheet:
    image: bytes
    tiles: tuple[Tile, ...]


@dataclass
class Tally:
    """Counts over many photos."""

    employees: int = 0
    named: int = 0
    misnamed: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    missed: int = 0
    strangers: int = 0
    strangers_named: int = 0
    bystanders: int = 0
    bystanders_named: int = 0
    twice: int = 0
    photos: int = 0

    def line(self) -> str:
        others = self.strangers + self.bystanders
        false_names = self.strangers_named + self.bystanders_named
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
        return (
            f"{self.photos} photos: employees named {self.named}/{self.employees} "
            f"({_pct(self.named, self.employees)}), misnamed {self.misnamed}, not found {self.missed}, "
            f"refused {refused}; strangers/bystanders named {false_names}/{others} "
            f"({_pct(false_names, others)}: strangers {self.strangers_named}/{self.strangers}, "
            f"bystanders {self.bystanders_named}/{self.bystanders}); named twice {self.twice}"
        )


def _pct(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "n/a"


# ---- the data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Who is in the gallery (enrolment photo) and who is on the sheets."""

    enrol: dict[str, str]  # identity -> photo (relative to lfw-devtrain)
    probes: dict[str, str]  # employee -> its probe photo
    strangers: list[tuple[str, str]]  # (identity, photo), outside the gallery


def plan(seed: int = SEED, size: int = GALLERY_SIZE) -> Plan:
    folder = SHARED / LFW
    photos: dict[str, list[str]] = defaultdict(list)
    for name, who in tsv(folder / "IDENTITIES.tsv"):
        photos[who].append(name)
    people = sorted(photos)
    random.Random(seed).shuffle(people)
    several = [p for p in people if len(photos[p]) >= 2]
    gallery = several[:size]
    chosen = set(gallery)
    enrol = {p: sorted(photos[p])[0] for p in gallery}
    probes = {p: sorted(photos[p])[-1] for p in gallery}
    strangers = [(p, sorted(photos[p])[0]) for p in people if p not in chosen]
    return Plan(enrol, probes, strangers)


def enrolled(
    stub: pb_grpc.FaceServiceStub, photos: dict[str, Path], cache: Path | None, settings: Settings
) -> tuple[list[str], np.ndarray]:
    """(ids, matrix) of the photos enrolled once each through Enroll; refused ones left out."""
    names = sorted(photos)
    key = hashlib.sha256(
        ("|".join(f"{n}={photos[n]}" for n in names) + embedding_key(SHARED / LFW, settings)).encode()
    ).hexdigest()[:16]
    path = cache / f"facesvc-group-enrol-{key}.npz" if cache else None
    if path is not None and path.is_file():
        data = np.load(path, allow_pickle=False)
        return list(data["ids"]), data["matrix"]
    ids, rows = [], []
    for name in names:
        try:
            response = stub.Enroll(pb.EnrollRequest(image=photos[name].read_bytes()), timeout=60)
        except grpc.RpcError:
            continue
        ids.append(name)
        rows.append(np.asarray(response.embedding.values, dtype=np.float32))
    matrix = np.stack(rows)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, ids=np.array(ids), matrix=matrix)
    return ids, matrix


def packed(ids: Sequence[str], matrix: np.ndarray, model: str) -> pb.PackedGallery:
    return pb.PackedGallery(ids=list(ids), values=matrix.astype("<f4").tobytes(), model=model)


def contact_sheet(
    photos: Sequence[tuple[Path, str, bool]], face_px: Sequence[float], columns: int = 3
) -> Sheet:
    """Photos (path, identity, employee) in a grid of `columns` (3x3 for nine), each scaled
    so its face is about `face_px` (one per photo), on a grey background, as one JPEG."""
    images = []
    for (path, _, _), size in zip(photos, face_px, strict=True):
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise FileNotFoundError(path)
        scale = size / LFW_FACE_PX
        images.append(cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    cell = max(max(i.shape[:2]) for i in images) + TILE_GAP
    rows = -(-len(images) // columns)
    sheet = np.full((rows * cell + TILE_GAP, columns * cell + TILE_GAP, 3), 128, dtype=np.uint8)
    tiles = []
    for index, (pixels, (_, who, employee)) in enumerate(zip(images, photos, strict=True)):
        row, column = divmod(index, columns)
        h, w = pixels.shape[:2]
        y = TILE_GAP + row * cell + (cell - TILE_GAP - h) // 2
        x = TILE_GAP + column * cell + (cell - TILE_GAP - w) // 2
        sheet[y : y + h, x : x + w] = pixels
        tiles.append(Tile(x, y, w, h, who, employee))
    ok, encoded = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return Sheet(encoded.tobytes(), tuple(tiles))


def sheets(lfw_plan: Plan, seed: int, sizes: tuple[float, float], count: int | None = None) -> list[Sheet]:
    """Six employees and three strangers a sheet, every employee once."""
    rng = random.Random(seed)
    folder = SHARED / LFW
    employees = sorted(lfw_plan.probes)
    rng.shuffle(employees)
    strangers = list(lfw_plan.strangers)
    rng.shuffle(strangers)
    made: list[Sheet] = []
    for start in range(0, len(employees) - 5, 6):
        if count is not None and len(made) >= count:
            break
        index = start // 6
        group = [(folder / lfw_plan.probes[p], p, True) for p in employees[start : start + 6]]
        group += [(folder / photo, who, False) for who, photo in strangers[3 * index : 3 * index + 3]]
        rng.shuffle(group)
        made.append(contact_sheet(group, [rng.uniform(*sizes) for _ in group]))
    return made


# ---- scoring -----------------------------------------------------------------------------


def _centre(face: pb.FaceIdentification) -> tuple[float, float]:
    box = face.face.box
    return box.x + box.width / 2, box.y + box.height / 2


def given(face: pb.FaceIdentification) -> str | None:
    """The identity given to a face, or None."""
    return face.matches[0].id if face.matches and face.matches[0].match else None


def score_sheet(
    response: pb.IdentifyFacesResponse,
    sheet: Sheet,
    tally: Tally,
    sizes: list[tuple[float, bool, str]] | None = None,
) -> None:
    """Add one sheet's answer to `tally`; `sizes` collects (face px, employee, outcome: right, wrong or none) per tile face."""
    tally.photos += 1
    names = [given(f) for f in response.faces if given(f)]
    tally.twice += len(names) - len(set(names))
    for tile in sheet.tiles:
        inside = [
            f
            for f in response.faces
            if tile.x <= _centre(f)[0] < tile.x + tile.width
            and tile.y <= _centre(f)[1] < tile.y + tile.height
        ]
        middle = (tile.x + tile.width / 2, tile.y + tile.height / 2)
        inside.sort(key=lambda f: (_centre(f)[0] - middle[0]) ** 2 + (_centre(f)[1] - middle[1]) ** 2)
        main, others = (inside[0], inside[1:]) if inside else (None, [])
        for bystander in others:
            tally.bystanders += 1
            tally.bystanders_named += given(bystander) is not None
        name = given(main) if main is not None else None
        if tile.employee:
            tally.employees += 1
            if main is None:
                tally.missed += 1
            elif main.refusal:
                tally.refused[pb.FaceRefusal.Name(main.refusal).removeprefix("FACE_REFUSAL_")] += 1
            elif name == tile.identity:
                tally.named += 1
            elif name is not None:
                tally.misnamed += 1
        else:
            tally.strangers += 1
            tally.strangers_named += name is not None
        if sizes is not None and main is not None:
            outcome = "none" if name is None else "right" if name == tile.identity else "wrong"
            sizes.append((float(min(main.face.box.width, main.face.box.height)), tile.employee, outcome))


@dataclass
class GroupTally:
    photos: int = 0
    labelled: int = 0
    found: int = 0
    wrong: int = 0
    twice: int = 0
    faces: int = 0

    def line(self) -> str:
        return (
            f"{self.photos} photos, {self.labelled} labelled faces: found {self.found} "
            f"({_pct(self.found, self.labelled)}), names given to someone not in the photo "
            f"{self.wrong}, named twice {self.twice}, faces returned {self.faces}"
        )


def group_labels() -> list[tuple[str, set[str]]]:
    return [(row[0], set(row[1].split(","))) for row in tsv(GROUPS / "labels.tsv")]


def group_enrolment() -> dict[str, list[Path]]:
    return {p.name: sorted(p.iterdir()) for p in sorted((GROUPS / "enrol").iterdir()) if p.is_dir()}


def score_group(response: pb.IdentifyFacesResponse, labelled: set[str], tally: GroupTally) -> None:
    names = [n for f in response.faces if (n := given(f))]
    tally.photos += 1
    tally.labelled += len(labelled)
    tally.found += len(labelled & set(names))
    tally.wrong += sum(1 for n in names if n not in labelled)
    tally.twice += len(names) - len(set(names))
    tally.faces += len(response.faces)


def group_gallery(
    stub: pb_grpc.FaceServiceStub,
    cache: Path | None,
    settings: Settings,
    lfw: pb.PackedGallery,
    size: int = GALLERY_SIZE,
) -> pb.PackedGallery:
    """The six people of the groups folder (every enrolment photo) and the first people of
    the lfw-devtrain gallery `lfw`, to `size` identities."""
    photos = {f"{who}#{i}": path for who, paths in group_enrolment().items() for i, path in enumerate(paths)}
    ids, matrix = enrolled(stub, photos, cache, settings)
    people = {i.split("#")[0] for i in ids}
    dimension = len(lfw.values) // 4 // len(lfw.ids)
    lfw_matrix = np.frombuffer(lfw.values, dtype="<f4").reshape(len(lfw.ids), dimension)
    # The cast's actors are LFW people too (Jennifer_Aniston): never beside their characters.
    actors = {row[3].replace(" ", "_") for row in tsv(GROUPS / "people.tsv")}
    rows = [i for i, who in enumerate(lfw.ids) if who not in actors][: size - len(people)]
    return packed(
        [i.split("#")[0] for i in ids] + [lfw.ids[i] for i in rows],
        np.vstack([matrix, lfw_matrix[rows]]),
        lfw.model,
    )


# ---- the runs ----------------------------------------------------------------------------


def run_sheets(
    stub: pb_grpc.FaceServiceStub,
    gallery: pb.PackedGallery,
    made: Sequence[Sheet],
    sizes: list[tuple[float, bool, str]] | None = None,
    fpir: float | None = None,
) -> Tally:
    tally = Tally()
    for sheet in made:
        request = pb.IdentifyFacesRequest(image=sheet.image, packed_candidates=gallery, top_k=1, fpir=fpir)
        score_sheet(stub.IdentifyFaces(request, timeout=120), sheet, tally, sizes)
    return tally


def lfw_gallery(
    stub: pb_grpc.FaceServiceStub, cache: Path | None, settings: Settings, model: str
) -> tuple[Plan, pb.PackedGallery]:
    lfw_plan = plan()
    ids, matrix = enrolled(stub, {p: SHARED / LFW / n for p, n in lfw_plan.enrol.items()}, cache, settings)
    return lfw_plan, packed(ids, matrix, model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facesvc-cache"))
    parser.add_argument("--sheets", type=int, default=None, help="at most this many contact sheets")
    parser.add_argument("--sizes", action="store_true", help="accuracy by face size (30-100 px)")
    parser.add_argument("--groups", action="store_true", help="the real group photos too")
    parser.add_argument("--fpir", type=float, default=None, help="the FPIR to ask for (default the server's)")
    args = parser.parse_args(argv)
    settings = Settings(**IMPORTER)
    curve = args.sizes
    serving_settings = settings.model_copy(update={"identify_faces_min_face_size": 1}) if curve else settings
    with serving(serving_settings) as stub:
        model = stub.Health(pb.HealthRequest(), timeout=30).model
        lfw_plan, gallery = lfw_gallery(stub, args.cache, settings, model)
        print(
            f"gallery: {len(set(gallery.ids))} identities ({model}), min face "
            f"{serving_settings.identify_faces_min_face_size} px"
        )
        if curve:
            measured: list[tuple[float, bool, str]] = []
            for nominal in (25, 30, 35, 40, 45, 50, 55, 60, 70, 85, 100):
                made = sheets(lfw_plan, SEED + nominal, (nominal, nominal), args.sheets or 20)
                run_sheets(stub, gallery, made, measured)
            print("face px  employees: named right, misnamed, not named  strangers named")
            edges = (0, 24, 30, 36, 42, 48, 54, 60, 70, 80, 100, 1000)
            for low, high in itertools.pairwise(edges):
                rows = [(e, o) for s, e, o in measured if low <= s < high]
                emp = [o for e, o in rows if e]
                strange = [o for e, o in rows if not e]
                right, wrong = emp.count("right"), emp.count("wrong")
                named = strange.count("wrong")
                print(
                    f"{low:>3}-{high:<4}  {len(emp):>4}: {_pct(right, len(emp)):>6} {_pct(wrong, len(emp)):>6} "
                    f"{_pct(len(emp) - right - wrong, len(emp)):>6}   {named}/{len(strange)} {_pct(named, len(strange))}"
                )
        else:
            made = sheets(lfw_plan, SEED, (55.0, 100.0), args.sheets)
            print("contact sheets, faces 55-100 px:", run_sheets(stub, gallery, made, fpir=args.fpir).line())
        if args.groups:
            everyone = group_gallery(stub, args.cache, settings, gallery)
            tally = GroupTally()
            for name, labelled in group_labels():
                request = pb.IdentifyFacesRequest(
                    image=(GROUPS / "group" / name).read_bytes(), packed_candidates=everyone, fpir=args.fpir
                )
                score_group(stub.IdentifyFaces(request, timeout=120), labelled, tally)
            print(f"groups ({len(set(everyone.ids))} identities):", tally.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
