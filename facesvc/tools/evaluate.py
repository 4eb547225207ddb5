"""`make eval`: accuracy of the service, through its API, on every labelled set in ../shared.

A real server (port 0, in this process) is started for each configuration; every
labelled photo is sent to Enroll once and the embeddings come back over gRPC, so
the figures are what a caller gets. Then, per set:

- the set's PAIRS.tsv at the served default threshold (from Health): accuracy, false
  accepts and false rejects. A pair with a refused photo counts as an error (a false
  reject for a genuine pair, and an impostor pair is not credited either), so
  refusals never flatter the figures;
- every pair of the accepted photos (all impostor and genuine pairs, from
  IDENTITIES.tsv): the threshold at false-accept rates 1%, 0.1% and 0.01% and the
  false-reject rate there, i.e. the model's operating points;
- 10-fold cross-validated accuracy over PAIRS.tsv (threshold chosen on nine folds,
  counted on the tenth; folds interleaved, pair i in fold i mod 10).

The shared faces sets (celebs, yale, orl) run on the service's settings (FACESVC_*
environment); lfw-devtrain runs on an importer's: face selection CENTRAL,
FACESVC_MIN_FACE_SIZE=64 (and FACESVC_PRESENTATION_ATTACK=off where that setting
exists), everything else as configured.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc.engine.types import OperatingPoint
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FACE_SETS = ("celebs", "yale", "orl")
LFW = "lfw-devtrain"
#: How an archive importer configures the service for press photos (lfw-devtrain's README).
#: An importer also turns the presentation-attack stage off where the service has one: press
#: photos are photos of photos by design, and that stage is for live captures.
IMPORTER: Mapping[str, Any] = {
    "face_selection": "central",
    "min_face_size": 64,
    **{
        name: "off"
        for name in ("presentation_attack", "presentation_attack_enroll")
        if name in Settings.model_fields
    },
}
#: The false-accept rates the operating points are placed at.
FARS = (0.01, 0.001, 0.0001)


@dataclass(frozen=True)
class Embedded:
    """A set's photos as the service embedded them."""

    names: list[str]
    identities: np.ndarray  # (N,) str, one per name
    matrix: np.ndarray  # (N, D); rows of refused photos are NaN
    refused: Counter[str]
    metric: str
    model: str
    threshold: float
    seconds_per_image: float

    @property
    def accepted(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.matrix).any(axis=1))


@dataclass(frozen=True)
class PairScore:
    """A set's PAIRS.tsv at one threshold."""

    pairs: int
    genuine: int
    correct: int
    false_accepts: int
    false_rejects: int
    with_refusal: int

    @property
    def impostors(self) -> int:
        return self.pairs - self.genuine

    @property
    def accuracy(self) -> float:
        return self.correct / self.pairs


def tsv(path: Path) -> list[list[str]]:
    with path.open() as handle:
        return [row for row in csv.reader(handle, delimiter="\t") if row]


def pairs_of(folder: Path) -> list[tuple[str, str, bool]]:
    return [(a, b, same == "1") for a, b, same in tsv(folder / "PAIRS.tsv")]


@contextmanager
def serving(settings: Settings) -> Iterator[pb_grpc.FaceServiceStub]:
    """A real server on an ephemeral port, and a stub talking to it."""
    from facesvc.rpc.server import create_server

    engine = FaceEngine(settings)
    engine.load()
    server = create_server(settings.model_copy(update={"port": 0, "host": "127.0.0.1"}), engine)
    server.server.start()
    server.set_serving()
    try:
        with grpc.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 64 << 20)]
        ) as channel:
            yield pb_grpc.FaceServiceStub(channel)  # type: ignore[no-untyped-call]
    finally:
        server.stop(None).wait(10)


def embed_set(
    stub: pb_grpc.FaceServiceStub,
    folder: Path,
    only: set[str] | None = None,
) -> Embedded:
    """Enroll every photo of IDENTITIES.tsv (or those in `only`) once, through the API."""
    health = stub.Health(pb.HealthRequest(), timeout=30)
    rows = [row for row in tsv(folder / "IDENTITIES.tsv") if only is None or row[0] in only]
    matrix = np.full((len(rows), health.embedding_dim), np.nan, dtype=np.float32)
    refused: Counter[str] = Counter()
    started = time.perf_counter()
    for index, (name, _) in enumerate(rows):
        request = pb.EnrollRequest(image=(folder / name).read_bytes())
        try:
            matrix[index] = stub.Enroll(request, timeout=60).embedding.values
        except grpc.RpcError as error:
            refused[_reason(error)] += 1
    return Embedded(
        names=[name for name, _ in rows],
        identities=np.array([who for _, who in rows]),
        matrix=matrix,
        refused=refused,
        metric=health.distance_metric,
        model=health.model,
        threshold=health.threshold,
        seconds_per_image=(time.perf_counter() - started) / max(len(rows), 1),
    )


def _reason(error: grpc.RpcError) -> str:
    from google.rpc import error_details_pb2, status_pb2

    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return str(error.code().name)


def distance_matrix(matrix: np.ndarray, metric: str) -> np.ndarray:
    """All pairwise distances, in the service's metric (facesvc.engine.matching.scores)."""
    values = matrix.astype(np.float64)
    if metric == "euclidean":
        squares = (values * values).sum(axis=1)
        return np.asarray(
            np.sqrt(np.maximum(squares[:, None] + squares[None, :] - 2 * values @ values.T, 0.0))
        )
    unit = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    return np.asarray(1.0 - unit @ unit.T)


def all_pairs(embedded: Embedded) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every genuine and every impostor pair of the accepted photos."""
    keep = embedded.accepted
    ids = embedded.identities[keep]
    distances = distance_matrix(embedded.matrix[keep], embedded.metric)
    upper = np.triu_indices(len(ids), 1)
    same = ids[upper[0]] == ids[upper[1]]
    values = distances[upper]
    return values[same], np.sort(values[~same])


def operating_points(
    genuine: np.ndarray, impostors: np.ndarray, fars: tuple[float, ...] = FARS
) -> list[OperatingPoint]:
    """For each target FAR the largest threshold, rounded down to 0.001, at which at most
    that share of impostor pairs is accepted; FRR is measured at the rounded threshold."""
    points = []
    for far in fars:
        allowed = int(far * len(impostors))
        if allowed < 1:
            continue
        threshold = float(np.floor(impostors[allowed] * 1000 - 1e-9) / 1000)
        points.append(OperatingPoint(far=far, threshold=threshold, frr=float((genuine > threshold).mean())))
    return points


def pair_distances(
    embedded: Embedded, folder: Path, pairs: list[tuple[str, str, bool]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's distance (NaN where a photo was refused) and label; PAIRS.tsv's pairs
    unless `pairs` is given."""
    index = {name: i for i, name in enumerate(embedded.names)}
    pairs = pairs_of(folder) if pairs is None else pairs
    a = embedded.matrix[[index[p[0]] for p in pairs]].astype(np.float64)
    b = embedded.matrix[[index[p[1]] for p in pairs]].astype(np.float64)
    if embedded.metric == "euclidean":
        distances = np.linalg.norm(a - b, axis=1)
    else:
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        distances = 1.0 - (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    return distances, np.array([p[2] for p in pairs])


def score_pairs(distances: np.ndarray, same: np.ndarray, threshold: float) -> PairScore:
    refused = np.isnan(distances)
    match = ~refused & (distances <= threshold)
    return PairScore(
        pairs=len(same),
        genuine=int(same.sum()),
        correct=int((~refused & (match == same)).sum()),
        false_accepts=int((match & ~same).sum()),
        false_rejects=int((same & ~match).sum()),
        with_refusal=int(refused.sum()),
    )


def cross_validated(distances: np.ndarray, same: np.ndarray, folds: int = 10) -> float:
    """Mean accuracy over `folds` folds, each at the threshold best on the others."""
    fold = np.arange(len(same)) % folds
    accuracies = []
    for k in range(folds):
        train = fold != k
        candidates = np.unique(distances[train & ~np.isnan(distances)])
        if not len(candidates):
            accuracies.append(0.0)
            continue
        correct = [score_pairs(distances[train], same[train], float(t)).correct for t in candidates]
        threshold = float(candidates[int(np.argmax(correct))])
        accuracies.append(score_pairs(distances[~train], same[~train], threshold).accuracy)
    return float(np.mean(accuracies))


def embedding_key(folder: Path, settings: Settings) -> str:
    """What names a set's cached embeddings: the folder and every setting that can change
    an embedding (Identify's decision settings change none, and the open-set table may not
    exist yet when the calibration embeds)."""
    plain = settings.model_dump_json(exclude={"identify_fpir", "identify_undecided_margin"})
    return hashlib.sha256(f"{folder.resolve()}|{plain}".encode()).hexdigest()[:16]


def _cached(folder: Path, settings: Settings, cache: Path | None, embed: Any) -> Embedded:
    """Embeddings from `cache` (a folder outside the repository) when the same set was
    embedded under the same settings before, else from the service."""
    if cache is None:
        return embed()  # type: ignore[no-any-return]
    path = cache / f"facesvc-eval-{folder.name}-{embedding_key(folder, settings)}.npz"
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        return Embedded(
            names=list(data["names"]),
            identities=data["identities"],
            matrix=data["matrix"],
            refused=Counter(dict(zip(data["reasons"].tolist(), data["counts"].tolist(), strict=True))),
            metric=str(data["metric"]),
            model=str(data["model"]),
            threshold=float(data["threshold"]),
            seconds_per_image=float(data["seconds"]),
        )
    embedded: Embedded = embed()
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        names=np.array(embedded.names),
        identities=embedded.identities,
        matrix=embedded.matrix,
        reasons=np.array(list(embedded.refused) or [""])[: len(embedded.refused)],
        counts=np.array(list(embedded.refused.values()), dtype=np.int64),
        metric=embedded.metric,
        model=embedded.model,
        threshold=embedded.threshold,
        seconds=embedded.seconds_per_image,
    )
    return embedded


def _percent(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / max(total, 1):.2f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="folder holding faces/ and lfw-devtrain/")
    parser.add_argument("--sets", nargs="*", default=[*FACE_SETS, LFW])
    parser.add_argument("--cache", type=Path, help="keep embeddings here between runs (outside the repo)")
    args = parser.parse_args(argv)

    base = Settings()
    configurations = {
        "service": (base, [s for s in args.sets if s != LFW]),
        "importer": (base.model_copy(update=dict(IMPORTER)), [s for s in args.sets if s == LFW]),
    }
    table = (
        "| set | settings | pairs (same/diff) | accuracy at the default | false accepts | false rejects "
        "| pairs with a refused photo | refused photos | 10-fold CV accuracy "
        "| all pairs: FAR -> threshold (FRR) | ms per photo |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for label, (settings, names) in configurations.items():
        if not names:
            continue
        with serving(settings) as stub:
            health = stub.Health(pb.HealthRequest(), timeout=30)
            print(
                f"\n{label} settings: model {health.model}, {health.distance_metric} distance, default "
                f"threshold {health.threshold:.3f} (FAR {100 * health.default_far:g}%)\n\n{table}",
                flush=True,
            )
            for name in names:
                folder = args.shared / name if name == LFW else args.shared / "faces" / name
                if not (folder / "PAIRS.tsv").is_file():
                    print(f"| {name} | missing | | | | | | | | | |")
                    continue
                embedded = _cached(folder, settings, args.cache, lambda f=folder: embed_set(stub, f))
                distances, same = pair_distances(embedded, folder)
                result = score_pairs(distances, same, embedded.threshold)
                genuine, impostors = all_pairs(embedded)
                points = "; ".join(
                    f"{100 * p.far:g}% -> {p.threshold:.3f} ({100 * p.frr:.2f}%)"
                    for p in operating_points(genuine, impostors)
                )
                refused = ", ".join(f"{r} {c}" for r, c in embedded.refused.most_common()) or "none"
                print(
                    f"| {name} | {label} | {result.pairs} ({result.genuine}/{result.impostors}) "
                    f"| {100 * result.accuracy:.2f}% | {_percent(result.false_accepts, result.impostors)} "
                    f"| {_percent(result.false_rejects, result.genuine)} | {result.with_refusal} "
                    f"| {sum(embedded.refused.values())}/{len(embedded.names)}: {refused} "
                    f"| {100 * cross_validated(distances, same):.2f}% "
                    f"| {len(impostors):,} impostor, {len(genuine):,} genuine pairs: {points or 'too few pairs'} "
                    f"| {1000 * embedded.seconds_per_image:.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
