"""The recognition engine: one instance per process, shared by every RPC.

decode -> size check -> detect -> choose the face -> quality -> liveness -> align
and embed -> compare. Models are loaded and warmed up once (`load`); after that
every method is thread-safe.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from facesvc.config import Settings
from facesvc.engine import group
from facesvc.engine.matching import open_set, scores, validation
from facesvc.engine.matching.gallery import Checked, Gallery
from facesvc.engine.migration import Migration
from facesvc.engine.pipeline import decode, quality
from facesvc.engine.pipeline.checks import LivenessLimits, run_checks
from facesvc.engine.pipeline.detectors import FaceDetector, create_detector, landmarks_in_box
from facesvc.engine.pipeline.presentation_attack import AttackMode, AttackScore, PresentationAttackDetector
from facesvc.engine.pipeline.recognizers import FaceRecognizer, create_recognizer
from facesvc.engine.pipeline.selection import MultiFaceRule, choose_face
from facesvc.engine.quality import MeshEyeOpenness, QualityAssessor, floor_of
from facesvc.engine.runtime import licences
from facesvc.engine.session.face_state import MeshFaceState
from facesvc.engine.stages import STAGES as STAGES  # re-exported: facesvc.rpc.metrics reads it
from facesvc.engine.stages import StageClock
from facesvc.engine.stages import StageObserver as StageObserver  # re-exported
from facesvc.engine.stages import StopCheck as StopCheck  # re-exported: rpc.guard, session
from facesvc.engine.templates import enrolment
from facesvc.engine.types import (
    AnalysedFace,
    Box,
    Detection,
    EngineInfo,
    Enrollment,
    FaceSelection,
    FloatArray,
    Identification,
    Image,
    OpenSetInfo,
    StoredEmbedding,
    Verification,
)
from facesvc.errors import (
    EmbeddingInvalidError,
    EngineNotReadyError,
    FaceNotScorableError,
    FaceTooSmallError,
    IdentityUndecidedError,
    LivenessFailedError,
    NoFaceError,
    PresentationAttackError,
    PresentationAttackRelaxDeniedError,
    PresentationAttackUnavailableError,
)

log = logging.getLogger("facesvc.engine")


class FaceEngine:
    """Loads the configured detector and model once, then serves many requests."""

    def __init__(self, settings: Settings, observer: StageObserver | None = None) -> None:
        self.settings = settings
        #: Receives per-stage timings; set it before serving (see facesvc.rpc.metrics).
        self.observer = observer
        self._detector: FaceDetector | None = None
        self._recognizer: FaceRecognizer | None = None
        self.migration: Migration | None = None  # FACESVC_MODEL_NEXT / _PREVIOUS
        self._attack: PresentationAttackDetector | None = None
        #: The presentation-attack mode of the kiosk path (Verify, Identify, sessions) and of Enroll.
        self.attack_mode = AttackMode(settings.presentation_attack)
        self.enroll_attack_mode = AttackMode(settings.presentation_attack_enroll)
        self._ready = threading.Event()
        self._rule = MultiFaceRule(
            settings.multi_face_size_ratio,
            settings.multi_face_min_confidence,
            settings.multi_face_sharpness_ratio,
        )
        self._liveness = LivenessLimits(
            settings.liveness_min_sharpness,
            settings.liveness_min_brightness,
            settings.liveness_max_brightness,
            settings.min_face_size,
        )
        self._quality = QualityAssessor(settings.model, settings.quality_threshold)
        self.face_mesh: MeshFaceState | None = None
        self.load_seconds: float | None = None
        #: Threads that analyse a burst's further frames beside the first (one per model slot).
        self._burst: ThreadPoolExecutor | None = None

    # ---- lifecycle -------------------------------------------------------------

    def load(self, warmup_image: Image | None = None) -> None:
        """Load the models and run one real inference; raises ModelUnavailableError when a
        model cannot be had (the server then refuses to start)."""
        started = time.perf_counter()
        # OpenCV reads 0 as 'no threads' and a negative count as 'its default'.
        cv2.setNumThreads(self.settings.opencv_threads or -1)
        # numpy's BLAS on one thread: its only work here is a gallery's matrix-vector
        # product (10,000 x 128 takes 0.2 ms on one core), and OpenBLAS's pool, once woken,
        # spins on every core after each call, taking them from OpenCV's networks in the
        # next request (measured: Identify 10,000 / Verify 1.9 with the pool, 1.3 without).
        threadpool_limits(limits=1, user_api="blas")
        slots = self.settings.engine_slots or os.cpu_count() or 1
        if slots > 1 and self._burst is None:
            self._burst = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="facesvc-burst")
        self._detector = create_detector(
            self.settings.detector, self.settings.weights_dir, self.settings.detector_min_confidence, slots
        )
        self._recognizer = create_recognizer(self.settings.model, self.settings.weights_dir, slots)
        # The Face Mesh, for the eyes_open component and the liveness sessions: half the
        # slots (it is ~3 ms of a 40 ms call; each copy holds ~9 MB).
        self.face_mesh = MeshFaceState(max(1, slots // 2))
        self._quality.eyes = MeshEyeOpenness(self.face_mesh)
        self.migration = Migration.load(self.settings, self._recognizer, self.settings.weights_dir, slots)
        for option, name, vetted in (
            ("FACESVC_MODEL", self.settings.model, licences.VETTED_MODELS),
            ("FACESVC_DETECTOR", self.settings.detector, licences.VETTED_DETECTORS),
        ):
            if name not in vetted:
                log.warning(
                    "%s=%s loads weights from DeepFace's zoo: not pinned, not in the licence table, "
                    "often under research-only terms; check them before a commercial deployment "
                    "(docs/LICENCES.md)",
                    option,
                    name,
                )
        if self.attack_mode is not AttackMode.OFF or self.enroll_attack_mode is not AttackMode.OFF:
            self._attack = PresentationAttackDetector(
                self.settings.presentation_attack_threshold,
                self.settings.presentation_attack_min_face_size,
                slots,
                self.settings.weights_dir,
            )
        table = self.open_set_table(self._recognizer)
        if table is not None and table.point(self.settings.identify_fpir) is None:
            raise ValueError(
                f"FACESVC_IDENTIFY_FPIR={self.settings.identify_fpir:g} is not a published point of "
                f"{self._recognizer.name} ({', '.join(f'{f:g}' for f in table.fpirs)}); or 0 to turn the rule off"
            )
        self._warm_up(warmup_image)
        self.load_seconds = time.perf_counter() - started
        self._ready.set()
        log.info(
            "engine ready",
            extra={
                "model": self._recognizer.name,
                "detector": self._detector.name,
                "load_seconds": round(self.load_seconds, 3),
            },
        )

    def sharing_models(self, settings: Settings) -> FaceEngine:
        """A ready engine with other `settings` over this loaded one's networks (detector,
        recognizer, attack stage, Face Mesh): tests and benchmarks, without a second load."""
        other = FaceEngine(settings)
        other._detector, other._recognizer, other._attack = self._detector, self._recognizer, self._attack
        other.face_mesh, other._quality.eyes = self.face_mesh, self._quality.eyes
        other._ready.set()
        return other

    def _warm_up(self, image: Image | None) -> None:
        """One detection and one embedding, so the first caller pays no lazy initialisation."""
        assert self._detector is not None and self._recognizer is not None
        if image is None:
            image = np.full((480, 640, 3), 127, dtype=np.uint8)
        detections = self._detector.detect(image)
        if detections:
            detection = detections[0]
        else:
            # No face in a blank frame: embed a synthetic box anyway, to run the network.
            box = Box(220, 140, 200, 200)
            detection = Detection(box, 1.0, landmarks_in_box(box))
        embedding = self._recognizer.embed(image, detection)
        if self._attack is not None:
            self._attack.judge(image, detection.box, detection.box.size)
        if embedding.shape != (self._recognizer.dimension,) or not np.all(np.isfinite(embedding)):
            raise RuntimeError(f"warm-up embedding has shape {embedding.shape} or non-finite values")

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def info(self) -> EngineInfo:
        recognizer = self._recognizer
        return EngineInfo(
            model=recognizer.name if recognizer else self.settings.model,
            detector=self._detector.name if self._detector else self.settings.detector,
            embedding_dim=recognizer.dimension if recognizer else 0,
            threshold=self.default_threshold,
            distance_metric=recognizer.metric if recognizer else "",
            attack_model=self._attack.name if self._attack else "",
            operating_points=recognizer.operating_points if recognizer else (),
            default_far=self._default_far(recognizer),
            open_set=self._open_set_info(recognizer),
            models=self.migration.roles(self.default_threshold) if self.migration else None,
        )

    def open_set_table(self, recognizer: FaceRecognizer | None = None) -> open_set.OpenSetTable | None:
        """The serving model's open-set table, or None when the rule is off
        (FACESVC_IDENTIFY_FPIR=0) or the model was not calibrated."""
        recognizer = recognizer or self._recognizer
        if recognizer is None or not self.settings.identify_fpir:
            return None
        return open_set.table_for(recognizer.name)

    def open_set_rule(self, recognizer: FaceRecognizer | None = None) -> open_set.OpenSetRule | None:
        """Identify's open-set rule for the serving model, or None (see open_set_table)."""
        table = self.open_set_table(recognizer)
        return (
            None
            if table is None
            else open_set.OpenSetRule(table, self.settings.identify_fpir, self.default_threshold)
        )

    def _open_set_info(self, recognizer: FaceRecognizer | None) -> OpenSetInfo | None:
        rule = self.open_set_rule(recognizer)
        return None if rule is None else rule.info()

    def _default_far(self, recognizer: FaceRecognizer | None) -> float:
        if recognizer is None or self.settings.verification_threshold is not None:
            return 0.0
        return next(
            (p.far for p in recognizer.operating_points if p.threshold == recognizer.default_threshold), 0.0
        )

    @property
    def default_threshold(self) -> float:
        if self.settings.verification_threshold is not None:
            return self.settings.verification_threshold
        return self._recognizer.default_threshold if self._recognizer else 0.0

    def _migrating(self) -> Migration | None:
        """The migration's models when a next or previous one is loaded (facesvc.engine.migration)."""
        return self.migration if self.migration is not None and self.migration.active else None

    def _models(self) -> tuple[FaceDetector, FaceRecognizer]:
        if not self._ready.is_set() or self._detector is None or self._recognizer is None:
            raise EngineNotReadyError("the engine is still loading its models")
        return self._detector, self._recognizer

    # ---- the pipeline -------------------------------------------------------------

    def attack_mode_for(
        self, default: AttackMode, requested: AttackMode | None = None, may_relax: bool = False
    ) -> AttackMode:
        """The presentation-attack mode of one request: the RPC's default, or what the
        request asks for. Asking for more is always allowed; asking for less only when
        `may_relax` (the caller holds a relax key, see Settings)."""
        self._models()  # EngineNotReadyError first: while loading, no model is there yet
        if requested is None or requested is default:
            mode = default
        elif requested.strength > default.strength or may_relax:
            mode = requested
        else:
            raise PresentationAttackRelaxDeniedError(
                f"This caller may not lower the presentation-attack check from {default.value} "
                f"to {requested.value}.",
                requested=requested.value,
                server_mode=default.value,
            )
        if mode is not AttackMode.OFF and self._attack is None:
            raise PresentationAttackUnavailableError(
                "The presentation-attack stage is off on this server (FACESVC_PRESENTATION_ATTACK).",
                requested=mode.value,
            )
        return mode

    def analyse(
        self,
        image_bytes: bytes,
        selection: FaceSelection | None = None,
        should_stop: StopCheck | None = None,
        presentation_attack: AttackMode | None = None,
        *,
        embed: bool = True,
        detection_size: int | None = None,
        min_quality: float = 0.0,
    ) -> AnalysedFace:
        """Decode, detect, choose, measure, check and embed the one face a photo is about.
        `should_stop` is asked at every stage boundary (RequestAbandonedError when true).
        `presentation_attack` is the mode of the attack stage (None: the kiosk default).
        The liveness session's frames skip the embedding (`embed=False`: an empty one;
        see embed_face) and detect at their own `detection_size`."""
        detector, recognizer = self._models()
        settings = self.settings
        clock = StageClock(self.observer, should_stop)
        header = decode.read_header(
            image_bytes,
            min_size=settings.min_image_size,
            max_size=settings.max_image_size,
            max_pixels=settings.max_image_pixels,
        )
        detect_at = detection_size or settings.detection_size
        reduction = decode.reduction_for(header, detect_at)
        pixels = decode.decode(image_bytes, header, reduction)
        small, det_scale = decode.resize_long_side(pixels, detect_at)
        if settings.detect_small_images_upscaled and 2 * max(small.shape[:2]) <= detect_at:
            # A small photo (LFW's 250 px press photos) is detected at twice its size: YuNet's
            # landmarks on a 90 px face are coarse, and SFace's alignment follows them.
            # Measured on lfw-devtrain: FRR at FAR 0.1% 1.04% -> 0.63% (docs/MODELS.md).
            small = cv2.resize(small, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
            det_scale *= 2.0
        clock.lap("decode")
        # detection-image pixels -> original pixels
        to_original = reduction / det_scale
        detections = [d for d in detector.detect(small) if d.confidence >= settings.detector_min_confidence]
        clock.lap("detect")
        if not detections:
            raise NoFaceError("No face found in the image.", face_count=0)

        sharpness_cache: dict[int, float] = {}

        def sharpness_of(detection: Detection) -> float:
            key = id(detection)
            if key not in sharpness_cache:
                sharpness_cache[key] = quality.laplacian_variance(quality.face_patch(small, detection.box))
            return sharpness_cache[key]

        chosen = choose_face(
            detections,
            selection or FaceSelection(settings.face_selection),
            (small.shape[1], small.shape[0]),
            self._rule,
            sharpness_of,
        )
        clock.lap("select")
        face_px = chosen.box.size * to_original
        if face_px < settings.min_face_size:
            raise FaceTooSmallError(
                f"The face is {face_px:.0f} px; it must be at least {settings.min_face_size} px.",
                face_size=round(face_px),
                min_face_size=settings.min_face_size,
            )

        # Measure and embed from the decoded image, unless libjpeg's reduction left the
        # face smaller than the crop the model needs: then decode the full image.
        source, source_scale = pixels, float(reduction)
        if reduction > 1 and face_px / reduction < recognizer.crop_size:
            source, source_scale = decode.decode(image_bytes, header, 1), 1.0
            clock.lap("decode")
        face = chosen.scaled(to_original / source_scale)
        face_quality = quality.measure(source, face.box, face_px)
        checks = run_checks(face, face_quality, face_px, self._liveness) if settings.liveness_checks else ()
        clock.lap("quality")
        self._quality.gate(face_quality)
        failed = [check for check in checks if not check.passed]
        if failed:
            raise LivenessFailedError(
                "Liveness check failed: " + ", ".join(f"{c.name} ({c.detail})" for c in failed) + ".",
                failed_checks=",".join(c.name for c in failed),
                **{f"{c.name}_value": c.value for c in failed},
            )
        mode = self.attack_mode if presentation_attack is None else presentation_attack
        if mode is not AttackMode.OFF and self._attack is not None:
            verdict = self._attack.judge(source, face.box, face_px)
            checks = (*checks, *verdict.as_checks())
            clock.lap("presentation_attack")
            if mode is AttackMode.ENFORCE:
                self._enforce(verdict, face_px)
        embedding = recognizer.embed(source, face) if embed else np.zeros(0, dtype=np.float32)
        face_quality = self._quality.assess(face_quality, source, face, face_px, embedding, min_quality)
        log.debug(
            "face analysed",
            extra={
                "face_count": len(detections),
                "face_size": round(face_px),
                "quality_score": face_quality.score,
                "decode_reduction": reduction,
            },
        )
        clock.lap("embed")
        return AnalysedFace(
            detection=face.scaled(source_scale),
            face_count=len(detections),
            quality=face_quality,
            liveness=checks,
            embedding=embedding,
            **({"pixels": source, "source": face} if self._migrating() else {}),  # type: ignore[arg-type]
        )

    def _enforce(self, verdict: AttackScore, face_px: float) -> None:
        assert self._attack is not None
        if verdict.unscorable is not None:
            raise FaceNotScorableError(
                f"The liveness of this face cannot be judged: {verdict.unscorable.detail}, then retry.",
                cause=verdict.unscorable.cause,
                face_size=round(face_px),
                min_face_size=self._attack.min_face_size,
            )
        if not verdict.live:
            raise PresentationAttackError(
                f"The face looks like a print or a screen (live score {verdict.live_score:.3f}, "
                f"below {verdict.threshold:g}).",
                live_score=verdict.live_score,
                threshold=verdict.threshold,
                model=self._attack.name,
            )

    def enroll(
        self,
        image_bytes: bytes,
        selection: FaceSelection | None = None,
        should_stop: StopCheck | None = None,
        presentation_attack: AttackMode | None = None,
        may_relax: bool = False,
        more_images: Sequence[bytes] = (),
        max_templates: int = 0,
        min_quality: float | None = None,
    ) -> Enrollment:
        """`presentation_attack`: the mode the request asks for (None: the Enroll default,
        FACESVC_PRESENTATION_ATTACK_ENROLL); see attack_mode_for. `more_images`: further
        photos of the person, analysed side by side; see facesvc.engine.templates.enrolment."""
        settings, recognizer = self.settings, self._models()[1]
        enrolment.check_count(1 + len(more_images), settings.enroll_max_images)
        count = enrolment.templates_wanted(max_templates, settings.enroll_max_templates)
        mode = self.attack_mode_for(self.enroll_attack_mode, presentation_attack, may_relax)
        floor = floor_of(min_quality, settings.enroll_min_quality)
        face, more = self._analyse_burst(
            image_bytes, more_images, selection, should_stop, mode, floor, floor_more=True
        )
        return enrolment.enrol(
            [face, *more], recognizer.name, recognizer.metric, self.default_threshold, count
        )

    def verify(
        self,
        image_bytes: bytes,
        stored: Sequence[StoredEmbedding],
        threshold: float | None = None,
        selection: FaceSelection | None = None,
        should_stop: StopCheck | None = None,
        presentation_attack: AttackMode | None = None,
        may_relax: bool = False,
        far: float | None = None,
        min_quality: float | None = None,
    ) -> Verification:
        _, recognizer = self._models()
        if (migration := self._migrating()) is not None:  # templates of several models
            migration.check(stored, None, self)
            face = self.analyse(
                image_bytes,
                selection,
                should_stop,
                self.attack_mode_for(self.attack_mode, presentation_attack, may_relax),
            )
            return migration.verify(self, face, stored, threshold, far)
        gallery = validation.stacked(stored, recognizer, what="stored_embeddings")
        limit = self._threshold(threshold, far, recognizer)
        mode = self.attack_mode_for(self.attack_mode, presentation_attack, may_relax)
        floor = floor_of(min_quality, self.settings.probe_min_quality)
        face = self.analyse(image_bytes, selection, should_stop, mode, min_quality=floor)
        return self._verification(face, gallery, limit, recognizer)

    def identify(
        self,
        image_bytes: bytes,
        gallery: Gallery,
        top_k: int = 1,
        threshold: float | None = None,
        selection: FaceSelection | None = None,
        should_stop: StopCheck | None = None,
        presentation_attack: AttackMode | None = None,
        may_relax: bool = False,
        far: float | None = None,
        fpir: float | None = None,
        more_images: Sequence[bytes] = (),
        min_quality: float | None = None,
    ) -> Identification:
        """The closest identities of `gallery`. The threshold is, in this order: `threshold`
        or `far` when given (as before the open-set rule), else the open-set rule's for the
        gallery's number of identities at `fpir` (default FACESVC_IDENTIFY_FPIR).
        `more_images` are further frames of the same person (a burst), decided together."""
        _, recognizer = self._models()
        if top_k < 0:
            raise EmbeddingInvalidError("top_k must not be negative.", top_k=top_k)
        if len(more_images) + 1 > open_set.MAX_FRAMES:
            raise EmbeddingInvalidError(
                f"A burst holds at most {open_set.MAX_FRAMES} frames; this one has {len(more_images) + 1}.",
                frames=len(more_images) + 1,
                max_frames=open_set.MAX_FRAMES,
            )
        if (migration := self._migrating()) is not None:  # a gallery of several models
            migration.check((), gallery, self)
            mode = self.attack_mode_for(self.attack_mode, presentation_attack, may_relax)
            floor = floor_of(min_quality, self.settings.probe_min_quality)
            face, more = self._analyse_burst(image_bytes, more_images, selection, should_stop, mode, floor)
            frames = [f.embedding for f in more]
            return self._decided(
                *migration.identify(self, face, gallery, top_k, threshold, far, fpir, frames)
            )
        checked = validation.checked_matrix(gallery.matrix, gallery.models, recognizer, what="candidates")
        identities = open_set.counted(gallery.ids, self.open_set_table(recognizer))
        limit, target = self._identify_threshold(threshold, far, fpir, identities, recognizer)
        mode = self.attack_mode_for(self.attack_mode, presentation_attack, may_relax)
        floor = floor_of(min_quality, self.settings.probe_min_quality)
        face, more = self._analyse_burst(image_bytes, more_images, selection, should_stop, mode, floor)
        frames = [f.embedding for f in more]
        result = self._identification(
            face, gallery.ids, checked, top_k, limit, recognizer, identities, target, frames
        )
        return self._decided(result, limit)

    def _decided(self, result: Identification, limit: float) -> Identification:
        """`result`, unless its best identity lies within the undecided margin of `limit`."""
        margin = self.settings.identify_undecided_margin
        if margin and result.fpir and abs(result.matches[0].distance - limit) <= margin:
            raise IdentityUndecidedError(
                f"The closest identity is {result.matches[0].distance:.3f} from this face, within "
                f"{margin:g} of the threshold {limit:.3f}; send another frame or a burst.",
                distance=result.matches[0].distance,
                threshold=limit,
                margin=margin,
                frames=result.frames,
            )
        return result

    def identify_faces(
        self,
        image_bytes: bytes,
        gallery: Gallery,
        top_k: int = 1,
        fpir: float | None = None,
        max_faces: int = 0,
        should_stop: StopCheck | None = None,
        presentation_attack: AttackMode | None = None,
        may_relax: bool = False,
    ) -> group.GroupIdentification:
        """Every face of a group photo against `gallery`, one person to one face, under
        Identify's open-set rule at `fpir` (facesvc.engine.group)."""
        detector, recognizer = self._models()
        if top_k < 0:
            raise EmbeddingInvalidError("top_k must not be negative.", top_k=top_k)
        checked = validation.checked_matrix(gallery.matrix, gallery.models, recognizer, what="candidates")
        counted = open_set.counted(gallery.ids, self.open_set_table(recognizer))
        limit, target = self._identify_threshold(None, None, fpir, counted, recognizer)
        mode = self.attack_mode_for(self.attack_mode, presentation_attack, may_relax)
        request = group.GroupRequest(
            image_bytes, gallery.ids, checked, top_k, limit, counted.identities, target, max_faces, mode
        )
        models = group.GroupModels(detector, recognizer, self._attack)
        return group.identify_faces(models, self.settings, request, StageClock(self.observer, should_stop))

    def _analyse_burst(
        self,
        first: bytes,
        more: Sequence[bytes],
        selection: FaceSelection | None,
        should_stop: StopCheck | None,
        mode: AttackMode,
        floor: float = 0.0,
        floor_more: bool = False,
    ) -> tuple[AnalysedFace, list[AnalysedFace]]:
        """The first frame in this thread and a burst's further frames beside it on the
        burst threads, so that a 3-frame burst on two cores answers in about two frames'
        time rather than three, for the same CPU (bench --only identify). Errors are raised
        in frame order, as if the frames had been analysed one after the other, and with
        further frames they name theirs (metadata image_index)."""
        first_one = enrolment.indexed(functools.partial(self.analyse, min_quality=floor), named=bool(more))
        one = first_one if floor_more else enrolment.indexed(self.analyse, named=bool(more))
        if not more or self._burst is None:
            face = first_one(0, first, selection, should_stop, mode)
            return face, [one(i, m, selection, should_stop, mode) for i, m in enumerate(more, 1)]
        # Each frame runs in a copy of the caller's context, so what the caller keeps there
        # (the request's metrics and log fields) follows the frame to its thread.
        pending = [
            self._burst.submit(contextvars.copy_context().run, one, i, m, selection, should_stop, mode)
            for i, m in enumerate(more, 1)
        ]
        try:
            face = first_one(0, first, selection, should_stop, mode)
            return face, [future.result() for future in pending]
        finally:
            for future in pending:
                future.cancel()  # those not started yet, when a frame was refused

    def _identify_threshold(
        self,
        threshold: float | None,
        far: float | None,
        fpir: float | None,
        identities: open_set.Counted,
        recognizer: FaceRecognizer,
    ) -> tuple[float, float]:
        """Identify's threshold and the FPIR target it holds (0 for a caller's threshold/far)."""
        if fpir is not None and (threshold is not None or far is not None):
            raise EmbeddingInvalidError("Send one of threshold, far or fpir.", fpir=fpir)
        if threshold is not None or far is not None:
            return self._threshold(threshold, far, recognizer), 0.0
        rule = self.open_set_rule(recognizer)
        if rule is None:
            if fpir is not None:
                raise EmbeddingInvalidError(
                    f"fpir is not available: the open-set rule is off or {recognizer.name} has no "
                    "open-set calibration.",
                    fpir=fpir,
                    published="none",
                )
            return self.default_threshold, 0.0
        return rule.threshold(identities.weight, fpir)

    # ---- an analysed face against templates (the liveness session's best frame) ----

    def check_templates(self, stored: Sequence[StoredEmbedding] = (), gallery: Gallery | None = None) -> None:
        """Validate templates before any face is analysed (EmbeddingInvalidError, ...)."""
        _, recognizer = self._models()
        if (migration := self._migrating()) is not None:
            return migration.check(stored, gallery, self)
        if stored:
            validation.stacked(stored, recognizer, what="stored_embeddings")
        if gallery is not None:
            validation.checked_matrix(gallery.matrix, gallery.models, recognizer, what="candidates")

    def compare(
        self, face: AnalysedFace, stored: Sequence[StoredEmbedding], threshold: float | None = None
    ) -> Verification:
        """Verify's comparison for a face already analysed."""
        _, recognizer = self._models()
        if (migration := self._migrating()) is not None:  # the session judged the face live
            return migration.verify(self, face, stored, threshold, judged_live=True)
        templates = validation.stacked(stored, recognizer, what="stored_embeddings")
        return self._verification(face, templates, self._threshold(threshold), recognizer)

    def rank(
        self,
        face: AnalysedFace,
        gallery: Gallery,
        top_k: int = 1,
        threshold: float | None = None,
        more_embeddings: Sequence[FloatArray] = (),
    ) -> Identification:
        """Identify's ranking for a face already analysed, under the same rule as Identify
        (a threshold when given, else the open-set rule at FACESVC_IDENTIFY_FPIR);
        `more_embeddings` are further frames of the same person, decided together."""
        _, recognizer = self._models()
        frames = list(more_embeddings)[: open_set.MAX_FRAMES - 1]
        if (migration := self._migrating()) is not None:  # the session judged the face live
            return migration.identify(self, face, gallery, top_k, threshold, None, None, frames, True)[0]
        checked = validation.checked_matrix(gallery.matrix, gallery.models, recognizer, what="candidates")
        identities = open_set.counted(gallery.ids, self.open_set_table(recognizer))
        limit, target = self._identify_threshold(threshold, None, None, identities, recognizer)
        return self._identification(
            face, gallery.ids, checked, top_k, limit, recognizer, identities, target, frames
        )

    @staticmethod
    def _verification(
        face: AnalysedFace, templates: Checked, limit: float, recognizer: FaceRecognizer
    ) -> Verification:
        """The closest of a person's templates decides."""
        dists = scores.distances(face.embedding, templates.matrix, recognizer.metric, templates.norms)
        best = int(np.argmin(dists))
        distance = float(dists[best])
        return Verification(
            face=face,
            model=recognizer.name,
            match=distance <= limit,
            confidence=scores.confidence(distance, limit),
            distance=distance,
            threshold=limit,
            best_template_index=best,
        )

    @staticmethod
    def _identification(
        face: AnalysedFace,
        ids: Sequence[str],
        gallery: Checked,
        top_k: int,
        limit: float,
        recognizer: FaceRecognizer,
        identities: open_set.Counted,
        fpir: float = 0.0,
        frames: Sequence[FloatArray] = (),
    ) -> Identification:
        """Closest rows first; the first row seen of an id is its best template. With
        further frames, each row's distance is fused over the frames first."""
        lives = np.stack([face.embedding, *frames])  # one pass over the gallery for every frame
        every = scores.distances_of(lives, gallery.matrix, recognizer.metric, gallery.norms)
        dists = open_set.fuse_frames(every) if frames else every[0]
        return Identification(
            face=face,
            model=recognizer.name,
            threshold=limit,
            matches=open_set.rank(ids, dists, top_k, limit),
            identities=identities.identities,
            weight=identities.weight,
            fpir=fpir,
            frames=1 + len(frames),
        )

    def check_stored(self, stored: Sequence[StoredEmbedding], what: str) -> None:
        """Validate stored embeddings as Verify does, without a photo (Reseal)."""
        if (migration := self._migrating()) is not None:
            return migration.check(stored, None, self)
        validation.stacked(stored, self._models()[1], what)

    def embed_face(self, pixels: Image, face: AnalysedFace) -> AnalysedFace:
        """`face` (analysed with embed=False) with its embedding, from the full-size upright
        pixels of its image."""
        _, recognizer = self._models()
        kept = {"pixels": pixels, "source": face.detection} if self._migrating() else {}
        return replace(face, embedding=recognizer.embed(pixels, face.detection), **kept)  # type: ignore[arg-type]

    def distance(self, first: FloatArray, second: FloatArray) -> float:
        """The model's distance between two embeddings it made."""
        _, recognizer = self._models()
        return float(scores.distances(first, second[np.newaxis, :], recognizer.metric)[0])

    # ---- validation of what the caller stored ------------------------------------

    def _threshold(
        self, requested: float | None, far: float | None = None, recognizer: FaceRecognizer | None = None
    ) -> float:
        if far is not None:
            if requested is not None:
                raise EmbeddingInvalidError("Send threshold or far, not both.", threshold=requested, far=far)
            points = recognizer.operating_points if recognizer else ()
            # float32 on the wire: 0.001 arrives as 0.0010000000475.
            point = next((p for p in points if math.isclose(p.far, far, rel_tol=1e-4)), None)
            if point is None:
                published = ", ".join(f"{p.far:g}" for p in points) or "none"
                raise EmbeddingInvalidError(
                    f"far {far:g} is not a published operating point of this model ({published}).",
                    far=far,
                    published=published,
                )
            return point.threshold
        if requested is None:
            return self.default_threshold
        if not math.isfinite(requested) or requested <= 0:
            raise EmbeddingInvalidError("threshold must be a positive finite number.", threshold=requested)
        return float(requested)
