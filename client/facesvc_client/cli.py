"""`facesvc`: the command-line tool. Results as JSON on stdout (for jq), errors in words on
stderr, and an exit code per failure kind, so scripts can branch without parsing text."""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from facesvc_client._transport import DEFAULT_TARGET, DEFAULT_TIMEOUT, TLSConfig
from facesvc_client._version import __version__
from facesvc_client.client import FaceClient
from facesvc_client.errors import (
    AuthenticationError,
    DeadlineExceededError,
    EmbeddingInvalidError,
    EmbeddingModelMismatchError,
    FaceNotScorableError,
    FaceServiceError,
    FaceTooSmallError,
    ImageTooLargeError,
    ImageTooSmallError,
    ImageUndecodableError,
    InternalError,
    LivenessFailedError,
    LowQualityError,
    MultipleFacesError,
    NoFaceError,
    PresentationAttackError,
    RequestTooLargeError,
    SealingUnavailableError,
    ServiceUnavailableError,
    TemplateInvalidError,
)
from facesvc_client.liveness import LivenessEvent, video_frames
from facesvc_client.types import (
    Candidate,
    FaceSelection,
    PresentationAttackMode,
    Template,
    template_from_dict,
)


class Exit(enum.IntEnum):
    """The tool's exit codes. 1 is an answer, not a failure, as with grep."""

    OK = 0
    NO_MATCH = 1
    """verify: no match; identify: nobody in the gallery matched; health: not serving."""
    USAGE = 2
    """Bad arguments, or a photo, embedding or gallery file that cannot be read."""
    IMAGE_UNDECODABLE = 3
    IMAGE_TOO_SMALL = 4
    IMAGE_TOO_LARGE = 5
    NO_FACE = 6
    MULTIPLE_FACES = 7
    FACE_TOO_SMALL = 8
    LOW_QUALITY = 9
    LIVENESS_FAILED = 10
    EMBEDDING_INVALID = 11
    EMBEDDING_MODEL_MISMATCH = 12
    UNAVAILABLE = 13
    """The service cannot be reached, or is still loading (after retries)."""
    DEADLINE_EXCEEDED = 14
    AUTHENTICATION = 15
    REQUEST_TOO_LARGE = 16
    INTERNAL = 17
    OTHER = 18
    """Any other failure status."""
    PRESENTATION_ATTACK = 19
    """The face was taken for a print or a screen held to the camera."""
    FACE_NOT_SCORABLE = 20
    """The face is too small, cut off or too close to judge whether it is live: move, retry."""
    LIVENESS_SESSION_FAILED = 21
    """liveness: the session ended FAILED (its reason is in the JSON)."""
    TEMPLATE_INVALID = 22
    """A sealed template does not open, or a plain one went to a sealed-only service."""
    SEALING_UNAVAILABLE = 23
    """reseal: the service has no template key."""


_EXIT_FOR: Mapping[type[FaceServiceError], Exit] = {
    ImageUndecodableError: Exit.IMAGE_UNDECODABLE,
    ImageTooSmallError: Exit.IMAGE_TOO_SMALL,
    ImageTooLargeError: Exit.IMAGE_TOO_LARGE,
    NoFaceError: Exit.NO_FACE,
    MultipleFacesError: Exit.MULTIPLE_FACES,
    FaceTooSmallError: Exit.FACE_TOO_SMALL,
    LowQualityError: Exit.LOW_QUALITY,
    LivenessFailedError: Exit.LIVENESS_FAILED,
    PresentationAttackError: Exit.PRESENTATION_ATTACK,
    FaceNotScorableError: Exit.FACE_NOT_SCORABLE,
    EmbeddingInvalidError: Exit.EMBEDDING_INVALID,
    EmbeddingModelMismatchError: Exit.EMBEDDING_MODEL_MISMATCH,
    TemplateInvalidError: Exit.TEMPLATE_INVALID,
    SealingUnavailableError: Exit.SEALING_UNAVAILABLE,
    ServiceUnavailableError: Exit.UNAVAILABLE,
    DeadlineExceededError: Exit.DEADLINE_EXCEEDED,
    AuthenticationError: Exit.AUTHENTICATION,
    RequestTooLargeError: Exit.REQUEST_TOO_LARGE,
    InternalError: Exit.INTERNAL,
}


def exit_code_for(error: FaceServiceError) -> Exit:
    """The exit code of the most specific class of `error` that has one."""
    for cls in type(error).__mro__:
        if cls in _EXIT_FOR:
            return _EXIT_FOR[cls]
    return Exit.OTHER


class UsageError(Exception):
    """An input the tool itself cannot use (exit 2)."""


_EPILOG = "exit codes:\n" + "\n".join(f"  {code.value:>2}  {code.name.lower()}" for code in Exit)


def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the command; SUPPRESS keeps a
    # subcommand's unset option from overwriting the same option given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help=f"service address (env FACESVC_TARGET; default {DEFAULT_TARGET}); "
        "dns:///name:port spreads calls over every replica",
    )
    common.add_argument(
        "--timeout",
        type=_positive,
        default=argparse.SUPPRESS,
        help=f"deadline per call in seconds, retries included (default {DEFAULT_TIMEOUT:g})",
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="sent as x-api-key metadata (env FACESVC_API_KEY)"
    )
    common.add_argument("--tls", action="store_true", default=argparse.SUPPRESS, help="connect with TLS")
    common.add_argument(
        "--ca-cert", type=Path, default=argparse.SUPPRESS, help="PEM roots to trust (implies --tls)"
    )
    common.add_argument(
        "--pretty", action="store_true", default=argparse.SUPPRESS, help="indent the JSON output"
    )

    parser = argparse.ArgumentParser(
        prog="facesvc",
        description="Enroll, verify and identify faces with a facesvc service.",
        parents=[common],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def photo_and_selection(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("photo", help="JPEG, PNG, BMP or WebP file; - reads stdin")
        sub.add_argument(
            "--face-selection",
            choices=[s.value for s in FaceSelection],
            help="which face to take when the photo shows several (default: the service's)",
        )
        sub.add_argument(
            "--presentation-attack",
            choices=[m.value for m in PresentationAttackMode],
            help="the presentation-attack (print or screen) check for this call (default: the "
            "service's, see health; a weaker one only if the service lets this caller relax it)",
        )

    enroll = command("enroll", "Enroll the face in PHOTO and print its embedding.")
    photo_and_selection(enroll)
    enroll.add_argument(
        "more_photos",
        nargs="*",
        metavar="MORE",
        help="further photos of the same person: up to --max-templates templates are kept (store them all)",
    )
    enroll.add_argument(
        "--max-templates", type=int, default=0, help="the most templates to keep (default: 3)"
    )

    verify = command("verify", "Check whether PHOTO shows the person of the stored embeddings.")
    photo_and_selection(verify)
    verify.add_argument(
        "--embedding",
        action="append",
        required=True,
        metavar="FILE",
        help="an embedding, a list of them, or enroll's output (JSON); repeat for several templates",
    )
    verify.add_argument("--threshold", type=_positive, help="distance threshold for this call")
    verify.add_argument(
        "--far",
        type=_positive,
        help="use the published operating point of this false-accept rate (e.g. 0.001)",
    )

    identify = command("identify", "Find who PHOTO shows among the people of a gallery.")
    photo_and_selection(identify)
    identify.add_argument(
        "--gallery",
        required=True,
        metavar="FILE",
        help='JSON: {"id": embedding or [embeddings] or enroll output, ...} '
        'or [{"id": ..., "embedding": ...}, ...]',
    )
    identify.add_argument("--top-k", type=int, default=1, help="how many identities to list (default 1)")
    identify.add_argument("--threshold", type=_positive, help="distance threshold for this call")
    identify.add_argument(
        "--far",
        type=_positive,
        help="use the published operating point of this false-accept rate (e.g. 0.001)",
    )
    identify.add_argument(
        "--fpir",
        type=_positive,
        help="the share of strangers allowed to match (a published point, e.g. 0.01; default the service's)",
    )
    identify.add_argument(
        "--more",
        action="append",
        default=[],
        metavar="PHOTO",
        help="another frame of the same person, decided together with PHOTO (repeat, at most 4)",
    )

    faces = command(
        "identify-faces",
        "Find everyone PHOTO (a group photo) shows among the people of a gallery, one face each.",
    )
    faces.add_argument("photo", help="JPEG, PNG, BMP or WebP file; - reads stdin")
    faces.add_argument("--gallery", required=True, metavar="FILE", help="a gallery, as for identify (JSON)")
    faces.add_argument(
        "--top-k", type=int, default=1, help="how many identities to list per face (default 1)"
    )
    faces.add_argument(
        "--max-faces",
        type=int,
        default=0,
        help="at most this many faces, largest first (default: the service's cap)",
    )
    faces.add_argument(
        "--fpir",
        type=_positive,
        help="the share of strangers' faces allowed to match (a published point; default the service's)",
    )
    faces.add_argument(
        "--presentation-attack",
        choices=[m.value for m in PresentationAttackMode],
        help="the presentation-attack check for this call (default: the service's)",
    )

    reseal = command(
        "reseal", "Print the templates of FILEs sealed under the service's current key (no photo needed)."
    )
    reseal.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="templates (plain or sealed), lists of them, or enroll output",
    )

    command("health", "Print the serving model and configuration.")

    live = command(
        "liveness",
        "Play VIDEO as the camera of a liveness session: one JSON line per prompt as it is "
        "drawn, then the result (needs the video extra: pip install 'facesvc-client[video]').",
    )
    live.add_argument("video", help="a video file OpenCV reads (MP4, AVI, ...)")
    live.add_argument(
        "--embedding",
        action="append",
        metavar="FILE",
        help="stored embedding(s) of the person (JSON): the result carries a Verify result",
    )
    live.add_argument("--gallery", metavar="FILE", help="a gallery (as identify's): an Identify result")
    live.add_argument("--top-k", type=int, default=1, help="identities to list with --gallery")
    live.add_argument(
        "--fast",
        action="store_true",
        help="send frames as fast as the session takes them, not at the video's pace",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (2)
        return int(stop.code or 0)
    opened: list[FaceClient] = []

    def connect() -> FaceClient:
        """The client, opened once a command has read and checked its inputs: a usage error
        never dials the service."""
        if not opened:
            opened.append(_client(args))
        return opened[0]

    try:
        payload, answer = _COMMANDS[args.command](connect, args)
    except UsageError as error:
        print(f"facesvc: {error}", file=sys.stderr)
        return Exit.USAGE
    except _SessionFailed as failed:
        print(f"facesvc liveness: the session failed: {failed}", file=sys.stderr)
        return Exit.LIVENESS_SESSION_FAILED
    except FaceServiceError as error:
        print(f"facesvc {args.command}: {error}", file=sys.stderr)
        return exit_code_for(error)
    finally:
        for client in opened:
            client.close()
    indent = 2 if getattr(args, "pretty", False) else None
    try:
        print(json.dumps(payload, indent=indent), flush=True)
    except BrokenPipeError:  # `facesvc ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return Exit.OK if answer else Exit.NO_MATCH


def _client(args: argparse.Namespace) -> FaceClient:
    target = getattr(args, "target", None) or os.environ.get("FACESVC_TARGET") or DEFAULT_TARGET
    ca_cert: Path | None = getattr(args, "ca_cert", None)
    tls: TLSConfig | bool = getattr(args, "tls", False)
    if ca_cert is not None:
        tls = TLSConfig(root_certificates=_read(str(ca_cert), "CA certificate"))
    return FaceClient(
        target,
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        api_key=getattr(args, "api_key", None) or os.environ.get("FACESVC_API_KEY"),
        tls=tls,
    )


#: Opens the client; a command calls it once its inputs are read and checked.
Connect = Callable[[], FaceClient]


def _enroll(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    photo, more = _read(args.photo, "photo"), [_read(path, "photo") for path in args.more_photos]
    result = connect().enroll(
        photo,
        face_selection=_selection(args),
        presentation_attack=_attack_mode(args),
        more_images=more,
        max_templates=args.max_templates,
    )
    return result.to_dict(), True


def _verify(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    stored = [embedding for path in args.embedding for embedding in load_embeddings(path)]
    photo = _read(args.photo, "photo")
    result = connect().verify(
        photo,
        stored,
        threshold=args.threshold,
        far=args.far,
        face_selection=_selection(args),
        presentation_attack=_attack_mode(args),
    )
    return result.to_dict(), result.match


def _identify(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    photo, gallery = _read(args.photo, "photo"), load_gallery(args.gallery)
    more = [_read(path, "--more") for path in args.more]
    result = connect().identify(
        photo,
        gallery,
        top_k=args.top_k,
        threshold=args.threshold,
        far=args.far,
        fpir=args.fpir,
        more_images=more,
        face_selection=_selection(args),
        presentation_attack=_attack_mode(args),
    )
    return result.to_dict(), result.best is not None


def _identify_faces(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    photo, gallery = _read(args.photo, "photo"), load_gallery(args.gallery)
    result = connect().identify_faces(
        photo,
        gallery,
        top_k=args.top_k,
        max_faces=args.max_faces,
        fpir=args.fpir,
        presentation_attack=_attack_mode(args),
    )
    return result.to_dict(), bool(result.named)


def _reseal(connect: Connect, args: argparse.Namespace) -> tuple[Any, bool]:
    templates = [template for path in args.files for template in load_embeddings(path)]
    return [template.to_dict() for template in connect().reseal(templates)], True


def _health(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    result = connect().health()
    return result.to_dict(), result.serving


def _liveness(connect: Connect, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    try:
        rate, frames = video_frames(args.video, pace=not args.fast)
    except RuntimeError as error:
        raise UsageError(str(error)) from None
    shown: list[int] = []

    def on_event(event: LivenessEvent) -> None:
        if not shown or shown[-1] != event.prompt.index:
            shown.append(event.prompt.index)
            prompt = event.prompt
            line = {"prompt": prompt.challenge.value, "index": prompt.index, "count": prompt.count}
            print(json.dumps(line | {"timeout_seconds": round(prompt.timeout_seconds, 3)}), flush=True)

    stored = [e for path in args.embedding for e in load_embeddings(path)] if args.embedding else None
    candidates = load_gallery(args.gallery) if args.gallery else None
    client = connect()
    result = client.check_liveness(
        frames,
        stored=stored,
        candidates=candidates,
        top_k=args.top_k,
        frame_rate=min(rate, 60.0),
        on_event=on_event,
        timeout=max(client.timeout, 120.0),
    )
    if not result.passed:
        # The JSON goes out before the exit code says FAILED.
        print(json.dumps(result.to_dict(), indent=2 if getattr(args, "pretty", False) else None), flush=True)
        raise _SessionFailed(result.failure or "")
    return result.to_dict(), True


class _SessionFailed(Exception):
    """liveness: the session ended FAILED; its JSON was printed."""


_COMMANDS: Mapping[str, Callable[[Connect, argparse.Namespace], tuple[Any, bool]]] = {
    "enroll": _enroll,
    "verify": _verify,
    "identify": _identify,
    "identify-faces": _identify_faces,
    "reseal": _reseal,
    "health": _health,
    "liveness": _liveness,
}


# ---- input files ----------------------------------------------------------------------


def load_embeddings(path: str) -> list[Template]:
    """The templates in a JSON file (plain embeddings or sealed templates, passed through
    unchanged): one, enroll's output, or a list of either."""
    try:
        return _embeddings_in(_json(path))
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None


def load_gallery(path: str) -> list[Candidate]:
    """A gallery file: {"id": embedding(s), ...} or [{"id": ..., "embedding": ...}, ...]."""
    data = _json(path)
    try:
        if isinstance(data, dict):
            gallery = [Candidate(str(key), e) for key, value in data.items() for e in _embeddings_in(value)]
        elif isinstance(data, list):
            gallery = []
            for entry in data:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    raise ValueError('each entry needs an "id" and an "embedding"')
                gallery.extend(Candidate(entry["id"], e) for e in _embeddings_in(entry.get("embedding")))
        else:
            raise ValueError("a gallery is a JSON object or list")
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None
    if not gallery:
        raise UsageError(f"{path}: the gallery is empty")
    return gallery


def _embeddings_in(data: Any) -> list[Template]:
    if isinstance(data, dict) and isinstance(data.get("templates"), list) and data["templates"]:
        data = data["templates"]  # enroll's whole output with several templates: all of them
    items = data if isinstance(data, list) else [data]
    result = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("embedding"), dict):
            item = item["embedding"]  # enroll's whole output
        result.append(template_from_dict(item))
    if not result:
        raise ValueError("no embedding found")
    return result


def _json(path: str) -> Any:
    try:
        return json.loads(_read(path, "file"))
    except json.JSONDecodeError as error:
        raise UsageError(f"{path}: not JSON ({error})") from None


def _read(path: str, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _selection(args: argparse.Namespace) -> FaceSelection | None:
    return FaceSelection(args.face_selection) if args.face_selection else None


def _attack_mode(args: argparse.Namespace) -> PresentationAttackMode | None:
    return PresentationAttackMode(args.presentation_attack) if args.presentation_attack else None


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
